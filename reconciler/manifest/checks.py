"""Cross-field rules of manifest v1, each naming the exact key it is about.

These are structure, not policy: a manifest that breaks one of them cannot be provisioned at all. Policies (the
rules shared with the CrossGuard pack) live in :mod:`reconciler.policy`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from reconciler.manifest.model import DEFAULT_ACCESS_ROLES, Manifest, Mapping
from reconciler.manifest.positions import Loc

CheckResult = tuple[Loc, str, bool]  # (where, message, whether to point at the key rather than the value)


def check_manifest(manifest: Manifest) -> list[CheckResult]:
    return [*_roles(manifest), *_assignments(manifest), *_mappings(manifest)]


def _roles(manifest: Manifest) -> Iterator[CheckResult]:
    seen_values: dict[str, int] = {}
    seen_names: dict[str, int] = {}
    for index, role in enumerate(manifest.roles):
        if role.value.lower() in DEFAULT_ACCESS_ROLES or role.display_name.lower() in DEFAULT_ACCESS_ROLES:
            yield ("roles", index, "value"), "'Default Access' is Entra's built-in role; declare app roles only", False
        if role.value in seen_values:
            yield ("roles", index, "value"), f"duplicate role value {role.value!r} (also roles[{seen_values[role.value]}])", False
        seen_values.setdefault(role.value, index)
        if role.display_name in seen_names:
            yield (("roles", index, "displayName"),
                   f"duplicate role displayName {role.display_name!r} (also roles[{seen_names[role.display_name]}])", False)
        seen_names.setdefault(role.display_name, index)


def _assignments(manifest: Manifest) -> Iterator[CheckResult]:
    declared = [r.value for r in manifest.roles]
    seen: dict[tuple[str, str, str], int] = {}
    for index, assignment in enumerate(manifest.assignments):
        loc: Loc = ("assignments", index, "role")
        if assignment.role.lower() in DEFAULT_ACCESS_ROLES:
            yield (loc, "assignments to the Default Access role are not provisioned (the app's setup guide); "
                        "assign a declared role", False)
        elif manifest.role(assignment.role) is None:
            known = ", ".join(repr(v) for v in declared) if declared else "none declared"
            yield loc, f"role {assignment.role!r} is not declared in roles (declared: {known})", False
        key = (assignment.principal_type, assignment.principal.lower(), assignment.role)
        if key in seen:
            yield (("assignments", index), f"duplicate assignment of {assignment.principal_type} "
                   f"{assignment.principal!r} to role {assignment.role!r} (also assignments[{seen[key]}])", False)
        seen.setdefault(key, index)


def _mappings(manifest: Manifest) -> Iterator[CheckResult]:
    provisioning = manifest.provisioning
    yield from _mapping_list(("provisioning", "users"), provisioning.users.mappings, "users")
    groups = provisioning.groups
    if groups.enabled:
        if not groups.mappings:
            yield ("provisioning", "groups", "enabled"), "group provisioning is enabled but has no mappings", False
        else:
            yield from _mapping_list(("provisioning", "groups"), groups.mappings, "groups")


def _mapping_list(base: Loc, mappings: Sequence[Mapping], kind: str) -> Iterator[CheckResult]:
    targets: dict[str, int] = {}
    precedences: dict[int, int] = {}
    for index, mapping in enumerate(mappings):
        loc: Loc = (*base, "mappings", index)
        target = str(mapping.path).lower()  # SCIM attribute names are case-insensitive
        if target in targets:
            yield (*loc, "target"), f"target {mapping.target!r} is mapped twice (also mappings[{targets[target]}])", False
        targets.setdefault(target, index)
        if mapping.matching is not None:
            if mapping.matching in precedences:
                yield ((*loc, "matching"), f"matching precedence {mapping.matching} is used twice "
                       f"(also mappings[{precedences[mapping.matching]}])", False)
            precedences.setdefault(mapping.matching, index)
            if mapping.constant is not None:
                yield (*loc, "matching"), "a constant cannot be a matching attribute; it is the same for everyone", False
            if mapping.apply != "always":
                yield (*loc, "apply"), "a matching attribute must apply always (it identifies the object)", False
            if mapping.path.filter is None and mapping.path.top in ("members", "roles"):
                yield (*loc, "matching"), f"{mapping.target!r} is multi-valued and cannot identify an object", False
    if not precedences:
        yield ((*base, "mappings"), f"{kind}: at least one mapping needs 'matching: 1' (the attribute that "
               "identifies an existing object in the target)", True)
