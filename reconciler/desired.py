"""The desired SCIM state (pure): which users and groups should exist in the target, with which values.

Steps, as Entra's provisioning service takes them:

1. **Scope.** ``assigned``: users assigned directly, and *direct* members of assigned groups (nested groups do not
   count); ``all``: every user. Then ``accountEnabled``, then the scoping filters (users only).
2. **Mappings.** Each mapping gives a value from a source attribute, a constant or an expression. Null results are
   left out (Entra never sends nulls); ``default`` fills a null on create only; ``apply: onCreate`` and any
   mapping that uses Guid, Now, RandomString or SelectUniqueValue are sent on create only.
3. **Groups** (when group provisioning is on): the assigned groups (``all``: every group), whose members are
   their in-scope direct members.

Users out of scope, unassigned or disabled are listed in ``deprovision``; the planner acts on them only if the
target has them. An object whose expression cannot be evaluated (a malformed date, say), or whose values cannot
be sent (text that is not valid Unicode, such as a lone surrogate that a JSON snapshot spells ``"\\ud800"``), is
neither created nor deprovisioned: it is listed in ``skipped`` as failed, with its reason, as Entra escrows it; the
other objects go on. An object with no matching value is skipped too, but not failed (Entra skips it as well).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from reconciler.directory.model import Directory, DirectoryGroup, DirectoryUser
from reconciler.errors import DirectoryError, EvaluationError, NoMatchingValue
from reconciler.expressions import Context, compile_expression, to_json, to_text
from reconciler.expressions.check import uses
from reconciler.expressions.parse import Attribute, walk
from reconciler.manifest.model import Manifest, Mapping
from reconciler.scim.normalize import merged_elements, tidy
from reconciler.scim.paths import CORE_GROUP, CORE_USER, ENTERPRISE_USER, TargetPath
from reconciler.scope import passes

Kind = Literal["User", "Group"]
BOOLEAN_ATTRIBUTES = frozenset({"active"})
BOOLEAN_SUB_ATTRIBUTES = frozenset({"primary"})
MULTI_VALUED_ATTRIBUTES = frozenset({"emails", "phoneNumbers", "ims", "photos", "addresses", "groups",
                                     "entitlements", "roles", "x509Certificates"})
ADD_ONLY_FUNCTIONS = frozenset({"AppRoleAssignmentsComplex"})
REDACTING_FUNCTIONS = frozenset({"Redact"})
REFERENCE_ATTRIBUTES = frozenset({"manager"})
LEFT_SCOPE = frozenset({"unassigned", "out of scope"})  # deprovision reasons that skipOutOfScopeDeletions spares


@dataclass(frozen=True)
class DesiredObject:
    kind: Literal["User", "Group"]
    source_id: str                          # directory object id (Entra objectId)
    display: str                            # for plans and logs: the UPN, or the group's displayName
    matching: tuple[tuple[str, Any], ...]   # (SCIM target path as written in the manifest, value), precedence order
    resource: dict[str, Any]                # SCIM JSON body of always-applied attributes
    on_create: dict[str, Any]               # extra SCIM attributes sent only on create, same shape
    members: tuple[str, ...] = ()           # groups only: source ids of the in-scope direct members
    redacted: tuple[str, ...] = ()          # target paths whose values plans and logs show as "[Redact]"
    add_only: tuple[str, ...] = ()          # target paths whose values are added, never removed (Entra's
                                            # AppRoleAssignmentsComplex: PATCH add only)
    references: tuple[str, ...] = ()        # target paths holding directory object ids (the manager) that the
                                            # reconciler resolves to target ids, as Entra does in a later PATCH

    def create_body(self) -> dict[str, Any]:
        """The POST body: ``resource`` with ``on_create`` merged in."""
        return merge(self.resource, self.on_create)


@dataclass(frozen=True)
class Deprovision:
    kind: Literal["User", "Group"]
    source_id: str
    display: str
    matching: tuple[tuple[str, Any], ...]
    reason: str                             # "unassigned" | "out of scope" | "disabled" | "deleted"

    @property
    def left_scope(self) -> bool:
        """Out of the app's scope (unassigned, filtered out), not disabled or deleted in the directory."""
        return self.reason in LEFT_SCOPE


@dataclass(frozen=True)
class Skipped:
    """An in-scope object left alone this run: a mapping failed for it (``failed``), or it has no matching value."""

    kind: Literal["User", "Group"]
    source_id: str
    display: str
    reason: str
    failed: bool = True


@dataclass(frozen=True)
class DesiredState:
    users: tuple[DesiredObject, ...]        # sorted by source_id
    groups: tuple[DesiredObject, ...]
    deprovision: tuple[Deprovision, ...]    # directory objects known to the directory that must not be active
    skipped: tuple[Skipped, ...] = ()       # in scope, but a mapping failed: neither created nor deprovisioned


def desired_state(manifest: Manifest, directory: Directory) -> DesiredState:
    """The SCIM users and groups ``manifest`` wants in its target, given ``directory``."""
    provisioning = manifest.provisioning
    user_roles, assigned_groups = _assignments(manifest, directory)
    user_engine = _Engine(provisioning.users.mappings, "User")
    users: list[DesiredObject] = []
    deprovision: list[Deprovision] = []
    skipped: list[Skipped] = []
    for user in sorted(directory.users, key=lambda u: u.id):
        reason = _out_of_scope(manifest, user, user_roles)
        lookup = _user_lookup(user, soft_deleted=reason is not None, roles=_roles(manifest, user_roles.get(user.id)))
        if reason is not None:
            deprovision.append(Deprovision("User", user.id, shown(user.upn), user_engine.matching(lookup), reason))
            continue
        built = _attempt(user_engine, user.id, user.upn, lookup)
        if isinstance(built, Skipped):
            skipped.append(built)
        else:
            users.append(built)
    for user in sorted(directory.deleted_users, key=lambda u: u.id):
        # Soft-deleted in Entra: deprovisioned like a disabled account (hard deletes leave no trace to act on).
        lookup = _user_lookup(user, soft_deleted=True, roles=[])
        deprovision.append(Deprovision("User", user.id, shown(user.upn), user_engine.matching(lookup), "deleted"))
    groups: list[DesiredObject] = []
    if provisioning.groups.enabled:
        groups = _groups(manifest, directory, assigned_groups, {u.source_id for u in users}, deprovision, skipped)
    deprovision.sort(key=lambda d: (d.kind, d.source_id))
    return DesiredState(tuple(users), tuple(groups), tuple(deprovision), tuple(skipped))


def user_attributes(manifest: Manifest | None, directory: Directory, user: DirectoryUser) -> Callable[[str], Any]:
    """What a mapping of ``manifest`` reads for ``user``: its attributes with IsSoftDeleted and appRoleAssignments.

    Without a manifest, IsSoftDeleted is ``not accountEnabled`` and there are no app role assignments.
    """
    if manifest is None:
        return _user_lookup(user, soft_deleted=not user.enabled, roles=[])
    user_roles, _ = _assignments(manifest, directory)
    soft_deleted = _out_of_scope(manifest, user, user_roles) is not None
    return _user_lookup(user, soft_deleted=soft_deleted, roles=_roles(manifest, user_roles.get(user.id)))


def shown(text: str) -> str:
    """``text`` safe to print and to write as UTF-8: a lone surrogate becomes its escape (``\\ud800``)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def unsendable(obj: DesiredObject) -> str | None:
    """Why ``obj`` cannot be sent to a target, or None: the first attribute whose text is not valid Unicode (a
    lone surrogate cannot be encoded as UTF-8, so the request body could not be written)."""
    body = obj.create_body()
    if _encodes(obj.source_id) and _encodes(body):
        return None  # the common case, checked at once; the walk below only names the attribute
    for where, text in (("objectId", obj.source_id), *_texts(body)):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as error:
            return f"{where}: {_not_unicode(error)}"
    return None


def _not_unicode(error: UnicodeError) -> str:
    bad = error.object[error.start] if isinstance(error, UnicodeEncodeError) else ""
    which = f", U+{ord(bad):04X}" if bad else ""
    return f"not valid Unicode text (a lone surrogate{which}), so it cannot be sent as UTF-8; fix it in the directory"


def _encodes(value: Any) -> bool:
    """Whether every string in ``value`` (keys included) encodes as UTF-8; ASCII text is checked without encoding."""
    if isinstance(value, str):
        if value.isascii():
            return True
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, dict):
        return all(_encodes(key) and _encodes(item) for key, item in value.items())
    if isinstance(value, list | tuple):
        return all(_encodes(item) for item in value)
    return True


def _texts(value: Any, path: str = "") -> list[tuple[str, str]]:
    """Every string in a SCIM body, keys included, with the attribute path that holds it."""
    if isinstance(value, str):
        return [(path or "value", value)]
    found: list[tuple[str, str]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "schemas":
                continue
            separator = ":" if path.lower().startswith("urn:") else "."
            inner = f"{path}{separator}{key}" if path else str(key)
            found += [(inner, str(key)), *_texts(item, inner)]
    elif isinstance(value, list):
        for index, item in enumerate(value):
            kind = item.get("type") if isinstance(item, dict) else None
            inner = f'{path}[type eq "{shown(kind)}"]' if isinstance(kind, str) else f"{path}[{index}]"
            found += _texts(item, inner)
    return found


def _attempt(engine: _Engine, source_id: str, display: str, lookup: Callable[[str], Any],
             members: tuple[str, ...] = ()) -> DesiredObject | Skipped:
    """The object built by ``engine``, or why it is skipped: a mapping failed, no matching value, or unsendable."""
    try:
        built = engine.build(source_id, shown(display), lookup, members)
    except NoMatchingValue as error:
        return Skipped(engine.kind, source_id, shown(display), shown(str(error)), failed=False)
    except EvaluationError as error:
        return Skipped(engine.kind, source_id, shown(display), shown(str(error)))
    problem = unsendable(built)
    if problem is not None:
        return Skipped(engine.kind, source_id, shown(display), problem)
    return built


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge two SCIM bodies; elements of multi-valued attributes merge by their identity (the ``type`` of
    an email, the ``value`` of a role: :func:`reconciler.scim.normalize.merged_elements`)."""
    result = dict(base)
    for key, value in extra.items():
        current = result.get(key)
        if isinstance(current, dict) and isinstance(value, dict):
            result[key] = merge(current, value)
        elif isinstance(current, list) and isinstance(value, list):
            result[key] = merged_elements(key, [*current, *value])
        else:
            result[key] = value
    return result


def _groups(manifest: Manifest, directory: Directory, assigned: set[str], user_ids: set[str],
            deprovision: list[Deprovision], skipped: list[Skipped]) -> list[DesiredObject]:
    """The groups to provision, each with its in-scope direct members (users, and groups provisioned too)."""
    chosen = {g.id for g in directory.groups} if manifest.provisioning.scope == "all" else assigned
    engine = _Engine(manifest.provisioning.groups.mappings, "Group")
    built: list[DesiredObject] = []
    for group in sorted(directory.groups, key=lambda g: g.id):
        lookup = _group_lookup(group)
        if group.id not in chosen:
            deprovision.append(Deprovision("Group", group.id, shown(group.display_name), engine.matching(lookup),
                                           "unassigned"))
            continue
        made = _attempt(engine, group.id, group.display_name, lookup, group.members)
        if isinstance(made, Skipped):
            skipped.append(made)
        else:
            built.append(made)
    in_scope = user_ids | {g.source_id for g in built}
    return [replace(g, members=tuple(m for m in g.members if m in in_scope) if engine.has_members else ())
            for g in built]


def _assignments(manifest: Manifest, directory: Directory) -> tuple[dict[str, set[str]], set[str]]:
    """Role values per assigned user (direct, or as a direct member of an assigned group), and assigned groups.

    A principal that the directory does not have, or a group name that two groups share, stops the run: guessing
    would deprovision everyone the assignment was meant to cover.
    """
    user_roles: dict[str, set[str]] = {}
    groups: set[str] = set()
    for assignment in manifest.assignments:
        if assignment.user is not None:
            user = directory.find_user(assignment.user)
            if user is None:
                raise DirectoryError(f"{manifest.name}: assigned user {assignment.user!r} is not in "
                                     f"{directory.source}")
            user_roles.setdefault(user.id, set()).add(assignment.role)
            continue
        found = directory.find_groups(assignment.principal)
        if not found:
            raise DirectoryError(f"{manifest.name}: assigned group {assignment.principal!r} is not in "
                                 f"{directory.source}")
        if len(found) > 1:
            raise DirectoryError(f"{manifest.name}: {len(found)} groups in {directory.source} are named "
                                 f"{assignment.principal!r}; assign the group by its object id")
        group = found[0]
        groups.add(group.id)
        for member in group.members:
            if member in directory.users_by_id:
                user_roles.setdefault(member, set()).add(assignment.role)
    return user_roles, groups


def _out_of_scope(manifest: Manifest, user: DirectoryUser, user_roles: dict[str, set[str]]) -> str | None:
    """Why ``user`` must not be active in the target (the deprovision reason), or None when in scope."""
    provisioning = manifest.provisioning
    # The directory's own word first: a disabled account is "disabled" even when it is also unassigned or a
    # filter on accountEnabled excludes it (skipOutOfScopeDeletions keeps leavers of scope, never disabled ones).
    if not user.enabled:
        return "disabled"
    if provisioning.scope == "assigned" and user.id not in user_roles:
        return "unassigned"
    if not passes(provisioning.scoping_filters, _filter_lookup(user)):
        return "out of scope"
    return None


def _roles(manifest: Manifest, values: set[str] | None) -> list[dict[str, Any]]:
    """The ``appRoleAssignments`` attribute: the user's roles as {value, displayName}, sorted by value."""
    return [{"value": role.value, "displayName": role.display_name}
            for role in sorted(manifest.roles, key=lambda r: r.value) if role.value in (values or ())]


def _filter_lookup(user: DirectoryUser) -> Callable[[str], Any]:
    return lambda name: False if name == "IsSoftDeleted" else user.get(name)


def _user_lookup(user: DirectoryUser, *, soft_deleted: bool, roles: list[dict[str, Any]]) -> Callable[[str], Any]:
    def lookup(name: str) -> Any:
        if name == "IsSoftDeleted":
            return soft_deleted
        if name == "appRoleAssignments":
            return roles
        return user.get(name)
    return lookup


def _group_lookup(group: DirectoryGroup) -> Callable[[str], Any]:
    return lambda name: False if name == "IsSoftDeleted" else group.get(name)


@dataclass
class _Rule:
    """One mapping, prepared: where it writes, how it gets its value, and when it applies."""

    mapping: Mapping
    path: TargetPath
    create_only: bool
    redacted: bool
    add_only: bool
    reference: bool
    value: Callable[[Callable[[str], Any], Callable[[Any], bool]], Any]


@dataclass
class _Engine:
    mappings: Sequence[Mapping]
    kind: Kind
    rules: list[_Rule] = field(init=False)
    schemas: list[str] = field(init=False)
    has_members: bool = field(init=False)
    taken: dict[str, set[str]] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.rules = []
        self.has_members = False
        extensions: list[str] = []
        for mapping in self.mappings:
            path = mapping.path
            if self.kind == "Group" and path.attribute == "members" and path.schema is None:
                self.has_members = True  # the reconciler resolves member ids; never part of the body
                continue
            if path.schema and path.schema not in extensions:
                extensions.append(path.schema)
            self.rules.append(_rule(mapping, path))
        self.rules.sort(key=lambda r: (r.mapping.matching is None, r.mapping.matching or 0))
        core = CORE_USER if self.kind == "User" else CORE_GROUP
        self.schemas = [core, *sorted(extensions, key=lambda s: (s != ENTERPRISE_USER, s))]

    def matching(self, lookup: Callable[[str], Any]) -> tuple[tuple[str, Any], ...]:
        """The matching values alone (for objects to deprovision): failures and nulls are dropped."""
        pairs = []
        for rule in self.rules:
            if rule.mapping.matching is None:
                continue
            try:
                value = _coerce(rule.path, rule.value(lookup, lambda v: False))
            except (EvaluationError, ValueError, ArithmeticError):
                continue
            if value is not None:
                pairs.append((rule.mapping.target, value))
        return tuple(pairs)

    def build(self, source_id: str, display: str, lookup: Callable[[str], Any],
              members: tuple[str, ...] = ()) -> DesiredObject:
        resource: dict[str, Any] = {"schemas": list(self.schemas)}
        on_create: dict[str, Any] = {}
        matching: list[tuple[str, Any]] = []
        produced: list[tuple[_Rule, Any]] = []
        for rule in self.rules:
            taken = self.taken.setdefault(rule.mapping.target, set())
            try:
                value = _coerce(rule.path, rule.value(lookup, functools.partial(_is_taken, taken)))
            except EvaluationError as error:
                raise EvaluationError(f"mapping to {rule.mapping.target!r}: {error}") from None
            except UnicodeError as error:  # e.g. ConvertToUTF8Hex of a lone surrogate
                raise EvaluationError(f"mapping to {rule.mapping.target!r}: {_not_unicode(error)}") from None
            except (ValueError, ArithmeticError) as error:  # this object's data broke a function: it fails alone
                raise EvaluationError(f"mapping to {rule.mapping.target!r}: {type(error).__name__}: "
                                      f"{error}") from None
            produced.append((rule, value))
        for rule, value in produced:
            if value is None:
                if rule.mapping.default is not None:
                    _put(on_create, rule.path, _coerce(rule.path, rule.mapping.default))
                continue
            if rule.create_only:
                _put(on_create, rule.path, value)
                if isinstance(value, str):
                    self.taken[rule.mapping.target].add(value)
                continue
            _put(resource, rule.path, value)
            if rule.mapping.matching is not None:
                matching.append((rule.mapping.target, value))
        if not matching:
            raise NoMatchingValue("no matching value: every matching attribute is null (Entra skips such objects)")
        return DesiredObject(
            kind=self.kind, source_id=source_id, display=display, matching=tuple(matching), resource=tidy(resource),
            on_create=tidy(on_create), members=members,
            redacted=tuple(r.mapping.target for r in self.rules if r.redacted),
            add_only=tuple(r.mapping.target for r in self.rules if r.add_only),
            references=tuple(r.mapping.target for r in self.rules if r.reference),
        )


def _rule(mapping: Mapping, path: TargetPath) -> _Rule:
    create_only = mapping.apply == "onCreate"
    if mapping.expression is not None:
        expression = compile_expression(mapping.expression)

        def evaluate(lookup: Callable[[str], Any], taken: Callable[[Any], bool]) -> Any:
            return expression.evaluate(Context(attributes=lookup, taken=taken))
        return _Rule(mapping, path, create_only or expression.create_only,
                     redacted=uses(expression.tree, lambda f: f.name in REDACTING_FUNCTIONS),
                     add_only=uses(expression.tree, lambda f: f.name in ADD_ONLY_FUNCTIONS),
                     reference=any(isinstance(n, Attribute) and n.name in REFERENCE_ATTRIBUTES
                                   for n in walk(expression.tree)),
                     value=evaluate)
    if mapping.source is not None:
        source = mapping.source
        return _Rule(mapping, path, create_only, redacted=False, add_only=False,
                     reference=source in REFERENCE_ATTRIBUTES, value=lambda lookup, taken: lookup(source))
    constant = mapping.constant
    return _Rule(mapping, path, create_only, redacted=False, add_only=False, reference=False,
                 value=lambda lookup, taken: constant)


def _coerce(path: TargetPath, value: Any) -> Any:
    """A mapped value in the JSON type of its SCIM target (booleans for ``active``, strings for core text)."""
    value = to_json(value)
    if value is None or value == []:
        return None
    if (path.attribute in BOOLEAN_ATTRIBUTES and path.schema is None and path.sub_attribute is None) \
            or path.sub_attribute in BOOLEAN_SUB_ATTRIBUTES:
        return _boolean(path, value)
    if path.schema not in (None, ENTERPRISE_USER):
        return value  # a custom extension: its type is the app's business
    if path.attribute in MULTI_VALUED_ATTRIBUTES and path.filter is None and path.sub_attribute is None:
        items = value if isinstance(value, list) else [value]
        return [item if isinstance(item, dict) else {"value": to_text(item)} for item in items]
    if isinstance(value, list):
        if len(value) != 1:
            raise EvaluationError(f"{path} takes one value, the mapping gave {len(value)} "
                                  "(use Item() or Join())")
        value = value[0]
    if isinstance(value, dict):
        raise EvaluationError(f"{path} takes a simple value, the mapping gave a complex one")
    return to_text(value)


def _boolean(path: TargetPath, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "false"):
        return text == "true"
    raise EvaluationError(f"{path} is a boolean; the mapping gave {value!r} (expected \"True\" or \"False\")")


def _put(body: dict[str, Any], path: TargetPath, value: Any) -> None:
    """Write ``value`` at ``path``: nested for sub-attributes, a typed element for filtered paths."""
    container = body.setdefault(path.schema, {}) if path.schema else body
    if path.filter is not None:
        elements = container.setdefault(path.attribute, [])
        key, raw = path.filter
        wanted: Any = _boolean(path, raw) if key in BOOLEAN_SUB_ATTRIBUTES else raw
        element = next((e for e in elements if isinstance(e, dict) and e.get(key) == wanted), None)
        if element is None:
            element = {key: wanted}
            elements.append(element)
        element[path.sub_attribute or "value"] = value
    elif path.sub_attribute is not None:
        container.setdefault(path.attribute, {})[path.sub_attribute] = value
    elif isinstance(container.get(path.attribute), list) and isinstance(value, list):
        # a whole list beside a filtered mapping of the same attribute (AppRoleAssignmentsComplex and
        # roles[primary eq "True"].value): both are kept, merged by identity in tidy()
        container[path.attribute] = [*container[path.attribute], *value]
    else:
        container[path.attribute] = value


def _is_taken(taken: set[str], value: Any) -> bool:
    """SelectUniqueValue's question for one target attribute: is this value already used?"""
    return to_text(value) in taken
