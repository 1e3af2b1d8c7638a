"""What a manifest needs from the directory: the Entra attributes its mappings and filters read, and the groups
whose members matter. A pure function of the manifest; the directory readers take its answer as plain sets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from reconciler.expressions import compile_expression, walk
from reconciler.expressions.parse import Attribute, ExpressionSyntaxError
from reconciler.manifest.model import Manifest, Mapping


@dataclass(frozen=True)
class Selection:
    """Entra attribute names to read for users and for groups, and the groups (names or object ids) whose
    members to read; ``member_groups`` is None for every group (``scope: all``)."""

    user_attributes: frozenset[str]
    group_attributes: frozenset[str]
    member_groups: tuple[str, ...] | None


def selection(manifest: Manifest) -> Selection:
    """What ``manifest`` reads: its mapped and filtered attributes, and the members of its assigned groups (of
    every group with ``scope: all``)."""
    provisioning = manifest.provisioning
    groups = None if provisioning.scope == "all" else tuple(a.group for a in manifest.assignments if a.group)
    return Selection(frozenset(user_attributes(manifest)), frozenset(group_attributes(manifest)), groups)


def user_attributes(manifest: Manifest) -> set[str]:
    """The Entra attribute names the manifest's user mappings and scoping filters read."""
    names = {c.attribute for group in manifest.provisioning.scoping_filters for c in group}
    return names | _mapped(manifest.provisioning.users.mappings)


def group_attributes(manifest: Manifest) -> set[str]:
    """The Entra attribute names the manifest's group mappings read (none when groups are not provisioned)."""
    return _mapped(manifest.provisioning.groups.mappings) if manifest.provisioning.groups.enabled else set()


def _mapped(mappings: Sequence[Mapping]) -> set[str]:
    names: set[str] = set()
    for mapping in mappings:
        if mapping.source:
            names.add(mapping.source)
        elif mapping.expression:
            try:
                tree = compile_expression(mapping.expression).tree
            except ExpressionSyntaxError:
                continue
            names.update(node.name for node in walk(tree) if isinstance(node, Attribute))
    return names
