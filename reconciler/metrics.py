"""The reconcile loop's metrics and health over HTTP: ``reconciler reconcile --listen HOST:PORT``.

:class:`LoopMetrics` is the loop's ``observe`` hook (:class:`~reconciler.loop.CycleReport` after each app's part of
a cycle); it keeps its own Prometheus registry (never the process-wide one) and each app's health.
:class:`MetricsServer` serves, in a daemon thread:

- ``/metrics``: the registry in Prometheus's text format (OpenMetrics when the scraper asks for it; gzip when it
  accepts it), by ``prometheus_client``'s exposition;
- ``/healthz``: 200 and ``{"status": "ok", "apps": {...}}`` while every app is healthy; 503 when an app is
  quarantined (more than one consecutive failed cycle) or its last successful cycle (or, before one, the start of
  the service) is older than ``unhealthy_after``;
- ``/livez``: 200 while the loop makes progress (some app's cycle ended, whatever its outcome, within
  ``unhealthy_after``); 503 when it is wedged. A quarantined app keeps the loop alive: restarting it cannot help.

The metrics (``app`` is the manifest's name; every other label takes values from a closed set):

==============================================  =================================================================
``reconciler_cycles_total``                     cycles by ``app`` and ``outcome`` (:data:`~reconciler.loop.OUTCOMES`)
``reconciler_objects_written_total``            objects written by ``app``, ``action`` and ``status`` (success,
                                                failure)
``reconciler_object_failures_total``            objects that failed in a cycle (failed writes, objects that could
                                                not be mapped), by ``app``: the escrow's input
``reconciler_escrow_objects``                   objects in the app's escrow after its last cycle
``reconciler_quarantined``                      1 while the app is quarantined, else 0
``reconciler_consecutive_failures``             the app's consecutive failed cycles
``reconciler_last_success_timestamp_seconds``   when the app's last successful cycle ended (seconds since the epoch)
``reconciler_last_cycle_timestamp_seconds``     when the app's last cycle ended, whatever its outcome
``reconciler_cycle_duration_seconds``           a histogram of cycle durations by ``app`` and ``mode`` (full,
                                                incremental)
==============================================  =================================================================

Safe defaults: the server has **no authentication**; it listens on loopback unless told otherwise (``--listen
PORT`` means ``127.0.0.1:PORT``); give it a pod network address only where the network is private. Nothing it
serves holds a token or personal data: app names, counts, times and Entra's quarantine reasons. Every connection
has a read timeout and a total deadline, at most :data:`MAX_CONNECTIONS` are served at once (more are closed at
once), one request per connection, and every answer is bounded (:data:`MAX_BODY`), so a slow or hostile client
cannot hold the server.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.exposition import choose_encoder

from reconciler.errors import ReconcilerError
from reconciler.loop import OUTCOMES, CycleReport, format_duration, wall_iso

DEFAULT_HOST = "127.0.0.1"
READ_TIMEOUT = 5.0        # seconds a connection may sit idle while its request is read or its answer written
DEADLINE = 10.0           # seconds a connection may live in all
MAX_CONNECTIONS = 16      # connections served at once; more are closed at once
MAX_BODY = 4 * 1024 * 1024
MIN_UNHEALTHY_AFTER = 1800.0
ACTIONS = ("create", "adopt", "update", "disable", "delete")
MODES = ("full", "incremental")
REASON_CHARS = 100
DURATION_BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400)
_LISTEN = re.compile(r"(?:(?P<host>\[[0-9A-Fa-f:.]+\]|[^:\[\]]+):)?(?P<port>\d{1,5})")


def parse_listen(text: str) -> tuple[str, int]:
    """``PORT`` (on 127.0.0.1), ``HOST:PORT`` or ``[IPV6]:PORT`` as (host, port); port 0 picks a free one."""
    match = _LISTEN.fullmatch(text.strip())
    port = int(match.group("port")) if match else -1
    if match is None or port > 65535:
        raise ReconcilerError(f"reconcile: --listen {text!r}: expected PORT or HOST:PORT, e.g. 127.0.0.1:9464")
    host = match.group("host") or DEFAULT_HOST
    return host.strip("[]"), port


def default_unhealthy_after(interval: float) -> float:
    """Three intervals, and at least 30 minutes (a first full cycle of a large tenant takes a while)."""
    return max(3 * interval, MIN_UNHEALTHY_AFTER)


def _closed(value: str, allowed: Iterable[str]) -> str:
    return value if value in allowed else "other"


@dataclass
class _App:
    outcome: str | None = None      # the last cycle's (None: no cycle yet)
    failures: int = 0
    reason: str | None = None
    last_success: float | None = None
    last_cycle: float | None = None


class LoopMetrics:
    """The loop's metrics (a registry of their own) and each app's health; :meth:`observe` is the loop's hook.

    ``wall`` (seconds since the epoch) is injectable so that tests can age a success without waiting.
    """

    def __init__(self, apps: Iterable[str], *, unhealthy_after: float,
                 wall: Callable[[], float] = time.time) -> None:
        self.unhealthy_after = unhealthy_after
        self.wall = wall
        self.started = wall()
        # No *_created series: in the text format Prometheus stores each as one more gauge per series. The switch
        # is the library's (process-wide); nothing else in the process exports metrics.
        disable_created_metrics()
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self.cycles = Counter("reconciler_cycles", "Cycles by app and outcome.", ["app", "outcome"],
                              registry=registry)
        self.written = Counter("reconciler_objects_written", "Objects written by app, action and status.",
                               ["app", "action", "status"], registry=registry)
        self.object_failures = Counter("reconciler_object_failures",
                                       "Objects that failed in a cycle (writes, objects not mappable).", ["app"],
                                       registry=registry)
        self.escrow = Gauge("reconciler_escrow_objects", "Objects in the app's escrow after its last cycle.",
                            ["app"], registry=registry)
        self.quarantined = Gauge("reconciler_quarantined", "1 while the app is quarantined.", ["app"],
                                 registry=registry)
        self.consecutive = Gauge("reconciler_consecutive_failures", "Consecutive failed cycles.", ["app"],
                                 registry=registry)
        self.last_success = Gauge("reconciler_last_success_timestamp_seconds",
                                  "When the app's last successful cycle ended.", ["app"], registry=registry)
        self.last_cycle = Gauge("reconciler_last_cycle_timestamp_seconds",
                                "When the app's last cycle ended, whatever its outcome.", ["app"], registry=registry)
        self.duration = Histogram("reconciler_cycle_duration_seconds", "Cycle durations by app and mode.",
                                  ["app", "mode"], buckets=DURATION_BUCKETS, registry=registry)
        self._lock = threading.Lock()
        self._apps: dict[str, _App] = {}
        for app in apps:
            self._apps[app] = _App()
            for outcome in OUTCOMES:  # zero from the start, so that rate() and increase() see the first cycle
                self.cycles.labels(app, outcome)
            self.quarantined.labels(app).set(0)
            self.consecutive.labels(app).set(0)

    def observe(self, report: CycleReport) -> None:
        """Record one app's part of a cycle."""
        app = report.app
        self.cycles.labels(app, _closed(report.outcome, OUTCOMES)).inc()
        for action, count in report.written.items():
            self.written.labels(app, _closed(action, ACTIONS), "success").inc(count)
        for action, count in report.failed_writes.items():
            self.written.labels(app, _closed(action, ACTIONS), "failure").inc(count)
        if report.failed_objects:
            self.object_failures.labels(app).inc(report.failed_objects)
        if report.escrow is not None:
            self.escrow.labels(app).set(report.escrow)
        self.quarantined.labels(app).set(1 if report.quarantined else 0)
        self.consecutive.labels(app).set(report.failures)
        self.last_cycle.labels(app).set(report.finished)
        if report.outcome not in ("backoff", "stopped"):
            self.duration.labels(app, _closed(report.mode, MODES)).observe(report.duration)
        with self._lock:
            state = self._apps.setdefault(app, _App())
            state.outcome, state.failures, state.last_cycle = report.outcome, report.failures, report.finished
            state.reason = report.reason[:REASON_CHARS] if report.reason else None
            if report.outcome == "converged":
                state.last_success = report.finished
                self.last_success.labels(app).set(report.finished)

    def health(self) -> tuple[bool, dict[str, Any]]:
        """Whether every app is healthy, and the JSON body that says so per app."""
        now = self.wall()
        apps: dict[str, Any] = {}
        with self._lock:
            items = sorted((name, _App(**vars(state))) for name, state in self._apps.items())
        for name, state in items:
            since = state.last_success if state.last_success is not None else self.started
            if state.failures > 1:
                status = "quarantined"
            elif now - since > self.unhealthy_after:
                status = "stale"
            else:
                status = "ok"
            entry: dict[str, Any] = {
                "status": status, "lastOutcome": state.outcome,
                "lastSuccess": wall_iso(state.last_success) if state.last_success is not None else None,
                "consecutiveFailures": state.failures, "quarantined": state.failures > 1}
            if state.reason and state.failures:
                entry["reason"] = state.reason
            if status == "stale":
                entry["detail"] = (f"no successful cycle for {format_duration(now - since)} (more than "
                                   f"{format_duration(self.unhealthy_after)})")
            apps[name] = entry
        healthy = all(a["status"] == "ok" for a in apps.values())
        return healthy, {"status": "ok" if healthy else "unhealthy", "apps": apps}

    def liveness(self) -> tuple[bool, dict[str, Any]]:
        """Whether the loop makes progress: some app's cycle ended (any outcome) within ``unhealthy_after``."""
        with self._lock:
            ends = [s.last_cycle for s in self._apps.values() if s.last_cycle is not None]
        last = max(ends, default=None)
        alive = self.wall() - (last if last is not None else self.started) <= self.unhealthy_after
        return alive, {"status": "ok" if alive else "stalled",
                       "lastCycle": wall_iso(last) if last is not None else None}


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "reconciler"
    sys_version = ""
    protocol_version = "HTTP/1.0"  # one request per connection: nobody holds a thread with keep-alive

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.read_timeout)  # for every read and write
        self._deadline = threading.Timer(self.server.deadline, self._expire)
        self._deadline.daemon = True
        self._deadline.start()

    def _expire(self) -> None:
        """The connection's total deadline: a client trickling its request byte by byte is cut off too."""
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def finish(self) -> None:
        self._deadline.cancel()
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:  # stdout is one line per cycle
        pass

    def _send(self, status: int, body: bytes, content_type: str, *, head: bool = False,
              headers: dict[str, str] | None = None) -> None:
        if len(body) > MAX_BODY:
            status, body, content_type, headers = 500, b"answer too large\n", "text/plain; charset=utf-8", None
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _answer(self, head: bool) -> None:
        path = urlsplit(self.path).path
        metrics = self.server.metrics
        if path == "/metrics":
            encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
            body = encoder(metrics.registry)
            extra: dict[str, str] = {}
            if "gzip" in self.headers.get("Accept-Encoding", ""):
                body, extra = gzip.compress(body), {"Content-Encoding": "gzip"}
            self._send(200, body, content_type, head=head, headers=extra)
        elif path in ("/healthz", "/livez"):
            ok, document = metrics.health() if path == "/healthz" else metrics.liveness()
            body = (json.dumps(document, separators=(",", ":")) + "\n").encode()
            self._send(200 if ok else 503, body, "application/json", head=head)
        else:
            self._send(404, b"not found: try /metrics, /healthz or /livez\n", "text/plain; charset=utf-8", head=head)

    def do_GET(self) -> None:
        self._answer(head=False)

    def do_HEAD(self) -> None:
        self._answer(head=True)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = MAX_CONNECTIONS
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], metrics: LoopMetrics, *, family: socket.AddressFamily,
                 read_timeout: float, deadline: float) -> None:
        self.address_family = family
        self.metrics = metrics
        self.read_timeout = read_timeout
        self.deadline = deadline
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):  # every slot busy: close at once rather than queue
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client gone mid-answer is its own business: no traceback on stderr


class MetricsServer:
    """``/metrics``, ``/healthz`` and ``/livez`` of ``metrics`` on ``host:port``, served by a daemon thread while
    the ``with`` block runs (the loop's lifetime). A bind that fails is a one-line :class:`ReconcilerError`."""

    def __init__(self, host: str, port: int, metrics: LoopMetrics, *, read_timeout: float = READ_TIMEOUT,
                 deadline: float = DEADLINE) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        where = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
        try:
            self._server = _Server((host, port), metrics, family=family, read_timeout=read_timeout,
                                   deadline=deadline)
        except (OSError, OverflowError) as error:
            reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
            raise ReconcilerError(f"reconcile: --listen {where}: cannot listen ({reason})") from None
        self.host = host
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="reconciler-metrics", daemon=True)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()
