"""Read the directory from Microsoft Graph (async httpx), the only network code of the directory package.

- The token comes from azure-identity's credential chain (``DefaultAzureCredential``: environment, workload
  identity, managed identity, Azure CLI ...), for ``https://graph.microsoft.com/.default``. The identity needs
  ``User.Read.All`` and ``GroupMember.Read.All``.
- Users and groups are listed with ``$select`` of only the properties the mappings and filters use, in pages of
  999 following ``@odata.nextLink``; group members likewise, for the groups that matter (a few concurrently).
- 429 and 503/504 are retried after ``Retry-After`` (or a growing pause); other errors stop with one line.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol

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
from reconciler.manifest.model import Manifest

GRAPH_URL = "https://graph.microsoft.com/v1.0"
GRAPH_SCOPE = "https://graph.microsoft.com/.default"
PAGE_SIZE = 999
RETRY_STATUSES = frozenset({429, 503, 504})
MEMBER_TYPES = frozenset({"#microsoft.graph.user", "#microsoft.graph.group"})


def read_graph_directory(manifest: Manifest, reader: GraphReader | None = None) -> Directory:
    """What ``manifest`` needs from Microsoft Graph: the attributes its mappings and filters read, every user,
    and the members of its assigned groups (of every group with ``scope: all``)."""
    from reconciler.directory.source import group_attributes, user_attributes

    provisioning = manifest.provisioning
    groups = None if provisioning.scope == "all" else [a.group for a in manifest.assignments if a.group]
    reader = reader or GraphReader()
    return asyncio.run(reader.read(user_attributes(manifest), group_attributes(manifest), member_groups=groups))


class TokenCredential(Protocol):
    async def get_token(self, *scopes: str, **kwargs: Any) -> Any: ...


class GraphReader:
    """Reads users, groups and direct memberships; ``transport`` and ``credential`` are injectable for tests."""

    def __init__(self, *, credential: TokenCredential | None = None, transport: httpx.AsyncBaseTransport | None = None,
                 base_url: str = GRAPH_URL, max_retries: int = 6, concurrency: int = 4,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self._credential = credential
        self._transport = transport
        self._base_url = base_url.rstrip("/")
        self._max_retries = max_retries
        self._concurrency = concurrency
        self._sleep = sleep
        self._token: str | None = None
        self.requests = 0

    async def read(self, user_attributes: Iterable[str] | None = None, group_attributes: Iterable[str] | None = None,
                   *, member_groups: Iterable[str] | None = None) -> Directory:
        """The directory; ``*_attributes`` are Entra names (None: every known one), ``member_groups`` the group
        names or ids whose members to read (None: every group)."""
        users_select = graph_select(USER_ATTRIBUTES if user_attributes is None else user_attributes,
                                    USER_ATTRIBUTES, ALWAYS_USER)
        expand_manager = "manager" in users_select
        users_select = [p for p in users_select if p != "manager"]
        groups_select = graph_select(GROUP_ATTRIBUTES if group_attributes is None else group_attributes,
                                     GROUP_ATTRIBUTES, ALWAYS_GROUP)
        credential = self._credential
        owned = credential is None
        if owned:
            credential = _ChainCredential()
        try:
            self._token = await _token(credential)
            async with httpx.AsyncClient(transport=self._transport, timeout=httpx.Timeout(60.0)) as client:
                params = {"$select": ",".join(users_select), "$top": str(PAGE_SIZE)}
                if expand_manager:
                    params["$expand"] = "manager($select=id)"
                users = await self._pages(client, "/users", params)
                groups = await self._pages(client, "/groups", {"$select": ",".join(groups_select),
                                                               "$top": str(PAGE_SIZE)})
                wanted = _wanted_groups(groups, member_groups)
                members = await self._members(client, [g["id"] for g in groups if g.get("id") in wanted])
                deleted = await self._pages(client, "/directory/deletedItems/microsoft.graph.user",
                                            {"$select": "id,userPrincipalName", "$top": str(PAGE_SIZE)})
        finally:
            self._token = None
            if owned and hasattr(credential, "close"):
                await credential.close()
        return Directory(
            tuple(DirectoryUser(u["id"], _clean(u)) for u in users if u.get("id")),
            tuple(DirectoryGroup(g["id"], _clean(g), members.get(g["id"], ())) for g in groups if g.get("id")),
            "Microsoft Graph",
            tuple(DirectoryUser(u["id"], _clean(u)) for u in deleted if u.get("id")),
        )

    async def _members(self, client: httpx.AsyncClient, group_ids: list[str]) -> dict[str, tuple[str, ...]]:
        limit = asyncio.Semaphore(self._concurrency)

        async def one(group_id: str) -> tuple[str, tuple[str, ...]]:
            async with limit:
                items = await self._pages(client, f"/groups/{group_id}/members",
                                          {"$select": "id", "$top": str(PAGE_SIZE)})
            ids = [i["id"] for i in items if i.get("id") and i.get("@odata.type", "") in MEMBER_TYPES]
            return group_id, tuple(dict.fromkeys(ids))

        return dict(await asyncio.gather(*(one(g) for g in group_ids)))

    async def _pages(self, client: httpx.AsyncClient, path: str, params: dict[str, str]) -> list[dict[str, Any]]:
        """Every item of a Graph collection, following ``@odata.nextLink``."""
        url: str | None = self._base_url + path
        query: dict[str, str] | None = params
        items: list[dict[str, Any]] = []
        while url:
            body = await self._get(client, url, query)
            page = body.get("value")
            if not isinstance(page, list):
                raise DirectoryError(f"Microsoft Graph: GET {path} answered without a 'value' list")
            items.extend(i for i in page if isinstance(i, dict))
            url = body.get("@odata.nextLink")
            query = None  # the next link carries the query
        return items

    async def _get(self, client: httpx.AsyncClient, url: str, params: dict[str, str] | None) -> dict[str, Any]:
        path = httpx.URL(url).path
        for attempt in range(self._max_retries + 1):
            self.requests += 1
            try:
                response = await client.get(url, params=params, headers={
                    "Authorization": f"Bearer {self._token}", "Accept": "application/json"})
            except httpx.HTTPError as exc:
                raise DirectoryError(f"Microsoft Graph: GET {path}: cannot connect ({type(exc).__name__}: {exc})") \
                    from None
            if response.status_code in RETRY_STATUSES:
                if attempt == self._max_retries:
                    raise DirectoryError(f"Microsoft Graph: GET {path}: still answering {response.status_code} "
                                         f"after {self._max_retries} retries")
                await self._sleep(_retry_after(response, attempt))
                continue
            if response.status_code != 200:
                raise DirectoryError(f"Microsoft Graph: GET {path} answered {response.status_code}"
                                     f"{_graph_error(response)}")
            try:
                body = response.json()
            except ValueError:
                raise DirectoryError(f"Microsoft Graph: GET {path} answered with invalid JSON") from None
            if not isinstance(body, dict):
                raise DirectoryError(f"Microsoft Graph: GET {path} answered with unexpected JSON")
            return body
        raise AssertionError("unreachable")


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


async def _token(credential: Any) -> str:
    try:
        token = await credential.get_token(GRAPH_SCOPE)
    except Exception as exc:  # azure-identity raises several types; all mean "no token"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DirectoryError(f"Microsoft Graph: no token from the Azure credential chain: {first} (sign in with "
                             "'az login', or set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET)") from None
    return str(token.token)


def _wanted_groups(groups: list[dict[str, Any]], keys: Iterable[str] | None) -> set[str]:
    if keys is None:
        return {g["id"] for g in groups if g.get("id")}
    wanted = {k.lower() for k in keys}
    return {g["id"] for g in groups if g.get("id") and (g["id"].lower() in wanted
                                                         or str(g.get("displayName", "")).lower() in wanted)}


def _clean(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if not k.startswith("@odata.")}


def _retry_after(response: httpx.Response, attempt: int) -> float:
    """Seconds to wait: the server's Retry-After (seconds or an HTTP date), else 1, 2, 4 ... capped at 60."""
    header = response.headers.get("Retry-After")
    if header:
        try:
            return min(max(float(header), 0.0), 300.0)
        except ValueError:
            when = email.utils.parsedate_to_datetime(header) if header else None
            if when is not None:
                return min(max(when.timestamp() - time.time(), 0.0), 300.0)
    return float(min(2 ** attempt, 60))


def _graph_error(response: httpx.Response) -> str:
    hint = " (the identity needs User.Read.All and GroupMember.Read.All)" if response.status_code in (401, 403) else ""
    try:
        error = response.json().get("error", {})
        code, message = error.get("code"), error.get("message")
    except (ValueError, AttributeError):
        return hint
    return f": {code}: {message}{hint}" if code else hint
