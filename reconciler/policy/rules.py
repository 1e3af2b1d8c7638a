"""The policy rules, as plain functions of plain values.

Each rule is checked in two places with the same function: on manifests by ``reconciler validate``
(:mod:`reconciler.validation.policy`, before anything exists) and on the declared Pulumi resources by the CrossGuard
pack in ``policies/`` (:mod:`reconciler.policy.resources`). A check returns ``None`` (or nothing) when the rule
holds and a one-line message when it does not; the adapters decide where the message points.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum

from reconciler.manifest.model import DEFAULT_ACCESS_ROLES
from reconciler.scim.errors import PathError
from reconciler.scim.paths import parse_path

DEFAULT_ACCESS_ROLE_ID = "00000000-0000-0000-0000-000000000000"
SECRET_TOKEN_KEY = "SecretToken"
NOTIFICATION_SETTINGS_KEY = "SyncNotificationSettings"

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class Enforcement(StrEnum):
    MANDATORY = "mandatory"  # validate: an error (exit 1); CrossGuard: blocks the update
    ADVISORY = "advisory"  # validate: a warning (exit 0); CrossGuard: reported, does not block


@dataclass(frozen=True)
class Rule:
    name: str
    description: str
    enforcement: Enforcement

    @property
    def mandatory(self) -> bool:
        return self.enforcement is Enforcement.MANDATORY


NO_DEFAULT_ACCESS = Rule(
    "no-default-access-assignment",
    "App role assignments use a declared app role, never Default Access (Entra does not provision those users).",
    Enforcement.MANDATORY,
)
NOTIFICATION_EMAIL = Rule(
    "notification-email",
    "Every service principal has a notification email for provisioning failures and quarantine.",
    Enforcement.MANDATORY,
)
ASSIGNMENT_REQUIRED = Rule(
    "assignment-required-when-scope-assigned",
    "When provisioning scope is 'assigned', the service principal requires an app role assignment.",
    Enforcement.MANDATORY,
)
SECRET_TOKEN = Rule(
    "secret-token-not-plaintext",
    "The SCIM SecretToken is a Pulumi secret, stored encrypted; never a plaintext value.",
    Enforcement.MANDATORY,
)
OWNERS = Rule(
    "at-least-one-owner",
    "Every application and service principal has at least one owner.",
    Enforcement.MANDATORY,
)
MATCHING_FILTERABLE = Rule(
    "matching-attributes-filterable",
    "Matching attributes are attributes the target can filter on (provisioning.filterableAttributes).",
    Enforcement.MANDATORY,
)
DELETION_THRESHOLD = Rule(
    "deletion-threshold-set",
    "A deletion threshold is set, so one run cannot disable or delete more objects than that.",
    Enforcement.MANDATORY,
)
ASSIGNED_SCOPE_HAS_ASSIGNMENTS = Rule(
    "assigned-scope-has-assignments",
    "Scope 'assigned' with no assignments provisions nobody.",
    Enforcement.ADVISORY,
)

RULES: tuple[Rule, ...] = (
    NO_DEFAULT_ACCESS,
    NOTIFICATION_EMAIL,
    ASSIGNMENT_REQUIRED,
    SECRET_TOKEN,
    OWNERS,
    MATCHING_FILTERABLE,
    DELETION_THRESHOLD,
    ASSIGNED_SCOPE_HAS_ASSIGNMENTS,
)


def default_access(role: str | None) -> str | None:
    """``role`` is a role value, display name or app role id."""
    if role is None:
        return None
    if role == DEFAULT_ACCESS_ROLE_ID or role.strip().lower() in DEFAULT_ACCESS_ROLES:
        return (f"role {role!r} is the Default Access role; users assigned to it are not provisioned, "
                "assign a declared app role")
    return None


def notification_email(addresses: Sequence[str] | None) -> str | None:
    if not addresses:
        return "no notification email: set notificationEmail so provisioning failures reach someone"
    bad = [a for a in addresses if not isinstance(a, str) or not _EMAIL.match(a)]
    if bad:
        return f"notification email {bad[0]!r} is not an email address"
    return None


def assignment_required(scope: str | None, required: bool | None) -> str | None:
    if scope == "assigned" and required is not True:
        return ("provisioning scope is 'assigned' but the service principal does not require an app role "
                "assignment (appRoleAssignmentRequired must be true)")
    return None


def secret_token(present: bool, is_secret: bool | None, secret_outputs: Sequence[str]) -> list[str]:
    """``is_secret`` is None where the caller cannot know (CrossGuard's SDK unwraps secrets before policies)."""
    problems = []
    if not present:
        problems.append(f"the synchronization secret has no {SECRET_TOKEN_KEY}")
    elif is_secret is False:
        problems.append(f"{SECRET_TOKEN_KEY} is plaintext: wrap it in pulumi.Output.secret "
                        "(read it with config.require_secret)")
    if "credentials" not in secret_outputs:
        problems.append("credentials are not in additionalSecretOutputs, so the engine would store the "
                        f"{SECRET_TOKEN_KEY} it reads back in plaintext")
    return problems


def token_env_name(name: str) -> str | None:
    """A tokenEnv that looks like a credential rather than the name of a variable holding one."""
    if len(name) >= 20 and "_" not in name and not name.isupper() and re.search(r"\d", name):
        return ("this looks like a token, not the name of an environment variable; put the token in a "
                "variable (e.g. ATEA_SCIM_TOKEN) and name the variable here")
    return None


def owners(owner_ids: Sequence[str] | None) -> str | None:
    if not owner_ids:
        return "needs at least one owner (a user principal name or object id)"
    return None


def matching_filterable(matching: Sequence[str], filterable: Sequence[str]) -> Iterator[tuple[int, str]]:
    """(index into ``matching``, message) for each matching attribute the target cannot filter on."""
    allowed = {_canonical(a) for a in filterable}
    for index, target in enumerate(matching):
        if _canonical(target) not in allowed:
            listed = ", ".join(filterable) if filterable else "none"
            yield index, (f"matching attribute {target!r} is not one the target can filter on "
                          f"(filterableAttributes: {listed}); lookups by it would fail and create duplicates")


def deletion_threshold(threshold: object) -> str | None:
    if threshold is None:
        return "no deletion threshold: set provisioning.deletionThreshold"
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or threshold < 0:
        return f"deletion threshold {threshold!r} is not a non-negative number"
    return None


def assigned_scope_has_assignments(scope: str | None, assignments: int) -> str | None:
    if scope == "assigned" and assignments == 0:
        return "scope is 'assigned' but nobody is assigned: no user or group would be provisioned"
    return None


def _canonical(path: str) -> str:
    """SCIM attribute names compare case-insensitively; filter values do not."""
    try:
        parsed = parse_path(path)
    except PathError:
        return path.strip().lower()
    filter_ = f"[{parsed.filter[0].lower()} eq {parsed.filter[1]!r}]" if parsed.filter else ""
    schema = f"{parsed.schema.lower()}:" if parsed.schema else ""
    sub = f".{parsed.sub_attribute.lower()}" if parsed.sub_attribute else ""
    return f"{schema}{parsed.attribute.lower()}{filter_}{sub}"
