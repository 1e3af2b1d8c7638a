"""An existing Entra app's configuration, as Graph returns it, converted to a manifest (``reconciler import``).

The input is the parsed Graph responses of one app (:class:`GraphApp`): the application and its app roles, the
service principal, its ``appRoleAssignedTo``, its synchronization jobs, the provisioning job's schema, its
synchronization secrets and the application's owners. The output (:class:`Imported`) is the manifest as plain
values (camelCase keys, ``engine: entra``: it mirrors the job as it is) and the report: one line per thing the
manifest cannot express. Nothing is dropped silently: whatever is left out, or kept with a different meaning, has
a report line. What must be in a manifest and cannot be found (a target URL, an owner, a notification email, a
matching attribute) raises :class:`ImportFailure`, one line.

Each mapping, role and scoping clause is checked on its own as the manifest's loader and ``validate`` would check
it, so one inexpressible entry is reported and left out rather than making the whole manifest invalid. A scoping
filter group that cannot be expressed is dropped whole: dropping one of its clauses would widen the scope.

The ``SecretToken`` secret is skipped before its value is looked at: it reaches neither the manifest nor the
report.

:func:`stack_imports` gives the Pulumi import id of each existing object the manifest declares, by the Pulumi
program's logical name, so that the first ``pulumi up`` adopts the app instead of creating a second one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from reconciler.directory.names import GROUP_NAMES, USER_ATTRIBUTES, USER_NAMES, SourceNames, is_extension
from reconciler.entra.operators import MANIFEST_OPERATORS
from reconciler.entra.schema import GROUP_SOURCE, GROUP_TARGET, USER_SOURCE, USER_TARGET
from reconciler.entra.sources import source_text
from reconciler.errors import ExpressionSyntaxError, ReconcilerError
from reconciler.expressions.check import check_tree, uses
from reconciler.expressions.parse import Attribute, parse, walk
from reconciler.manifest.model import (
    API_VERSION,
    DEFAULT_ACCESS_ROLES,
    DEFAULT_FILTERABLE_ATTRIBUTES,
    KIND,
    TARGET_ACTIONS,
    UNARY_OPERATORS,
    Role,
    ScopingClause,
    safe_https_url,
)
from reconciler.manifest.model import Mapping as MappingModel
from reconciler.policy.rules import (
    DEFAULT_ACCESS_ROLE_ID,
    NOTIFICATION_SETTINGS_KEY,
    SECRET_TOKEN_KEY,
    matching_filterable,
)
from reconciler.scim.errors import PathError
from reconciler.scim.paths import parse_path

NON_GALLERY_TEMPLATE_ID = "8adf8e6e-67b2-4cf2-a259-e3dc5476c621"
CUSTOM_JOB_TEMPLATE = "scim"
ENTRA_DELETE_THRESHOLD = 500  # what Entra applies when SyncNotificationSettings sets none

# Entra's objectMapping.flowTypes -> the manifest's provisioning.actions
ROLE_FUNCTIONS = frozenset({"AppRoleAssignmentsComplex", "AssertiveAppRoleAssignmentsComplex",
                            "SingleAppRoleAssignment"})
_FLOW_ACTIONS = {"add": "create", "update": "update", "delete": "delete"}
_APPLY = {"always": "always", "objectaddonly": "onCreate"}
_SLUG_MAX = 63
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SLUG = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]+")

Loc = tuple[str | int, ...]


class ImportFailure(ReconcilerError):
    """The Graph responses cannot make a manifest (a required value is missing, or a response has the wrong shape)."""


@dataclass(frozen=True)
class GraphApp:
    """The parsed Graph responses of one app; ``origin`` names where each came from (a file, a request) for errors."""

    application: Mapping[str, Any]
    service_principal: Mapping[str, Any]
    assignments: Sequence[Mapping[str, Any]]
    jobs: Sequence[Mapping[str, Any]]
    schema: Mapping[str, Any]
    secrets: Sequence[Mapping[str, Any]] | None = None
    owners: Sequence[Mapping[str, Any]] | None = None
    origin: Mapping[str, str] = field(default_factory=dict)

    def where(self, part: str) -> str:
        return self.origin.get(part, part)


@dataclass(frozen=True)
class ImportOptions:
    """What Graph does not hold, from the command line; each value given wins over Graph's (and is reported)."""

    token_env: str | None = None
    notification_email: str | None = None
    target_url: str | None = None
    name: str | None = None
    owners: tuple[str, ...] = ()


@dataclass
class Imported:
    """The manifest (plain values, camelCase keys), the report, and end-of-line comments by the key they follow;
    ``assignment_ids``: the Graph id of the appRoleAssignment each written assignment came from, in order."""

    manifest: dict[str, Any]
    report: list[str]
    comments: dict[Loc, str] = field(default_factory=dict)
    assignment_ids: list[str | None] = field(default_factory=list)


def import_app(app: GraphApp, options: ImportOptions) -> Imported:
    """The manifest that mirrors ``app``'s configuration, and the report of what it cannot express."""
    return _Importer(app, options).run()


def stack_imports(imported: Imported, app: GraphApp, assignment_names: Sequence[str]) -> dict[str, str]:
    """Logical name -> import id (as the azuread provider documents it) of each object found that the manifest
    declares: the application, the service principal, each written assignment, the job (``engine: entra``).

    ``assignment_names`` are the program's logical names of the manifest's assignments, in the order written
    (``reconciler.azure.ids.assignment_names``). An assignment whose Graph item had no id is left out.
    """
    manifest = imported.manifest
    name = manifest["name"]
    written = manifest.get("assignments", [])
    if len(assignment_names) != len(written) or len(imported.assignment_ids) != len(written):
        raise ValueError(f"{len(assignment_names)} assignment names for {len(written)} assignments")
    application = _object_id(app, "application", app.application)
    service_principal = _object_id(app, "servicePrincipal", app.service_principal)
    ids = {f"{name}-app": f"/applications/{application}", f"{name}-sp": service_principal}
    for logical, graph_id in zip(assignment_names, imported.assignment_ids, strict=True):
        if graph_id is not None:
            ids[logical] = f"/servicePrincipals/{service_principal}/appRoleAssignedTo/{graph_id}"
    job_id = app.jobs[0].get("id") if app.jobs else None
    if manifest.get("provisioning", {}).get("engine") == "entra" and isinstance(job_id, str) and job_id:
        ids[f"{name}-sync-job"] = f"/servicePrincipals/{service_principal}/synchronization/jobs/{job_id}"
    return ids


def _object_id(app: GraphApp, part: str, holder: Mapping[str, Any]) -> str:
    value = holder.get("id")
    if not isinstance(value, str) or not value:
        raise ImportFailure(f"{app.where(part)}: no id, which the stack imports need")
    return value


def one_line(text: object) -> str:
    """Graph text made inert for a report line or a YAML comment: one line, no control characters."""
    return " ".join(_CONTROLS.sub(" ", str(text)).split())


def slug(display_name: str) -> str | None:
    """A manifest name from a display name (``Atea Portal`` -> ``atea-portal``), or None when none can be made."""
    text = re.sub(r"[^a-z0-9]+", "-", display_name.lower()).strip("-")
    text = re.sub(r"^[^a-z]+", "", text)[:_SLUG_MAX].rstrip("-")
    return text or None


def default_token_env(name: str) -> str:
    return f"{re.sub(r'[^A-Za-z0-9]', '_', name).upper()}_SCIM_TOKEN"


class _Importer:
    def __init__(self, app: GraphApp, options: ImportOptions) -> None:
        self.app = app
        self.options = options
        self.report: list[str] = []
        self.comments: dict[Loc, str] = {}
        self.user: Mapping[str, Any] = {}
        self.scope = "assigned"

    def note(self, message: str) -> None:
        if message not in self.report:
            self.report.append(message)

    # -- shapes ------------------------------------------------------------------------------------------------

    def _objects(self, part: str, holder: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
        value = holder.get(key)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(item, Mapping) for item in value):
            raise ImportFailure(f"{self.app.where(part)}: {key} is not a list of objects")
        return value

    def _text(self, part: str, holder: Mapping[str, Any], key: str) -> str | None:
        value = holder.get(key)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise ImportFailure(f"{self.app.where(part)}: {key} is not a string")
        return value

    # -- the manifest ------------------------------------------------------------------------------------------

    def run(self) -> Imported:
        application = self.app.application
        display_name = self._text("application", application, "displayName")
        if display_name is None:
            display_name = self._text("servicePrincipal", self.app.service_principal, "displayName")
        if display_name is None:
            raise ImportFailure(f"{self.app.where('application')}: the application has no displayName")
        name = self._name(display_name)
        manifest: dict[str, Any] = {"apiVersion": API_VERSION, "kind": KIND, "name": name,
                                    "displayName": display_name}
        description = self._text("application", application, "description")
        if description is not None:
            manifest["description"] = description
        gallery = self._gallery_template()
        if gallery is not None:
            manifest["galleryTemplateId"] = gallery
        secrets = self._secrets()
        settings = self._notification_settings(secrets)
        manifest["notificationEmail"] = self._notification_email(settings)
        manifest["owners"] = self._owners()
        roles, role_values = self._roles()
        if roles:
            manifest["roles"] = roles
        assignments, assignment_ids = self._assignments(role_values)
        if assignments:
            manifest["assignments"] = assignments
        manifest["provisioning"] = self._provisioning(name, secrets, settings)
        return Imported(manifest, self.report, self.comments, assignment_ids)

    def _name(self, display_name: str) -> str:
        if self.options.name is not None:
            if not _SLUG.match(self.options.name):
                raise ImportFailure(f"--name {self.options.name!r} is not a manifest name "
                                    "(lowercase letters, digits and dashes, starting with a letter)")
            return self.options.name
        made = slug(display_name)
        if made is None:
            raise ImportFailure(f"cannot make a manifest name from the displayName {one_line(display_name)!r}; "
                                "pass --name")
        return made

    def _gallery_template(self) -> str | None:
        template = self._text("servicePrincipal", self.app.service_principal, "applicationTemplateId")
        if template is None or template.lower() == NON_GALLERY_TEMPLATE_ID:
            return None
        return template

    def _notification_email(self, settings: Mapping[str, Any]) -> str:
        addresses = self.app.service_principal.get("notificationEmailAddresses") or []
        if not isinstance(addresses, list) or not all(isinstance(a, str) for a in addresses):
            raise ImportFailure(f"{self.app.where('servicePrincipal')}: notificationEmailAddresses is not a list "
                                "of strings")
        recipients = settings.get("Recipients")
        listed = [a.strip() for a in re.split(r"[;,]", recipients) if a.strip()] if isinstance(recipients, str) else []
        found = addresses[0] if addresses else (listed[0] if listed else None)
        chosen = self.options.notification_email or found
        if chosen is None:
            raise ImportFailure("no notification email: the service principal has no notificationEmailAddresses "
                                "and SyncNotificationSettings no Recipients; pass --notification-email")
        if not _EMAIL.match(chosen):
            raise ImportFailure(f"notification email {one_line(chosen)!r} is not an email address; "
                                "pass --notification-email")
        if self.options.notification_email and found and found != chosen:
            self.note(f"notificationEmail: --notification-email {chosen} replaces {one_line(found)} from Graph")
        for extra in [*addresses[1:], *listed]:
            if extra.lower() != chosen.lower():
                self.note(f"notificationEmail: a manifest has one notification email; {one_line(extra)} is left "
                          f"out (kept {chosen})")
        return chosen

    def _owners(self) -> list[str]:
        owners: list[str] = []
        if self.app.owners is None and not self.options.owners:
            raise ImportFailure("no owners were read (owners.json is absent) and a manifest needs at least "
                                    "one; pass --owner UPN")
        for owner in self.app.owners or []:
            kind = str(owner.get("@odata.type", "")).rsplit(".", 1)[-1]
            upn = owner.get("userPrincipalName")
            object_id = owner.get("id")
            label = one_line(owner.get("displayName") or object_id or "?")
            if kind == "user" or (not kind and isinstance(upn, str)):
                ref = upn if isinstance(upn, str) and upn else object_id
            elif kind == "servicePrincipal":
                ref = object_id  # the component takes an object id as given
            else:
                self.note(f"owners: {label} is a {one_line(kind or 'directory object')}; only users and service "
                          "principals can own an application, left out")
                continue
            if not isinstance(ref, str) or not ref:
                self.note(f"owners: {label} has neither a userPrincipalName nor an id, left out")
                continue
            if kind == "servicePrincipal" and owner.get("displayName"):
                self.comments[("owners", len(owners))] = label
            owners.append(ref)
        for extra in self.options.owners:
            if extra not in owners:
                owners.append(extra)
        if not owners:
            raise ImportFailure(f"{self.app.where('owners')}: the application has no user or service principal "
                                "owner and a manifest needs at least one; pass --owner UPN")
        return owners

    def _roles(self) -> tuple[list[dict[str, Any]], dict[str, str]]:
        """The manifest's roles, and the role value of each app role id that an assignment may use."""
        roles: list[dict[str, Any]] = []
        values: dict[str, str] = {}
        for app_role in self._objects("application", self.app.application, "appRoles"):
            value, label = app_role.get("value"), one_line(app_role.get("displayName") or app_role.get("id"))
            if not isinstance(value, str) or not value:
                self.note(f"roles: app role {label} has no value; a manifest names roles by value, left out")
                continue
            if value.lower() in DEFAULT_ACCESS_ROLES:
                self.note(f"roles: {one_line(value)} is Entra's built-in Default Access role, left out")
                continue
            role: dict[str, Any] = {"value": value, "displayName": app_role.get("displayName") or value}
            if app_role.get("description"):
                role["description"] = app_role["description"]
            members = app_role.get("allowedMemberTypes")
            if members is not None and members != ["User"]:
                role["allowedMemberTypes"] = members
            if app_role.get("isEnabled") is False:
                role["enabled"] = False
            try:
                Role.model_validate(role)
            except ValidationError as error:
                self.note(f"roles: app role {one_line(value)!r} cannot be expressed ({_first_error(error)}), "
                          "left out")
                continue
            if any(r["value"] == value for r in roles):
                self.note(f"roles: a second app role with value {one_line(value)!r} is left out")
                continue
            roles.append(role)
            if isinstance(app_role.get("id"), str):
                values[app_role["id"].lower()] = value
        return roles, values

    def _assignments(self, role_values: Mapping[str, str]) -> tuple[list[dict[str, Any]], list[str | None]]:
        """The manifest's assignments, and the Graph id of the item each one came from."""
        assignments: list[dict[str, Any]] = []
        ids: list[str | None] = []
        for item in self.app.assignments:
            kind = item.get("principalType")
            principal, label = item.get("principalId"), one_line(item.get("principalDisplayName") or "?")
            role_id = str(item.get("appRoleId") or DEFAULT_ACCESS_ROLE_ID).lower()
            who = f"{one_line(kind or 'principal')} {label} ({one_line(principal)})"
            if kind not in ("User", "Group"):
                self.note(f"assignments: {who} is assigned, but a manifest assigns users and groups only; left out")
                continue
            if role_id == DEFAULT_ACCESS_ROLE_ID:
                self.note(f"assignments: {who} holds the Default Access role; left out (assign a declared role: "
                          "Entra does not provision Default Access)")
                continue
            value = role_values.get(role_id)
            if value is None:
                self.note(f"assignments: {who} holds app role {one_line(role_id)}, which is not among the roles "
                          "written; left out")
                continue
            if not isinstance(principal, str) or not principal:
                self.note(f"assignments: {who} has no principalId; left out")
                continue
            entry = {kind.lower(): principal, "role": value}
            if entry in assignments:
                continue
            if item.get("principalDisplayName"):
                self.comments[("assignments", len(assignments))] = label
            assignments.append(entry)
            ids.append(item["id"] if isinstance(item.get("id"), str) and item["id"] else None)
        return assignments, ids

    # -- secrets -----------------------------------------------------------------------------------------------

    def _secrets(self) -> dict[str, str]:
        """The synchronization secrets by key, the SecretToken never among them."""
        if self.app.secrets is None:
            return {}
        found: dict[str, str] = {}
        for pair in self.app.secrets:
            key = pair.get("key")
            if not isinstance(key, str):
                raise ImportFailure(f"{self.app.where('secrets')}: a secret without a key")
            if key.lower() == SECRET_TOKEN_KEY.lower():
                continue
            value = pair.get("value")
            found[key] = value if isinstance(value, str) else json.dumps(value)
        return found

    def _notification_settings(self, secrets: Mapping[str, str]) -> dict[str, Any]:
        raw = secrets.get(NOTIFICATION_SETTINGS_KEY)
        if raw is None:
            return {}
        try:
            settings = json.loads(raw)
        except ValueError:
            settings = None
        if not isinstance(settings, dict):
            self.note(f"secrets: {NOTIFICATION_SETTINGS_KEY} is not a JSON object; its recipients and deletion "
                      "threshold are not read")
            return {}
        return settings

    # -- provisioning ------------------------------------------------------------------------------------------

    def _provisioning(self, name: str, secrets: Mapping[str, str], settings: Mapping[str, Any]) -> dict[str, Any]:
        job = self._job()
        provisioning: dict[str, Any] = {"engine": "entra"}
        template = self._text("jobs", job, "templateId")
        if template and template != CUSTOM_JOB_TEMPLATE:
            provisioning["jobTemplateId"] = template
        token_env = self.options.token_env or default_token_env(name)
        if not _ENV_NAME.match(token_env):
            raise ImportFailure(f"--token-env {token_env!r} is not an environment variable name")
        provisioning["target"] = {"url": self._target_url(secrets), "tokenEnv": token_env}
        provisioning["scope"] = self.scope = self._scope(secrets)
        user, group = self._object_mappings()
        self.user = user
        filters = self._scoping_filters(user)
        if filters:
            provisioning["scopingFilters"] = filters
        users = self._mappings(user, USER_NAMES, "users")
        provisioning["deprovision"] = "disable" if _soft_deletes(user) else "delete"
        provisioning["deletionThreshold"] = self._deletion_threshold(settings)
        actions = self._actions(user)
        if actions != list(TARGET_ACTIONS):
            provisioning["actions"] = actions
        skip = self._flag(secrets, "SkipOutOfScopeDeletions")
        if skip:
            provisioning["skipOutOfScopeDeletions"] = True
        self._other_secrets(secrets, settings)
        groups = self._groups(group)
        matched = [*users, *(groups.get("mappings", []) if groups.get("enabled") else [])]
        matching = [m["target"] for m in matched if "matching" in m]
        filterable = list(DEFAULT_FILTERABLE_ATTRIBUTES)
        for index, _ in matching_filterable(matching, DEFAULT_FILTERABLE_ATTRIBUTES):
            if matching[index] not in filterable:
                filterable.append(matching[index])
        if filterable != list(DEFAULT_FILTERABLE_ATTRIBUTES):
            provisioning["filterableAttributes"] = filterable
        provisioning["users"] = {"mappings": users}
        if groups:
            provisioning["groups"] = groups
        return provisioning

    def _job(self) -> Mapping[str, Any]:
        if not self.app.jobs:
            raise ImportFailure(f"{self.app.where('jobs')}: the service principal has no synchronization job; "
                                "there is no provisioning to import")
        job, *others = self.app.jobs
        for other in others:
            self.note(f"jobs: a manifest configures one provisioning job; job {one_line(other.get('id'))} "
                      f"(template {one_line(other.get('templateId'))}) is left out")
        schedule = job.get("schedule")
        state = schedule.get("state") if isinstance(schedule, Mapping) else None
        if state in ("Paused", "Disabled"):
            self.note(f"jobs: job {one_line(job.get('id'))} is {state}; applying the manifest starts it")
        return job

    def _target_url(self, secrets: Mapping[str, str]) -> str:
        base = secrets.get("BaseAddress")
        usable = base if base is not None and _usable_url(base) else None
        if self.options.target_url is not None:
            if not _usable_url(self.options.target_url):
                raise ImportFailure(f"--target-url {one_line(self.options.target_url)!r} is not usable: an "
                                    "absolute https:// URL (plain http only to loopback) without credentials")
            if usable is not None and usable.rstrip("/") != self.options.target_url.rstrip("/"):
                self.note(f"target: --target-url replaces the BaseAddress {one_line(usable)}")
            return self.options.target_url.rstrip("/")
        if usable is None:
            why = "no BaseAddress" if base is None else f"BaseAddress {one_line(base)!r} is not usable"
            raise ImportFailure(f"{self.app.where('secrets')}: {why} (an https:// URL, plain http only to "
                                "loopback); pass --target-url")
        return usable.rstrip("/")

    def _flag(self, secrets: Mapping[str, str], key: str) -> bool | None:
        value = secrets.get(key)
        if value is None:
            return None
        if value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        self.note(f"secrets: {key} is {one_line(value)!r}, neither true nor false; taken as false")
        return False

    def _scope(self, secrets: Mapping[str, str]) -> str:
        required = self.app.service_principal.get("appRoleAssignmentRequired")
        sync_all = self._flag(secrets, "SyncAll")
        if sync_all is None:
            if required is not True:
                self.note("scope: SyncAll is not set and the service principal does not require assignment; "
                          "written as scope: assigned (Entra's default), which makes assignment required")
            return "assigned"
        if sync_all and required is True:
            self.note("scope: the job syncs all users (SyncAll) but the service principal requires assignment; "
                      "written as scope: all, which makes assignment not required")
        if not sync_all and required is not True:
            self.note("scope: the job provisions assigned users only but the service principal does not require "
                      "assignment; written as scope: assigned, which makes assignment required")
        return "all" if sync_all else "assigned"

    def _deletion_threshold(self, settings: Mapping[str, Any]) -> int:
        value = settings.get("DeleteThresholdValue")
        if settings.get("DeleteThresholdEnabled") is False:
            self.note("deletionThreshold: Entra's accidental-deletion prevention is off; the manifest turns it on")
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        self.note(f"deletionThreshold: {NOTIFICATION_SETTINGS_KEY} sets no DeleteThresholdValue; written as "
                  f"{ENTRA_DELETE_THRESHOLD}, Entra's default")
        return ENTRA_DELETE_THRESHOLD

    def _other_secrets(self, secrets: Mapping[str, str], settings: Mapping[str, Any]) -> None:
        if settings.get("Enabled") is False:
            self.note("notificationEmail: Entra's failure emails are off; the manifest turns them on")
        known = {"BaseAddress", "SyncAll", "SkipOutOfScopeDeletions", NOTIFICATION_SETTINGS_KEY}
        for key in secrets:
            if key not in known:
                self.note(f"secrets: {one_line(key)} has no manifest key; left out")

    # -- the schema --------------------------------------------------------------------------------------------

    def _object_mappings(self) -> tuple[Mapping[str, Any], Mapping[str, Any] | None]:
        schema = self.app.schema
        user: Mapping[str, Any] | None = None
        group: Mapping[str, Any] | None = None
        for rule in self._objects("schema", schema, "synchronizationRules"):
            for mapping in self._objects("schema", rule, "objectMappings"):
                source = mapping.get("sourceObjectName")
                label = one_line(mapping.get("name") or f"{source} -> {mapping.get('targetObjectName')}")
                if source == USER_SOURCE and user is None:
                    user = mapping
                elif source == GROUP_SOURCE and group is None:
                    group = mapping
                else:
                    self.note(f"schema: object mapping {label} ({one_line(source)} -> "
                              f"{one_line(mapping.get('targetObjectName'))}) is not expressed; a manifest maps "
                              "one User and one Group object")
        if user is None:
            raise ImportFailure(f"{self.app.where('schema')}: the schema has no object mapping for source object "
                                f"{USER_SOURCE!r}")
        if user.get("enabled") is False:
            self.note("users: the user object mapping is disabled in Entra; a manifest always provisions users")
        for managed, target in ((user, USER_TARGET), (group, GROUP_TARGET)):
            if managed is None:
                continue
            if managed.get("targetObjectName") not in (None, target):
                self.note(f"schema: the {managed.get('sourceObjectName')} mapping targets "
                          f"{one_line(managed.get('targetObjectName'))}; the manifest compiles to {target}")
            scope = managed.get("scope")
            if isinstance(scope, Mapping):
                for key in ("inputFilterGroups", "categoryFilterGroups"):
                    if scope.get(key):
                        self.note(f"scopingFilters: the {managed.get('sourceObjectName')} mapping's {key} are "
                                  "not expressed; left out")
        return user, group

    def _scoping_filters(self, user: Mapping[str, Any]) -> list[list[dict[str, Any]]]:
        scope = user.get("scope")
        if not isinstance(scope, Mapping):
            return []
        groups = self._objects("schema", scope, "groups")
        filters: list[list[dict[str, Any]]] = []
        for index, group in enumerate(groups):
            label = one_line(group.get("name") or f"#{index + 1}")
            clauses, why = self._clauses(group)
            if why is not None:
                self.note(f"scopingFilters: filter group {label} is left out whole ({why}); dropping one clause "
                          "would widen the scope")
            elif clauses:
                filters.append(clauses)
        if groups and not filters:
            self.note("scopingFilters: no filter group could be expressed: the manifest has NO scoping filter, "
                      "so it provisions a WIDER scope than the job; add the filters by hand before applying")
        return filters

    def _clauses(self, group: Mapping[str, Any]) -> tuple[list[dict[str, Any]], str | None]:
        clauses: list[dict[str, Any]] = []
        for clause in self._objects("schema", group, "clauses"):
            operator = MANIFEST_OPERATORS.get(str(clause.get("operatorName")))
            attribute = clause.get("sourceOperandName")
            if operator is None:
                return [], f"operator {one_line(clause.get('operatorName'))!r} has no manifest name"
            if not isinstance(attribute, str):
                return [], "a clause without an attribute"
            if not is_extension(attribute) and attribute not in USER_ATTRIBUTES:
                return [], f"attribute {one_line(attribute)!r} cannot be tested by a manifest's scoping filter"
            entry: dict[str, Any] = {"attribute": attribute, "operator": operator}
            operand = clause.get("targetOperand")
            values = operand.get("values") if isinstance(operand, Mapping) else None
            values = values if isinstance(values, list) else []
            if operator not in UNARY_OPERATORS:
                if len(values) != 1:
                    return [], f"{one_line(attribute)} {operator} has {len(values)} values, a manifest takes one"
                entry["value"] = values[0]
            try:
                ScopingClause.model_validate(entry)
            except ValidationError as error:
                return [], f"{one_line(attribute)} {operator}: {_first_error(error)}"
            clauses.append(entry)
        return clauses, None

    def _actions(self, user: Mapping[str, Any]) -> list[str]:
        raw = user.get("flowTypes")
        if not isinstance(raw, str):
            return list(TARGET_ACTIONS)
        actions: list[str] = []
        for flow in (f.strip() for f in raw.split(",") if f.strip()):
            action = _FLOW_ACTIONS.get(flow.lower())
            if action is None:
                self.note(f"actions: the user mapping's flow type {one_line(flow)!r} has no manifest action")
            elif action not in actions:
                actions.append(action)
        if not actions:
            self.note("actions: the user mapping has no Add, Update or Delete flow; written with all three "
                      "(a manifest needs at least one)")
            return list(TARGET_ACTIONS)
        return [a for a in TARGET_ACTIONS if a in actions]

    def _groups(self, group: Mapping[str, Any] | None) -> dict[str, Any]:
        if group is None:
            self.note(f"groups: the schema has no {GROUP_SOURCE} object mapping; the manifest declares one, "
                      "disabled, which the job's template must have")
            return {}
        mappings = self._mappings(group, GROUP_NAMES, "groups")
        enabled = group.get("enabled", True) is not False  # as managed_part reads it
        scope = group.get("scope")
        if isinstance(scope, Mapping) and scope.get("groups"):
            self.note("groups: the group mapping's scoping filters are not expressed (a manifest's scoping "
                      "filters are for users); left out")
        if _flows(group) != _flows(self.user):
            self.note(f"groups: the group mapping's flow types {one_line(group.get('flowTypes'))!r} differ from the "
                      "user mapping's; a manifest's actions apply to both, written as the user mapping's")
        if not enabled and not mappings:
            return {}
        if enabled and not any("matching" in m for m in mappings):
            self.note("groups: the group mapping has no expressible matching attribute; written disabled")
            enabled = False
        result: dict[str, Any] = {"enabled": enabled}
        if mappings:
            result["mappings"] = mappings
        return result

    def _mappings(self, object_mapping: Mapping[str, Any], names: SourceNames, kind: str) -> list[dict[str, Any]]:
        mappings: list[dict[str, Any]] = []
        targets: set[str] = set()
        precedences: set[int] = set()
        for item in self._objects("schema", object_mapping, "attributeMappings"):
            entry = self._mapping(item, names, kind)
            if entry is None:
                continue
            target = entry["target"]
            if target.lower() in targets:
                self.note(f"{kind}: a second mapping to {one_line(target)} is left out")
                continue
            if "matching" in entry and entry["matching"] in precedences:
                self.note(f"{kind}: {one_line(target)} repeats matching precedence {entry['matching']}; "
                          "written without matching")
                del entry["matching"]
            targets.add(target.lower())
            if "matching" in entry:
                precedences.add(entry["matching"])
            mappings.append(entry)
        if kind == "users":
            if not mappings:
                raise ImportFailure(f"{self.app.where('schema')}: the user mapping has no attribute mapping a "
                                    "manifest can express")
            if not precedences:
                raise ImportFailure(f"{self.app.where('schema')}: the user mapping has no matching attribute "
                                    "(matchingPriority) a manifest can express")
        return mappings

    def _mapping(self, item: Mapping[str, Any], names: SourceNames, kind: str) -> dict[str, Any] | None:
        target = item.get("targetAttributeName")
        if not isinstance(target, str) or not target:
            self.note(f"{kind}: an attribute mapping without targetAttributeName is left out")
            return None
        where = f"{kind}: {one_line(target)}"
        try:
            parse_path(target)
        except PathError as error:
            self.note(f"{where}: not a SCIM path a manifest can name ({one_line(error)}); left out")
            return None
        entry: dict[str, Any] = {"target": target}
        source = item.get("source")
        if not isinstance(source, Mapping):
            self.note(f"{where}: the mapping has no source (Entra's mapping type None); left out")
            return None
        kind_of_source = source.get("type") or "Attribute"  # Graph's default
        if kind_of_source == "Attribute":
            name = source.get("name")
            if not isinstance(name, str) or name not in names:
                self.note(f"{where}: source attribute {one_line(name)!r} is not one a manifest knows; left out")
                return None
            entry["source"] = name
        elif kind_of_source == "Constant":
            value = source.get("name")
            if not isinstance(value, str):
                value = _constant_text(source.get("expression"))
            if value is None:
                self.note(f"{where}: a constant without a value; left out")
                return None
            entry["constant"] = value
        elif kind_of_source == "Function":
            try:
                text = source_text(source)
            except (ReconcilerError, ValueError, KeyError, TypeError) as error:
                self.note(f"{where}: the expression cannot be read ({one_line(error)}); left out")
                return None
            problem = _expression_problem(text, names)
            if problem is not None:
                self.note(f"{where}: expression {one_line(text)!r} is not one the project's parser accepts "
                          f"({problem}); left out")
                return None
            tree = parse(text)
            if self.scope == "all" and uses(tree, lambda f: f.name in ROLE_FUNCTIONS):
                self.note(f"{where}: app role functions need scope: assigned, and the job syncs all; left out")
                return None
            entry["expression"] = text
        else:
            self.note(f"{where}: source type {one_line(kind_of_source)!r} is not Attribute, Constant or Function; "
                      "left out")
            return None
        priority = item.get("matchingPriority")
        if isinstance(priority, int) and not isinstance(priority, bool) and priority > 0:
            if "constant" in entry:
                self.note(f"{where}: a constant cannot be a matching attribute; written without matching")
            elif "expression" in entry and uses(parse(entry["expression"]),
                                                lambda f: not f.deterministic or f.create_only):
                self.note(f"{where}: a matching attribute's value must be the same on every run (no Guid, Now, "
                          "RandomString or SelectUniqueValue); written without matching")
            else:
                entry["matching"] = priority
        flow = str(item.get("flowType") or "Always")
        apply = _APPLY.get(flow.lower())
        if apply is None:
            self.note(f"{where}: flow type {one_line(flow)} has no manifest equivalent; written as apply: always")
        elif apply == "onCreate":
            if "matching" in entry:
                self.note(f"{where}: a matching attribute applies always; Entra's ObjectAddOnly is written as "
                          "apply: always")
            else:
                entry["apply"] = "onCreate"
        if str(item.get("flowBehavior") or "FlowWhenChanged") != "FlowWhenChanged":
            self.note(f"{where}: flow behavior {one_line(item.get('flowBehavior'))} has no manifest equivalent")
        if item.get("exportMissingReferences") is True:
            self.note(f"{where}: exportMissingReferences has no manifest equivalent")
        default = item.get("defaultValue")
        if default not in (None, ""):
            entry["default"] = default if isinstance(default, str | int | bool) else json.dumps(default)
        try:
            MappingModel.model_validate(entry)
        except ValidationError as error:
            self.note(f"{where}: cannot be expressed ({_first_error(error)}); left out")
            return None
        return entry


def _usable_url(url: str) -> bool:
    try:
        safe_https_url(url, "the URL")
    except ValueError:
        return False
    return True


def _constant_text(expression: object) -> str | None:
    if not isinstance(expression, str):
        return None
    try:
        tree = parse(expression)
    except ExpressionSyntaxError:
        return None
    value = getattr(tree, "value", None)
    return str(value) if value is not None else None


def _expression_problem(text: str, names: SourceNames) -> str | None:
    try:
        tree = parse(text)
    except ExpressionSyntaxError as error:
        return f"column {error.column}: {error.message}"
    findings = check_tree(tree, names)
    return findings[0].message if findings else None


def _soft_deletes(user: Mapping[str, Any]) -> bool:
    """Whether the user mapping sets ``active`` from ``IsSoftDeleted`` (Entra then disables instead of deleting)."""
    for item in user.get("attributeMappings") or []:
        if not isinstance(item, Mapping) or str(item.get("targetAttributeName", "")).lower() != "active":
            continue
        source = item.get("source")
        if not isinstance(source, Mapping):
            continue
        if source.get("type") == "Attribute":
            return source.get("name") == "IsSoftDeleted"
        try:
            tree = parse(source_text(source))
        except (ReconcilerError, ValueError, KeyError, TypeError):
            return False
        return any(isinstance(node, Attribute) and node.name == "IsSoftDeleted" for node in walk(tree))
    return False


def _flows(mapping: Mapping[str, Any]) -> frozenset[str]:
    raw = mapping.get("flowTypes")
    if not isinstance(raw, str):
        return frozenset(_FLOW_ACTIONS)
    return frozenset(f.strip().lower() for f in raw.split(",") if f.strip())


def _first_error(error: ValidationError) -> str:
    first = error.errors()[0]
    return one_line(str(first.get("msg", "invalid")).removeprefix("Value error, "))
