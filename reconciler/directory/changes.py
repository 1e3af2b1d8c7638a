"""Directory changes as values, and what they do to a cached directory: the pure half of incremental cycles.

Vocabulary:
- :class:`DirectoryChanges`: what changed since the last cycle, as Graph's delta query says it (read by
  :mod:`reconciler.directory.delta`) or as two snapshots differ (:func:`diff_snapshots`). Users and groups are
  Graph-shaped records that carry ``id`` and the properties that changed (more are harmless); a removal is
  ``"changed"`` (soft-deleted: among the deleted items, restorable for 30 days) or ``"deleted"`` (purged: gone).
  Membership changes are ``(group id, member id, kind)``, kind ``"user"``, ``"group"`` or ``"unknown"`` (Graph
  did not say).
- :func:`merge`: the cached directory with the changes applied. A changed user's record is merged property by
  property onto the cached one (a property Graph did not send keeps its cached value; one it sent as null becomes
  null); a soft-deleted user moves to ``deleted_users`` with its last live record (so it still matches its target
  object) and out of every group; a purged user or deleted group is dropped everywhere, members included; a
  restored user comes back from ``deleted_users``. Removals apply before records, so a record wins. Membership
  changes apply to groups the directory has; unchanged objects are kept as they are (the same objects).
- :func:`directory_to_json` / :func:`directory_from_json`: the cache of the last cycle's directory, in the snapshot
  format (:mod:`reconciler.directory.snapshot`) plus ``"@source"`` (where it came from, for messages).

Nothing here does I/O; the network half is :mod:`reconciler.directory.delta`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from reconciler.directory.model import Directory, DirectoryGroup, DirectoryUser
from reconciler.directory.snapshot import directory_from_data
from reconciler.errors import DirectoryError

SOFT_DELETED = "changed"   # Graph's @removed reason for an object among the deleted items (restorable)
PURGED = "deleted"         # ... and for one permanently deleted
MEMBER_KINDS = ("user", "group", "unknown")

MemberChange = tuple[str, str, str]  # (group id, member id, kind)


@dataclass(frozen=True)
class DeltaLinks:
    """Graph's ``@odata.deltaLink`` URLs for users and for groups: where the next delta round starts."""

    users: str
    groups: str


@dataclass(frozen=True)
class DirectoryChanges:
    """What changed in the directory (see the module's vocabulary); ``links`` are the delta links the next round
    starts from (empty strings when the changes come from snapshots), ``requests`` how many Graph requests reading
    them took."""

    users: tuple[dict[str, Any], ...] = ()                # changed, new or restored users (Graph records)
    removed_users: tuple[tuple[str, str], ...] = ()       # (user id, "changed" | "deleted")
    groups: tuple[dict[str, Any], ...] = ()               # changed or new groups (Graph records, no members)
    removed_groups: tuple[str, ...] = ()                  # group ids
    added_members: tuple[MemberChange, ...] = ()
    removed_members: tuple[MemberChange, ...] = ()
    links: DeltaLinks = DeltaLinks("", "")
    requests: int = 0

    @property
    def empty(self) -> bool:
        """Nothing changed (the links and the request count aside)."""
        return not (self.users or self.removed_users or self.groups or self.removed_groups or self.added_members
                    or self.removed_members)

    def touched_users(self) -> frozenset[str]:
        """Ids of the users whose desired state may have changed: changed, new, restored or removed users, and
        users (or members of unknown kind) added to or removed from a group."""
        members = (m for _, m, kind in (*self.added_members, *self.removed_members) if kind != "group")
        return frozenset((*(u["id"] for u in self.users), *(i for i, _ in self.removed_users), *members))

    def touched_groups(self) -> frozenset[str]:
        """Ids of the groups whose desired state may have changed: changed, new or removed groups, groups whose
        members changed, and groups (or members of unknown kind) added to or removed from a group."""
        changes = (*self.added_members, *self.removed_members)
        members = (m for _, m, kind in changes if kind != "user")
        return frozenset((*(g["id"] for g in self.groups), *self.removed_groups, *(g for g, _, _ in changes),
                          *members))


NO_CHANGES = DirectoryChanges()


def merge(directory: Directory, changes: DirectoryChanges) -> Directory:
    """``directory`` with ``changes`` applied (see the module's vocabulary); ``directory`` itself when they are
    empty."""
    if changes.empty:
        return directory
    users: dict[str, DirectoryUser] = dict(directory.users_by_id)
    deleted: dict[str, DirectoryUser] = {u.id: u for u in directory.deleted_users}
    groups: dict[str, DirectoryGroup] = dict(directory.groups_by_id)
    gone: set[str] = set()          # objects no longer members of anything
    for user_id, reason in changes.removed_users:
        user = users.pop(user_id, None)
        gone.add(user_id)
        if reason == PURGED:
            deleted.pop(user_id, None)
        elif user is not None:
            deleted[user_id] = user
        elif user_id not in deleted:
            deleted[user_id] = DirectoryUser(user_id, {"id": user_id})
    for group_id in changes.removed_groups:
        groups.pop(group_id, None)
        gone.add(group_id)
    for record in changes.users:
        user_id = record["id"]
        cached = users.get(user_id) or deleted.pop(user_id, None)
        users[user_id] = DirectoryUser(user_id, {**cached.data, **record} if cached is not None else dict(record))
        gone.discard(user_id)
    for record in changes.groups:
        group_id = record["id"]
        properties = {k: v for k, v in record.items() if k != "members"}
        cached_group = groups.get(group_id)
        if cached_group is None:
            groups[group_id] = DirectoryGroup(group_id, properties)
        else:
            groups[group_id] = DirectoryGroup(group_id, {**cached_group.data, **properties}, cached_group.members)
        gone.discard(group_id)
    groups = _members_applied(groups, gone, changes)
    return Directory(tuple(users.values()), tuple(groups.values()), directory.source, tuple(deleted.values()))


def _members_applied(groups: dict[str, DirectoryGroup], gone: set[str],
                     changes: DirectoryChanges) -> dict[str, DirectoryGroup]:
    removed: dict[str, set[str]] = {}
    added: dict[str, list[str]] = {}
    for group_id, member_id, _ in changes.removed_members:
        removed.setdefault(group_id, set()).add(member_id)
    for group_id, member_id, _ in changes.added_members:
        added.setdefault(group_id, []).append(member_id)
        removed.get(group_id, set()).discard(member_id)
    touched = set(removed) | set(added)
    if gone:  # a purged or soft-deleted user, or a deleted group, leaves every group (rare: one pass over groups)
        touched |= {g.id for g in groups.values() if not gone.isdisjoint(g.members)}
    for group_id in touched:
        group = groups.get(group_id)
        if group is None:
            continue
        drop = removed.get(group_id, set()) | gone
        kept = [m for m in group.members if m not in drop]
        members = tuple(dict.fromkeys((*kept, *(m for m in added.get(group_id, ()) if m not in gone))))
        if members != group.members:
            groups[group_id] = DirectoryGroup(group_id, group.data, members)
    return groups


def diff_snapshots(old: Directory, new: Directory) -> DirectoryChanges:
    """What changed from ``old`` to ``new`` (two snapshots of one directory), so that ``merge(old, changes)``
    equals ``new`` as values (:func:`same_directory`), except that a user soft-deleted since ``old`` keeps its last
    live record there (as :func:`merge` does with a delta; only its id when ``old`` did not have it), and that the
    record of a user deleted in both is not compared. ``links`` are empty."""
    old_users, new_users = old.users_by_id, new.users_by_id
    old_deleted = {u.id: u for u in old.deleted_users}
    new_deleted = {u.id for u in new.deleted_users}
    users: list[dict[str, Any]] = []
    for user in new.users:
        cached = old_users.get(user.id)
        base = cached or old_deleted.get(user.id)
        record = _changed(base.data if base is not None else None, user.data, user.id)
        if record is not None or cached is None:  # a restored user is a change, even with the same record
            users.append(record or {"id": user.id})
    removed_users = [(u.id, SOFT_DELETED if u.id in new_deleted else PURGED)
                     for u in old.users if u.id not in new_users]
    removed_users += [(i, PURGED) for i in old_deleted if i not in new_users and i not in new_deleted]
    removed_users += [(u.id, SOFT_DELETED) for u in new.deleted_users
                      if u.id not in old_users and u.id not in old_deleted]
    old_groups, new_groups = old.groups_by_id, new.groups_by_id
    groups: list[dict[str, Any]] = []
    added: list[MemberChange] = []
    removed: list[MemberChange] = []
    for group in new.groups:
        previous = old_groups.get(group.id)
        record = _changed(_properties(previous.data) if previous is not None else None, _properties(group.data),
                          group.id)
        if record is not None:
            groups.append(record)
        before = set(previous.members) if previous is not None else set()
        after = set(group.members)
        added += [(group.id, m, _kind(new, m)) for m in group.members if m not in before]
        if previous is not None:
            removed += [(group.id, m, _kind(old, m)) for m in previous.members if m not in after]
    removed_groups = [g.id for g in old.groups if g.id not in new_groups]
    return DirectoryChanges(tuple(users), tuple(removed_users), tuple(groups), tuple(removed_groups), tuple(added),
                            tuple(removed))


def _properties(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k != "members"}


def _changed(before: Mapping[str, Any] | None, after: Mapping[str, Any], object_id: str) -> dict[str, Any] | None:
    """``after``'s id and the properties that differ from ``before`` (one gone becomes null); None when none do;
    all of ``after`` for a new object."""
    if before is None:
        return {**after, "id": object_id}
    record = {k: v for k, v in after.items() if before.get(k) != v}
    record.update({k: None for k, v in before.items() if k not in after and v is not None})
    return {"id": object_id, **record} if record else None


def _kind(directory: Directory, object_id: str) -> str:
    if object_id in directory.users_by_id:
        return "user"
    return "group" if object_id in directory.groups_by_id else "unknown"


def same_directory(first: Directory, second: Directory) -> bool:
    """Whether two directories hold the same values: users, deleted users and groups by id, their properties (a
    property absent in one and null in the other being the same) and their members (in any order)."""
    return _values(first) == _values(second)


def _values(directory: Directory) -> tuple[Any, ...]:
    def record(data: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in data.items() if v is not None and k != "members"}

    return ({u.id: record(u.data) for u in directory.users},
            {u.id: record(u.data) for u in directory.deleted_users},
            {g.id: (record(g.data), frozenset(g.members)) for g in directory.groups})


def directory_to_json(directory: Directory) -> bytes:
    """``directory`` as a compact JSON snapshot with its ``"@source"``, for the cache of the last cycle."""
    document = {"@source": directory.source, **directory.to_snapshot()}
    # a lone surrogate (directory data can hold one) becomes its JSON escape, which reads back as itself
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "backslashreplace")


def directory_from_json(raw: bytes, where: str) -> Directory:
    """The directory :func:`directory_to_json` wrote; ``where`` names the cache in errors (one line per problem,
    as for a snapshot file). Members need not be users or groups of the cache (Graph reads them apart)."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise DirectoryError(f"{where}: the directory cache is not UTF-8 (byte at offset {exc.start})") from None
    except (ValueError, RecursionError) as exc:
        raise DirectoryError(f"{where}: the directory cache is not valid JSON ({_first_line(exc)})") from None
    directory = directory_from_data(data, where, raw, known_members=False)
    source = data.get("@source") if isinstance(data, dict) else None
    return replace(directory, source=source) if isinstance(source, str) and source else directory


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__

