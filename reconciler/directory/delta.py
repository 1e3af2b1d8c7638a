"""Microsoft Graph's delta query for users and groups: the network half of incremental cycles.

- :func:`latest_links` asks ``/users/delta`` and ``/groups/delta`` with ``$deltatoken=latest`` (two requests): Graph
  answers no objects, only the ``@odata.deltaLink`` that later rounds start from. The ``$select`` is a full read's
  (:func:`reconciler.directory.graph.selects`), with ``members`` for groups (Graph sends ``members@delta`` only
  then) and the manager expanded when a mapping reads it; Graph keeps the query inside its links. Take the links
  *before* the full read that the cache starts from: a change made during that read then comes again in the next
  round, and merging it twice does no harm.
- :func:`read_changes` follows each link and every ``@odata.nextLink`` to the new ``@odata.deltaLink``, and returns
  the changes as :class:`~reconciler.directory.changes.DirectoryChanges` (plain values; an object seen on several
  pages counts once, its last state winning). Users removed with ``@removed`` reason ``"changed"`` are
  soft-deleted (restorable), ``"deleted"`` purged; another reason counts as soft-deleted, which a later round or
  full read corrects. ``members@delta`` entries become membership changes; members that are neither users nor
  groups (devices, service principals, contacts) are left out, as a full read leaves them out.
- Requests go through :class:`~reconciler.directory.graph.GraphReader`: the same token, retries, ``Retry-After``,
  deadlines, size caps and page bound; the stored links and every link in an answer are followed only on the
  endpoint's own origin (the token goes nowhere else), otherwise the round stops with a :class:`DirectoryError`.
  A link Graph no longer knows (``410 Gone``, or an error code such as ``resyncRequired``) raises
  :class:`DeltaExpired`: the caller starts over with a full cycle.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import httpx

from reconciler.directory.changes import PURGED, SOFT_DELETED, DeltaLinks, DirectoryChanges, MemberChange
from reconciler.directory.graph import GRAPH_VERSION, GraphReader, GraphStatusError, selects
from reconciler.errors import DirectoryError

__all__ = ["DeltaExpired", "DeltaLinks", "DirectoryChanges", "latest_links", "read_changes"]

USERS_DELTA = "/users/delta"
GROUPS_DELTA = "/groups/delta"
# Graph's error codes for a delta token it no longer accepts (Entra keeps them about 7 days)
RESYNC_CODES = frozenset({"resyncRequired", "syncStateNotFound", "syncStateInvalid"})
MEMBER_TYPES = {"#microsoft.graph.user": "user", "#microsoft.graph.group": "group", None: "unknown"}


class DeltaExpired(DirectoryError):
    """Graph no longer accepts a delta link: the changes since it cannot be had, a full read must start over."""


async def latest_links(reader: GraphReader, user_attributes: Iterable[str] | None = None,
                       group_attributes: Iterable[str] | None = None) -> DeltaLinks:
    """Delta links for the directory as it is now (no objects are read); ``*_attributes`` are Entra names, as for
    :meth:`GraphReader.read` (None: every known one)."""
    users_select, expand_manager, groups_select = selects(user_attributes, group_attributes)
    user_params = {"$select": ",".join(users_select), "$deltatoken": "latest"}
    if expand_manager:
        user_params["$expand"] = "manager"
    group_params = {"$select": ",".join([*groups_select, "members"]), "$deltatoken": "latest"}
    async with reader._session() as client:
        _, users = await _round(reader, client, reader._base_url + USERS_DELTA, user_params, USERS_DELTA)
        _, groups = await _round(reader, client, reader._base_url + GROUPS_DELTA, group_params, GROUPS_DELTA)
    return DeltaLinks(users, groups)


async def read_changes(reader: GraphReader, links: DeltaLinks) -> DirectoryChanges:
    """The changes since ``links`` (from :func:`latest_links` or the last round), with the links to start the
    next round from and the number of requests made."""
    before = reader.requests
    users_url = _stored(reader, links.users, USERS_DELTA)
    groups_url = _stored(reader, links.groups, GROUPS_DELTA)
    async with reader._session() as client:
        user_items, users_link = await _round(reader, client, users_url, None, USERS_DELTA)
        group_items, groups_link = await _round(reader, client, groups_url, None, GROUPS_DELTA)
    users, removed_users = _users(user_items)
    groups, removed_groups, added, removed = _groups(group_items)
    return DirectoryChanges(users, removed_users, groups, removed_groups, added, removed,
                            DeltaLinks(users_link, groups_link), reader.requests - before)


def _stored(reader: GraphReader, link: str, path: str) -> str:
    url = reader._next_link(reader._base_url + path, link, path, "delta link", "the stored delta link")
    if url is None:
        raise DirectoryError(f"Microsoft Graph: GET {GRAPH_VERSION}{path}: no delta link")
    return url


async def _round(reader: GraphReader, client: httpx.AsyncClient, url: str, params: dict[str, str] | None,
                 path: str) -> tuple[list[dict[str, Any]], str]:
    """Every item of one delta round from ``url``, and its new delta link."""
    try:
        items, last = await reader._collect(client, url, params, path)
    except GraphStatusError as exc:
        if exc.status == 410 or exc.code in RESYNC_CODES:
            code = f" {exc.code}" if exc.code else ""
            raise DeltaExpired(f"Microsoft Graph: GET {GRAPH_VERSION}{path}: the delta link is no longer valid "
                               f"({exc.status}{code}); a full read starts over") from None
        raise
    link = reader._next_link(url, last.get("@odata.deltaLink"), path, "@odata.deltaLink", "the delta link")
    if link is None:
        raise DirectoryError(f"Microsoft Graph: GET {GRAPH_VERSION}{path}: the last page has no '@odata.deltaLink'")
    return items, link


def _reason(removed: Any) -> str:
    reason = removed.get("reason") if isinstance(removed, dict) else None
    return PURGED if reason == PURGED else SOFT_DELETED


def _properties(item: dict[str, Any]) -> dict[str, Any]:
    """An item's properties, without annotations (``@odata.*``) and ``*@delta`` lists."""
    return {k: v for k, v in item.items() if "@" not in k}


def _users(items: list[dict[str, Any]]) -> tuple[tuple[dict[str, Any], ...], tuple[tuple[str, str], ...]]:
    latest: dict[str, dict[str, Any] | str] = {}
    for item in items:
        user_id = item["id"]
        previous = latest.pop(user_id, None)
        if "@removed" in item:
            latest[user_id] = _reason(item["@removed"])
            continue
        record = _properties(item)
        managers = item.get("manager@delta")
        if isinstance(managers, list):
            current = [m for m in managers if isinstance(m, dict) and isinstance(m.get("id"), str)
                       and "@removed" not in m]
            record["manager"] = dict(current[-1]) if current else None
        latest[user_id] = {**previous, **record} if isinstance(previous, dict) else record
    users = tuple(v for v in latest.values() if isinstance(v, dict))
    removed = tuple((k, v) for k, v in latest.items() if isinstance(v, str))
    return users, removed


def _groups(items: list[dict[str, Any]]) -> tuple[tuple[dict[str, Any], ...], tuple[str, ...],
                                                  tuple[MemberChange, ...], tuple[MemberChange, ...]]:
    latest: dict[str, dict[str, Any] | None] = {}   # None: removed
    members: dict[tuple[str, str], tuple[bool, str]] = {}
    for item in items:
        group_id = item["id"]
        if "@removed" in item:
            latest.pop(group_id, None)
            latest[group_id] = None
            continue
        for member in item.get("members@delta") or ():
            if not isinstance(member, dict) or not isinstance(member.get("id"), str) or not member["id"]:
                continue
            kind = MEMBER_TYPES.get(member.get("@odata.type"))
            if kind is not None:
                key = (group_id, member["id"])
                members.pop(key, None)
                members[key] = ("@removed" not in member, kind)
        record = _properties(item)
        previous = latest.get(group_id)
        if len(record) > 1 or (group_id in latest and previous is None):
            latest.pop(group_id, None)
            latest[group_id] = {**previous, **record} if previous is not None else record
    groups = tuple(v for v in latest.values() if v is not None)
    removed_groups = tuple(k for k, v in latest.items() if v is None)
    added = tuple((g, m, kind) for (g, m), (present, kind) in members.items() if present)
    removed = tuple((g, m, kind) for (g, m), (present, kind) in members.items() if not present)
    return groups, removed_groups, added, removed
