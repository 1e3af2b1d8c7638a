"""Read the directory from Microsoft Graph (async httpx), the network code of the directory package (the delta
reader, :mod:`reconciler.directory.delta`, sends its requests through this one's).

- The caller says what to read: the endpoint (a manifest's ``provisioning.directory.graph.endpoint``, default
  ``https://graph.microsoft.com``; national clouds set theirs), read at ``{endpoint}/v1.0``, the attribute names
  and the groups whose members matter (:mod:`reconciler.selection`). The token is the one in the variable
  ``tokenEnv`` names, else azure-identity's credential chain (``DefaultAzureCredential``: environment, workload
  identity, managed identity, Azure CLI ...) for ``{endpoint}/.default``. The identity needs ``User.Read.All`` and
  ``GroupMember.Read.All``. Every token is registered with :mod:`reconciler.secrets`, so no output shows it.
- Users and groups are listed with ``$select`` of only the properties the mappings and filters use, in pages of
  999 following ``@odata.nextLink``, but only to the endpoint's own scheme, host and port: the bearer token never
  goes anywhere else. Group members are read through the typed casts (``members/microsoft.graph.user`` and
  ``.../microsoft.graph.group``), for the groups that matter, a few concurrently.
- Every request has a total deadline and a size cap, every paged read a page bound. 429 and 503 wait for
  ``Retry-After`` (when it is a valid one, capped); 500/502/504, timeouts and connection failures back off
  exponentially with jitter; all within a bounded number of retries and total wait (the SCIM client's
  :class:`~reconciler.scim.retry.RetryPolicy` and ``Retry-After`` parsing). A 401 gets one fresh token and
  one more try. Everything else stops with one line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote

import httpx

from reconciler.directory.model import Directory, DirectoryGroup, DirectoryUser
from reconciler.directory.names import (
    ALWAYS_GROUP,
    ALWAYS_USER,
    GROUP_ATTRIBUTES,
    USER_ATTRIBUTES,
    graph_select,
)
from reconciler.errors import DirectoryError
from reconciler.manifest.model import GRAPH_ENDPOINT
from reconciler.scim.retry import RETRY_AFTER_STATUSES, TRANSIENT_STATUSES, RetryPolicy, parse_retry_after
from reconciler.secrets import register_secret

GRAPH_VERSION = "/v1.0"
GRAPH_URL = GRAPH_ENDPOINT + GRAPH_VERSION
GRAPH_SCOPE = GRAPH_ENDPOINT + "/.default"
PAGE_SIZE = 999
RETRY_STATUSES = TRANSIENT_STATUSES | {500}  # every request is a GET: an internal error is worth another try
MEMBER_CASTS = ("microsoft.graph.user", "microsoft.graph.group")
MAX_RESPONSE_BYTES = 64 * 1024 * 1024   # a page of 999 users with every attribute is a few MB
MAX_PAGES = 20_000                      # 20 million objects per collection
_DEFAULT_PORTS = {"http": 80, "https": 443}


def graph_reader(endpoint: str, token_env: str | None, manifest_file: str) -> GraphReader:
    """The reader for ``endpoint``, with the token from the variable ``token_env`` when it names one (else the
    Azure credential chain); ``manifest_file`` names the manifest that asked for it in errors."""
    credential = EnvironmentToken(token_env, manifest_file) if token_env else None
    return GraphReader(endpoint=endpoint, credential=credential)


class TokenCredential(Protocol):
    async def get_token(self, *scopes: str, **kwargs: Any) -> Any: ...


@dataclass(frozen=True)
class _AccessToken:
    token: str
    expires_on: int = 0

    def __repr__(self) -> str:
        return "_AccessToken(token=...)"


class EnvironmentToken:
    """A pre-acquired Graph access token, from the variable ``provisioning.directory.graph.tokenEnv`` names."""

    def __init__(self, variable: str, manifest_file: str) -> None:
        self.variable = variable
        self.manifest_file = manifest_file

    async def get_token(self, *scopes: str, **kwargs: Any) -> _AccessToken:
        value = os.environ.get(self.variable, "").strip()
        if not value:
            raise DirectoryError(f"{self.manifest_file}: environment variable {self.variable} is not set; it must "
                                 "hold a Microsoft Graph access token (provisioning.directory.graph.tokenEnv)")
        return _AccessToken(value)


class GraphStatusError(DirectoryError):
    """Graph answered a status that is not retried; ``status`` and Graph's error ``code`` (or None) say which."""

    def __init__(self, message: str, status: int, code: str | None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def selects(user_attributes: Iterable[str] | None,
            group_attributes: Iterable[str] | None) -> tuple[list[str], bool, list[str]]:
    """The ``$select`` of users (without ``manager``), whether to expand the manager, and the ``$select`` of
    groups, for Entra attribute names (None: every known one)."""
    users_select = graph_select(USER_ATTRIBUTES if user_attributes is None else user_attributes,
                                USER_ATTRIBUTES, ALWAYS_USER)
    expand_manager = "manager" in users_select
    groups_select = graph_select(GROUP_ATTRIBUTES if group_attributes is None else group_attributes,
                                 GROUP_ATTRIBUTES, ALWAYS_GROUP)
    return [p for p in users_select if p != "manager"], expand_manager, groups_select


class GraphReader:
    """Reads users, groups and direct memberships; ``transport``, ``credential`` and ``sleep`` are injectable for
    tests, and so are the bounds: ``timeout`` (connect/read/write, seconds), ``deadline`` (one whole request),
    ``max_retries``, the backoff (``base_delay`` doubling up to ``max_delay``, which also caps ``Retry-After``)
    and ``max_total_wait`` (the waits of one request together)."""

    def __init__(self, *, credential: TokenCredential | None = None, transport: httpx.AsyncBaseTransport | None = None,
                 endpoint: str = GRAPH_ENDPOINT, max_retries: int = 6, concurrency: int = 4,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep, timeout: float = 30.0,
                 deadline: float = 120.0, base_delay: float = 0.5, max_delay: float = 60.0,
                 max_total_wait: float = 300.0, max_response_bytes: int = MAX_RESPONSE_BYTES,
                 max_pages: int = MAX_PAGES) -> None:
        self._credential = credential
        self._transport = transport
        self._endpoint = endpoint.rstrip("/")
        self._base_url = self._endpoint + GRAPH_VERSION
        self._scope = self._endpoint + "/.default"
        self._retry = RetryPolicy(max_attempts=max_retries + 1, max_total_wait=max_total_wait,
                                  base_delay=base_delay, max_delay=max_delay)
        self._concurrency = concurrency
        self._sleep = sleep
        self._timeout = timeout
        self._deadline = deadline
        self._max_response_bytes = max_response_bytes
        self._max_pages = max_pages
        self._token: str | None = None
        self._active_credential: Any = None
        self._refreshing = asyncio.Lock()
        self.requests = 0

    async def read(self, user_attributes: Iterable[str] | None = None, group_attributes: Iterable[str] | None = None,
                   *, member_groups: Iterable[str] | None = None) -> Directory:
        """The directory; ``*_attributes`` are Entra names (None: every known one), ``member_groups`` the group
        names or ids whose members to read (None: every group)."""
        users_select, expand_manager, groups_select = selects(user_attributes, group_attributes)
        async with self._session() as client:
            params = {"$select": ",".join(users_select), "$top": str(PAGE_SIZE)}
            if expand_manager:
                params["$expand"] = "manager($select=id)"
            users = await self._pages(client, "/users", params)
            groups = await self._pages(client, "/groups", {"$select": ",".join(groups_select),
                                                           "$top": str(PAGE_SIZE)})
            wanted = _wanted_groups(groups, member_groups)
            members = await self._members(client, [g["id"] for g in groups if g["id"] in wanted])
            deleted = await self._pages(client, "/directory/deletedItems/microsoft.graph.user",
                                        {"$select": "id,userPrincipalName", "$top": str(PAGE_SIZE)})
        return Directory(
            tuple(DirectoryUser(u["id"], _clean(u)) for u in users),
            tuple(DirectoryGroup(g["id"], _clean(g), members.get(g["id"], ())) for g in groups),
            "Microsoft Graph",
            tuple(DirectoryUser(u["id"], _clean(u)) for u in deleted),
        )

    @contextlib.asynccontextmanager
    async def _session(self) -> AsyncIterator[httpx.AsyncClient]:
        """A token and an HTTP client for one series of requests (a read, or a delta round); both are let go after
        it, and a credential chain made for it is closed."""
        credential = self._credential
        owned = credential is None
        if owned:
            credential = _ChainCredential()
        self._active_credential = credential
        self._refreshing = asyncio.Lock()  # bound to this series' event loop
        try:
            self._token = await _token(credential, self._scope)
            async with httpx.AsyncClient(transport=self._transport, timeout=httpx.Timeout(self._timeout),
                                         follow_redirects=False) as client:
                yield client
        finally:
            self._token = None
            self._active_credential = None
            close = getattr(credential, "close", None) if owned else None
            if close is not None:
                await close()

    async def _members(self, client: httpx.AsyncClient, group_ids: list[str]) -> dict[str, tuple[str, ...]]:
        """Direct members that are users or groups, through Graph's typed casts (devices and service principals
        are not members we provision); a member in both answers is kept once."""
        limit = asyncio.Semaphore(self._concurrency)

        async def cast(group_id: str, type_name: str) -> list[str]:
            async with limit:
                items = await self._pages(client, f"/groups/{quote(group_id, safe='')}/members/{type_name}",
                                          {"$select": "id", "$top": str(PAGE_SIZE)})
            return [i["id"] for i in items]

        async def one(group_id: str) -> tuple[str, tuple[str, ...]]:
            lists = await asyncio.gather(*(cast(group_id, t) for t in MEMBER_CASTS))
            return group_id, tuple(dict.fromkeys(i for ids in lists for i in ids))

        return dict(await asyncio.gather(*(one(g) for g in group_ids)))

    async def _pages(self, client: httpx.AsyncClient, path: str, params: dict[str, str]) -> list[dict[str, Any]]:
        """Every item (with a string id) of a Graph collection, following ``@odata.nextLink`` on our origin only."""
        items, _ = await self._collect(client, self._base_url + path, params, path)
        return items

    async def _collect(self, client: httpx.AsyncClient, url: str, params: dict[str, str] | None,
                       path: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """The items (with a string id) of every page from ``url`` on, following ``@odata.nextLink`` on our origin
        only, and the last page's body (a delta round's last page carries its ``@odata.deltaLink``); ``path``
        names the collection in errors."""
        next_url: str | None = url
        query: dict[str, str] | None = params
        items: list[dict[str, Any]] = []
        seen: set[str] = set()
        body: dict[str, Any] = {}
        while next_url:
            url = next_url
            if len(seen) >= self._max_pages:
                raise DirectoryError(f"Microsoft Graph: GET {GRAPH_VERSION}{path}: more than {self._max_pages} "
                                     "pages; stopped")
            seen.add(url)
            body = await self._get(client, url, query)
            page = body.get("value")
            if not isinstance(page, list):
                raise DirectoryError(f"Microsoft Graph: GET {GRAPH_VERSION}{path} answered without a 'value' list")
            items.extend(i for i in page if isinstance(i, dict) and isinstance(i.get("id"), str) and i["id"])
            next_url = self._next_link(url, body.get("@odata.nextLink"), path)
            if next_url in seen:
                raise DirectoryError(f"Microsoft Graph: GET {GRAPH_VERSION}{path}: the next page link repeats a "
                                     "page already read; stopped")
            query = None  # the next link carries the query
        return items, body

    def _next_link(self, current: str, link: Any, path: str, name: str = "@odata.nextLink",
                   what: str = "the next page link") -> str | None:
        """The next page's URL (or another link ``name`` of an answer, ``what`` in errors), only if it is on the
        endpoint's own scheme, host and port (it receives our token)."""
        return checked_link(current, link, self._endpoint, f"Microsoft Graph: GET {GRAPH_VERSION}{path}",
                            DirectoryError, name, what)

    async def _get(self, client: httpx.AsyncClient, url: str, params: dict[str, str] | None) -> dict[str, Any]:
        path = httpx.URL(url).path
        retries, waited, refreshed = 0, 0.0, False
        while True:
            token = self._token
            self.requests += 1
            try:
                status, headers, body = await self._fetch(client, url, params, token, path)
            except (httpx.TransportError, TimeoutError) as exc:  # httpx.TimeoutException is a TransportError
                failure = f"Microsoft Graph: GET {path}: {self._describe(exc)}"
                delay = self._backoff(retries)
            except httpx.HTTPError as exc:  # e.g. a body that does not decode as its Content-Encoding says
                raise DirectoryError(f"Microsoft Graph: GET {path}: unreadable answer ({self._describe(exc)})") \
                    from None
            else:
                if status == 200:
                    return _json_object(path, body)
                if status == 401 and not refreshed:
                    refreshed = True
                    await self._refresh(token)
                    continue
                if status not in RETRY_STATUSES:
                    again = " again with a fresh token" if status == 401 else ""
                    raise GraphStatusError(f"Microsoft Graph: GET {path} answered {status}{again}"
                                           f"{_graph_error(status, body)}", status, _error_code(body))
                failure = f"Microsoft Graph: GET {path}: still answering {status}"
                retry_after = parse_retry_after(headers.get("Retry-After")) if status in RETRY_AFTER_STATUSES else None
                delay = self._backoff(retries) if retry_after is None else min(retry_after, self._retry.max_delay)
            if retries + 1 >= self._retry.max_attempts or waited + delay > self._retry.max_total_wait:
                raise DirectoryError(f"{failure} after {retries} retries")
            retries += 1
            waited += delay
            await self._sleep(delay)

    async def _fetch(self, client: httpx.AsyncClient, url: str, params: dict[str, str] | None, token: str | None,
                     path: str) -> tuple[int, httpx.Headers, bytes]:
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        async with asyncio.timeout(self._deadline):
            async with client.stream("GET", url, params=params, headers=headers) as response:
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > self._max_response_bytes:
                        raise DirectoryError(f"Microsoft Graph: GET {path} answered more than "
                                             f"{self._max_response_bytes} bytes; stopped")
                    chunks.append(chunk)
                return response.status_code, response.headers, b"".join(chunks)

    async def _refresh(self, used: str | None) -> None:
        """A new token after a 401, unless a concurrent request already got one since ``used`` was sent."""
        async with self._refreshing:
            if self._token == used:
                self._token = await _token(self._active_credential, self._scope)

    def _backoff(self, retries: int) -> float:
        """The policy's jittered wait after the try ``retries + 1``; past 2**30 the ceiling is max_delay anyway,
        and the bound keeps the power from overflowing."""
        return self._retry.backoff(min(retries, 30) + 1)

    def _describe(self, error: Exception) -> str:
        return describe_http_error(error, self._timeout, self._deadline)


def checked_link(current: str, link: Any, endpoint: str, shown: str, error: Callable[[str], Exception],
                 name: str = "@odata.nextLink", what: str = "the next page link") -> str | None:
    """``link`` (relative to ``current``) as an absolute URL, if it is one on ``endpoint``'s own scheme, host and
    port: it receives our token. Otherwise ``error(message)`` is raised; ``shown`` names the request."""
    if link is None:
        return None
    if not isinstance(link, str) or not link:
        raise error(f"{shown}: '{name}' is not a URL")
    try:
        url = httpx.URL(current).join(link)
    except httpx.InvalidURL:
        raise error(f"{shown}: '{name}' is not a valid URL") from None
    if url.userinfo:
        raise error(f"{shown}: {what} carries credentials; not followed")
    if _origin(url) != _origin(httpx.URL(endpoint)):
        raise error(f"{shown}: {what} points to {_origin_text(url)}, not to {endpoint}; not followed (the token "
                    "is sent to the Graph endpoint only)")
    return str(url)


def describe_http_error(error: Exception, timeout: float, deadline: float) -> str:
    """One phrase for a failed request: no answer within ``timeout`` (httpx's), no complete answer within
    ``deadline`` (a ``TimeoutError``), cannot connect, or the error itself."""
    name = type(error).__name__
    if isinstance(error, httpx.TimeoutException):
        return f"no answer within {timeout:g}s ({name})"
    if isinstance(error, TimeoutError):
        return f"no complete answer within {deadline:g}s"
    text = " ".join(str(error).split())
    if not isinstance(error, httpx.TransportError):
        return f"{name}: {text}" if text else name
    what = "cannot connect" if isinstance(error, httpx.ConnectError) else "connection failed"
    return f"{what} ({name}: {text})" if text else f"{what} ({name})"


class _ChainCredential:
    """azure-identity's DefaultAzureCredential, run in a thread: its async twin needs aiohttp, the sync one only
    the requests library that azure-core already brings."""

    def __init__(self) -> None:
        from azure.identity import DefaultAzureCredential

        # Without a handler, Python prints the chain's multi-line warnings on stderr; the one-line DirectoryError
        # says the same. An application that configures logging still receives them.
        logging.getLogger("azure.identity").addHandler(logging.NullHandler())
        self._credential = DefaultAzureCredential()

    async def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        return await asyncio.to_thread(self._credential.get_token, *scopes, **kwargs)

    async def close(self) -> None:
        self._credential.close()


async def _token(credential: Any, scope: str) -> str:
    try:
        token = await credential.get_token(scope)
    except DirectoryError:
        raise
    except Exception as exc:  # azure-identity raises several types; all mean "no token"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DirectoryError(f"Microsoft Graph: no token from the Azure credential chain: {first} (sign in with "
                             "'az login', or set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET)") from None
    value = str(token.token)
    register_secret(value)
    return value


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    scheme = url.scheme.lower()
    return scheme, url.host.lower(), url.port or _DEFAULT_PORTS.get(scheme)


def _origin_text(url: httpx.URL) -> str:
    return f"{url.scheme}://{url.host}" + (f":{url.port}" if url.port else "")


def _json_object(path: str, body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise DirectoryError(f"Microsoft Graph: GET {path} answered with invalid JSON") from None
    if not isinstance(data, dict):
        raise DirectoryError(f"Microsoft Graph: GET {path} answered with unexpected JSON")
    return data


def _wanted_groups(groups: list[dict[str, Any]], keys: Iterable[str] | None) -> set[str]:
    if keys is None:
        return {g["id"] for g in groups}
    wanted = {k.lower() for k in keys}
    return {g["id"] for g in groups if g["id"].lower() in wanted or str(g.get("displayName", "")).lower() in wanted}


def _clean(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if not k.startswith("@odata.")}


def _error_code(body: bytes) -> str | None:
    try:
        code = json.loads(body).get("error", {}).get("code")
    except (ValueError, RecursionError, AttributeError):
        return None
    return code if isinstance(code, str) else None


def _graph_error(status: int, body: bytes) -> str:
    hint = " (the identity needs User.Read.All and GroupMember.Read.All)" if status in (401, 403) else ""
    try:
        error = json.loads(body).get("error", {})
        code, message = error.get("code"), error.get("message")
    except (ValueError, RecursionError, AttributeError):
        return hint
    if not code:
        return hint
    return f": {_one_line(code)}: {_one_line(message)}{hint}"


def _one_line(value: Any, limit: int = 300) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[:limit] + "..."
