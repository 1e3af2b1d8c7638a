"""A small in-memory SCIM 2.0 server for interoperability tests, with a switch for each odd (but legal) behaviour.

It serves users and groups behind :func:`tests.hostile.serving` on loopback: list (``startIndex``/``count``/
``totalResults``, ``filter`` with ``eq`` on ``userName``, ``externalId``, ``displayName`` and
``emails[type eq "work"].value``), read by id, POST, PATCH (add/replace/remove on simple and filtered paths,
``members`` added and removed in either form), PUT and DELETE; enough for the Atea and wiki manifests to converge.

``with interop_target(**switches) as target:`` yields the store; ``target.url`` is its base URL (the mount path
included), ``target.requests`` what it was sent, ``target.writes()`` the writes among them; ``target.add`` puts an
object in by hand and ``target.before`` (a function of the request) runs before each request. The switches
(:class:`Quirks`) turn on one behaviour each, off by default:

- ``shared_ids``: ids count from 1 per resource type, so a user and a group are both ``"1"``.
- ``ignore_attributes``: ``attributes=`` and ``excludedAttributes=`` are ignored; full objects come back.
- ``conflict_scim_type=None``: a uniqueness clash on POST is a 409 without ``scimType``.
- ``patch_clash_status=500``: a uniqueness clash on PATCH (or PUT) is answered 500 and nothing is changed.
- ``unique_user``: the user attributes kept unique (``userName`` always; add ``emails`` for work emails).
- ``filters``: ``"eq"`` (the default), ``"ignored"`` (every object comes back) or ``"refused"`` (400).
- ``mount``: the path the endpoints live under (``/scim/v2``), and ``discovery``: serve /ServiceProviderConfig and
  /ResourceTypes (their endpoints relative to the mount path).
- ``endpoints``: what /ResourceTypes names as a kind's endpoint (``{"User": "{mount}/Users"}``, the full path as
  some server libraries give it; ``{origin}`` is the server's scheme, host and port); the store still answers at
  ``{mount}/Users``.
- ``html_404``: an unknown path is answered 404 with an HTML page (as a web framework's default page is).
- ``page_cap``: a page holds at most this many resources, whatever ``count`` asks (``maxResults`` not said).

Two sets on the target stage a race: ``lost_answers`` (userNames, lowercased) whose POST creates the user but
whose answer is never sent (the connection is closed), and ``late_arrivals`` (userName, lowercased -> body): a user
that someone else creates just before that userName's POST arrives (so the POST meets a 409).
"""

from __future__ import annotations

import copy
import itertools
import json
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from tests.hostile import HostileServer, Reply, Request, scim_list, serving
from tests.reconcile_helpers import TOKEN

CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
KINDS = {"Users": "User", "Groups": "Group"}
DEFAULT_COUNT = 100
_FILTER = re.compile(r'^\s*([A-Za-z][\w.:$-]*(?:\[\s*type\s+eq\s+"(?P<type>[^"]*)"\s*\]\.value)?)'
                     r'\s+eq\s+(?P<v>".*")\s*$', re.IGNORECASE)
_VALUE_FILTER = re.compile(r'^(?P<attr>\w+)\[\s*(?P<sub>\w+)\s+eq\s+(?P<v>".*")\s*\](?:\.(?P<then>\w+))?$')
_CASE_EXACT = {"id", "externalid"}


@dataclass(frozen=True)
class Quirks:
    """One switch per odd behaviour; see the module docstring."""

    shared_ids: bool = False
    ignore_attributes: bool = False
    conflict_scim_type: str | None = "uniqueness"
    patch_clash_status: int = 409
    unique_user: tuple[str, ...] = ("userName",)
    filters: str = "eq"
    mount: str = ""
    discovery: bool = True
    endpoints: dict[str, str] = field(default_factory=dict)
    html_404: bool = False
    page_cap: int | None = None


class Refused(Exception):
    """An error answer: status, scimType and detail."""

    def __init__(self, status: int, detail: str, scim_type: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.scim_type = scim_type

    def reply(self) -> Reply:
        body: dict[str, Any] = {"schemas": [ERROR], "status": str(self.status), "detail": self.detail}
        if self.scim_type:
            body["scimType"] = self.scim_type
        return Reply(self.status, body)


@dataclass
class InteropTarget:
    """The store and the request handler (an ``app`` for :func:`tests.hostile.serving`)."""

    quirks: Quirks = field(default_factory=Quirks)
    token: str | None = TOKEN
    server: HostileServer | None = None
    before: Callable[[Request], None] | None = None  # called before each request is served (a concurrent writer)
    store: dict[str, dict[str, dict[str, Any]]] = field(default_factory=lambda: {"User": {}, "Group": {}})
    lost_answers: set[str] = field(default_factory=set)
    late_arrivals: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._lock = threading.RLock()
        self._versions = itertools.count(2)
        shared = itertools.count(1)
        self._ids = ({kind: itertools.count(1) for kind in self.store} if self.quirks.shared_ids
                     else dict.fromkeys(self.store, shared))

    # -- for tests -------------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self.server is not None, "serve it first (interop_target)"
        return f"{self.server.url}{self.quirks.mount}"

    @property
    def requests(self) -> list[Request]:
        return self.server.requests if self.server is not None else []

    @property
    def users(self) -> dict[str, dict[str, Any]]:
        return self.store["User"]

    @property
    def groups(self) -> dict[str, dict[str, Any]]:
        return self.store["Group"]

    def writes(self) -> list[tuple[str, str, Any]]:
        """(method, path under the mount, JSON body) of every POST, PUT, PATCH and DELETE received."""
        return [(r.method, r.route[len(self.quirks.mount):], r.json()) for r in self.requests
                if r.method in ("POST", "PUT", "PATCH", "DELETE")]

    def add(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        """Put an object in the store directly (as someone working by hand would), uniqueness checked."""
        with self._lock:
            return copy.deepcopy(self._create(kind, copy.deepcopy(body)))

    def by(self, kind: str, attribute: str, value: str) -> dict[str, Any]:
        """The one stored object whose top-level ``attribute`` equals ``value`` (case-insensitive)."""
        [found] = [r for r in self.store[kind].values() if str(r.get(attribute, "")).lower() == value.lower()]
        return found

    # -- the handler -----------------------------------------------------------------------------------------

    def __call__(self, request: Request) -> Reply | None:
        if self.token is not None and request.headers.get("Authorization") != f"Bearer {self.token}":
            return Refused(401, "a bearer token is required").reply()
        route = request.route
        if not route.startswith(f"{self.quirks.mount}/"):
            return self._not_found(route)
        parts = route[len(self.quirks.mount):].strip("/").split("/")
        try:
            with self._lock:
                if self.before is not None:
                    self.before(request)
                return self._route(request, parts)
        except Refused as refused:
            return self._not_found(route) if refused.status == 404 and kind_of(parts) is None else refused.reply()

    def _not_found(self, route: str) -> Reply:
        if self.quirks.html_404:
            page = f"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head><body><h1>Not Found</h1>" \
                   f"<p>The requested URL {route} was not found on this server.</p></body></html>"
            return Reply(404, page, content_type="text/html; charset=utf-8")
        return Refused(404, f"no endpoint {route}").reply()

    def _route(self, request: Request, parts: list[str]) -> Reply | None:
        if parts[0] in ("ServiceProviderConfig", "ResourceTypes") and self.quirks.discovery and len(parts) == 1:
            return Reply(200, self._discovery(parts[0]))
        kind = kind_of(parts)
        if kind is None:
            raise Refused(404, f"no endpoint /{'/'.join(parts)}")
        if len(parts) == 1:
            if request.method == "GET":
                return Reply(200, self._list(kind, request.query))
            if request.method == "POST":
                return self._post(kind, self._body(request))
            raise Refused(405, f"{request.method} is not allowed on /{parts[0]}")
        rid = parts[1]
        if rid not in self.store[kind]:
            raise Refused(404, f"{kind} {rid} not found")
        if request.method == "GET":
            return Reply(200, self._shown(self.store[kind][rid], request.query))
        if request.method == "DELETE":
            del self.store[kind][rid]
            return Reply(204)
        if request.method == "PATCH":
            return Reply(200, self._shown(self._patch(kind, rid, self._body(request)), {}))
        if request.method == "PUT":
            return Reply(200, self._shown(self._put(kind, rid, self._body(request)), {}))
        raise Refused(405, f"{request.method} is not allowed on /{parts[0]}/{rid}")

    def _post(self, kind: str, body: dict[str, Any]) -> Reply | None:
        name = str(body.get("userName", "")).lower() if kind == "User" else ""
        if name in self.late_arrivals:
            self._create(kind, copy.deepcopy(self.late_arrivals.pop(name)))
        created = self._create(kind, body)
        if name in self.lost_answers:
            return None  # created, but the answer never leaves: the connection is closed
        return Reply(201, self._shown(created, {}), {"Location": self._location(created)})

    def _endpoint(self, kind: str, endpoint: str) -> str:
        named = self.quirks.endpoints.get(kind)
        if named is None:
            return f"/{endpoint}"
        origin = self.server.url if self.server is not None else ""
        return named.format(origin=origin, mount=self.quirks.mount)

    def _discovery(self, name: str) -> dict[str, Any]:
        if name == "ServiceProviderConfig":
            return {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
                    "patch": {"supported": True}, "bulk": {"supported": False},
                    "filter": {"supported": self.quirks.filters == "eq", "maxResults": 200},
                    "changePassword": {"supported": False}, "sort": {"supported": False},
                    "etag": {"supported": False}, "authenticationSchemes": []}
        types = [{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"], "id": kind, "name": kind,
                  "endpoint": self._endpoint(kind, endpoint), "schema": CORE_USER if kind == "User" else CORE_GROUP}
                 for endpoint, kind in KINDS.items()]
        return scim_list(types)

    @staticmethod
    def _body(request: Request) -> dict[str, Any]:
        try:
            body = request.json()
        except ValueError:
            raise Refused(400, "the body is not JSON", "invalidSyntax") from None
        if not isinstance(body, dict):
            raise Refused(400, "the body is not a JSON object", "invalidSyntax")
        return body

    # -- reads -----------------------------------------------------------------------------------------------

    def _list(self, kind: str, query: dict[str, str]) -> dict[str, Any]:
        found = list(self.store[kind].values())
        text = query.get("filter")
        if text is not None and self.quirks.filters == "refused":
            raise Refused(400, "filtering is not supported", "invalidFilter")
        if text is not None and self.quirks.filters == "eq":
            found = [r for r in found if _matches(r, text)]
        start = max(1, _number(query.get("startIndex"), 1))
        count = max(0, _number(query.get("count"), DEFAULT_COUNT))
        if self.quirks.page_cap is not None:
            count = min(count, self.quirks.page_cap)
        page = found[start - 1:start - 1 + count]
        return scim_list([self._shown(r, query) for r in page], total=len(found), start=start)

    def _shown(self, resource: dict[str, Any], query: dict[str, str]) -> dict[str, Any]:
        """The resource as answered: limited to ``attributes`` (minus ``excludedAttributes``) unless ignored."""
        shown = copy.deepcopy(resource)
        if self.quirks.ignore_attributes:
            return shown
        wanted = _names(query.get("attributes"))
        dropped = _names(query.get("excludedAttributes"))
        if wanted:
            shown = {k: v for k, v in shown.items() if k in ("id", "schemas", "meta") or _named(k, wanted)}
        return {k: v for k, v in shown.items() if not _named(k, dropped) or k == "id"}

    # -- writes ----------------------------------------------------------------------------------------------

    def _create(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        key = "userName" if kind == "User" else "displayName"
        if not isinstance(body.get(key), str) or not body[key]:
            raise Refused(400, f"{key} is required", "invalidValue")
        body.pop("id", None)
        clash = self._clash(kind, body, None)
        if clash is not None:
            raise Refused(409, clash, self.quirks.conflict_scim_type)
        rid = str(next(self._ids[kind]))
        body["id"] = rid
        body.setdefault("schemas", [CORE_USER if kind == "User" else CORE_GROUP])
        body["meta"] = {"resourceType": kind, "location": self._location({"id": rid, "meta": {"resourceType": kind}}),
                        "version": 'W/"1"'}
        self.store[kind][rid] = body
        return body

    def _patch(self, kind: str, rid: str, body: dict[str, Any]) -> dict[str, Any]:
        operations = body.get("Operations")
        if not isinstance(operations, list) or not operations:
            raise Refused(400, "a PatchOp needs Operations", "invalidSyntax")
        resource = copy.deepcopy(self.store[kind][rid])
        for operation in operations:
            if not isinstance(operation, dict):
                raise Refused(400, "an operation is not an object", "invalidSyntax")
            _apply(resource, str(operation.get("op", "")).lower(), operation.get("path"), operation.get("value"))
        return self._commit(kind, rid, resource)

    def _put(self, kind: str, rid: str, body: dict[str, Any]) -> dict[str, Any]:
        resource = {**copy.deepcopy(body), "id": rid, "meta": self.store[kind][rid]["meta"]}
        return self._commit(kind, rid, resource)

    def _commit(self, kind: str, rid: str, resource: dict[str, Any]) -> dict[str, Any]:
        clash = self._clash(kind, resource, rid)
        if clash is not None:
            status = self.quirks.patch_clash_status
            if status >= 500:
                raise Refused(status, "internal error")  # what such servers say: nothing about the clash
            raise Refused(status, clash, self.quirks.conflict_scim_type)
        resource.setdefault("meta", {})["version"] = f'W/"{next(self._versions)}"'
        self.store[kind][rid] = resource
        return resource

    def _clash(self, kind: str, resource: dict[str, Any], rid: str | None) -> str | None:
        """Why ``resource`` would break uniqueness among the other objects of its kind, or None."""
        attributes = self.quirks.unique_user if kind == "User" else ("displayName",)
        for attribute in attributes:
            mine = _unique_values(resource, attribute)
            for other in self.store[kind].values():
                if other["id"] != rid and mine & _unique_values(other, attribute):
                    return f"{attribute} {sorted(mine & _unique_values(other, attribute))[0]!r} is taken"
        return None

    def _location(self, resource: dict[str, Any]) -> str:
        endpoint = "Users" if resource["meta"]["resourceType"] == "User" else "Groups"
        base = self.server.url if self.server is not None else ""
        return f"{base}{self.quirks.mount}/{endpoint}/{resource['id']}"


@contextmanager
def interop_target(token: str | None = TOKEN, **switches: Any) -> Iterator[InteropTarget]:
    """Serve a fresh :class:`InteropTarget` with the given :class:`Quirks` switches on loopback."""
    target = InteropTarget(Quirks(**switches), token=token)
    with serving(target) as server:
        target.server = server
        yield target


# -- helpers ---------------------------------------------------------------------------------------------------


def kind_of(parts: list[str]) -> str | None:
    """The resource type a path under the mount addresses (``Users``, ``Users/<id>``), or None."""
    return KINDS.get(parts[0]) if len(parts) <= 2 else None


def _number(text: str | None, default: int) -> int:
    try:
        return int(text) if text is not None else default
    except ValueError:
        raise Refused(400, f"not a number: {text!r}", "invalidValue") from None


def _names(text: str | None) -> set[str]:
    return {n.strip().lower() for n in (text or "").split(",") if n.strip()}


def _named(key: str, names: set[str]) -> bool:
    """``key`` (a top-level attribute or an extension URN) is among ``names``, or one of its parts is."""
    lowered = key.lower()
    return lowered in names or any(n.startswith(f"{lowered}:") or n.startswith(f"{lowered}.") for n in names)


def _get(mapping: Any, name: str) -> Any:
    if not isinstance(mapping, dict):
        return None
    return next((v for k, v in mapping.items() if k.lower() == name.lower()), None)


def _unique_values(resource: dict[str, Any], attribute: str) -> set[str]:
    value = _get(resource, attribute)
    if isinstance(value, list):
        return {str(_get(e, "value")).lower() for e in value if isinstance(e, dict) and _get(e, "value")}
    return {value.lower()} if isinstance(value, str) and value else set()


def _matches(resource: dict[str, Any], text: str) -> bool:
    """``resource`` passes the ``eq`` filter ``text``; any other filter is refused with 400 invalidFilter."""
    parsed = _FILTER.match(text)
    if parsed is None:
        raise Refused(400, f"unsupported filter {text!r}", "invalidFilter")
    try:  # the value is one JSON string; 'a eq "x" or b eq "y"' is not
        path, wanted = parsed.group(1), json.loads(parsed.group("v"))
    except ValueError:
        raise Refused(400, f"unsupported filter {text!r}", "invalidFilter") from None
    if parsed.group("type") is not None:
        attribute = path.split("[")[0]
        values = [_get(e, "value") for e in _get(resource, attribute) or []
                  if isinstance(e, dict) and str(_get(e, "type") or "").lower() == parsed.group("type").lower()]
    else:
        values = [_get(resource, path)]
    exact = path.lower() in _CASE_EXACT
    return any(isinstance(v, str) and (v == wanted if exact else v.lower() == str(wanted).lower()) for v in values)


def _container(resource: dict[str, Any], path: str) -> tuple[dict[str, Any], str]:
    """The object that holds ``path``'s last attribute, and that attribute's name (extension URNs followed)."""
    urn = re.match(r"^(urn:[^\[]*):([^:\[]+)$", path, re.IGNORECASE)
    if urn:
        extension = resource.setdefault(urn.group(1), {})
        return extension, urn.group(2)
    if "." in path:
        parent, name = path.split(".", 1)
        holder = resource.get(parent)
        if not isinstance(holder, dict):
            holder = resource[parent] = {}
        return holder, name
    return resource, path


def _apply(resource: dict[str, Any], op: str, path: Any, value: Any) -> None:
    """One PATCH operation (RFC 7644 section 3.5.2), on a copy of the resource."""
    if op not in ("add", "replace", "remove"):
        raise Refused(400, f"unknown op {op!r}", "invalidSyntax")
    if path is None:
        if op == "remove" or not isinstance(value, dict):
            raise Refused(400, "an operation without a path needs an object value", "noTarget")
        for key, item in value.items():
            _apply(resource, op, key, item)
        return
    path = str(path)
    filtered = _VALUE_FILTER.match(path)
    if filtered:
        _apply_filtered(resource, op, filtered, value)
    elif op == "remove":
        _remove(resource, path, value)
    else:
        holder, name = _container(resource, path)
        current = holder.get(name)
        if op == "add" and isinstance(current, list):
            items = value if isinstance(value, list) else [value]
            known = {json.dumps(i, sort_keys=True) for i in current}
            current.extend(i for i in items if json.dumps(i, sort_keys=True) not in known)
        elif op == "add" and isinstance(current, dict) and isinstance(value, dict):
            current.update(value)
        else:
            holder[name] = value


def _remove(resource: dict[str, Any], path: str, value: Any) -> None:
    holder, name = _container(resource, path)
    current = holder.get(name)
    if isinstance(current, list) and isinstance(value, list):
        # the older form of a member removal: {"op": "remove", "path": "members", "value": [{"value": id}]}
        gone = {str(_get(v, "value")) for v in value if isinstance(v, dict)}
        holder[name] = [e for e in current if not (isinstance(e, dict) and str(_get(e, "value")) in gone)]
    else:
        holder.pop(name, None)


def _apply_filtered(resource: dict[str, Any], op: str, filtered: re.Match[str], value: Any) -> None:
    """``emails[type eq "work"].value``, ``members[value eq "1"]``: the elements the filter selects."""
    attribute, sub, then = filtered.group("attr"), filtered.group("sub"), filtered.group("then")
    wanted = str(json.loads(filtered.group("v"))).lower()
    items = resource.get(attribute)
    elements = items if isinstance(items, list) else []
    chosen = [e for e in elements if isinstance(e, dict) and str(_get(e, sub) or "").lower() == wanted]
    if op == "remove":
        if then is None:
            resource[attribute] = [e for e in elements if not any(e is c for c in chosen)]
        for element in chosen if then is not None else ():
            element.pop(then, None)
        return
    if not chosen:
        if op == "replace" or then is None:
            raise Refused(400, f"no element matches {filtered.group(0)!r}", "noTarget")
        chosen = [{sub: json.loads(filtered.group("v"))}]
        resource[attribute] = [*elements, *chosen]
    for element in chosen:
        if then is None and isinstance(value, dict):
            element.update(value)
        elif then is not None:
            element[then] = value
