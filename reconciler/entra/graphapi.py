"""A small synchronous Microsoft Graph v1.0 client (httpx), for the synchronization and application endpoints the
Pulumi schema provider and ``reconciler import`` use.

- Paths are relative to ``{endpoint}/v1.0`` (``/servicePrincipals/ID/synchronization/jobs``); answers are JSON
  objects (``None`` for an empty answer such as Graph's 204). Requests go to the endpoint's own scheme, host and
  port only (``@odata.nextLink`` included): the bearer token never goes anywhere else. No redirect is followed.
- The token is the one in the variable ``token_env`` names, else azure-identity's ``DefaultAzureCredential`` for
  ``{endpoint}/.default``; every token is registered with :mod:`reconciler.secrets` and scrubbed from error text.
- Every request has a deadline (the whole answer) and a size cap (the body is streamed and reading stops past it).
  429 and 503 wait for ``Retry-After`` (capped); 500/502/503/504, timeouts and connection failures back off with
  jitter, for the idempotent methods (GET, PUT, DELETE) only: a POST is sent once, unless refused with 429 or never
  sent (no connection). Retries and their total wait are bounded (:class:`~reconciler.scim.retry.RetryPolicy`).
  A 401 gets one fresh token and one more try. Everything else raises :class:`GraphApiError`, one line.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Protocol
from urllib.parse import quote

import httpx

from reconciler.directory.graph import checked_link, describe_http_error
from reconciler.errors import ReconcilerError
from reconciler.scim.retry import RetryPolicy, parse_retry_after
from reconciler.secrets import register_secret, scrub

GRAPH_ENDPOINT = "https://graph.microsoft.com"
GRAPH_VERSION = "/v1.0"
MAX_RESPONSE_BYTES = 16 * 1024 * 1024   # a synchronization schema with its directories is a few hundred KB
MAX_PAGES = 1000
IDEMPOTENT = frozenset({"GET", "PUT", "DELETE"})
RETRY_AFTER_STATUSES = frozenset({429, 503})
RETRIED_STATUSES = frozenset({500, 502, 503, 504})   # for the idempotent methods
PERMISSIONS_HINT = (" (the identity needs Application.ReadWrite.All and Synchronization.ReadWrite.All; to read only, "
                    "Application.Read.All and Synchronization.Read.All)")

Json = dict[str, Any]


class GraphApiError(ReconcilerError):
    """Graph refused a request or could not be reached; ``status`` is the HTTP status (None without an answer) and
    ``code`` Graph's error code, when it gave one."""

    def __init__(self, message: str, status: int | None = None, code: str | None = None) -> None:
        super().__init__(scrub(message))
        self.status = status
        self.code = code


class TokenCredential(Protocol):
    def get_token(self, *scopes: str, **kwargs: Any) -> Any: ...


def segment(value: str) -> str:
    """``value`` quoted as one path segment (an object id, a job id)."""
    return quote(value, safe="")


class GraphClient:
    """Requests to one Graph endpoint. ``transport``, ``credential`` and ``sleep`` are injectable for tests, and so
    are the bounds: ``timeout`` (connect/read/write, seconds), ``deadline`` (one whole answer), ``max_retries``,
    the backoff (``base_delay`` doubling up to ``max_delay``, which also caps ``Retry-After``), ``max_total_wait``
    (the waits of one request together), ``max_response_bytes`` and ``max_pages`` (of :meth:`get_all`)."""

    def __init__(self, endpoint: str = GRAPH_ENDPOINT, *, token_env: str | None = None,
                 credential: TokenCredential | None = None, transport: httpx.BaseTransport | None = None,
                 timeout: float = 30.0, deadline: float = 120.0, max_response_bytes: int = MAX_RESPONSE_BYTES,
                 max_retries: int = 4, base_delay: float = 0.5, max_delay: float = 30.0,
                 max_total_wait: float = 120.0, max_pages: int = MAX_PAGES,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._endpoint = endpoint.rstrip("/")
        self._base_url = self._endpoint + GRAPH_VERSION
        self._scope = self._endpoint + "/.default"
        self._token_env = token_env
        self._credential = credential
        self._owned_credential: Any = None
        self._transport = transport
        self._timeout = timeout
        self._deadline = deadline
        self._max_response_bytes = max_response_bytes
        self._retry = RetryPolicy(max_attempts=max_retries + 1, max_total_wait=max_total_wait,
                                  base_delay=base_delay, max_delay=max_delay)
        self._max_pages = max_pages
        self._sleep = sleep
        self._client: httpx.Client | None = None
        self._token: str | None = None
        self.requests = 0

    def __enter__(self) -> GraphClient:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Let the connection and the token go (and close a credential chain this client made)."""
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._owned_credential is not None:
            self._owned_credential.close()
            self._owned_credential = None
        self._token = None

    # -- the requests -------------------------------------------------------------------------------------------------

    def get(self, path: str) -> Json:
        body = self._request("GET", self._url(path), None)
        if body is None:
            raise GraphApiError(f"Microsoft Graph: GET {GRAPH_VERSION}{path}: answered without a JSON object")
        return body

    def put(self, path: str, body: Json) -> Json | None:
        return self._request("PUT", self._url(path), body)

    def post(self, path: str, body: Json | None = None) -> Json | None:
        return self._request("POST", self._url(path), body)

    def patch(self, path: str, body: Json) -> Json | None:
        return self._request("PATCH", self._url(path), body)

    def delete(self, path: str) -> None:
        self._request("DELETE", self._url(path), None)

    def get_all(self, path: str) -> list[Json]:
        """Every item of a collection's ``value`` lists, following ``@odata.nextLink`` (on the endpoint's origin
        only, at most ``max_pages`` pages)."""
        url: str | None = self._url(path)
        items: list[Json] = []
        seen: set[str] = set()
        while url is not None:
            shown = f"Microsoft Graph: GET {GRAPH_VERSION}{path}"
            if len(seen) >= self._max_pages:
                raise GraphApiError(f"{shown}: more than {self._max_pages} pages; stopped")
            seen.add(url)
            body = self._request("GET", url, None)
            page = body.get("value") if body is not None else None
            if not isinstance(page, list):
                raise GraphApiError(f"{shown}: answered without a 'value' list")
            items.extend(item for item in page if isinstance(item, dict))
            url = self._next_link(url, body.get("@odata.nextLink") if body else None, shown)
            if url in seen:
                raise GraphApiError(f"{shown}: the next page link repeats a page already read; stopped")
        return items

    # -- the mechanics ------------------------------------------------------------------------------------------------

    def _url(self, path: str) -> str:
        if not path.startswith("/") or path.startswith("//"):
            raise ValueError(f"a Graph path starts with one '/': {path!r}")
        return self._base_url + path

    def _next_link(self, current: str, link: Any, shown: str) -> str | None:
        return checked_link(current, link, self._endpoint, shown, GraphApiError)

    def _request(self, method: str, url: str, body: Json | None) -> Json | None:
        path = httpx.URL(url).path
        shown = f"Microsoft Graph: {method} {path}"
        idempotent = method in IDEMPOTENT
        retries, waited, refreshed, slow = 0, 0.0, False, 0
        while True:
            token = self._current_token()
            self.requests += 1
            try:
                status, headers, content = self._send(method, url, body, token, shown)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:   # nothing was sent: safe to send again
                failure, delay = f"{shown}: {self._describe(exc)}", self._backoff(retries)
            except (httpx.TransportError, _Late) as exc:
                failure, delay = f"{shown}: {self._describe(exc)}", self._backoff(retries)
                if not idempotent:
                    raise GraphApiError(f"{failure}; not sent again (it may have been applied)") from None
                if isinstance(exc, httpx.TimeoutException | _Late):
                    slow += 1
                    if slow > 1:  # a server that let two deadlines pass is hanging, not busy: stop early
                        raise GraphApiError(f"{failure}, twice; stopped") from None
            except httpx.HTTPError as exc:  # e.g. a body that does not decode as its Content-Encoding says
                raise GraphApiError(f"{shown}: unreadable answer ({self._describe(exc)})") from None
            else:
                if 200 <= status < 300:
                    return _json_object(shown, status, content)
                if status == 401 and not refreshed:
                    refreshed = True
                    self._token = None
                    continue
                retried = status == 429 or (idempotent and status in RETRIED_STATUSES)
                if not retried:
                    again = " again with a fresh token" if status == 401 else ""
                    hint = PERMISSIONS_HINT if status in (401, 403) else ""
                    code, message = _graph_error(content)
                    detail = f" {code}: {message}" if code else (f": {message}" if message else "")
                    raise GraphApiError(f"{shown}: HTTP {status}{again}{detail}{hint}", status, code)
                failure = f"{shown}: still answering HTTP {status}"
                retry_after = parse_retry_after(headers.get("Retry-After")) if status in RETRY_AFTER_STATUSES \
                    else None
                delay = self._backoff(retries) if retry_after is None else min(retry_after, self._retry.max_delay)
            if retries + 1 >= self._retry.max_attempts or waited + delay > self._retry.max_total_wait:
                raise GraphApiError(f"{failure} after {retries} retries")
            retries += 1
            waited += delay
            self._sleep(delay)

    def _send(self, method: str, url: str, body: Json | None, token: str,
              shown: str) -> tuple[int, httpx.Headers, bytes]:
        client = self._http()
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        started = time.monotonic()
        with client.stream(method, url, json=body, headers=headers) as response:
            declared = response.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > self._max_response_bytes:
                raise GraphApiError(f"{shown}: answered more than {self._max_response_bytes} bytes; stopped")
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > self._max_response_bytes:
                    raise GraphApiError(f"{shown}: answered more than {self._max_response_bytes} bytes; stopped")
                if time.monotonic() - started > self._deadline:
                    raise _Late()
                chunks.append(chunk)
            if time.monotonic() - started > self._deadline:
                raise _Late()
            return response.status_code, response.headers, b"".join(chunks)

    def _http(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(transport=self._transport, timeout=httpx.Timeout(self._timeout),
                                        follow_redirects=False)
        return self._client

    def _current_token(self) -> str:
        if self._token is None:
            self._token = self._acquire()
        return self._token

    def _acquire(self) -> str:
        if self._token_env:
            value = os.environ.get(self._token_env, "").strip()
            if not value:
                raise GraphApiError(f"Microsoft Graph: environment variable {self._token_env} is not set; it must "
                                    "hold a Microsoft Graph access token")
        else:
            credential = self._credential or self._chain()
            try:
                value = str(credential.get_token(self._scope).token)
            except GraphApiError:
                raise
            except Exception as exc:  # azure-identity raises several types; all mean "no token"
                text = str(exc).strip()
                first = text.splitlines()[0] if text else type(exc).__name__
                raise GraphApiError(f"Microsoft Graph: no token from the Azure credential chain: {first} (sign in "
                                    "with 'az login', or set AZURE_TENANT_ID, AZURE_CLIENT_ID and "
                                    "AZURE_CLIENT_SECRET)") from None
        register_secret(value)
        return value

    def _chain(self) -> TokenCredential:
        if self._owned_credential is None:
            from azure.identity import DefaultAzureCredential

            # Without a handler, Python prints the chain's multi-line warnings on stderr; the one-line error says
            # the same. An application that configures logging still receives them.
            logging.getLogger("azure.identity").addHandler(logging.NullHandler())
            self._owned_credential = DefaultAzureCredential()
        credential: TokenCredential = self._owned_credential
        return credential

    def _backoff(self, retries: int) -> float:
        return self._retry.backoff(min(retries, 30) + 1)

    def _describe(self, error: Exception) -> str:
        return describe_http_error(error, self._timeout, self._deadline)


class _Late(TimeoutError):
    """The answer did not complete within the request's deadline."""


def _json_object(shown: str, status: int, content: bytes) -> Json | None:
    if not content.strip():
        return None
    try:
        data = json.loads(content)
    except (ValueError, RecursionError):
        raise GraphApiError(f"{shown}: HTTP {status} with an answer that is not JSON", status) from None
    if not isinstance(data, dict):
        raise GraphApiError(f"{shown}: HTTP {status} with JSON that is not an object", status)
    return data


def _graph_error(content: bytes) -> tuple[str | None, str | None]:
    """Graph's error ``code`` and ``message`` (each one line, trimmed), when the body is Graph's error object."""
    try:
        error = json.loads(content).get("error")
    except (ValueError, RecursionError, AttributeError):
        return None, None
    if not isinstance(error, dict):
        return None, None
    code, message = error.get("code"), error.get("message")
    return (_one_line(code) if code else None), (_one_line(message) if message else None)


def _one_line(value: Any, limit: int = 300) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[:limit] + "..."
