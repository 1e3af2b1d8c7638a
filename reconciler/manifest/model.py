"""Manifest v1: the pydantic models of one enterprise application, exactly the keys of the contract.

Keys are camelCase in YAML (``displayName``) and snake_case in Python (``display_name``). Unknown keys are errors.
Rules that need more than one field (roles referenced by assignments, unique targets, matching precedences ...)
live in :mod:`reconciler.manifest.checks`, where each problem can name the exact key it is about.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal
from urllib.parse import SplitResult, urlsplit

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator
from pydantic.alias_generators import to_camel

from reconciler.scim.errors import PathError
from reconciler.scim.paths import TargetPath, parse_path

API_VERSION = "reconciler/v1"
KIND = "EnterpriseApp"

DEFAULT_ACCESS_ROLES = frozenset({"default access", "msiam_access"})
DEFAULT_FILTERABLE_ATTRIBUTES = ("userName", "externalId", "displayName")
TargetAction = Literal["create", "update", "delete"]
# Entra's target object actions (its flowTypes Add, Update, Delete), all on by default
TARGET_ACTIONS: tuple[TargetAction, ...] = ("create", "update", "delete")

SCOPING_OPERATORS = (
    "EQUALS",
    "NOT EQUALS",
    "IS TRUE",
    "IS FALSE",
    "IS NULL",
    "IS NOT NULL",
    "REGEX MATCH",
    "NOT REGEX MATCH",
    "Greater_Than",
    "Greater_Than_OR_EQUALS",
    "Includes",
    "ENDS_WITH",
)
UNARY_OPERATORS = frozenset({"IS TRUE", "IS FALSE", "IS NULL", "IS NOT NULL"})
INTEGER_OPERATORS = frozenset({"Greater_Than", "Greater_Than_OR_EQUALS"})

NonEmpty = Annotated[str, StringConstraints(min_length=1, strip_whitespace=False)]
Slug = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,62}$")]
Email = Annotated[str, StringConstraints(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]
EnvName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
# An Entra name, or a directory extension (extension_<appId>_<name>); a dashed appId passes here so that validate
# can say what is wrong with it.
AttributeName = Annotated[str, StringConstraints(pattern=r"^(?:[A-Za-z][A-Za-z0-9_.]*|extension_[A-Za-z0-9_-]+)$")]
Scalar = str | bool | int
MemberType = Literal["User", "Application"]

_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


class Model(BaseModel):
    """Strict base: camelCase keys, unknown keys rejected, no coercion of strings into numbers."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        strict=True,
        frozen=True,
    )


class Role(Model):
    """An app role on the application registration."""

    value: Annotated[str, StringConstraints(pattern=r"^[^\s]{1,120}$")] = Field(
        description="The role's value, as sent in tokens and to the target; no whitespace."
    )
    display_name: NonEmpty
    description: NonEmpty | None = None
    allowed_member_types: list[MemberType] = Field(default_factory=lambda: list[MemberType](["User"]))
    enabled: bool = True


class Assignment(Model):
    """Who is assigned to the app, with which role: exactly one of ``user`` or ``group``."""

    user: NonEmpty | None = Field(default=None, description="User principal name or object id.")
    group: NonEmpty | None = Field(default=None, description="Group display name or object id.")
    role: NonEmpty

    @model_validator(mode="after")
    def _one_principal(self) -> Assignment:
        if (self.user is None) == (self.group is None):
            raise ValueError("an assignment names exactly one of 'user' or 'group'")
        return self

    @property
    def principal(self) -> str:
        return self.user if self.user is not None else self.group  # type: ignore[return-value]

    @property
    def principal_type(self) -> Literal["user", "group"]:
        return "user" if self.user is not None else "group"


class Target(Model):
    """The SCIM endpoint of the app, and the variable that holds its bearer token."""

    url: NonEmpty = Field(description="The SCIM base URL (https; plain http only to loopback).")
    token_env: EnvName = Field(description="Environment variable holding the bearer token.")
    ca_bundle: NonEmpty | None = Field(
        default=None,
        description="A PEM file of extra trusted CAs for this target (relative to the manifest's folder), added "
                    "to the default trust.",
    )

    @field_validator("url")
    @classmethod
    def _safe_url(cls, url: str) -> str:
        safe_https_url(url, "the target URL")
        return url.rstrip("/")


GRAPH_ENDPOINT = "https://graph.microsoft.com"


class GraphSource(Model):
    """Microsoft Graph as the directory: which cloud's endpoint, and optionally a pre-acquired token."""

    endpoint: NonEmpty = Field(
        default=GRAPH_ENDPOINT,
        description="The Graph origin (national clouds: https://graph.microsoft.us, https://dod-graph.microsoft.us, "
                    "https://microsoftgraph.chinacloudapi.cn); plain http only to loopback. /v1.0 is appended.",
    )
    token_env: EnvName | None = Field(
        default=None,
        description="Environment variable holding a pre-acquired Graph access token; without it the token comes "
                    "from azure-identity's DefaultAzureCredential for the endpoint's /.default scope.",
    )

    @field_validator("endpoint")
    @classmethod
    def _safe_endpoint(cls, url: str) -> str:
        parts = safe_https_url(url, "the Graph endpoint")
        if parts.query or parts.fragment:
            raise ValueError("the Graph endpoint is an origin (https://graph.microsoft.com), without a query")
        return url.rstrip("/")


class DirectorySource(Model):
    """Where the directory is read from: Microsoft Graph (the default) or a snapshot file."""

    snapshot: NonEmpty | None = Field(
        default=None, description="A directory snapshot (JSON or YAML), relative to the manifest's folder."
    )
    graph: GraphSource = Field(default_factory=GraphSource)


class ScopingClause(Model):
    """One clause of a scoping filter: ``attribute operator value``."""

    attribute: AttributeName
    operator: Literal[SCOPING_OPERATORS]  # type: ignore[valid-type]
    value: Scalar | None = None

    @model_validator(mode="after")
    def _operands(self) -> ScopingClause:
        if self.operator in UNARY_OPERATORS:
            if self.value is not None:
                raise ValueError(f"operator {self.operator!r} takes no value")
        elif self.value is None:
            raise ValueError(f"operator {self.operator!r} needs a value")
        elif self.operator in INTEGER_OPERATORS and (isinstance(self.value, bool) or not _is_integer(self.value)):
            raise ValueError(f"operator {self.operator!r} compares integers; value must be an integer")
        elif self.operator in ("REGEX MATCH", "NOT REGEX MATCH"):
            try:
                re.compile(str(self.value))
            except re.error as exc:
                raise ValueError(f"invalid regular expression: {exc}") from None
        return self


class Mapping(Model):
    """One attribute mapping: a SCIM target path fed by exactly one of source, constant or expression."""

    target: NonEmpty = Field(description="SCIM path, e.g. name.givenName or emails[type eq \"work\"].value.")
    source: AttributeName | None = Field(default=None, description="Entra source attribute name (or a directory "
                                         "extension attribute, extension_<appId>_<name>).")
    constant: Scalar | None = None
    expression: NonEmpty | None = Field(default=None, description="An Entra mapping expression.")
    matching: Annotated[int, Field(ge=1)] | None = Field(
        default=None, description="Matching precedence; 1 is tried first."
    )
    apply: Literal["always", "onCreate"] = "always"
    default: Scalar | None = Field(default=None, description="Used on create when the value is null.")

    @field_validator("target")
    @classmethod
    def _path(cls, target: str) -> str:
        try:
            parse_path(target)
        except PathError as exc:
            raise ValueError(str(exc)) from None
        return target

    @model_validator(mode="after")
    def _one_source(self) -> Mapping:
        given = [k for k in ("source", "constant", "expression") if getattr(self, k) is not None]
        if len(given) != 1:
            found = ", ".join(given) if given else "none"
            raise ValueError(f"a mapping has exactly one of 'source', 'constant' or 'expression' (found: {found})")
        return self

    @property
    def path(self) -> TargetPath:
        return parse_path(self.target)


class UserProvisioning(Model):
    mappings: list[Mapping] = Field(min_length=1)


class GroupProvisioning(Model):
    enabled: bool = False
    mappings: list[Mapping] = Field(default_factory=list)


class Provisioning(Model):
    """How the app's SCIM endpoint is driven."""

    engine: Literal["reconciler", "entra"] = Field(
        default="reconciler",
        description="reconciler: this project drives the target; entra: Pulumi configures Entra's own job.",
    )
    job_template_id: NonEmpty | None = Field(
        default=None, description="Synchronization job template (engine entra); 'scim' when absent."
    )
    target: Target
    directory: DirectorySource = Field(default_factory=DirectorySource)
    scope: Literal["assigned", "all"] = "assigned"
    scoping_filters: list[list[ScopingClause]] = Field(
        default_factory=list, description="A list of filters (OR); each is a list of clauses (AND)."
    )
    deprovision: Literal["disable", "delete"] = "disable"
    adopt: Literal["unclaimed", "any", "none"] = Field(
        default="unclaimed",
        description="Which matched target accounts may be adopted: unclaimed (no externalId), any (also overwrite "
                    "a foreign externalId, to migrate from another system) or none (matches are conflicts).",
    )
    deletion_threshold: Annotated[int, Field(ge=0)] = Field(
        description="Refuse a run that would disable or delete more than this many objects."
    )
    actions: list[TargetAction] = Field(
        default_factory=lambda: list(TARGET_ACTIONS),
        description="Entra's target object actions, default all three: create, update (adopting included), "
                    "delete (every disable or delete). An action left out is never planned.",
    )
    skip_out_of_scope_deletions: bool = Field(
        default=False,
        description="Entra's SkipOutOfScopeDeletions: objects leaving scope (unassigned, filtered out) are left as "
                    "they are; objects disabled or deleted in the directory are still deprovisioned.",
    )
    filterable_attributes: list[NonEmpty] = Field(
        default_factory=lambda: list(DEFAULT_FILTERABLE_ATTRIBUTES),
        description="Target attributes the app can filter on; matching attributes must be among them.",
    )
    users: UserProvisioning
    groups: GroupProvisioning = Field(default_factory=GroupProvisioning)

    @field_validator("actions")
    @classmethod
    def _actions(cls, actions: list[TargetAction]) -> list[TargetAction]:
        if not actions:
            raise ValueError("provisioning.actions needs at least one of create, update, delete")
        repeated = sorted({a for a in actions if actions.count(a) > 1})
        if repeated:
            raise ValueError(f"provisioning.actions lists {', '.join(repeated)} more than once")
        return actions


class Manifest(Model):
    """One enterprise application: registration, roles, assignments and provisioning."""

    api_version: Literal["reconciler/v1"]
    kind: Literal["EnterpriseApp"]
    name: Slug = Field(description="Unique slug; used for Pulumi resource names.")
    display_name: NonEmpty
    description: NonEmpty | None = None
    gallery_template_id: NonEmpty | None = Field(default=None, description="Instantiate this gallery app.")
    notification_email: Email
    owners: list[NonEmpty] = Field(default_factory=list, description="Owner UPNs or object ids.")
    roles: list[Role] = Field(default_factory=list)
    assignments: list[Assignment] = Field(default_factory=list)
    provisioning: Provisioning

    def role(self, value: str) -> Role | None:
        return next((r for r in self.roles if r.value == value), None)


def safe_https_url(url: str, what: str) -> SplitResult:
    """``url`` split, if it is an absolute https:// URL (plain http only to loopback) without credentials."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"{what} must be an absolute https:// URL")
    if parts.username or parts.password:
        raise ValueError(f"{what} must not carry credentials; use tokenEnv")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ValueError("plain http:// is allowed only to loopback (127.0.0.1, ::1, localhost); use https://")
    return parts


def is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _is_integer(value: Scalar) -> bool:
    if isinstance(value, int):
        return True
    return bool(re.fullmatch(r"[+-]?\d+", str(value)))
