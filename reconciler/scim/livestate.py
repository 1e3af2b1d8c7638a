"""Live state as a value: what the target holds (users and groups keyed by the target's ``id``), and the
``attributes=`` list a read asks for. Pure: the planner takes it; :mod:`reconciler.scim.live` fills it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from reconciler.scim.paths import parse_path

Resource = dict[str, Any]


@dataclass
class LiveState:
    """Every user and group of the target, keyed by id."""

    users: dict[str, Resource] = field(default_factory=dict)
    groups: dict[str, Resource] = field(default_factory=dict)


def read_attributes(paths: Sequence[str], always: Sequence[str] = ("externalId",)) -> list[str]:
    """The ``attributes=`` list for mapped target paths: each path's top-level attribute (or the extension
    attribute with its URN), plus ``always``; ``id`` is returned by servers regardless."""
    names: list[str] = []
    for text in [*always, *paths]:
        path = parse_path(text)
        name = f"{path.schema}:{path.attribute}" if path.schema else path.attribute
        if name not in names:
            names.append(name)
    return names
