"""A fault-injecting HTTP proxy on loopback, in front of a real SCIM server, for tests.

Rules (:class:`Fault`) match a request by method and path and then, a bounded number of times:

- ``status``: answer ``status`` (with ``Retry-After`` if given) without forwarding;
- ``drop``: close the connection without forwarding (the request is never applied);
- ``lose_response``: forward the request (so the server applies it), then close the connection unanswered;
- ``stall``: forward the request, then hold the connection unanswered for ``delay`` seconds (a client timeout);
- ``rewrite``: forward with the query rewritten by ``query``, then pass the JSON answer through ``response``
  (to imitate servers that cap or ignore ``count``, misreport totals, or serve page 1 again past the end).

Every request is logged in :attr:`FaultProxy.log` as ``(method, path, action)``.
"""

from __future__ import annotations

import http.client
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

Query = dict[str, str]
Refetch = Callable[[Query], Any]
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length", "proxy-connection"})


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256


@dataclass
class Fault:
    """One rule. ``path`` is a regular expression searched in the request path (without the query);
    ``times`` None means every matching request."""

    action: str
    method: str | None = None
    path: str | None = None
    times: int | None = 1
    status: int = 503
    retry_after: str | None = None
    delay: float = 0.0
    query: Callable[[Query], Query] | None = None
    response: Callable[[Query, Any, Refetch], Any] | None = None

    def __post_init__(self) -> None:
        if self.action not in ("status", "drop", "lose_response", "stall", "rewrite"):
            raise ValueError(f"unknown fault action {self.action!r}")

    def matches(self, method: str, path: str) -> bool:
        if self.times is not None and self.times <= 0:
            return False
        if self.method and self.method.upper() != method:
            return False
        return not (self.path and not re.search(self.path, path))


class FaultProxy:
    """``with FaultProxy(upstream_url) as proxy:`` then point the client at ``proxy.url``."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 80
        self.prefix = parts.path.rstrip("/")
        self.faults: list[Fault] = []
        self.log: list[tuple[str, str, str]] = []
        self._lock = threading.Lock()
        self.closing = threading.Event()
        self._server = _ProxyServer(("127.0.0.1", 0), _handler_for(self))
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{self.prefix}"

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self.faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self.faults.clear()

    def actions(self, method: str | None = None) -> list[str]:
        """The actions taken so far, optionally for one method."""
        return [action for m, _, action in self.log if method is None or m == method]

    def take(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.matches(method, path):
                    if fault.times is not None:
                        fault.times -= 1
                    return fault
        return None

    def forward(self, method: str, target: str, headers: dict[str, str], body: bytes) -> tuple[int, list, bytes]:
        connection = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=30)
        try:
            connection.request(method, target, body=body or None, headers=headers)
            answer = connection.getresponse()
            return answer.status, answer.getheaders(), answer.read()
        finally:
            connection.close()

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.closing.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


def _handler_for(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _handle(self) -> None:
            self.close_connection = True
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            split = urlsplit(self.path)
            fault = proxy.take(self.command, split.path)
            action = fault.action if fault else "forward"
            proxy.log.append((self.command, split.path, action))
            if fault and fault.action == "drop":
                return
            if fault and fault.action == "status":
                self._reply(fault.status, [("Retry-After", fault.retry_after)] if fault.retry_after else [],
                            json.dumps({"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
                                        "status": str(fault.status), "detail": "injected fault"}).encode())
                return
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
            query: Query = dict(parse_qsl(split.query, keep_blank_values=True))
            if fault and fault.query:
                query = fault.query(dict(query))

            def target(q: Query) -> str:
                return split.path + (f"?{urlencode(q)}" if q else "")

            status, answer_headers, answer = proxy.forward(self.command, target(query), headers, body)
            if fault and fault.action == "lose_response":
                return
            if fault and fault.action == "stall":
                proxy.closing.wait(fault.delay)
                return
            if fault and fault.response and answer:
                def refetch(q: Query) -> Any:
                    return json.loads(proxy.forward("GET", target(q), headers, b"")[2])

                answer = json.dumps(fault.response(query, json.loads(answer), refetch)).encode()
            self._reply(status, [(k, v) for k, v in answer_headers if k.lower() not in _HOP_BY_HOP], answer)

        def _reply(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
            self.send_response(status)
            for key, value in headers:
                self.send_header(key, value)
            if not any(k.lower() == "content-type" for k, _ in headers):
                self.send_header("Content-Type", "application/scim+json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

    return Handler


def cap_count(limit: int) -> Callable[[Query], Query]:
    """A query rewrite imitating a server that serves at most ``limit`` resources a page."""
    def rewrite(query: Query) -> Query:
        query["count"] = str(min(int(query.get("count", limit)), limit))
        return query
    return rewrite


def ignore_count(size: int) -> Callable[[Query], Query]:
    """A query rewrite imitating a server that ignores ``count`` and serves pages of its own ``size``."""
    def rewrite(query: Query) -> Query:
        query["count"] = str(size)
        return query
    return rewrite


def first_page_past_end(query: Query, body: Any, refetch: Refetch) -> Any:
    """A response rewrite imitating a server that serves page 1 again when ``startIndex`` is past the end, reports
    no ``totalResults`` and a meaningless ``itemsPerPage`` (so only the repeated ids tell the client to stop)."""
    if isinstance(body, dict) and not body.get("Resources") and int(query.get("startIndex", "1")) > 1:
        body = refetch({**query, "startIndex": "1"})
    if isinstance(body, dict):
        body.pop("totalResults", None)
        body["itemsPerPage"] = 0
    return body


def ignore_start_index(query: Query) -> Query:
    """A query rewrite imitating a server that ignores ``startIndex`` (always serves the first page)."""
    query["startIndex"] = "1"
    return query
