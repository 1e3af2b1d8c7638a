"""The directory as the engine sees it: users and groups as Graph returns them, plus direct group membership."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from reconciler.directory.names import group_value, user_value


@dataclass(frozen=True, eq=False)
class DirectoryUser:
    """A user; ``data`` is the Graph-shaped record (Graph property names), read through Entra names with get()."""

    id: str
    data: Mapping[str, Any]

    @property
    def upn(self) -> str:
        return str(self.data.get("userPrincipalName") or self.id)

    @property
    def enabled(self) -> bool:
        return self.data.get("accountEnabled") is not False

    def get(self, name: str) -> Any:
        return user_value(self.data, name)


@dataclass(frozen=True, eq=False)
class DirectoryGroup:
    """A group; ``members`` are the object ids of its direct members (users and groups)."""

    id: str
    data: Mapping[str, Any]
    members: tuple[str, ...] = ()

    @property
    def display_name(self) -> str:
        return str(self.data.get("displayName") or self.id)

    def get(self, name: str) -> Any:
        if name == "members":
            return list(self.members)
        return group_value(self.data, name)


@dataclass(frozen=True, eq=False)
class Directory:
    """Users and groups of one tenant (or snapshot); ``source`` names where they came from, for messages."""

    users: tuple[DirectoryUser, ...]
    groups: tuple[DirectoryGroup, ...]
    source: str = "directory"
    # Soft-deleted users (Graph's deletedItems, restorable for 30 days): deprovisioned where this app owns them.
    deleted_users: tuple[DirectoryUser, ...] = ()

    @cached_property
    def users_by_id(self) -> dict[str, DirectoryUser]:
        return {u.id: u for u in self.users}

    @cached_property
    def groups_by_id(self) -> dict[str, DirectoryGroup]:
        return {g.id: g for g in self.groups}

    @cached_property
    def _users_by_upn(self) -> dict[str, DirectoryUser]:
        return {u.upn.lower(): u for u in self.users}

    @cached_property
    def _groups_by_name(self) -> dict[str, list[DirectoryGroup]]:
        index: dict[str, list[DirectoryGroup]] = {}
        for group in self.groups:
            index.setdefault(group.display_name.lower(), []).append(group)
        return index

    def find_user(self, key: str) -> DirectoryUser | None:
        """A user by object id or user principal name (case-insensitive)."""
        return self.users_by_id.get(key) or self._users_by_upn.get(key.lower())

    def find_groups(self, key: str) -> list[DirectoryGroup]:
        """Groups by object id, else by display name (case-insensitive; names need not be unique)."""
        if key in self.groups_by_id:
            return [self.groups_by_id[key]]
        return list(self._groups_by_name.get(key.lower(), []))

    def to_snapshot(self) -> dict[str, Any]:
        """The contract's snapshot shape: Graph records, groups with their direct member ids."""
        snapshot: dict[str, Any] = {
            "users": [dict(u.data) for u in self.users],
            "groups": [{**{k: v for k, v in g.data.items() if k != "members"}, "members": list(g.members)}
                       for g in self.groups],
        }
        if self.deleted_users:
            snapshot["deletedUsers"] = [dict(u.data) for u in self.deleted_users]
        return snapshot
