"""The SCIM 2.0 client (RFC 7644) over async httpx: the only code here that touches the network.

Safe defaults, in the order they matter:

- **No duplicates.** A POST or PATCH (and a Bulk request) whose answer is lost after it was sent (reset,
  timeout, 500/502/503/504) is never resent: :class:`~reconciler.scim.errors.OutcomeUnknown` tells the caller
  to look the object up first. A connection that failed before anything was sent is retried, as are
  idempotent reads, PUTs and DELETEs. Any other error status (a 4xx, 501) is a definite refusal, not a lost
  answer: a :class:`~reconciler.scim.errors.TargetStatusError` with the server's detail (a PATCH the target
  does not implement: :class:`~reconciler.scim.errors.UnsupportedOperation`, naming its operations).
- **Either member-removal form.** RFC 7644 removes a member with a filtered path (``members[value eq "id"]``);
  some servers accept only the form Entra sends without its ``aadOptscim062020`` flag (``members`` with a value
  list), others only the RFC one. :meth:`ScimClient.patch_group` tries the form that worked before (the RFC one
  first) and, refused with 400 or 501, sends the group's PATCH again whole in the other form (such servers apply
  a PATCH atomically, so nothing of the refused one was applied); the form that worked is
  ``ScimClient.member_removal_form`` for the rest of the run.
- **Bounded retries.** 429 (any method) and 503 (idempotent methods) honour ``Retry-After``; connect errors
  and 502/504 back off with jitter; all within :class:`~reconciler.scim.retry.RetryPolicy`'s attempts and
  total wait.
- **No secrets.** The bearer token lives only in a private auth object and is registered with the one scrubber
  (:mod:`reconciler.secrets`); it is in no repr, log or error message, and is scrubbed from any server text
  quoted in an error before that text is cut.
- **Safe queries.** Filter values are JSON strings (:func:`eq_filter`); plain ``http://`` only to loopback. A
  target without filters gets its lookups as paged reads compared locally (:meth:`ScimClient.find`).
- **Filtered reads checked, never trusted.** Objects read back by id many per request
  (:meth:`ScimClient.read_ids`: ``id eq "a" or id eq "b" ...``) are checked against the ids asked for; a target
  that refuses that filter, or answers it with an object not asked for, is read one GET per object for the rest of
  the run, and ``ScimClient.notes`` says so.
- **Only the base URL.** Discovered endpoints are paths under the base URL (one on another host is ignored, see
  :func:`~reconciler.scim.discovery.relative_endpoint`); one that answers a list read with 404 is replaced by the
  default (``/Users``, ``/Groups``) for the run, and ``ScimClient.notes`` says so.
- **Bounded answers.** Every attempt has a total deadline (``request_timeout``: httpx's own timeout is per read,
  so a server trickling a byte a second would never trip it); bodies are streamed and refused past
  ``max_response_bytes``; a paged read ends with an error past ``totalResults`` (plus slack) or ``max_objects``.
- **Extra trust, not less.** :func:`target_ssl_context` adds a PEM file of CAs (a manifest's ``caBundle``) to
  httpx's default trust (certifi, or ``SSL_CERT_FILE`` / ``SSL_CERT_DIR``), so private and public targets both
  verify.

Wire shapes are plain dicts: ``scim2-models`` validation costs far more per resource than the reconciler can
afford on full reads (see ``benchmarks/scim_models.py``); it is used for the small discovery documents and
errors.
"""

from __future__ import annotations

import asyncio
import codecs
import ipaddress
import json
import os
import ssl
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Generator, Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import parse_qsl, quote_plus, urlencode, urlsplit

import httpx
from pydantic import ValidationError
from scim2_models import Error

from reconciler.errors import TargetError
from reconciler.scim.bulk import BulkOperation, BulkResult
from reconciler.scim.discovery import (
    DEFAULT_ENDPOINTS,
    Capabilities,
    parse_resource_types,
    parse_schemas,
    parse_service_provider_config,
)
from reconciler.scim.errors import (
    BulkOutcomeUnknown,
    OutcomeUnknown,
    ResponseTooLarge,
    ScimRequestError,
    TargetResponseError,
    TargetStatusError,
    TargetUnreachable,
    UnsupportedOperation,
)
from reconciler.scim.normalize import SchemaIndex, holding
from reconciler.scim.paging import PageGuard
from reconciler.scim.paths import CORE_GROUP, CORE_USER, parse_path
from reconciler.scim.retry import (
    Attempt,
    Failure,
    RetryPolicy,
    Verdict,
    decide,
    parse_retry_after,
    refused_for_the_run,
)
from reconciler.secrets import register_secret, scrub

SCIM_JSON = "application/scim+json"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
DEFAULT_PAGE_SIZE = 1000
MAX_PAGES = 100_000
MEMBERS_PER_OPERATION = 500
# Reading objects back by id (:meth:`ScimClient.read_ids`): ``id eq "a" or id eq "b" ...``, at most this many ids and
# this many characters of encoded filter per request (some front ends refuse a query string past 2 kB).
IDS_PER_FILTER = 50
ID_FILTER_CHARS = 1500
ID_PROBE = 5            # the first filtered read of a run asks for at most this many ids
FILTERED_IN_FLIGHT = 2  # filtered reads in flight at once (a server may scan every object for each)
# A filtered read is too slow (the server scans every object for it) when a full chunk at its pace would take more
# than request_timeout / SLOW_FILTER_SHARE and it took longer than the slowest page of the target's full read.
SLOW_FILTER_SHARE = 5
# How the objects a round wrote are read back, learned per target (``ScimClient.id_filter``).
READ_BY_FILTER = "filter"  # GET /Users?filter=id eq "a" or id eq "b"
READ_BY_ID = "get"         # GET /Users/a, GET /Users/b
# How a PATCH removes group members: RFC 7644's filtered path, or the value list Entra sends without its flag.
REMOVE_BY_FILTER = "filter"          # {"op": "remove", "path": "members[value eq \"id\"]"}
REMOVE_BY_VALUE_LIST = "value-list"  # {"op": "remove", "path": "members", "value": [{"value": "id"}]}
MEMBER_REMOVAL_FORMS = (REMOVE_BY_FILTER, REMOVE_BY_VALUE_LIST)
# The statuses that refuse a PATCH's form (rather than its data): worth one more try in the other removal form.
_FORM_REFUSED = frozenset({400, 501})
MIB = 1024 * 1024
DEFAULT_REQUEST_TIMEOUT = 60.0          # seconds per attempt, the whole answer included
DEFAULT_MAX_RESPONSE_BYTES = 64 * MIB
DEFAULT_MAX_OBJECTS = 1_000_000         # resources in one paged read
# The settings' environment variables (read by reconciler.run), named in the errors so a user knows the knob.
REQUEST_TIMEOUT_ENV = "RECONCILER_REQUEST_TIMEOUT"
MAX_RESPONSE_BYTES_ENV = "RECONCILER_MAX_RESPONSE_BYTES"
MAX_OBJECTS_ENV = "RECONCILER_MAX_OBJECTS"
ERROR_BODY_BYTES = 64 * 1024            # of an error answer, only the start is read (for its detail)
DETAIL_CHARS = 1000                     # server text quoted in an error: scrubbed first, then cut to this
TEXT_DETAIL_CHARS = 200

# Failures where nothing reached the server: always safe to retry.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


def eq_filter(path: str, value: str) -> str:
    """``path eq "value"``, the value quoted as a JSON string so quotes and backslashes cannot escape it."""
    parse_path(path)
    return f"{path} eq {json.dumps(value, ensure_ascii=False)}"


def member_removals(member_ids: Sequence[str], form: str = REMOVE_BY_FILTER) -> list[dict[str, Any]]:
    """The operations that remove ``member_ids`` from a group, in one of :data:`MEMBER_REMOVAL_FORMS`: one
    filtered-path remove per member, or value lists of up to :data:`MEMBERS_PER_OPERATION` members."""
    if form == REMOVE_BY_FILTER:
        return [{"op": "remove", "path": f"members[value eq {json.dumps(v, ensure_ascii=False)}]"}
                for v in member_ids]
    if form != REMOVE_BY_VALUE_LIST:
        raise ValueError(f"unknown member removal form {form!r}")
    chunks = [member_ids[i:i + MEMBERS_PER_OPERATION] for i in range(0, len(member_ids), MEMBERS_PER_OPERATION)]
    return [{"op": "remove", "path": "members", "value": [{"value": v} for v in chunk]} for chunk in chunks]


def describe_operations(operations: Sequence[dict[str, Any]]) -> tuple[str, ...]:
    """What PATCH operations ask for, once each, as "replace of displayName" (a filter is left out:
    ``members[value eq "1"]`` is ``members``; a path-less operation names the attributes of its value)."""
    seen: dict[str, None] = {}
    for operation in operations:
        op = str(operation.get("op", "?")).lower()
        path = operation.get("path")
        if isinstance(path, str) and path:
            attribute, _, rest = path.partition("[")
            sub = rest.partition("]")[2]
            seen[f"{op} of {attribute}{sub}"] = None
        elif isinstance(operation.get("value"), dict) and operation["value"]:
            seen.update((f"{op} of {key}", None) for key in operation["value"])
        else:
            seen[f"{op} without a path"] = None
    return tuple(seen)


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    host = host.strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def target_ssl_context(ca_bundle: str | os.PathLike[str]) -> ssl.SSLContext:
    """httpx's default trust (certifi, or ``SSL_CERT_FILE`` / ``SSL_CERT_DIR``) plus the CAs of a PEM file.

    A missing, unreadable or invalid file is a :class:`TargetError` naming it.
    """
    context = httpx.create_ssl_context()
    try:
        context.load_verify_locations(cafile=os.fspath(ca_bundle))
    except OSError as error:  # ssl.SSLError is an OSError too
        reason = error.strerror or getattr(error, "reason", None) or str(error) or type(error).__name__
        if isinstance(error, ssl.SSLError):
            reason = f"not a PEM file of CA certificates ({reason})"
        raise TargetError(f"CA bundle {os.fspath(ca_bundle)!r}: {reason}") from None
    return context


def _tls_failure(error: BaseException) -> str | None:
    """The reason when ``error`` (or what caused it) is a failed TLS certificate verification, else None."""
    seen: BaseException | None = error
    for _ in range(8):  # a chain is short; the bound only guards against a cycle
        if seen is None:
            break
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen.verify_message or seen.reason or str(seen)
        seen = seen.__cause__ or seen.__context__
    return None


def _size(count: int) -> str:
    return f"{count // MIB} MiB" if count >= MIB and count % MIB == 0 else f"{count} bytes"


@dataclass(frozen=True)
class _Answer:
    """A response read in full within the limits (httpx's own Response is streamed and closed by then)."""

    status_code: int
    headers: httpx.Headers
    content: bytes             # of an error answer, only its start (its detail is all that is used)
    charset: str | None = None

    @property
    def text(self) -> str:
        charset = self.charset or "utf-8"
        try:
            codecs.lookup(charset)
        except LookupError:
            charset = "utf-8"
        return self.content.decode(charset, errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)


class _BearerAuth(httpx.Auth):
    """Adds the bearer token per request, so it never sits in the client's default headers."""

    def __init__(self, token: str) -> None:
        self.__token = token
        register_secret(token)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self.__token}"
        yield request

    def __repr__(self) -> str:
        return "_BearerAuth(<redacted>)"


class ScimClient:
    """An async SCIM client for one target. Use as ``async with ScimClient(url, token) as client:``.

    ``token`` is the bearer token's value (read by the caller from the manifest's ``tokenEnv``); None sends no
    ``Authorization`` header. ``sleep`` is the wait used between retries (tests pass a recorder).

    ``timeout`` is httpx's, per connect or read; ``request_timeout`` bounds each attempt as a whole (sending,
    waiting and reading the full answer). ``max_response_bytes`` caps an answer's body, ``max_objects`` one
    paged read. ``ssl_context`` replaces httpx's default one (:func:`target_ssl_context` adds a caBundle to it).
    """

    def __init__(self, base_url: str, token: str | None, *, retry: RetryPolicy | None = None,
                 timeout: float = 30.0, max_connections: int = 16, page_size: int = DEFAULT_PAGE_SIZE,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
                 request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
                 max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES, max_objects: int = DEFAULT_MAX_OBJECTS,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise TargetError(f"target URL {base_url!r} is not an http(s) URL")
        if parts.scheme == "http" and not is_loopback(parts.hostname):
            raise TargetError(f"target URL {base_url!r}: plain http:// is refused except to loopback; use https://")
        # A query on the tenant URL (Entra's ``?aadOptscim062020``) is kept and sent with every request.
        self.base_url = parts._replace(query="", fragment="").geturl().rstrip("/")
        self._base_params = dict(parse_qsl(parts.query, keep_blank_values=True))
        self.retry = retry or RetryPolicy()
        self.page_size = page_size
        self.request_timeout = request_timeout
        self.max_response_bytes = max_response_bytes
        self.max_objects = max_objects
        self.capabilities = Capabilities()
        self._sleep = sleep
        self._auth = _BearerAuth(token) if token else None
        self._attributes_ok = True
        self._filter_ok = True  # False once the server refused a filter as unsupported (501, 400 invalidFilter)
        self.requests: Counter[str] = Counter()  # requests sent (every attempt), by method
        self.notes: list[str] = []  # one line per way the server departs from RFC 7644 that the client worked around
        self._schemas_for: tuple[dict[str, Any], ...] | None = None
        self._schemas = SchemaIndex.rfc_defaults()
        # The member-removal form this target accepted (one of MEMBER_REMOVAL_FORMS), None until a removal worked;
        # set it from a stored state to skip the probe.
        self.member_removal_form: str | None = None
        self._removal_probe = asyncio.Lock()
        # How this target reads objects back by id (READ_BY_FILTER or READ_BY_ID), None until a filtered read was
        # answered or refused: see read_ids.
        self.id_filter: str | None = None
        self._id_probe = asyncio.Lock()
        self._slowest_page = 0.0  # seconds, of the pages read without a filter
        self._http = httpx.AsyncClient(
            auth=self._auth,
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            headers={"Accept": f"{SCIM_JSON}, application/json"},
            follow_redirects=False,
            verify=ssl_context if ssl_context is not None else True,
        )

    def __repr__(self) -> str:
        return f"ScimClient({self.base_url!r})"

    async def __aenter__(self) -> ScimClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    def add_request_hook(self, hook: Callable[[httpx.Request], Awaitable[None]]) -> None:
        """Call ``hook`` before every request; it may raise to refuse the request (a stop between requests)."""
        hooks = self._http.event_hooks
        hooks["request"] = [*hooks.get("request", []), hook]
        self._http.event_hooks = hooks

    # -- discovery -------------------------------------------------------------------------------------------

    async def discover(self) -> Capabilities:
        """Read /ServiceProviderConfig, /ResourceTypes and /Schemas; whatever fails falls back to defaults
        (but an answer past the size limit, a refused token or an unreachable target stop the run)."""
        fields: dict[str, Any] = {}
        found = False
        config = await self._optional_get("/ServiceProviderConfig")
        if config is not None:
            fields.update(parse_service_provider_config(config))
            found = True
        types = await self._optional_get("/ResourceTypes")
        if types is not None:
            fields["endpoints"] = parse_resource_types(types, self.base_url)
            found = True
        schemas = await self._optional_get("/Schemas")
        if schemas is not None:
            fields["schemas"] = parse_schemas(schemas)
            found = True
        self.capabilities = Capabilities(**fields, discovered=found)
        return self.capabilities

    async def _optional_get(self, path: str) -> Any:
        try:
            return await self._json_request("GET", path)
        except TargetStatusError as error:
            if error.status in (401, 403):
                raise
            return None
        except ResponseTooLarge:
            raise
        except TargetResponseError:
            return None

    # -- resources -------------------------------------------------------------------------------------------

    def endpoint(self, resource_type: str) -> str:
        """``User``/``Group`` (or an endpoint such as ``/Users``) -> the endpoint path."""
        return resource_type if resource_type.startswith("/") else self.capabilities.endpoint(resource_type)

    async def get(self, resource_type: str, id: str, *,
                  attributes: Sequence[str] | None = None) -> dict[str, Any]:
        params = {"attributes": ",".join(attributes)} if attributes else None
        return self._resource(await self._json_request("GET", f"{self.endpoint(resource_type)}/{id}",
                                                       params=params), "GET", self.endpoint(resource_type))

    async def create(self, resource_type: str, resource: dict[str, Any]) -> dict[str, Any]:
        """POST a resource; the created resource (with ``id``). A lost answer raises OutcomeUnknown."""
        path = self.endpoint(resource_type)
        response = await self._send("POST", path, body=resource)
        body = self._decode(response, "POST", path)
        if body is None:
            location = response.headers.get("Location") or ""
            if not location.startswith(f"{self.base_url}/"):
                # never send the token to a URL the target merely names
                raise TargetResponseError("POST", path, "201 without a body or a Location under the base URL")
            body = await self._json_request("GET", location[len(self.base_url):])
        return self._resource(body, "POST", path)

    async def replace(self, resource_type: str, id: str, resource: dict[str, Any]) -> dict[str, Any]:
        path = f"{self.endpoint(resource_type)}/{id}"
        return self._resource(await self._json_request("PUT", path, body=resource), "PUT", path)

    async def patch(self, resource_type: str, id: str, operations: Sequence[dict[str, Any]], *,
                    version: str | None = None) -> dict[str, Any] | None:
        """PATCH with RFC 7644 operations; the resource if the server returned one (200), else None (204)."""
        path = f"{self.endpoint(resource_type)}/{id}"
        body = {"schemas": [PATCH_OP], "Operations": list(operations)}
        headers = {"If-Match": version} if version else None
        try:
            answer = await self._json_request("PATCH", path, body=body, headers=headers)
        except TargetStatusError as refused:
            if not refused_for_the_run(refused.status, refused.scim_type, refused.detail):
                raise
            raise UnsupportedOperation(refused, describe_operations(operations)) from None
        return answer if isinstance(answer, dict) and answer else None

    async def patch_group(self, id: str, operations: Sequence[dict[str, Any]], *,
                          remove_members: Sequence[str] = ()) -> dict[str, Any] | None:
        """PATCH a group: ``operations``, then the removal of ``remove_members`` in the form this target accepts.

        The form that worked before is used at once; until one has, one PATCH at a time probes it (the RFC form
        first; refused with 400 or 501, the whole PATCH again in the other form), so that the others wait and
        then use the learned form directly.
        """
        if not remove_members:
            return await self.patch("Group", id, operations) if operations else None
        if self.member_removal_form is None:
            async with self._removal_probe:
                first = self.member_removal_form or REMOVE_BY_FILTER  # learned meanwhile, or still the RFC one
                return await self._patch_group_in_either_form(id, operations, remove_members, first)
        return await self._patch_group_in_either_form(id, operations, remove_members, self.member_removal_form)

    async def _patch_group_in_either_form(self, id: str, operations: Sequence[dict[str, Any]],
                                          remove_members: Sequence[str], first: str) -> dict[str, Any] | None:
        try:
            answer = await self.patch("Group", id, [*operations, *member_removals(remove_members, first)])
        except TargetStatusError as refused:
            if refused.status not in _FORM_REFUSED:
                raise
            other = REMOVE_BY_VALUE_LIST if first == REMOVE_BY_FILTER else REMOVE_BY_FILTER
            try:
                answer = await self.patch("Group", id, [*operations, *member_removals(remove_members, other)])
            except TargetStatusError as also:
                refused.message += f"; refused with members removed in the {other} form too (HTTP {also.status})"
                refused.args = (f"{refused.method} {refused.path}: {refused.message}",)
                raise refused from None
            first = other
        self.member_removal_form = first
        return answer

    async def delete(self, resource_type: str, id: str) -> None:
        """DELETE; retried like any idempotent request (a 404 after a lost first answer counts as done)."""
        path = f"{self.endpoint(resource_type)}/{id}"
        try:
            await self._send("DELETE", path)
        except _GoneAfterRetry:
            return

    async def pages(self, resource_type: str, *, filter: str | None = None,
                    attributes: Sequence[str] | None = None, excluded_attributes: Sequence[str] | None = None,
                    page_size: int | None = None) -> AsyncIterator[list[dict[str, Any]]]:
        """Yield the resources of a search page by page, robust to servers that ignore ``count``, cap pages,
        misreport ``itemsPerPage``/``totalResults`` or serve page 1 again past the end.

        Stops when ``startIndex`` passes ``totalResults``, on an empty page, or on a page of ids already seen;
        a repeated page while ``totalResults`` says more remain is an error (a partial read is never returned).
        ``attributes`` is dropped (once per client) if the server refuses it with 400.

        Bounded against servers that never stop: more fresh ids than the first page's ``totalResults`` plus
        slack (objects created during the read), or more than ``max_objects`` in all, is an error; so is a
        first page with ``totalResults`` above zero and no ``Resources``.
        """
        path = self.endpoint(resource_type)
        size = page_size or self.page_size
        if self.capabilities.max_results:
            size = min(size, self.capabilities.max_results)
        guard = PageGuard(size, self.max_objects, MAX_OBJECTS_ENV)
        for _ in range(MAX_PAGES):
            params: dict[str, Any] = {"startIndex": guard.start, "count": size}
            if filter is not None:
                params["filter"] = filter
            if excluded_attributes:
                params["excludedAttributes"] = ",".join(excluded_attributes)
            if attributes and self._attributes_ok:
                params["attributes"] = ",".join(attributes)
            try:
                started = time.monotonic()
                body = await self._json_request("GET", path, params=params)
                if filter is None:
                    self._slowest_page = max(self._slowest_page, time.monotonic() - started)
            except TargetStatusError as error:
                if (error.status == 400 and error.scim_type != "invalidFilter" and "attributes" in params
                        and guard.start == 1):
                    self._attributes_ok = False
                    continue
                if error.status == 404 and guard.start == 1 and not guard.seen:
                    fallback = self._endpoint_after_404(resource_type, path)
                    if fallback is not None:
                        path = fallback
                        continue
                raise
            resources = self._list(body, "GET", path)
            total = body.get("totalResults")
            verdict = guard.page([resource.get("id") for resource in resources],
                                 total if isinstance(total, int) and not isinstance(total, bool) else None)
            if verdict.error is not None:
                raise TargetResponseError("GET", path, verdict.error)
            if verdict.fresh:
                yield [resources[position] for position in verdict.fresh]
            if verdict.done:
                return
        raise TargetResponseError("GET", path, f"paging did not end after {MAX_PAGES} pages")

    async def list_all(self, resource_type: str, **options: Any) -> list[dict[str, Any]]:
        """Every resource of a search, all pages."""
        return [resource async for page in self.pages(resource_type, **options) for resource in page]

    def _endpoint_after_404(self, resource_type: str, path: str) -> str | None:
        """The default endpoint to read instead of a discovered ``path`` that answered a list read with 404, kept
        for the rest of the run; None when ``path`` is the default already (the 404 stands)."""
        default = DEFAULT_ENDPOINTS.get(resource_type)
        if default is None or path == default:
            return None
        if self.endpoint(resource_type) == path:
            endpoints = {**self.capabilities.endpoints, resource_type: default}
            self.capabilities = replace(self.capabilities, endpoints=endpoints)
            self.notes.append(f"the target's /ResourceTypes names {path} for {resource_type}, which answers 404; "
                              f"{default} is used instead")
        return self.endpoint(resource_type)

    async def find(self, resource_type: str, path: str, value: str, *, attributes: Sequence[str] | None = None,
                   excluded_attributes: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """Resources whose ``path`` equals ``value`` (``GET /Users?filter=userName eq "..."``).

        A server without filters (``filter.supported: false``, or a filter answered with 501 or 400
        ``invalidFilter``) is read in full, page by page, and compared here as matching compares (the schema's
        ``caseExact``): slower, but the lookup that keeps a lost create from becoming a duplicate still works.
        """
        query = eq_filter(path, value)
        if self.capabilities.filter and self._filter_ok:
            try:
                return await self.list_all(resource_type, filter=query, attributes=attributes,
                                           excluded_attributes=excluded_attributes, page_size=50)
            except TargetStatusError as error:
                if not (error.status == 501 or (error.status == 400 and error.scim_type == "invalidFilter")):
                    raise
                self._filter_ok = False
                self.notes.append(f"the target refused the filter {query} (HTTP {error.status}); lookups read "
                                  "every object and compare locally")
        return await self._find_locally(resource_type, path, value, attributes, excluded_attributes)

    async def _find_locally(self, resource_type: str, path: str, value: str, attributes: Sequence[str] | None,
                            excluded_attributes: Sequence[str] | None) -> list[dict[str, Any]]:
        """:meth:`find` without a filter: every page read, each resource compared here."""
        parsed = parse_path(path)
        if attributes:
            attribute = f"{parsed.schema}:{parsed.attribute}" if parsed.schema else parsed.attribute
            if attribute.lower() not in {a.lower() for a in attributes}:
                attributes = [*attributes, attribute]
        kind_schema = CORE_GROUP if resource_type == "Group" else CORE_USER
        found: list[dict[str, Any]] = []
        async for page in self.pages(resource_type, attributes=attributes, excluded_attributes=excluded_attributes):
            found += [dict(r) for r in holding(page, parsed, value, kind_schema, self._schema_index)]
        return found

    # -- reading back by id ----------------------------------------------------------------------------------

    async def read_ids(self, resource_type: str, ids: Collection[str], *, attributes: Sequence[str] | None = None,
                       gone: Collection[str] = (), concurrency: int = 8) -> dict[str, dict[str, Any] | None]:
        """What the target holds now for each of ``ids``: the resource, or None when it is gone.

        Many ids per request where the target allows it (``filter=id eq "a" or id eq "b" ...`` in chunks of at
        most :data:`IDS_PER_FILTER` ids and :data:`ID_FILTER_CHARS` characters, with ``attributes``, at most
        :data:`FILTERED_IN_FLIGHT` at once), else one GET each (``concurrency`` at once), a 404 meaning gone.
        The first filtered read of a run probes the form alone, with at most :data:`ID_PROBE` ids; ``id_filter``
        keeps the form that works for the rest of the run. A filtered answer is checked, never trusted: an error
        answer, no answer, an object not asked for (a server that ignores ``filter``) or more results than ids
        asked for make this target read by GET from then on, with a note; so does a filtered read so slow that
        the server must scan every object for it. An id that an answer leaves out is gone when it is in ``gone``
        (an object just deleted); any other is read by GET, and if the GET finds it, the filter is not trusted
        either.
        """
        wanted = list(dict.fromkeys(ids))
        gone = frozenset(gone)
        found: dict[str, dict[str, Any] | None] = {}
        limit = asyncio.Semaphore(max(1, concurrency))
        filtering = asyncio.Semaphore(FILTERED_IN_FLIGHT)
        by_get: list[str] = []
        left_out: list[str] = []

        async def filtered(chunk: list[str]) -> None:
            async with filtering:
                answer = await self._read_chunk(resource_type, chunk, attributes)
            if answer is None:
                by_get.extend(chunk)
                return
            for rid in chunk:
                if rid in answer:
                    found[rid] = answer[rid]
                elif rid in gone:
                    found[rid] = None
                else:
                    left_out.append(rid)

        async def read_one(rid: str, left: bool) -> None:
            async with limit:
                try:
                    resource = await self.get(resource_type, rid,
                                              attributes=attributes if self._attributes_ok else None)
                except TargetStatusError as error:
                    if error.status != 404:
                        raise
                    found[rid] = None
                    return
            found[rid] = resource
            if left:
                self._distrust_id_filter(resource_type, [rid], "left out an object that a GET then found")

        if len(wanted) > 1 and self._id_filter_possible():
            if self.id_filter is None:
                async with self._id_probe:  # one probe per target: the others wait for its answer
                    if self.id_filter is None:
                        probe = self._id_chunks(wanted[:ID_PROBE])[0]
                        await filtered(probe)
                        wanted = wanted[len(probe):]
            await asyncio.gather(*(filtered(chunk) for chunk in self._id_chunks(wanted)))
        else:
            by_get.extend(wanted)
        await asyncio.gather(*(read_one(rid, False) for rid in by_get), *(read_one(rid, True) for rid in left_out))
        return found

    def _id_filter_possible(self) -> bool:
        return self.id_filter != READ_BY_ID and self.capabilities.filter and self._filter_ok

    def _id_chunks(self, ids: Sequence[str]) -> list[list[str]]:
        """``ids`` in chunks of at most :data:`IDS_PER_FILTER` (and the target's ``maxResults``) ids, each chunk's
        encoded filter within :data:`ID_FILTER_CHARS` characters (a longer single id still gets a chunk)."""
        size = min(IDS_PER_FILTER, self.capabilities.max_results or IDS_PER_FILTER)
        separator = len(quote_plus(" or "))
        chunks: list[list[str]] = []
        chunk: list[str] = []
        chars = 0
        for rid in ids:
            clause = len(quote_plus(eq_filter("id", rid)))
            if chunk and (len(chunk) >= size or chars + separator + clause > ID_FILTER_CHARS):
                chunks.append(chunk)
                chunk, chars = [], 0
            chars += clause + (separator if chunk else 0)
            chunk.append(rid)
        if chunk:
            chunks.append(chunk)
        return chunks

    async def _read_chunk(self, resource_type: str, chunk: list[str],
                          attributes: Sequence[str] | None) -> dict[str, dict[str, Any]] | None:
        """One filtered read of ``chunk``'s ids (paged if the server pages it), every object checked against
        them; None when the target cannot be trusted with it (it is read by GET from then on)."""
        if self.id_filter == READ_BY_ID:
            return None
        started = time.monotonic()
        try:
            answer = await self._filtered_by_id(resource_type, chunk, attributes)
        except TargetStatusError as error:
            if error.status in (401, 429):  # the token, or the rate: a GET per object would meet the same
                raise
            answer = f"answered HTTP {error.status}"
        except TargetResponseError as error:
            answer = f"answered what is not a ListResponse ({error.message})"
        except TargetUnreachable as error:  # a server that drops the connection on a filter it cannot parse
            answer = f"got no answer ({error.message})"
        if isinstance(answer, str):
            self._distrust_id_filter(resource_type, chunk, answer)
            return None
        seconds = time.monotonic() - started
        if (seconds / len(chunk) * IDS_PER_FILTER > self.request_timeout / SLOW_FILTER_SHARE
                and seconds > self._slowest_page):  # the answer is good; the next ones would cost too much
            self._distrust_id_filter(resource_type, chunk, f"took {seconds:.1f} s for {len(chunk)} id(s), longer "
                                     "than a page of the full read", "the target seems to scan every object for it")
        elif self.id_filter is None:
            self.id_filter = READ_BY_FILTER
        return answer

    async def _filtered_by_id(self, resource_type: str, chunk: list[str],
                              attributes: Sequence[str] | None) -> dict[str, dict[str, Any]] | str:
        """The objects a filtered read of ``chunk``'s ids answers, by id; or why the answer is not the set asked
        for (an object not asked for, more results than ids)."""
        path = self.endpoint(resource_type)
        asked = set(chunk)
        params: dict[str, Any] = {"filter": " or ".join(eq_filter("id", rid) for rid in chunk), "startIndex": 1,
                                  "count": len(chunk)}
        if attributes and self._attributes_ok:
            params["attributes"] = ",".join(attributes)
        answer: dict[str, dict[str, Any]] = {}
        for _ in range(len(chunk)):  # every page brings a new object, or the read ends
            body = await self._json_request("GET", path, params=params)
            resources = self._list(body, "GET", path)
            total = body.get("totalResults")
            total = total if isinstance(total, int) and not isinstance(total, bool) else None
            if total is not None and total > len(chunk):
                return f"answered with totalResults {total} for {len(chunk)} ids"
            fresh = 0
            for resource in resources:
                rid = resource.get("id")
                if not isinstance(rid, str) or rid not in asked:
                    return "answered with an object not asked for"
                fresh += rid not in answer
                answer[rid] = resource
            start = params["startIndex"] + len(resources)
            more = total > start - 1 if total is not None else len(resources) >= params["count"]
            if not fresh or not more or len(answer) == len(chunk):
                break
            params = {**params, "startIndex": start}
        return answer

    def _distrust_id_filter(self, resource_type: str, chunk: Sequence[str], why: str,
                            meaning: str = "the target seems not to support that filter") -> None:
        """Read by GET from now on, and say so once in ``notes``."""
        if self.id_filter != READ_BY_ID:
            self.id_filter = READ_BY_ID
            more = " or …" if len(chunk) > 1 else ""
            self.notes.append(f"GET {self.endpoint(resource_type)}?filter={eq_filter('id', chunk[0])}{more} {why} "
                              f"({meaning}); objects written are read back one GET each")

    @property
    def _schema_index(self) -> SchemaIndex:
        schemas = self.capabilities.schemas
        if self._schemas_for is not schemas:
            self._schemas_for = schemas
            self._schemas = SchemaIndex.from_schemas(schemas) if schemas else SchemaIndex.rfc_defaults()
        return self._schemas

    # -- bulk ------------------------------------------------------------------------------------------------

    async def bulk(self, operations: Sequence[BulkOperation]) -> list[BulkResult]:
        """Run operations through /Bulk in batches within the server's maxOperations and maxPayloadSize.

        Results are mapped back by ``bulk_id``. A batch whose answer is lost is never resent: it raises
        :class:`BulkOutcomeUnknown` (the results so far in ``completed``).
        """
        caps = self.capabilities
        if not caps.bulk:
            raise TargetError(f"{self.base_url}: the target does not advertise Bulk support")
        results: list[BulkResult] = []
        for batch in bulk_batches(operations, caps.bulk_max_operations, caps.bulk_max_payload_size):
            body = {"schemas": [BULK_REQUEST], "Operations": [op.to_wire() for op in batch]}
            try:
                answer = await self._json_request("POST", "/Bulk", body=body)
            except OutcomeUnknown as lost:
                raise BulkOutcomeUnknown(lost, tuple(op.bulk_id for op in batch), results) from None
            results.extend(replace(result, detail=self._quote(str(result.detail)))
                           if result.detail is not None else result
                           for result in parse_bulk_response(answer, batch))
        return results

    # -- transport -------------------------------------------------------------------------------------------

    def _url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    async def _json_request(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                            body: Any = None, headers: dict[str, str] | None = None) -> Any:
        response = await self._send(method, path, params=params, body=body, headers=headers)
        return self._decode(response, method, path)

    async def _send(self, method: str, path: str, *, params: dict[str, Any] | None = None, body: Any = None,
                    headers: dict[str, str] | None = None) -> _Answer:
        """Send until an answer below 400 or until :func:`~reconciler.scim.retry.decide` says to stop."""
        shown = f"{path}?{urlencode(params)}" if params else path
        if self._base_params:
            params = {**self._base_params, **(params or {})}
        request_headers = dict(headers or {})
        content = None
        if body is not None:
            content = json.dumps(body, ensure_ascii=False).encode()
            request_headers["Content-Type"] = SCIM_JSON
        waited = 0.0
        lost_before = False
        for number in range(1, max(1, self.retry.max_attempts) + 1):
            self.requests[method] += 1
            outcome = await self._try(method, path, shown, params, content, request_headers)
            if isinstance(outcome, _Answer):
                if outcome.status_code < 400:
                    return outcome
                answered = self._status_error(outcome, method, shown)
                failure: ScimRequestError = answered
                cause = f"HTTP {answered.status}"
                attempt = Attempt(method, number, waited, status=answered.status, retry_after=answered.retry_after,
                                  lost_before=lost_before)
            else:
                kind, cause = outcome
                failure = TargetUnreachable(method, shown, cause)
                attempt = Attempt(method, number, waited, failure=kind, lost_before=lost_before)
            decision = decide(self.retry, attempt)
            if decision.verdict is Verdict.UNKNOWN:
                raise OutcomeUnknown(method, shown, cause, status=attempt.status)
            if decision.verdict is Verdict.DONE:
                raise _GoneAfterRetry
            if decision.verdict is Verdict.FAIL:
                raise failure
            lost_before = lost_before or attempt.failure is Failure.LOST
            waited += decision.delay
            await self._sleep(decision.delay)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _try(self, method: str, path: str, shown: str, params: dict[str, Any] | None,
                   content: bytes | None, headers: dict[str, str]) -> _Answer | tuple[Failure, str]:
        """One attempt within the request deadline: the answer, or how it failed without one and why."""
        deadline = asyncio.timeout(self.request_timeout)
        try:
            async with deadline:
                return await self._attempt(method, path, shown, params, content, headers)
        except TimeoutError:
            if not deadline.expired():
                raise
            return Failure.LATE, f"no complete answer within {self.request_timeout:g} s ({REQUEST_TIMEOUT_ENV})"
        except _NOT_SENT as error:
            reason = _tls_failure(error)
            if reason is not None:
                return Failure.UNTRUSTED, (f"TLS certificate verification failed: {self._quote(reason)}; for a "
                                           "target whose CA is private, set provisioning.target.caBundle")
            return Failure.NOT_SENT, self._describe(error)
        except httpx.TransportError as error:
            return Failure.LOST, self._describe(error)

    async def _attempt(self, method: str, path: str, shown: str, params: dict[str, Any] | None,
                       content: bytes | None, headers: dict[str, str]) -> _Answer:
        """One request, its answer streamed and read within the size limit."""
        async with self._http.stream(method, self._url(path), params=params, content=content,
                                     headers=headers) as response:
            body = await self._read_body(response, method, shown)
            return _Answer(response.status_code, response.headers, body, response.charset_encoding)

    async def _read_body(self, response: httpx.Response, method: str, shown: str) -> bytes:
        """The body, refused past ``max_response_bytes`` (Content-Length first, then as it streams).

        Of an error answer only the first :data:`ERROR_BODY_BYTES` are read (and the rest dropped): its
        detail is all that is used, and the status must still count (a 503 is retried, a 500 on a write is
        an unknown outcome).
        """
        failing = response.status_code >= 400
        limit = min(self.max_response_bytes, ERROR_BODY_BYTES) if failing else self.max_response_bytes
        declared = response.headers.get("Content-Length", "")
        if not failing and declared.isdigit() and int(declared) > limit:
            raise ResponseTooLarge(method, shown, f"the answer's Content-Length ({int(declared)} bytes) is above "
                                   f"the response size limit of {_size(limit)} ({MAX_RESPONSE_BYTES_ENV})")
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            if size + len(chunk) > limit:
                if failing:
                    chunks.append(chunk[:limit - size])
                    return b"".join(chunks)
                raise ResponseTooLarge(method, shown, f"the answer is larger than the response size limit of "
                                       f"{_size(limit)} ({MAX_RESPONSE_BYTES_ENV}); it was not read further")
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)

    def _describe(self, error: Exception) -> str:
        text = str(error) or type(error).__name__
        return self._quote(f"{type(error).__name__}: {text}" if str(error) else text)

    @staticmethod
    def _scrub(text: str) -> str:
        """The process's one scrubber (the token was registered with it): applied here too, before server text is
        cut, so that a cut never leaves a short prefix of the token that the output boundary could not tell."""
        return scrub(text)

    def _quote(self, text: str, limit: int = DETAIL_CHARS) -> str:
        """Server text for an error message: the token scrubbed from the whole text first (a cut made before
        could leave a prefix of it), then one line, then cut to ``limit`` characters."""
        line = " ".join(self._scrub(text).split())
        return line if len(line) <= limit else f"{line[:limit]}…"

    def _status_error(self, response: _Answer, method: str, shown: str) -> TargetStatusError:
        detail = scim_type = None
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if isinstance(payload, dict):
            try:
                error = Error.model_validate(payload)
                detail, scim_type = error.detail, error.scim_type
            except ValidationError:
                detail, scim_type = payload.get("detail"), payload.get("scimType")
        if detail is None and payload is None:
            # scrubbed whole, before the first line is taken and cut
            lines = self._scrub(response.text).strip().splitlines()
            detail = self._quote(lines[0], TEXT_DETAIL_CHARS) if lines else None
        return TargetStatusError(
            method, shown, response.status_code,
            detail=self._quote(str(detail)) if detail is not None else None,
            scim_type=self._quote(str(scim_type), TEXT_DETAIL_CHARS) if scim_type else None,
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
        )

    def _decode(self, response: _Answer, method: str, path: str) -> Any:
        if response.status_code == 204 or not response.content:
            return None
        media = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if media and media not in (SCIM_JSON, "application/json"):
            raise TargetResponseError(method, path, f"unexpected content type {self._quote(media, 100)!r}")
        try:
            return response.json()
        except ValueError:
            raise TargetResponseError(method, path, "the answer is not valid JSON") from None

    @staticmethod
    def _resource(body: Any, method: str, path: str) -> dict[str, Any]:
        if not isinstance(body, dict) or not isinstance(body.get("id"), str):
            raise TargetResponseError(method, path, "the answer is not a SCIM resource with an id")
        return body

    @staticmethod
    def _list(body: Any, method: str, path: str) -> list[dict[str, Any]]:
        if not isinstance(body, dict):
            raise TargetResponseError(method, path, "the answer is not a SCIM ListResponse")
        resources = body.get("Resources", [])
        if resources is None:
            return []
        if not isinstance(resources, list) or not all(isinstance(r, dict) for r in resources):
            raise TargetResponseError(method, path, "the ListResponse's Resources is not a list of objects")
        return resources


class _GoneAfterRetry(Exception):
    """A retried DELETE found the resource already gone: the lost first attempt did the work."""


def bulk_batches(operations: Sequence[BulkOperation], max_operations: int | None,
                 max_payload_size: int | None) -> list[list[BulkOperation]]:
    """Split operations into batches within the server's limits (payload measured as the encoded JSON)."""
    envelope = len(json.dumps({"schemas": [BULK_REQUEST], "Operations": []}))
    batches: list[list[BulkOperation]] = []
    batch: list[BulkOperation] = []
    size = envelope
    for op in operations:
        op_size = len(json.dumps(op.to_wire(), ensure_ascii=False).encode()) + 2
        if max_payload_size and envelope + op_size > max_payload_size:
            raise TargetError(f"Bulk operation {op.bulk_id!r} is larger than the target's maxPayloadSize "
                              f"({max_payload_size} bytes)")
        full = (max_operations and len(batch) >= max_operations) or (
            max_payload_size and size + op_size > max_payload_size)
        if batch and full:
            batches.append(batch)
            batch, size = [], envelope
        batch.append(op)
        size += op_size
    if batch:
        batches.append(batch)
    return batches


def parse_bulk_response(answer: Any, batch: Sequence[BulkOperation]) -> list[BulkResult]:
    """Map a BulkResponse back onto the batch's operations by ``bulkId`` (in order where it is missing)."""
    if not isinstance(answer, dict) or not isinstance(answer.get("Operations"), list):
        raise TargetResponseError("POST", "/Bulk", "the answer is not a SCIM BulkResponse")
    by_id = {op.bulk_id: op for op in batch}
    results = []
    for index, item in enumerate(answer["Operations"]):
        if not isinstance(item, dict):
            continue
        bulk_id = item.get("bulkId")
        if bulk_id not in by_id and index < len(batch):
            bulk_id = batch[index].bulk_id
        if bulk_id not in by_id:
            continue
        try:
            status = int(str(item.get("status", "0")).split()[0])
        except ValueError:
            status = 0
        location = item.get("location")
        response = item.get("response")
        error = response if isinstance(response, dict) else {}
        ok = 200 <= status < 300
        results.append(BulkResult(
            bulk_id=bulk_id, method=str(item.get("method") or by_id[bulk_id].method).upper(), status=status,
            location=location if isinstance(location, str) else None,
            id=location.rstrip("/").rsplit("/", 1)[-1] if isinstance(location, str) and location else None,
            detail=error.get("detail"), scim_type=error.get("scimType"),
            resource=response if ok and isinstance(response, dict) and isinstance(response.get("id"), str) else None,
        ))
    return results
