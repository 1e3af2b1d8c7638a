"""``validate``'s checks of a manifest's mappings and scoping filters against Entra's language and attributes.

Each problem points at the manifest's FILE:LINE:COL; inside an expression, at the column of the offending
function, attribute or character.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from reconciler.directory.names import GROUP_NAMES, MULTI_VALUED, USER_ATTRIBUTES, USER_NAMES, is_extension
from reconciler.errors import Problem
from reconciler.expressions.check import check_tree, unknown_attribute, uses
from reconciler.expressions.parse import ExpressionSyntaxError, parse
from reconciler.manifest.load import LoadedManifest
from reconciler.manifest.model import Mapping
from reconciler.manifest.positions import Loc

ROLE_FUNCTIONS = frozenset({"AppRoleAssignmentsComplex", "AssertiveAppRoleAssignmentsComplex",
                            "SingleAppRoleAssignment"})
# Entra's scoping filters do not support these (multi-valued, references, computed, dates).
UNFILTERABLE = MULTI_VALUED | {"manager", "IsSoftDeleted", "createdDateTime", "employeeHireDate",
                               "employeeLeaveDateTime"}


def mapping_problems(loaded: LoadedManifest) -> list[Problem]:
    """Every expression, source attribute and scoping-filter attribute problem of one manifest."""
    manifest = loaded.manifest
    provisioning = manifest.provisioning
    problems = list(_mappings(loaded, ("provisioning", "users"), provisioning.users.mappings, USER_NAMES,
                              "User", provisioning.scope))
    if provisioning.groups.enabled:
        problems.extend(_mappings(loaded, ("provisioning", "groups"), provisioning.groups.mappings, GROUP_NAMES,
                                  "Group", provisioning.scope))
    for i, group in enumerate(provisioning.scoping_filters):
        for j, clause in enumerate(group):
            loc: Loc = ("provisioning", "scopingFilters", i, j, "attribute")
            if is_extension(clause.attribute):
                continue
            if clause.attribute not in USER_ATTRIBUTES and clause.attribute not in UNFILTERABLE:
                problems.append(loaded.problem(loc, unknown_attribute(clause.attribute, USER_ATTRIBUTES)))
            elif clause.attribute in UNFILTERABLE:
                problems.append(loaded.problem(loc, f"scoping filters cannot test {clause.attribute!r} "
                                                    "(Entra: no multi-valued, reference, computed or date attributes)"))
    return problems


def _mappings(loaded: LoadedManifest, base: Loc, mappings: Sequence[Mapping], names: frozenset[str], kind: str,
              scope: str) -> Iterator[Problem]:
    for index, mapping in enumerate(mappings):
        loc: Loc = (*base, "mappings", index)
        is_members = kind == "Group" and mapping.path.attribute == "members" and mapping.path.schema is None
        if is_members and mapping.source != "members":
            yield loaded.problem((*loc, "target"), "a group's members target takes 'source: members'")
        if mapping.source is not None:
            if mapping.source not in names:
                yield loaded.problem((*loc, "source"), unknown_attribute(mapping.source, names))
            elif mapping.source == "members" and not is_members:
                yield loaded.problem((*loc, "source"), "members maps only to the target 'members'")
        if mapping.expression is not None:
            yield from _expression(loaded, (*loc, "expression"), mapping, names, scope)


def _expression(loaded: LoadedManifest, loc: Loc, mapping: Mapping, names: frozenset[str],
                scope: str) -> Iterator[Problem]:
    text = mapping.expression or ""
    try:
        tree = parse(text)
    except ExpressionSyntaxError as error:
        yield _at(loaded, loc, text, error.offset, error.message)
        return
    for finding in check_tree(tree, names):
        yield _at(loaded, loc, text, finding.offset, finding.message)
    if mapping.matching is not None and uses(tree, lambda f: not f.deterministic or f.create_only):
        yield loaded.problem(loc, "a matching attribute cannot use Guid, Now, RandomString or SelectUniqueValue "
                                  "(its value must be the same on every run)")
    if scope == "all" and uses(tree, lambda f: f.name in ROLE_FUNCTIONS):
        yield loaded.problem(loc, "app role functions need 'scope: assigned' (Entra does not support them with "
                                  "Sync all: unassigned users have no roles)")


def _at(loaded: LoadedManifest, loc: Loc, text: str, offset: int, message: str) -> Problem:
    """A problem at ``offset`` inside a one-line expression; a multi-line one is reported at its start, with the
    line and column inside the expression in the message (YAML folding makes file columns unreliable there)."""
    if "\n" not in text:
        return loaded.problem(loc, message, offset=offset)
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return loaded.problem(loc, f"(expression line {line}, column {column}) {message}")
