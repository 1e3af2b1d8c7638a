"""Small hostile HTTP servers on loopback, for tests of what a misbehaving SCIM or Graph server gets.

``serving(app)`` runs ``app`` in a threaded ``http.server`` on 127.0.0.1 and yields its base URL. ``app`` is called
once per request with a :class:`Request` and returns a :class:`Reply` (status, headers, body), or writes to the
socket itself through ``request.handler`` (for trickling, endless or truncated answers) and returns None.
Every request is recorded in ``server.requests`` (method, path with query, headers, body).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    path: str                      # with the query string
    headers: dict[str, str]
    body: bytes
    handler: BaseHTTPRequestHandler

    @property
    def route(self) -> str:
        return urlsplit(self.path).path

    @property
    def query(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(urlsplit(self.path).query, keep_blank_values=True).items()}

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class Reply:
    status: int = 200
    body: Any = None               # bytes and str are sent as they are; anything else as JSON
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/scim+json"

    def encoded(self) -> bytes:
        if self.body is None:
            return b""
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        return json.dumps(self.body).encode()


App = Callable[[Request], "Reply | None"]


class HostileServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, app: App) -> None:
        self.app = app
        self.requests: list[Request] = []
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: HostileServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        request = Request(self.command, self.path, {k: v for k, v in self.headers.items()}, body, self)
        with self.server.lock:
            self.server.requests.append(request)
        try:
            reply = self.server.app(request)
        except (BrokenPipeError, ConnectionResetError):
            return
        if reply is None:
            self.close_connection = True
            return
        payload = reply.encoded()
        try:
            self.send_response(reply.status)
            headers = {"Content-Length": str(len(payload)), **reply.headers}
            if payload and "Content-Type" not in headers:
                headers["Content-Type"] = reply.content_type
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle


@contextmanager
def serving(app: App) -> Iterator[HostileServer]:
    """Serve ``app`` on a free loopback port for the duration of the block."""
    server = HostileServer(app)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def scim_list(resources: list[dict[str, Any]], *, total: int | None = None, start: int = 1) -> dict[str, Any]:
    """A SCIM ListResponse body."""
    return {"schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
            "totalResults": len(resources) if total is None else total, "startIndex": start,
            "itemsPerPage": len(resources), "Resources": resources}
