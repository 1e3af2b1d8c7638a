"""A small fake Microsoft Graph v1.0 on loopback, for tests and benchmarks of the directory readers.

``fake_graph(token)`` serves it over real HTTP (a threaded ``http.server`` on 127.0.0.1) and yields a
:class:`FakeGraph`: ``.endpoint`` is its origin (the readers append ``/v1.0``), and its methods change the tenant
as an administrator would. Every request needs ``Authorization: Bearer <token>``. Served, with Graph's shapes:

- ``GET /v1.0/users``, ``/v1.0/groups``: ``$select`` (unset properties as null), ``$top`` (at most
  ``page_size``), ``$expand=manager...`` on users, paged with ``@odata.nextLink``;
- ``GET /v1.0/groups/{id}/members/microsoft.graph.user`` and ``.../microsoft.graph.group``;
- ``GET /v1.0/directory/deletedItems/microsoft.graph.user`` (soft-deleted users, their user principal name
  prefixed with their id without dashes, as Graph does);
- ``GET /v1.0/users/delta``, ``/v1.0/groups/delta``: without a token the initial round (every object; groups with
  ``members@delta`` when ``members`` is selected), ``$deltatoken=latest`` only a delta link, and with a link's
  token the objects changed since (a changed user or group with its selected properties that are set, a user
  removed with ``@removed`` reason ``"changed"`` when soft-deleted or ``"deleted"`` when purged, member changes
  with ``@removed`` for removals), in pages of ``delta_page_size`` items and ``delta_members`` members per item
  (a group with more changes recurs on the next items). The query of the first request lives in the tokens, as
  Graph keeps it; links use ``link_origin`` (the endpoint unless a test points them elsewhere).

Each change is logged with a sequence number and a token is a position in the log, so a delta round costs what
changed, not what exists (the fake holds 100,000 users for benchmarks). ``expire_links()`` makes every issued
token answer ``410 Gone`` with ``resyncRequired``; ``throttle(n, retry_after)`` answers the next ``n`` requests
``429`` with ``Retry-After``; ``counts`` counts requests per path, ``queries`` records each one's path and query.
"""

from __future__ import annotations

import base64
import itertools
import json
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from reconciler.directory.model import Directory, DirectoryGroup, DirectoryUser

TOKEN = "fake-graph-token-7c1d93"
USER_TYPE = "#microsoft.graph.user"
GROUP_TYPE = "#microsoft.graph.group"
MEMBERS_PREFIX = "/v1.0/groups/"
CASTS = {"microsoft.graph.user": "user", "microsoft.graph.group": "group"}

Reply = tuple[int, dict[str, Any], dict[str, str]]


class FakeGraph:
    """The tenant's users, groups and memberships, and the change log that delta rounds read."""

    def __init__(self, token: str = TOKEN) -> None:
        self.token = token
        self.endpoint = ""
        self.link_origin: str | None = None
        self.page_size = 999
        self.delta_page_size = 200
        self.delta_members = 100
        self.counts: Counter[str] = Counter()
        self.queries: list[tuple[str, dict[str, str]]] = []    # every request's path and query
        self.lock = threading.RLock()
        self._users: dict[str, dict[str, Any]] = {}
        self._deleted: dict[str, dict[str, Any]] = {}
        self._groups: dict[str, dict[str, Any]] = {}
        self._members: dict[str, dict[str, str]] = {}       # group id -> member id -> "user" | "group"
        self._left: dict[str, list[str]] = {}               # soft-deleted user -> the groups it leaves
        self._former_manager: dict[str, str] = {}
        self._log: list[tuple[str, ...]] = []               # ("user", id) | ("group", id) | ("member", g, m, kind)
        self._epoch = 0
        self._throttled = 0
        self._retry_after = "1"
        self._pages: dict[str, tuple[list[dict[str, Any]], str | None]] = {}   # paging state: items, delta token
        self._serial = itertools.count(1)

    # -- the tenant, changed as an administrator would ------------------------------------------------------------

    def add_user(self, user_id: str, **properties: Any) -> str:
        with self.lock:
            if user_id in self._users or user_id in self._deleted:
                raise ValueError(f"user {user_id} exists")
            self._users[user_id] = {"id": user_id, "accountEnabled": True, **properties}
            self._log.append(("user", user_id))
        return user_id

    def add_users(self, records: Iterable[dict[str, Any]]) -> None:
        """Many users at once (each record has an ``id``), e.g. for a benchmark."""
        with self.lock:
            for record in records:
                self._users[record["id"]] = dict(record)
                self._log.append(("user", record["id"]))

    def update_user(self, user_id: str, **properties: Any) -> None:
        """Set properties (None clears one; ``manager`` is the manager's id)."""
        with self.lock:
            record = self._users[user_id]
            if "manager" in properties and record.get("manager") and not properties["manager"]:
                self._former_manager[user_id] = record["manager"]
            record.update(properties)
            self._log.append(("user", user_id))

    def soft_delete_user(self, user_id: str) -> None:
        """Delete a user: it moves to the deleted items (restorable) and leaves its groups."""
        with self.lock:
            self._deleted[user_id] = self._users.pop(user_id)
            self._left[user_id] = [g for g, members in self._members.items() if user_id in members]
            for group_id in self._left[user_id]:
                self._drop_member(group_id, user_id)
            self._log.append(("user", user_id))

    def restore_user(self, user_id: str) -> None:
        """Restore a soft-deleted user, with its group memberships."""
        with self.lock:
            self._users[user_id] = self._deleted.pop(user_id)
            for group_id in self._left.pop(user_id, []):
                if group_id in self._groups:
                    self.add_member(group_id, user_id)
            self._log.append(("user", user_id))

    def purge_user(self, user_id: str) -> None:
        """Delete a user permanently (from the users or the deleted items): gone everywhere."""
        with self.lock:
            if user_id in self._users:
                self.soft_delete_user(user_id)
            del self._deleted[user_id]
            self._left.pop(user_id, None)
            self._log.append(("user", user_id))

    def add_group(self, group_id: str, *, members: Iterable[str] = (), **properties: Any) -> str:
        with self.lock:
            if group_id in self._groups:
                raise ValueError(f"group {group_id} exists")
            self._groups[group_id] = {"id": group_id, **properties}
            self._members[group_id] = {}
            self._log.append(("group", group_id))
            for member in members:
                self.add_member(group_id, member)
        return group_id

    def update_group(self, group_id: str, **properties: Any) -> None:
        with self.lock:
            self._groups[group_id].update(properties)
            self._log.append(("group", group_id))

    def delete_group(self, group_id: str) -> None:
        """Delete a group (permanently): it leaves the groups it was a member of."""
        with self.lock:
            for other, members in self._members.items():
                if group_id in members and other != group_id:
                    self._drop_member(other, group_id)
            del self._groups[group_id]
            del self._members[group_id]
            self._log.append(("group", group_id))

    def add_member(self, group_id: str, member_id: str) -> None:
        with self.lock:
            kind = "user" if member_id in self._users else "group" if member_id in self._groups else None
            if kind is None:
                raise KeyError(f"{member_id} is neither a user nor a group")
            self._members[group_id][member_id] = kind
            self._log.append(("member", group_id, member_id, kind))

    def remove_member(self, group_id: str, member_id: str) -> None:
        with self.lock:
            self._drop_member(group_id, member_id)

    def _drop_member(self, group_id: str, member_id: str) -> None:
        kind = self._members[group_id].pop(member_id)
        self._log.append(("member", group_id, member_id, kind))

    # -- for tests ---------------------------------------------------------------------------------------------------

    def expire_links(self) -> None:
        """Every delta and paging token issued so far answers 410 Gone (resyncRequired) from now on."""
        with self.lock:
            self._epoch += 1

    def throttle(self, requests: int, retry_after: str = "1") -> None:
        """Answer the next ``requests`` requests 429 Too Many Requests with ``Retry-After: retry_after``."""
        with self.lock:
            self._throttled = requests
            self._retry_after = retry_after

    def directory(self) -> Directory:
        """The tenant as a full read should see it (properties as Graph returns them, the manager expanded)."""
        with self.lock:
            users = tuple(DirectoryUser(u["id"], self._full(u)) for u in self._users.values())
            groups = tuple(DirectoryGroup(g["id"], dict(g), tuple(self._members[g["id"]]))
                           for g in self._groups.values())
            deleted = tuple(DirectoryUser(u["id"], self._deleted_record(u)) for u in self._deleted.values())
        return Directory(users, groups, "Microsoft Graph", deleted)

    @staticmethod
    def _full(record: dict[str, Any]) -> dict[str, Any]:
        data = {k: v for k, v in record.items() if k != "manager"}
        if record.get("manager"):
            data["manager"] = {"@odata.type": USER_TYPE, "id": record["manager"]}
        return data

    @staticmethod
    def _deleted_record(record: dict[str, Any]) -> dict[str, Any]:
        upn = record.get("userPrincipalName")
        return {"id": record["id"], "userPrincipalName": record["id"].replace("-", "") + upn if upn else None}

    # -- the HTTP answers ---------------------------------------------------------------------------------------------

    def answer(self, method: str, target: str, headers: dict[str, str]) -> Reply:
        parts = urlsplit(target)
        path = parts.path
        query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        with self.lock:
            self.counts[path] += 1
            self.queries.append((path, query))
            if self._throttled > 0:
                self._throttled -= 1
                return _error(429, "TooManyRequests", "Too many requests", {"Retry-After": self._retry_after})
            if headers.get("authorization") != f"Bearer {self.token}":
                return _error(401, "InvalidAuthenticationToken", "Access token is empty or invalid.")
            if method != "GET":
                return _error(405, "Request_BadRequest", f"{method} is not supported here")
            return self._route(path, query)

    def _route(self, path: str, query: dict[str, str]) -> Reply:
        if path in ("/v1.0/users/delta", "/v1.0/groups/delta"):
            return self._delta(path, query)
        if "$skiptoken" in query:
            return self._next_page(path, query["$skiptoken"])
        select = _select(query)
        if path == "/v1.0/users":
            expand = query.get("$expand", "").startswith("manager")
            return self._first_page(path, [self._user(u, select, expand) for u in self._users.values()], query)
        if path == "/v1.0/groups":
            return self._first_page(path, [_pick(g, select) for g in self._groups.values()], query)
        if path == "/v1.0/directory/deletedItems/microsoft.graph.user":
            return self._first_page(path, [_pick(self._deleted_record(u), select) for u in self._deleted.values()],
                                    query)
        if path.startswith(MEMBERS_PREFIX) and "/members/" in path:
            group_id, _, cast = path[len(MEMBERS_PREFIX):].partition("/members/")
            if group_id not in self._members or cast not in CASTS:
                return _error(404, "Request_ResourceNotFound", f"Resource '{group_id}' does not exist.")
            kind = CASTS[cast]
            items = [{"@odata.type": f"#{cast}", "id": m} for m, k in self._members[group_id].items() if k == kind]
            return self._first_page(path, items, query)
        return _error(404, "Request_ResourceNotFound", f"Resource not found for the segment '{path}'.")

    def _user(self, record: dict[str, Any], select: list[str] | None, expand: bool) -> dict[str, Any]:
        item = _pick({k: v for k, v in record.items() if k != "manager"}, select)
        if expand and record.get("manager"):
            item["manager"] = {"@odata.type": USER_TYPE, "id": record["manager"]}
        return item

    # paging of full reads: the items as they were at the first page, by offset

    def _first_page(self, path: str, items: list[dict[str, Any]], query: dict[str, str]) -> Reply:
        try:
            top = min(max(int(query.get("$top", "100")), 1), self.page_size)
        except ValueError:
            return _error(400, "Request_BadRequest", "Invalid value for $top")
        if len(items) <= top:
            return 200, {"value": items}, {}
        key = f"{next(self._serial)}.{top}"
        self._pages[key] = (items, None)
        return self._slice(path, key, 0, top)

    def _next_page(self, path: str, skiptoken: str) -> Reply:
        key, _, offset = skiptoken.rpartition(":")
        if key not in self._pages or not offset.isdigit():
            return _error(400, "Request_BadRequest", "The skip token is not valid.")
        return self._slice(path, key, int(offset), int(key.split(".")[1]))

    def _slice(self, path: str, key: str, offset: int, size: int) -> Reply:
        items, _ = self._pages[key]
        body: dict[str, Any] = {"value": items[offset:offset + size]}
        if offset + size < len(items):
            body["@odata.nextLink"] = f"{self._origin()}{path}?$skiptoken={key}:{offset + size}"
        else:
            del self._pages[key]
        return 200, body, {}

    # delta rounds

    def _delta(self, path: str, query: dict[str, str]) -> Reply:
        kind = "users" if path == "/v1.0/users/delta" else "groups"
        if "$skiptoken" in query:
            state = _decode(query["$skiptoken"])
            if state is None or state.get("k") != kind or state.get("p") not in self._pages:
                return _error(400, "Request_BadRequest", "The skip token is not valid.")
            if state.get("e") != self._epoch:
                return _expired()
            return self._delta_page(path, state["p"], state["o"])
        token = query.get("$deltatoken")
        if token is not None and token != "latest":
            state = _decode(token)
            if state is None or state.get("k") != kind:
                return _error(400, "Request_BadRequest", "The delta token is not valid.")
            if state.get("e") != self._epoch:
                return _expired()
            select, expand, since = state.get("q"), bool(state.get("x")), int(state["s"])
        else:
            select = _select(query)
            expand = query.get("$expand", "").startswith("manager")
            since = None
        now = len(self._log)
        link_state = {"k": kind, "e": self._epoch, "s": now, "q": select, "x": expand}
        if token == "latest":
            link = f"{self._origin()}{path}?$deltatoken={_encode(link_state)}"
            return 200, {"value": [], "@odata.deltaLink": link}, {}
        items = self._user_changes(since, select, expand) if kind == "users" else self._group_changes(since, select)
        key = str(next(self._serial))
        self._pages[key] = (items, _encode(link_state))
        return self._delta_page(path, key, 0)

    def _delta_page(self, path: str, key: str, offset: int) -> Reply:
        items, link = self._pages[key]
        end = offset + self.delta_page_size
        body: dict[str, Any] = {"value": items[offset:end]}
        if end < len(items):
            state = {"k": "users" if path == "/v1.0/users/delta" else "groups", "e": self._epoch, "p": key, "o": end}
            body["@odata.nextLink"] = f"{self._origin()}{path}?$skiptoken={_encode(state)}"
        else:
            body["@odata.deltaLink"] = f"{self._origin()}{path}?$deltatoken={link}"
            del self._pages[key]
        return 200, body, {}

    def _user_changes(self, since: int | None, select: list[str] | None, expand: bool) -> list[dict[str, Any]]:
        if since is None:
            ids: Iterable[str] = list(self._users)
        else:
            ids = dict.fromkeys(e[1] for e in self._log[since:] if e[0] == "user")
        items = []
        for user_id in ids:
            record = self._users.get(user_id)
            if record is None:
                reason = "changed" if user_id in self._deleted else "deleted"
                items.append({"id": user_id, "@removed": {"reason": reason}})
                continue
            item = {k: v for k, v in record.items() if k != "manager" and (select is None or k in select)}
            item["id"] = user_id
            if expand and record.get("manager"):
                item["manager@delta"] = [{"@odata.type": USER_TYPE, "id": record["manager"]}]
            elif expand and user_id in self._former_manager and "manager" in record:
                item["manager@delta"] = [{"@odata.type": USER_TYPE, "id": self._former_manager[user_id],
                                          "@removed": {"reason": "deleted"}}]
            items.append(item)
        return items

    def _group_changes(self, since: int | None, select: list[str] | None) -> list[dict[str, Any]]:
        changed: dict[str, None] = {}
        members: dict[str, dict[str, str]] = {}
        if since is None:
            changed = dict.fromkeys(self._groups)
            members = {g: dict(m) for g, m in self._members.items()}
        else:
            for event in self._log[since:]:
                if event[0] == "group":
                    changed[event[1]] = None
                elif event[0] == "member":
                    members.setdefault(event[1], {})[event[2]] = event[3]
        with_members = select is None or "members" in select
        items: list[dict[str, Any]] = []
        for group_id in dict.fromkeys((*changed, *members)):
            record = self._groups.get(group_id)
            if record is None:
                if group_id in changed:
                    items.append({"id": group_id, "@removed": {"reason": "deleted"}})
                continue
            item: dict[str, Any] = {"id": group_id}
            if group_id in changed:
                item.update({k: v for k, v in record.items() if select is None or k in select})
            current = self._members[group_id]
            entries = [{"@odata.type": USER_TYPE if kind == "user" else GROUP_TYPE, "id": member,
                        **({} if member in current else {"@removed": {"reason": "deleted"}})}
                       for member, kind in members.get(group_id, {}).items()] if with_members else []
            if group_id not in changed and not entries:
                continue
            item["members@delta"] = entries[:self.delta_members]
            if not entries:
                del item["members@delta"]
            items.append(item)
            for start in range(self.delta_members, len(entries), self.delta_members):
                items.append({"id": group_id, "members@delta": entries[start:start + self.delta_members]})
        return items

    def _origin(self) -> str:
        return self.link_origin or self.endpoint


def _select(query: dict[str, str]) -> list[str] | None:
    value = query.get("$select")
    return None if value is None else [p for p in value.split(",") if p]


def _pick(record: dict[str, Any], select: list[str] | None) -> dict[str, Any]:
    if select is None:
        return dict(record)
    return {"id": record["id"], **{p: record.get(p) for p in select if p != "id"}}


def _encode(state: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(state, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode(token: str) -> dict[str, Any] | None:
    try:
        state = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, TypeError):
        return None
    return state if isinstance(state, dict) else None


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Reply:
    return status, {"error": {"code": code, "message": message}}, headers or {}


def _expired() -> Reply:
    return _error(410, "resyncRequired", "The delta token has expired; start a new synchronization.")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, graph: FakeGraph) -> None:
        self.graph = graph
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, body, extra = self.server.graph.answer(self.command, self.path, headers)
        payload = json.dumps(body, ensure_ascii=False).encode()
        head = [f"HTTP/1.1 {status} {self.responses.get(status, ('',))[0]}", "Content-Type: application/json",
                f"Content-Length: {len(payload)}", *(f"{k}: {v}" for k, v in extra.items())]
        try:  # head and body in one write: apart, they would wait on delayed ACKs
            self.wfile.write("\r\n".join(head).encode() + b"\r\n\r\n" + payload)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle


@contextmanager
def fake_graph(token: str = TOKEN) -> Iterator[FakeGraph]:
    """A fake Graph on a free loopback port for the duration of the block; ``token`` is the one it accepts."""
    graph = FakeGraph(token)
    server = _Server(graph)
    graph.endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield graph
    finally:
        server.shutdown()
        server.server_close()
