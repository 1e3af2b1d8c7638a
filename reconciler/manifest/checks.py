"""Cross-field rules of manifest v1, each naming the exact key it is about.

They read the raw document (plain dicts and lists) rather than the validated model, so that they still run when
another part of the file is invalid: ``validate`` reports every problem of a file at once. Anything malformed is
skipped here; the models report it.

These are structure, not policy: a manifest that breaks one of them cannot be provisioned at all. Policies (the
rules shared with the CrossGuard pack) live in :mod:`reconciler.policy`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from reconciler.manifest.model import DEFAULT_ACCESS_ROLES
from reconciler.manifest.positions import Loc
from reconciler.scim.errors import PathError
from reconciler.scim.paths import parse_path

CheckResult = tuple[Loc, str, bool]  # (where, message, whether to point at the key rather than the value)


def check_document(data: dict[str, Any]) -> list[CheckResult]:
    return [*_roles(data), *_assignments(data), *_mappings(data)]


def _items(value: Any) -> list[tuple[int, dict[str, Any]]]:
    """The (index, mapping) pairs of a list, skipping anything that is not a mapping."""
    if not isinstance(value, list):
        return []
    return [(i, item) for i, item in enumerate(value) if isinstance(item, dict)]


def _text(item: dict[str, Any], key: str) -> str | None:
    value = item.get(key)
    return value if isinstance(value, str) else None


def _roles(data: dict[str, Any]) -> Iterator[CheckResult]:
    first_value: dict[str, int] = {}
    first_name: dict[str, int] = {}
    for index, role in _items(data.get("roles")):
        value, name = _text(role, "value"), _text(role, "displayName")
        if value is not None:
            loc: Loc = ("roles", index, "value")
            if value.lower() in DEFAULT_ACCESS_ROLES:
                yield loc, "'Default Access' is Entra's built-in role; declare app roles only", False
            if value in first_value:
                yield loc, f"duplicate role value {value!r} (also roles[{first_value[value]}])", False
            first_value.setdefault(value, index)
        if name is not None:
            if name in first_name:
                yield (("roles", index, "displayName"),
                       f"duplicate role displayName {name!r} (also roles[{first_name[name]}])", False)
            first_name.setdefault(name, index)


def _assignments(data: dict[str, Any]) -> Iterator[CheckResult]:
    declared = [_text(role, "value") for _, role in _items(data.get("roles"))]
    seen: dict[tuple[str, str, str], int] = {}
    for index, assignment in _items(data.get("assignments")):
        role = _text(assignment, "role")
        if role is None:
            continue
        loc: Loc = ("assignments", index, "role")
        if role.lower() in DEFAULT_ACCESS_ROLES:
            yield (loc, "assignments to the Default Access role are not provisioned (the app's setup guide); "
                        "assign a declared role", False)
        elif role not in declared:
            known = ", ".join(repr(v) for v in declared if v) or "none declared"
            yield loc, f"role {role!r} is not declared in roles (declared: {known})", False
        for kind in ("user", "group"):
            principal = _text(assignment, kind)
            if principal is None:
                continue
            key = (kind, principal.lower(), role)
            if key in seen:
                yield (("assignments", index), f"duplicate assignment of {kind} {principal!r} to role {role!r} "
                       f"(also assignments[{seen[key]}])", False)
            seen.setdefault(key, index)


def _mappings(data: dict[str, Any]) -> Iterator[CheckResult]:
    provisioning = data.get("provisioning")
    if not isinstance(provisioning, dict):
        return
    users = provisioning.get("users")
    if isinstance(users, dict) and isinstance(users.get("mappings"), list) and users["mappings"]:
        yield from _mapping_list(("provisioning", "users"), users["mappings"], "users")
    groups = provisioning.get("groups")
    if isinstance(groups, dict) and groups.get("enabled") is True:
        mappings = groups.get("mappings")
        if not mappings:
            yield ("provisioning", "groups", "enabled"), "group provisioning is enabled but has no mappings", False
        elif isinstance(mappings, list):
            yield from _mapping_list(("provisioning", "groups"), mappings, "groups")


def _mapping_list(base: Loc, mappings: list[Any], kind: str) -> Iterator[CheckResult]:
    targets: dict[str, int] = {}
    precedences: dict[int, int] = {}
    for index, mapping in _items(mappings):
        loc: Loc = (*base, "mappings", index)
        target = _text(mapping, "target")
        try:
            path = parse_path(target) if target else None
        except PathError:
            path = None
        if path is not None:
            normal = str(path).lower()  # SCIM attribute names are case-insensitive
            if normal in targets:
                yield (*loc, "target"), f"target {target!r} is mapped twice (also mappings[{targets[normal]}])", False
            targets.setdefault(normal, index)
        matching = mapping.get("matching")
        if not isinstance(matching, int) or isinstance(matching, bool):
            continue
        if matching in precedences:
            yield ((*loc, "matching"), f"matching precedence {matching} is used twice "
                   f"(also mappings[{precedences[matching]}])", False)
        precedences.setdefault(matching, index)
        if mapping.get("constant") is not None:
            yield (*loc, "matching"), "a constant cannot be a matching attribute; it is the same for everyone", False
        if mapping.get("apply", "always") != "always":
            yield (*loc, "apply"), "a matching attribute must apply always (it identifies the object)", False
        if path is not None and path.filter is None and path.top in ("members", "roles", "emails", "phoneNumbers"):
            yield (*loc, "matching"), f"{target!r} is multi-valued and cannot identify an object", False
    if not precedences:
        yield ((*base, "mappings"), f"{kind}: at least one mapping needs 'matching: 1' (the attribute that "
               "identifies an existing object in the target)", True)
