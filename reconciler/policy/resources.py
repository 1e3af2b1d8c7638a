"""The policy rules applied to declared Pulumi resources: the shape CrossGuard sees during ``pulumi preview``.

A :class:`Subject` is one resource as a policy sees it: its type token, logical name, engine-named (camelCase)
properties, its parent's logical name, and ``additionalSecretOutputs``. Resource policies get a resource's inputs;
stack policies get every resource's outputs, so the component registers the settings its stack rules read
(``scope``, ``assignments``, ...) as outputs as well as inputs. ``secret_props`` names the top-level
properties known to be secret, or is None where that cannot be known: the CrossGuard Python SDK unwraps secrets
before a policy sees them, so there the pack checks ``additionalSecretOutputs`` and leaves plaintext detection to
the mock-based run (:mod:`reconciler.azure.declared`), where the secret markers survive.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from reconciler.policy import rules
from reconciler.policy.rules import Rule

APPLICATION = "azuread:index/application:Application"
SERVICE_PRINCIPAL = "azuread:index/servicePrincipal:ServicePrincipal"
APP_ROLE_ASSIGNMENT = "azuread:index/appRoleAssignment:AppRoleAssignment"
SYNCHRONIZATION_SECRET = "azuread:index/synchronizationSecret:SynchronizationSecret"
SYNCHRONIZATION_JOB = "azuread:index/synchronizationJob:SynchronizationJob"
ENTERPRISE_APP = "reconciler:azure:EnterpriseApp"


@dataclass(frozen=True)
class Subject:
    type: str
    name: str
    props: Mapping[str, Any]
    parent: str | None = None
    secret_outputs: tuple[str, ...] = ()
    secret_props: frozenset[str] | None = None


@dataclass(frozen=True)
class Violation:
    rule: Rule
    resource: str  # "<type> <name>"
    message: str

    def __str__(self) -> str:
        level = "error" if self.rule.mandatory else "warning"
        return f"{self.resource}: {level}: {self.message} [{self.rule.name}]"


@dataclass(frozen=True)
class ResourceCheck:
    rule: Rule
    types: frozenset[str]
    check: Callable[[Subject], Iterable[str]] = field(compare=False)


@dataclass(frozen=True)
class StackCheck:
    rule: Rule
    check: Callable[[Sequence[Subject]], Iterable[tuple[Subject, str]]] = field(compare=False)


def _some(message: str | None) -> list[str]:
    return [message] if message else []


def _credentials(subject: Subject) -> dict[str, Any]:
    items = subject.props.get("credentials") or []
    return {str(c.get("key")): c.get("value") for c in items if isinstance(c, Mapping)}


def _default_access(subject: Subject) -> list[str]:
    return _some(rules.default_access(subject.props.get("appRoleId")))


def _notification_email(subject: Subject) -> list[str]:
    return _some(rules.notification_email(subject.props.get("notificationEmailAddresses")))


def _owners(subject: Subject) -> list[str]:
    return _some(rules.owners(subject.props.get("owners")))


def _secret_token(subject: Subject) -> list[str]:
    credentials = _credentials(subject)
    present = bool(credentials.get(rules.SECRET_TOKEN_KEY))
    is_secret = None if subject.secret_props is None else "credentials" in subject.secret_props
    return rules.secret_token(present, is_secret, subject.secret_outputs)


def _deletion_threshold(subject: Subject) -> list[str]:
    if subject.type == ENTERPRISE_APP:
        return _some(rules.deletion_threshold(subject.props.get("deletionThreshold")))
    raw = _credentials(subject).get(rules.NOTIFICATION_SETTINGS_KEY)
    try:
        settings = json.loads(raw) if isinstance(raw, str) else None
    except ValueError:
        settings = None
    if not isinstance(settings, dict) or settings.get("DeleteThresholdEnabled") is not True:
        return [f"Entra's accidental-deletion threshold is not enabled ({rules.NOTIFICATION_SETTINGS_KEY} "
                "needs DeleteThresholdEnabled: true and DeleteThresholdValue)"]
    return _some(rules.deletion_threshold(settings.get("DeleteThresholdValue")))


def _matching_filterable(subject: Subject) -> list[str]:
    messages: list[str] = []
    filterable = subject.props.get("filterableAttributes") or []
    for kind in ("users", "groups"):
        matching = subject.props.get(f"{kind}MatchingAttributes") or []
        messages.extend(f"{kind}: {m}" for _, m in rules.matching_filterable(matching, filterable))
    return messages


RESOURCE_CHECKS: tuple[ResourceCheck, ...] = (
    ResourceCheck(rules.NO_DEFAULT_ACCESS, frozenset({APP_ROLE_ASSIGNMENT}), _default_access),
    ResourceCheck(rules.NOTIFICATION_EMAIL, frozenset({SERVICE_PRINCIPAL}), _notification_email),
    ResourceCheck(rules.OWNERS, frozenset({APPLICATION, SERVICE_PRINCIPAL}), _owners),
    ResourceCheck(rules.SECRET_TOKEN, frozenset({SYNCHRONIZATION_SECRET}), _secret_token),
    ResourceCheck(rules.DELETION_THRESHOLD, frozenset({ENTERPRISE_APP, SYNCHRONIZATION_SECRET}), _deletion_threshold),
    ResourceCheck(rules.MATCHING_FILTERABLE, frozenset({ENTERPRISE_APP}), _matching_filterable),
)


def _children(subjects: Sequence[Subject], parent: Subject, type_: str) -> list[Subject]:
    return [s for s in subjects if s.parent == parent.name and s.type == type_]


def _assignment_required(subjects: Sequence[Subject]) -> Iterator[tuple[Subject, str]]:
    for app in (s for s in subjects if s.type == ENTERPRISE_APP):
        for sp in _children(subjects, app, SERVICE_PRINCIPAL):
            message = rules.assignment_required(app.props.get("scope"), sp.props.get("appRoleAssignmentRequired"))
            if message:
                yield sp, message


def _assigned_scope(subjects: Sequence[Subject]) -> Iterator[tuple[Subject, str]]:
    for app in (s for s in subjects if s.type == ENTERPRISE_APP):
        declared = app.props.get("assignments")  # the component's output (a float off the wire), else count
        count = (int(declared) if isinstance(declared, int | float) and not isinstance(declared, bool)
                 else len(_children(subjects, app, APP_ROLE_ASSIGNMENT)))
        message = rules.assigned_scope_has_assignments(app.props.get("scope"), count)
        if message:
            yield app, message


STACK_CHECKS: tuple[StackCheck, ...] = (
    StackCheck(rules.ASSIGNMENT_REQUIRED, _assignment_required),
    StackCheck(rules.ASSIGNED_SCOPE_HAS_ASSIGNMENTS, _assigned_scope),
)


def check_resource(subject: Subject) -> list[Violation]:
    return [Violation(c.rule, f"{subject.type} {subject.name}", message)
            for c in RESOURCE_CHECKS if subject.type in c.types for message in c.check(subject)]


def check_stack(subjects: Sequence[Subject]) -> list[Violation]:
    """Every resource rule on every subject, then the rules that relate resources to each other."""
    found = [v for s in subjects for v in check_resource(s)]
    for stack_check in STACK_CHECKS:
        found.extend(Violation(stack_check.rule, f"{s.type} {s.name}", m) for s, m in stack_check.check(subjects))
    return found
