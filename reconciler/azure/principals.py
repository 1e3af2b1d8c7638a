"""Resolve the manifest's principals to object ids with azuread's data sources (``get_user`` / ``get_group``).

A user is named by user principal name or object id, a group by display name or object id; looking an object id
up too means a typo fails the preview instead of an apply. Each principal is looked up once per app.
"""

from __future__ import annotations

import re
from typing import Literal

import pulumi
import pulumi_azuread as azuread

_OBJECT_ID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def is_object_id(text: str) -> bool:
    return bool(_OBJECT_ID.match(text))


class Principals:
    def __init__(self, parent: pulumi.Resource) -> None:
        self._opts = pulumi.InvokeOptions(parent=parent)
        self._cache: dict[tuple[str, str], pulumi.Output[str]] = {}

    def object_id(self, kind: Literal["user", "group"], ref: str) -> pulumi.Output[str]:
        key = (kind, ref.lower() if kind == "user" else ref)
        if key not in self._cache:
            self._cache[key] = self._lookup(kind, ref)
        return self._cache[key]

    def owner(self, ref: str) -> pulumi.Output[str]:
        """Owners may be service principals as well as users: an object id is taken as given."""
        return pulumi.Output.from_input(ref) if is_object_id(ref) else self.object_id("user", ref)

    def _lookup(self, kind: str, ref: str) -> pulumi.Output[str]:
        if kind == "user":
            by_id = is_object_id(ref)
            found = azuread.get_user_output(
                object_id=ref if by_id else None,
                user_principal_name=None if by_id else ref,
                opts=self._opts,
            )
            return found.object_id
        by_id = is_object_id(ref)
        group = azuread.get_group_output(
            object_id=ref if by_id else None,
            display_name=None if by_id else ref,
            opts=self._opts,
        )
        return group.object_id
