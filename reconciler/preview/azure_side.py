"""The Azure side of a preview: the declared resources of the base revision against the working tree's.

Both listings come from the Pulumi program run under mocks (:mod:`reconciler.azure.declared`, as the data of
:mod:`reconciler.azure.listing`): no CLI, no cloud,
no credentials, so this works for a pull request from a fork. Resources are grouped by app (the component at the
root of each resource's parents).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from reconciler.azure.listing import Declaration, DeclaredResource, compare
from reconciler.preview.model import AzureSide, InputChange, ResourceChange

ACTIONS = {"create": "add", "update": "change", "delete": "remove"}


_IDENTITY = ("value", "id", "key", "name", "displayName")


def _identity(*lists: list[Any]) -> str | None:
    """The key that names each element in each of ``lists`` of objects (app roles by ``value``), if one does."""
    if not all(all(isinstance(i, dict) for i in items) for items in lists):
        return None

    def names(key: str, items: list[Any]) -> bool:
        values = [i.get(key) for i in items]
        return all(isinstance(v, str | int) for v in values) and len(set(values)) == len(values)

    return next((key for key in _IDENTITY if all(names(key, items) for items in lists)), None)


def leaf_changes(path: str, old: Any, new: Any) -> list[InputChange]:
    """The smallest differing parts of two input values: ``appRoles[value=Admin].description``, not the list."""
    if old == new:
        return []
    if isinstance(old, dict) and isinstance(new, dict):
        return [c for k in sorted(old.keys() | new.keys()) for c in leaf_changes(f"{path}.{k}", old.get(k),
                                                                                 new.get(k))]
    if isinstance(old, list) and isinstance(new, list):
        key = _identity(old, new)
        if key is not None:
            before = {i[key]: i for i in old}
            after = {i[key]: i for i in new}
            return [c for ident in sorted(before.keys() | after.keys(), key=str)
                    for c in leaf_changes(f"{path}[{key}={ident}]", before.get(ident), after.get(ident))]
        if len(old) == len(new):
            pairs = enumerate(zip(old, new, strict=True))
            return [c for n, (a, b) in pairs for c in leaf_changes(f"{path}[{n}]", a, b)]
    return [InputChange(path, old, new)]


def _app_of(resources: Sequence[DeclaredResource]) -> dict[str, str]:
    parents = {r.name: r.parent for r in resources}

    def root(name: str) -> str:
        seen = set()
        while parents.get(name) and name not in seen:
            seen.add(name)
            name = parents[name]  # type: ignore[assignment]
        return name

    return {r.name: root(r.name) for r in resources}


def azure_side(before: Declaration, after: Declaration) -> AzureSide:
    """What turning ``before`` into ``after`` adds, changes and removes, per app, removals first."""
    old = {(r.type, r.name): r for r in before.resources}
    new = {(r.type, r.name): r for r in after.resources}
    apps = {**_app_of(before.resources), **_app_of(after.resources)}
    side = AzureSide()
    for change in compare(before, after):
        key = (change.type, change.name)
        inputs: tuple[InputChange, ...] = ()
        if change.action == "update":
            a, b = old[key], new[key]
            inputs = tuple(leaf for k in change.keys for leaf in leaf_changes(k, a.inputs.get(k), b.inputs.get(k)))
            if a.parent != b.parent:
                inputs += (InputChange("(parent)", a.parent, b.parent),)
        elif change.action == "create":
            inputs = tuple(InputChange(k, None, v) for k, v in sorted(new[key].inputs.items()))
        side.changes.append(ResourceChange(ACTIONS[change.action], change.type, change.name,
                                           apps.get(change.name, change.name), inputs))
    order = {"remove": 0, "add": 1, "change": 2}
    side.changes.sort(key=lambda c: (c.app, order[c.action], c.type, c.name))
    return side
