"""Files and paths, locks, and stop signals: snapshot paths stay in the repository, manifests symlinked from
elsewhere are refused, the lock is private and keyed on the normalized target URL, and SIGTERM or SIGINT during
``apply`` stops between requests with one line and the shell's exit code."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reconciler.cli import main
from reconciler.errors import ReconcilerError
from reconciler.lock import STATE_DIR_ENV, LockBusy, lock_path, target_lock
from reconciler.manifest.confine import repository_root
from reconciler.target.faults import Fault, FaultProxy
from reconciler.target.serve import serving_target
from reconciler.targeturl import normalize_target_url
from tests.reconcile_helpers import ROOT, TOKEN, by_username, directory, listing, many_users

ATEA = ROOT / "manifests" / "atea.yaml"
PROBLEM = re.compile(r"^.+:\d+:\d+: ")


@pytest.fixture(autouse=True)
def state(tmp_path: Path, monkeypatch: Any) -> Path:
    folder = tmp_path / "state" / "reconciler"
    monkeypatch.setenv(STATE_DIR_ENV, str(folder))
    return folder


def make_repo(tmp_path: Path, snapshot: str, *, git: bool = True) -> Path:
    """A repository (``git init``) with manifests/atea.yaml whose snapshot key is ``snapshot``."""
    repo = tmp_path / "repo"
    (repo / "manifests").mkdir(parents=True)
    (repo / "data").mkdir()
    (repo / "data" / "directory.json").write_text((ROOT / "examples" / "directory.json").read_text())
    if git:
        subprocess.run(["git", "init", "-q", str(repo)], check=True, capture_output=True)
    text = ATEA.read_text()
    assert "snapshot: ../examples/directory.json" in text
    (repo / "manifests" / "atea.yaml").write_text(text.replace("../examples/directory.json", snapshot))
    return repo


def validate(capsys: Any, *paths: Path) -> tuple[int, list[str]]:
    code = main(["validate", *map(str, paths)])
    return code, [line for line in capsys.readouterr().err.splitlines() if PROBLEM.match(line)]


# -- snapshot paths and symlinked manifests -----------------------------------------------------------------------


def test_a_snapshot_inside_the_repository_is_valid(tmp_path: Path, capsys: Any) -> None:
    repo = make_repo(tmp_path, "../data/directory.json")
    assert validate(capsys, repo / "manifests") == (0, [])
    assert repository_root(repo / "manifests") == repo


@pytest.mark.parametrize(("snapshot", "says"), [
    ("/etc/passwd", "must be a path relative to the manifest's folder, not an absolute path"),
    ("../../outside.json", "'../../outside.json' leads outside the repository"),
    ("../data/../../outside.json", "leads outside the repository"),
])
def test_a_snapshot_path_that_leaves_the_repository_is_one_problem_at_its_key(tmp_path: Path, capsys: Any,
                                                                                snapshot: str, says: str) -> None:
    (tmp_path / "outside.json").write_text((ROOT / "examples" / "directory.json").read_text())
    repo = make_repo(tmp_path, snapshot)
    code, problems = validate(capsys, repo / "manifests")
    assert code == 1
    [line] = problems
    assert line.startswith(f"{repo / 'manifests' / 'atea.yaml'}:23:15: provisioning.directory.snapshot: "), line
    assert says in line and "--directory" in line


def test_a_snapshot_symlink_out_of_the_repository_is_refused(tmp_path: Path, capsys: Any) -> None:
    outside = tmp_path / "outside.json"
    outside.write_text((ROOT / "examples" / "directory.json").read_text())
    repo = make_repo(tmp_path, "../data/link.json")
    (repo / "data" / "link.json").symlink_to(outside)
    code, [line] = validate(capsys, repo / "manifests")
    assert code == 1 and ":23:15: provisioning.directory.snapshot: " in line
    assert f"leads through a symbolic link to {outside}" in line


def test_without_a_repository_the_manifest_folder_is_the_boundary(tmp_path: Path, capsys: Any) -> None:
    repo = make_repo(tmp_path, "../data/directory.json", git=False)
    assert repository_root(repo / "manifests") == repo / "manifests"
    code, [line] = validate(capsys, repo / "manifests" / "atea.yaml")
    assert code == 1 and ":23:15: provisioning.directory.snapshot: '../data/directory.json' leads outside" in line


def test_directory_flag_may_name_any_file(url: str, tmp_path: Path, capsys: Any) -> None:
    repo = make_repo(tmp_path, "../data/directory.json")
    outside = directory(tmp_path)  # beside the repository, not in it
    code = main(["plan", str(repo / "manifests" / "atea.yaml"), "--directory", outside, "--target", url])
    assert code == 0, capsys.readouterr().err


def test_a_manifest_symlinked_from_outside_the_repository_is_refused_unread(tmp_path: Path, capsys: Any) -> None:
    repo = make_repo(tmp_path, "../data/directory.json")
    outside = tmp_path / "secret.yaml"
    outside.write_text("password: hunter2-do-not-print\n: [ not yaml\n")
    (repo / "manifests" / "other.yaml").symlink_to(outside)
    code, problems = validate(capsys, repo / "manifests")
    assert code == 1
    [line] = problems
    assert line.startswith(f"{repo / 'manifests' / 'other.yaml'}:1:1: the manifest is a symbolic link to {outside}")
    assert "hunter2" not in line


def test_a_manifest_symlinked_inside_the_repository_is_fine(tmp_path: Path, capsys: Any) -> None:
    repo = make_repo(tmp_path, "../data/directory.json")
    (repo / "apps").mkdir()
    (repo / "manifests" / "atea.yaml").rename(repo / "apps" / "atea.yaml")
    (repo / "manifests" / "atea.yaml").symlink_to(repo / "apps" / "atea.yaml")
    assert validate(capsys, repo / "manifests" / "atea.yaml")[0] == 0


# -- the target URL: one key per target, no credentials -----------------------------------------------------------


@pytest.mark.parametrize(("one", "other"), [
    ("https://SCIM.Example.com/v2/", "https://scim.example.com/v2"),
    ("https://scim.example.com:443/v2", "https://scim.example.com/v2"),
    ("http://scim.example.com:80/v2", "http://scim.example.com/v2"),
    ("http://localhost:8080/scim//v2", "http://127.0.0.1:8080/scim/v2"),
    ("http://[::1]:8080/v2", "http://127.0.0.1:8080/v2/"),
    ("https://user:pass@scim.example.com/v2#top", "https://scim.example.com/v2"),
])
def test_spellings_of_one_target_normalize_alike(one: str, other: str) -> None:
    assert normalize_target_url(one) == normalize_target_url(other)
    assert lock_path(one) == lock_path(other)


@pytest.mark.parametrize(("one", "other"), [
    ("https://scim.example.com/Users", "https://scim.example.com/users"),  # paths keep their case
    ("https://scim.example.com:8443/v2", "https://scim.example.com/v2"),
    ("http://scim.example.com/v2", "https://scim.example.com/v2"),
    ("https://scim.example.com/v2?tenant=a", "https://scim.example.com/v2?tenant=b"),
])
def test_different_targets_stay_apart(one: str, other: str) -> None:
    assert normalize_target_url(one) != normalize_target_url(other)


def test_the_normalized_url_holds_no_credentials() -> None:
    assert normalize_target_url("https://admin:s3cret@Scim.Example.com:443//v2/") == "https://scim.example.com/v2"


def test_two_spellings_of_one_target_share_one_lock() -> None:
    with target_lock("http://127.0.0.1:9/scim/v2", wait=0, command="first"), \
            pytest.raises(LockBusy, match=r"\(first\)"), target_lock("http://LOCALHOST:9/scim//v2/", wait=0):
        pass


def test_the_lock_file_is_private_in_a_private_folder(state: Path) -> None:
    with target_lock("https://scim.example.com/v2", wait=0) as path:
        assert path.parent == state
        assert stat.S_IMODE(state.stat().st_mode) == 0o700
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert json.loads(path.read_text())["url"] == "https://scim.example.com/v2"


def test_a_symlink_at_the_lock_path_is_refused_not_followed(state: Path, tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n")
    path = lock_path("https://scim.example.com/v2")
    state.mkdir(parents=True)
    path.symlink_to(victim)
    with pytest.raises(ReconcilerError) as caught, target_lock("https://scim.example.com/v2", wait=0):
        pass
    assert "is a symbolic link; refusing to follow it" in str(caught.value) and "\n" not in str(caught.value)
    assert victim.read_text() == "keep me\n"
    path.unlink()
    path.symlink_to(tmp_path / "missing")  # a dangling link is not followed either (no file is created)
    with pytest.raises(ReconcilerError, match="symbolic link"), target_lock("https://scim.example.com/v2", wait=0):
        pass
    assert not (tmp_path / "missing").exists()


def test_a_target_url_with_credentials_is_refused_without_echoing_it(url: str, tmp_path: Path,
                                                                     capsys: Any) -> None:
    address = url.replace("http://", "http://admin:pa55-w0rd-x@")
    code = main(["apply", str(ATEA), "--directory", directory(tmp_path), "--target", address])
    err = capsys.readouterr().err
    assert code == 1
    assert err.splitlines() == ["--target: the target URL must not carry credentials; use tokenEnv"]
    assert "pa55-w0rd-x" not in err
    assert listing(url) == []


# -- stop signals during apply ------------------------------------------------------------------------------------


def start_apply(url: str, snapshot: str, tmp_path: Path, *extra: str, env: dict[str, str] | None = None
                ) -> subprocess.Popen[str]:
    environment = {**os.environ, "ATEA_SCIM_TOKEN": TOKEN, **(env or {})}
    return subprocess.Popen(
        [sys.executable, "-m", "reconciler", "apply", str(ATEA), "--directory", snapshot, "--target", url,
         "--log", str(tmp_path / "log.jsonl"), *extra],
        cwd=ROOT, env=environment, text=True, stdout=(tmp_path / "out.txt").open("w"), stderr=subprocess.PIPE)


def signal_when(process: subprocess.Popen[str], marker: str, number: int,
                ready: Callable[[], bool] = lambda: True) -> tuple[str, str]:
    """Send signal ``number`` once a stderr line contains ``marker`` and ``ready()`` holds (polled, bounded);
    returns the stderr before and after it."""
    assert process.stderr is not None
    before = []
    try:
        for line in process.stderr:
            before.append(line)
            if marker in line:
                break
        for _ in range(600):
            if ready():
                break
            time.sleep(0.05)
        process.send_signal(number)
        _, after = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=30)
    return "".join(before), after


def log_records(tmp_path: Path) -> list[dict[str, Any]]:
    lines = (tmp_path / "log.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]  # every line is complete JSON


@pytest.mark.parametrize(("number", "name", "code"),
                         [(signal.SIGTERM, "SIGTERM", 143), (signal.SIGINT, "SIGINT", 130)])
def test_a_signal_mid_apply_stops_between_requests_and_a_rerun_converges(url: str, tmp_path: Path, capsys: Any,
                                                                         number: int, name: str, code: int) -> None:
    snapshot = directory(tmp_path, many_users, "big.json")
    process = start_apply(url, snapshot, tmp_path, "--no-bulk", "--concurrency", "2")
    before, after = signal_when(process, " applied, ", number)  # a progress line: writes are under way
    assert process.returncode == code, before + after
    assert "Traceback" not in after and "Task exception" not in after
    stops = [line for line in after.splitlines() if "stopped" in line]
    assert len(stops) == 1 and after.splitlines()[-1] == stops[0], after
    found = re.fullmatch(rf"atea: apply stopped by {name}: (\d+) of (\d+) steps done; re-run to finish", stops[0])
    assert found, stops[0]
    done, total = int(found[1]), int(found[2])
    assert 0 < done < total == 610
    records = log_records(tmp_path)
    assert sum(r["status"] == "Success" for r in records) == done  # the steps in flight finished and were logged
    assert len(by_username(url)) >= done  # by_username: no duplicates
    assert main(["apply", str(ATEA), "--directory", snapshot, "--target", url]) == 0
    assert "converged" in capsys.readouterr().out
    assert len(by_username(url)) == 610


def test_requests_that_outlast_the_grace_are_cut_off_and_the_rerun_adopts_them(tmp_path: Path, capsys: Any,
                                                                                monkeypatch: Any) -> None:
    snapshot = directory(tmp_path)
    with serving_target(token=TOKEN) as server, FaultProxy(server.url) as proxy:
        proxy.add(Fault("stall", method="POST", path="/Users", times=None, delay=60))
        process = start_apply(proxy.url, snapshot, tmp_path, "--no-bulk", "--concurrency", "2",
                              env={"RECONCILER_STOP_GRACE": "0.2"})
        # Signalled once a stalled create has reached the server: requests are in flight, held unanswered.
        before, after = signal_when(process, "atea round 1:", signal.SIGTERM, ready=lambda: bool(listing(server.url)))
        assert "stall" in proxy.actions("POST")
        assert process.returncode == 143, before + after
        assert "Traceback" not in after
        assert after.splitlines()[-1] == "atea: apply stopped by SIGTERM: 0 of 10 steps done; re-run to finish"
        assert log_records(tmp_path) == []
        proxy.clear()
        monkeypatch.setenv("ATEA_SCIM_TOKEN", TOKEN)
        assert main(["apply", str(ATEA), "--directory", snapshot, "--target", proxy.url]) == 0
        assert "converged" in capsys.readouterr().out
        assert len(by_username(server.url)) == 10  # the stalled creates reached the server once: no duplicates
