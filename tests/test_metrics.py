"""``reconcile --listen``: /metrics scraped over HTTP and parsed, /healthz and /livez, and a server that a slow
client cannot hold."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from reconciler.cli import main
from reconciler.errors import ReconcilerError
from reconciler.lock import STATE_DIR_ENV
from reconciler.loop import LoopOptions, ReconcileLoop
from reconciler.metrics import MAX_CONNECTIONS, LoopMetrics, MetricsServer, default_unhealthy_after, parse_listen
from reconciler.run import RunOptions
from tests.hostile import Reply, Request, serving
from tests.reconcile_helpers import ROOT, TOKEN, atea, directory, stop_service

ATEA = str(ROOT / "manifests" / "atea.yaml")
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(base: str) -> Samples:
    """Every sample of /metrics, parsed by prometheus_client's own parser."""
    answer = httpx.get(f"{base}/metrics", timeout=10)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(answer.text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def health(base: str, path: str = "/healthz") -> tuple[int, dict[str, Any]]:
    answer = httpx.get(f"{base}{path}", timeout=10)
    assert answer.headers["content-type"] == "application/json"
    return answer.status_code, answer.json()


@contextmanager
def loop_serving(metrics: LoopMetrics) -> Iterator[str]:
    with MetricsServer("127.0.0.1", 0, metrics) as server:
        yield server.url


@pytest.mark.parametrize(("text", "address"), [("9464", ("127.0.0.1", 9464)), ("0.0.0.0:9464", ("0.0.0.0", 9464)),
                                               ("localhost:0", ("localhost", 0)), ("[::1]:9464", ("::1", 9464))])
def test_listen_addresses(text: str, address: tuple[str, int]) -> None:
    assert parse_listen(text) == address


@pytest.mark.parametrize("text", ["", "host", ":9464", "127.0.0.1:", "127.0.0.1:70000", "::1:9464", "a:b:1"])
def test_bad_listen_addresses(text: str) -> None:
    with pytest.raises(ReconcilerError, match="--listen"):
        parse_listen(text)


def test_unhealthy_after_defaults_to_three_intervals_and_at_least_half_an_hour() -> None:
    assert default_unhealthy_after(600) == 1800 and default_unhealthy_after(3600) == 10800
    assert default_unhealthy_after(10) == 1800


def test_the_service_serves_metrics_and_health_after_a_clean_cycle(url: str, tmp_path: Path) -> None:
    env = {**os.environ, "ATEA_SCIM_TOKEN": TOKEN, STATE_DIR_ENV: str(tmp_path / "state")}
    process = subprocess.Popen([sys.executable, "-m", "reconciler", "reconcile", ATEA, "--directory",
                                directory(tmp_path), "--target", url, "--interval", "1h", "--listen",
                                "127.0.0.1:0"], cwd=ROOT, env=env, text=True, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    assert process.stdout is not None
    assert process.stdout.readline().startswith("reconcile: atea every 1h")
    serving_line = process.stdout.readline()
    assert serving_line.startswith("reconcile: serving http://127.0.0.1:"), serving_line
    assert "no authentication" in serving_line and "unhealthy after 3h" in serving_line
    base = serving_line.split()[2].removesuffix("/metrics,")
    assert "atea: 10 create; converged" in process.stdout.readline()
    samples = scrape(base)
    assert value(samples, "reconciler_cycles_total", app="atea", outcome="converged") == 1
    assert value(samples, "reconciler_cycles_total", app="atea", outcome="failed") == 0
    assert value(samples, "reconciler_objects_written_total", app="atea", action="create",
                 status="success") == 10
    assert value(samples, "reconciler_escrow_objects", app="atea") == 0
    assert value(samples, "reconciler_quarantined", app="atea") == 0
    assert value(samples, "reconciler_consecutive_failures", app="atea") == 0
    assert (value(samples, "reconciler_last_success_timestamp_seconds", app="atea") or 0) > 0
    assert value(samples, "reconciler_cycle_duration_seconds_count", app="atea", mode="full") == 1
    assert value(samples, "reconciler_cycle_duration_seconds_bucket", app="atea", mode="full", le="+Inf") == 1
    assert not [name for name, _ in samples if name.endswith("_created")]  # no extra series per series
    status, body = health(base)
    assert status == 200 and body["status"] == "ok"
    assert body["apps"]["atea"]["status"] == "ok" and body["apps"]["atea"]["lastOutcome"] == "converged"
    assert health(base, "/livez")[0] == 200
    assert TOKEN not in httpx.get(f"{base}/metrics").text
    stop_service(process)


def rejecting(request: Request) -> Reply:
    return Reply(401, {"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": "401",
                       "detail": "token rejected"})


def test_a_quarantined_app_makes_healthz_answer_503(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("ATEA_SCIM_TOKEN", TOKEN)
    now = [1000.0]
    lines: list[str] = []
    with serving(rejecting) as target:
        metrics = LoopMetrics(["atea"], unhealthy_after=3600, wall=lambda: 1_700_000_000 + now[0])
        with loop_serving(metrics) as base:
            assert health(base)[0] == 200  # no cycle yet: starting, healthy

            def sleep(seconds: float) -> None:
                now[0] += seconds

            options = LoopOptions(interval=60, max_cycles=3,
                                  run=RunOptions(directory=directory(tmp_path), target=target.url))
            code = ReconcileLoop([atea()], options, stop=threading.Event(), emit=lines.append,
                                 clock=lambda: now[0], wall=lambda: 1_700_000_000 + now[0], rand=lambda: 0.5,
                                 sleep=sleep, observe=metrics.observe).run()
            assert code == 1
            status, body = health(base)
            samples = scrape(base)
            live = health(base, "/livez")
        assert target.requests  # the cycles reached the target and were refused
    assert "401" in lines[0] and "quarantined" in lines[2]
    assert status == 503 and body["status"] == "unhealthy"
    app = body["apps"]["atea"]
    assert app["status"] == "quarantined" and app["quarantined"] is True and app["consecutiveFailures"] == 2
    assert app["lastSuccess"] is None and app["reason"] == "EncounteredQuarantineException"
    assert value(samples, "reconciler_quarantined", app="atea") == 1
    assert value(samples, "reconciler_consecutive_failures", app="atea") == 2
    assert value(samples, "reconciler_cycles_total", app="atea", outcome="failed") == 2
    assert value(samples, "reconciler_cycles_total", app="atea", outcome="backoff") == 1  # the third waited
    assert value(samples, "reconciler_cycle_duration_seconds_count", app="atea", mode="full") == 2
    assert value(samples, "reconciler_last_success_timestamp_seconds", app="atea") is None
    assert live[0] == 200  # the loop itself goes on: restarting it cannot help


def test_healthz_answers_503_when_the_last_success_is_too_old(url: str, tmp_path: Path) -> None:
    wall = [1_700_000_000.0]
    metrics = LoopMetrics(["atea"], unhealthy_after=1800, wall=lambda: wall[0])
    with loop_serving(metrics) as base:
        options = LoopOptions(interval=600, max_cycles=1, run=RunOptions(directory=directory(tmp_path), target=url))
        assert ReconcileLoop([atea()], options, stop=threading.Event(), emit=lambda line: None,
                             wall=lambda: wall[0], observe=metrics.observe).run() == 0
        assert health(base)[0] == 200
        wall[0] += 1801  # no cycle since: a wedged loop, or one cycle that takes far too long
        status, body = health(base)
        live, _ = health(base, "/livez")
    assert status == 503 and body["apps"]["atea"]["status"] == "stale"
    assert "no successful cycle for 30m" in body["apps"]["atea"]["detail"]
    assert live == 503


def test_a_slow_client_does_not_stop_a_scrape() -> None:
    metrics = LoopMetrics(["atea"], unhealthy_after=3600)
    with (MetricsServer("127.0.0.1", 0, metrics, read_timeout=60, deadline=60) as server,
          socket.create_connection(("127.0.0.1", server.port)),  # connects and sends nothing
          socket.create_connection(("127.0.0.1", server.port)) as trickling):
        trickling.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
        samples = scrape(server.url)  # served at once while both hang for up to a minute
        assert value(samples, "reconciler_quarantined", app="atea") == 0
        assert health(server.url)[0] == 200
    with pytest.raises(httpx.TransportError):  # stopped with the loop
        httpx.get(f"{server.url}/metrics", timeout=5)


def test_slow_clients_are_cut_off_by_the_deadline() -> None:
    metrics = LoopMetrics(["atea"], unhealthy_after=3600)
    with (MetricsServer("127.0.0.1", 0, metrics, read_timeout=0.2, deadline=0.5) as server,
          socket.create_connection(("127.0.0.1", server.port), timeout=30) as silent):
        assert silent.recv(1) == b""  # the read timeout closes an idle connection
    with (MetricsServer("127.0.0.1", 0, metrics, read_timeout=60, deadline=0.5) as server,
          socket.create_connection(("127.0.0.1", server.port), timeout=30) as trickling):
        trickling.sendall(b"GET /metrics HTTP/1.1\r\n")
        trickling.sendall(b"Host: x\r\n")  # each line well within the read timeout, but the whole too slow
        assert trickling.recv(1024) == b""  # the total deadline closes it, whatever the read timeout says


def test_connections_past_the_limit_are_closed_at_once() -> None:
    metrics = LoopMetrics(["atea"], unhealthy_after=3600)
    with MetricsServer("127.0.0.1", 0, metrics, read_timeout=60, deadline=60) as server:
        held = [socket.create_connection(("127.0.0.1", server.port), timeout=30) for _ in range(MAX_CONNECTIONS)]
        try:
            with socket.create_connection(("127.0.0.1", server.port), timeout=30) as extra:
                assert extra.recv(1) == b""  # not queued behind the slow ones for a minute
        finally:
            for connection in held:
                connection.close()
        for _ in range(100):  # the slots come back as the server sees the slow ones go
            try:
                assert scrape(server.url)
                break
            except httpx.TransportError:
                threading.Event().wait(0.05)
        else:
            pytest.fail("the server did not recover its connection slots")


def test_other_paths_and_methods(tmp_path: Path) -> None:
    metrics = LoopMetrics(["atea"], unhealthy_after=3600)
    with loop_serving(metrics) as base:
        assert httpx.get(f"{base}/", timeout=10).status_code == 404
        assert httpx.post(f"{base}/metrics", content=b"x", timeout=10).status_code == 501
        head = httpx.head(f"{base}/healthz", timeout=10)
        assert head.status_code == 200 and head.content == b""
        zipped = httpx.get(f"{base}/metrics", headers={"Accept-Encoding": "gzip"}, timeout=10)
        assert zipped.headers.get("content-encoding") == "gzip" and "reconciler_cycles_total" in zipped.text
        openmetrics = httpx.get(f"{base}/metrics", headers={"Accept": "application/openmetrics-text"}, timeout=10)
        assert openmetrics.headers["content-type"].startswith("application/openmetrics-text")
        assert openmetrics.text.rstrip().endswith("# EOF")


def test_listen_errors_are_one_line(tmp_path: Path, capsys: Any) -> None:
    snapshot = directory(tmp_path)
    assert main(["reconcile", ATEA, "--directory", snapshot, "--interval", "1m", "--once",
                 "--unhealthy-after", "5m"]) == 1
    assert capsys.readouterr().err.strip() == "reconcile: --unhealthy-after needs --listen"
    assert main(["reconcile", ATEA, "--directory", snapshot, "--interval", "1m", "--once", "--listen", "x:y"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--listen 'x:y'" in err
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["reconcile", ATEA, "--directory", snapshot, "--target", "http://127.0.0.1:9/v2",
                     "--interval", "1m", "--once", "--listen", f"127.0.0.1:{port}"]) == 1
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and f"--listen 127.0.0.1:{port}: cannot listen" in err and "Traceback" not in err
    assert "cycle 1" not in out  # nothing ran


def test_a_hook_that_raises_does_not_stop_the_loop(url: str, tmp_path: Path) -> None:
    def broken(report: Any) -> None:
        raise RuntimeError("a bug in an observer")

    lines: list[str] = []
    options = LoopOptions(interval=60, max_cycles=1, run=RunOptions(directory=directory(tmp_path), target=url))
    assert ReconcileLoop([atea()], options, stop=threading.Event(), emit=lines.append, observe=broken).run() == 0
    assert "atea: 10 create; converged" in lines[0]


def test_healthz_body_names_every_app_briefly() -> None:
    metrics = LoopMetrics(["atea", "wiki"], unhealthy_after=3600)
    ok, body = metrics.health()
    assert ok and set(body["apps"]) == {"atea", "wiki"}
    assert len(json.dumps(body)) < 400
