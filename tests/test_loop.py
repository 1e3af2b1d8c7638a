"""``reconciler reconcile``: cycles against the embedded target, the quarantine backoff, and a clean stop."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.cli import main
from reconciler.errors import ReconcilerError
from reconciler.lock import STATE_DIR_ENV
from reconciler.loop import (
    LoopOptions,
    ReconcileLoop,
    Stopping,
    backoff,
    converge_once,
    format_duration,
    parse_duration,
)
from reconciler.run import RunOptions
from tests.reconcile_helpers import ROOT, TOKEN, atea, by_username, directory, listing, many_users, stop_service

ATEA = str(ROOT / "manifests" / "atea.yaml")


@pytest.fixture(autouse=True)
def state(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv(STATE_DIR_ENV, str(tmp_path / "state"))


@pytest.mark.parametrize(("text", "seconds"), [("90", 90), ("30s", 30), ("5m", 300), ("1h30m", 5400),
                                                ("250ms", 0.25), ("1d", 86400), ("1.5h", 5400)])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0s", "5 minutes", "m5", "1h-5m", "-1"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ReconcilerError, match="duration"):
        parse_duration(text)


def test_backoff_doubles_up_to_the_cap() -> None:
    assert [backoff(600, n, 86400) for n in (1, 2, 3, 4)] == [600, 1200, 2400, 4800]
    assert backoff(600, 20, 86400) == 86400
    assert format_duration(5400) == "1h30m" and format_duration(90) == "1m30s" and format_duration(59) == "59s"


def delete_user(url: str, user_name: str) -> None:
    user = by_username(url)[user_name]
    httpx.delete(f"{url}/Users/{user['id']}", headers={"Authorization": f"Bearer {TOKEN}"}).raise_for_status()


def test_two_cycles_correct_drift(url: str, tmp_path: Path) -> None:
    lines: list[str] = []

    def emit(line: str) -> None:
        lines.append(line)
        if len(lines) == 1:  # drift between the cycles: someone deletes a user in the app
            delete_user(url, "megan.bowen@contoso.com")

    options = LoopOptions(interval=0.01, max_cycles=2, run=RunOptions(directory=directory(tmp_path), target=url,
                                                                     log_path=str(tmp_path / "log.jsonl")))
    code = ReconcileLoop([atea()], options, stop=threading.Event(), emit=emit).run()
    assert code == 0
    assert len(lines) == 2
    assert lines[0].startswith("cycle 1 ") and "atea: 10 create; converged" in lines[0] and "next cycle in" in lines[0]
    assert lines[1].startswith("cycle 2 ") and "atea: 1 create; converged (1 write(s))" in lines[1]
    assert "megan.bowen@contoso.com" in by_username(url) and len(listing(url)) == 10
    records = [json.loads(x) for x in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert sum(r["status"] == "Success" for r in records) == 11 and len({r["cycleId"] for r in records}) == 2
    assert len({r["jobId"] for r in records}) == 1  # one app, one target: one job across cycles


def test_consecutive_failures_back_off_like_entra_quarantine(url: str, tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("ATEA_SCIM_TOKEN", "a-rejected-token-value")
    now = [1000.0]
    lines: list[str] = []

    def emit(line: str) -> None:
        lines.append(line)
        if len(lines) == 3:
            monkeypatch.setenv("ATEA_SCIM_TOKEN", TOKEN)  # someone fixes the secret

    def sleep(seconds: float) -> None:
        now[0] += seconds

    options = LoopOptions(interval=60, max_cycles=5, run=RunOptions(directory=directory(tmp_path), target=url))
    code = ReconcileLoop([atea()], options, stop=threading.Event(), emit=emit, clock=lambda: now[0],
                         rand=lambda: 0.5, sleep=sleep).run()
    first, second, third, fourth, fifth = lines
    assert "atea: FAILED: " in first and "401" in first and "quarantine" not in first
    assert "2 consecutive failures: quarantined like Entra's provisioning quarantine, next attempt in 2m" in second
    assert "atea: quarantined after 2 consecutive failure(s), next attempt in 1m" in third
    assert "atea: 10 create; converged" in fourth and "out of quarantine after 2 failure(s)" in fourth
    assert "atea: no changes; converged (0 write(s))" in fifth
    assert code == 0
    assert not any("a-rejected-token-value" in line for line in lines)


def test_a_stop_refuses_new_requests(url: str, tmp_path: Path) -> None:
    import asyncio

    stop = threading.Event()
    stop.set()
    options = LoopOptions(interval=60, run=RunOptions(directory=directory(tmp_path), target=url))
    with pytest.raises(Stopping):
        asyncio.run(converge_once(atea(), options, stop))
    assert listing(url) == []


def test_once_exit_codes(url: str, tmp_path: Path, capsys: Any, monkeypatch: Any) -> None:
    snapshot = directory(tmp_path)
    assert main(["reconcile", ATEA, "--directory", snapshot, "--target", url, "--interval", "1m", "--once"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("reconcile: atea every 1m") and "atea: 10 create; converged" in out[1]
    monkeypatch.setenv("ATEA_SCIM_TOKEN", "a-rejected-token-value")
    assert main(["reconcile", ATEA, "--directory", snapshot, "--target", url, "--interval", "1m",
                 "--max-cycles", "1"]) == 1
    assert "FAILED" in capsys.readouterr().out
    assert main(["reconcile", ATEA, "--interval", "soon"]) == 1
    assert "duration 'soon'" in capsys.readouterr().err


def start(url: str, snapshot: str, tmp_path: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "ATEA_SCIM_TOKEN": TOKEN, STATE_DIR_ENV: str(tmp_path / "state")}
    return subprocess.Popen([sys.executable, "-m", "reconciler", "reconcile", ATEA, "--directory", snapshot,
                             "--target", url, "--interval", "1h"], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_sigterm_while_sleeping_stops_at_once(url: str, tmp_path: Path) -> None:
    process = start(url, directory(tmp_path), tmp_path)
    assert process.stdout is not None
    assert process.stdout.readline().startswith("reconcile: atea every 1h")
    assert "atea: 10 create; converged" in process.stdout.readline()
    stop_service(process)


def test_sigterm_during_a_cycle_stops_cleanly_and_the_next_run_resumes(url: str, tmp_path: Path,
                                                                        capsys: Any) -> None:
    snapshot = directory(tmp_path, many_users, "big.json")
    process = start(url, snapshot, tmp_path)
    try:
        assert process.stdout is not None
        assert process.stdout.readline().startswith("reconcile: atea every 1h")
        process.send_signal(signal.SIGTERM)  # during the first cycle: discovery, reads or writes
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=30)
    assert process.returncode == 0, err
    # The signal lands before the first cycle, during it (between requests), or after it: all stop cleanly.
    assert re.search(r"reconcile: stopped after [01] cycle\(s\)$", out.strip()), out
    assert "Traceback" not in err and "Task exception was never retrieved" not in err
    assert "FAILED" not in out
    if "cycle 1 " in out:  # stopped before the app's run began, between its requests, or after it finished
        assert any(outcome in out for outcome in (
            "atea: skipped (stopping)", "atea: stopped between requests; the next run resumes", "converged")), out
    assert main(["apply", ATEA, "--directory", snapshot, "--target", url]) == 0
    assert "converged" in capsys.readouterr().out
    assert len(by_username(url)) == 610  # no duplicates (by_username checks), nothing missing


def test_the_deletion_guard_fails_the_cycle_and_writes_nothing(url: str, tmp_path: Path, monkeypatch: Any) -> None:
    from tests.reconcile_helpers import converge

    guarded = atea(**{"deletionThreshold: 50": "deletionThreshold: 1"})
    converge(guarded, url, directory(tmp_path), monkeypatch)

    def unassign(data: dict[str, Any]) -> None:
        next(g for g in data["groups"] if g["displayName"] == "Atea Users")["members"] = []

    lines: list[str] = []
    options = LoopOptions(interval=60, max_cycles=1,
                          run=RunOptions(directory=directory(tmp_path, unassign, "gone.json"), target=url))
    code = ReconcileLoop([guarded], options, stop=threading.Event(), emit=lines.append).run()
    assert code == 1
    [line] = lines
    assert "atea: FAILED: atea: deletion guard:" in line and "nothing was applied" in line
    assert all(u.get("active", True) for u in listing(url))
