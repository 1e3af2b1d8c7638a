"""The embedded SCIM target: scim2-server's WSGI application behind a threaded server on loopback.

scim2-server's own CLI listens with a backlog of 5, so at a few dozen concurrent clients the kernel drops
connections; :class:`_Server` keeps its threads but listens with a backlog of 1024. Storage is scim2-server's
in-memory storage (one lock serialises requests) with optional file persistence (:mod:`reconciler.target.store`).
"""

from __future__ import annotations

import copy
import functools
import hmac
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from scim2_models import UnauthorizedException
from scim2_server.memory import InMemoryStorage
from scim2_server.requests import ScimRequest
from scim2_server.service import ScimService
from scim2_server.testserver.application import BEARER_TOKEN_SCHEME, BearerTokenApplication
from scim2_server.testserver.cli import ThreadingWSGIServer
from scim2_server.utils import load_default_provider

from reconciler.errors import TargetError
from reconciler.target.store import Saver, load_resources

LISTEN_BACKLOG = 1024
_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class _Server(ThreadingWSGIServer):
    request_queue_size = LISTEN_BACKLOG
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class _TokenApplication(BearerTokenApplication):
    """scim2-server's bearer-token application, comparing tokens in constant time."""

    def check_auth(self, request: ScimRequest) -> None:
        if not self.bearer_tokens:
            return
        scheme, _, token = (request.header("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not any(
                hmac.compare_digest(token.encode(), known.encode()) for known in self.bearer_tokens):
            raise UnauthorizedException


class _NotifyWrites:
    """WSGI middleware that calls ``on_write`` after every successful write, for persistence."""

    def __init__(self, app: Callable[..., Iterable[bytes]], on_write: Callable[[], None]) -> None:
        self.app = app
        self.on_write = on_write

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        status: list[str] = []

        def capture(code: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            status.append(code)
            return start_response(code, headers, exc_info) if exc_info else start_response(code, headers)

        body = self.app(environ, capture)
        if environ.get("REQUEST_METHOD") in _WRITES and status and status[0][:1] == "2":
            self.on_write()
        return body


@functools.cache
def _default_provider() -> Any:
    """scim2-server's default provider, built once per process: building it compiles its pydantic models (and
    parses their source), which costs 0.1 s and, on Python 3.11, races with any other thread's ``ast`` use."""
    return load_default_provider()


class TargetServer:
    """A SCIM 2.0 server (base URL ``http://HOST:PORT/v2``), optionally persisted to ``data``.

    ``token`` None means no authentication. Call :meth:`serve_forever` (blocking) or :meth:`start` (a
    background thread), then :meth:`shutdown`, which also writes the data file a last time.
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, token: str | None = None,
                 data: Path | None = None) -> None:
        provider = copy.deepcopy(_default_provider())
        if token and provider.config is not None:
            provider.config.authentication_schemes = [*(provider.config.authentication_schemes or []),
                                                      BEARER_TOKEN_SCHEME]
        self.storage = InMemoryStorage()
        self.data = data
        self.loaded = load_resources(data, self.storage, provider) if data else 0
        app: Any = _TokenApplication(self.storage, provider, ScimService(provider),
                                     bearer_tokens=[token] if token else [])
        self.saver = Saver(data, self.storage) if data else None
        if self.saver:
            app = _NotifyWrites(app, self.saver.changed)
        try:
            self._server: WSGIServer = make_server(host, port, app, server_class=_Server,
                                                   handler_class=_QuietHandler)
        except OSError as error:
            if self.saver:
                self.saver.close()
            raise TargetError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None
        self._thread: threading.Thread | None = None
        self._stopped = False

    def __repr__(self) -> str:
        return f"TargetServer({self.url!r})"

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        name = host.decode() if isinstance(host, bytes) else str(host)
        name = f"[{name}]" if ":" in name else name
        return f"http://{name}:{port}/v2"

    def serve_forever(self) -> None:
        self._server.serve_forever(poll_interval=0.1)

    def start(self) -> TargetServer:
        self._thread = threading.Thread(target=self.serve_forever, name="scim-target", daemon=True)
        self._thread.start()
        return self

    def stop_serving(self) -> None:
        """Stop the accept loop (safe from a signal handler's helper thread); :meth:`shutdown` finishes up."""
        self._server.shutdown()

    def shutdown(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=10)
        self._server.server_close()
        if self.saver:
            self.saver.close()


@contextmanager
def running_target(*, token: str | None = None, data: Path | str | None = None,
                   host: str = "127.0.0.1") -> Iterator[str]:
    """Run the embedded target in a background thread on a free loopback port; yields its base URL."""
    with serving_target(token=token, data=data, host=host) as server:
        yield server.url


@contextmanager
def serving_target(*, token: str | None = None, data: Path | str | None = None,
                   host: str = "127.0.0.1") -> Iterator[TargetServer]:
    """Like :func:`running_target`, yielding the :class:`TargetServer` (its ``url`` and ``storage``)."""
    server = TargetServer(host=host, port=0, token=token, data=Path(data) if data else None).start()
    try:
        yield server
    finally:
        server.shutdown()
