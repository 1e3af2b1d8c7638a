"""One apply per target on one machine: the lock file, its holder, the bounded wait, and a crashed holder."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from reconciler.cli import main
from reconciler.lock import STATE_DIR_ENV, LockBusy, lock_path, state_dir, target_lock
from tests.reconcile_helpers import ROOT, directory, listing

ATEA = str(ROOT / "manifests" / "atea.yaml")
HOLDER = """
import sys
from reconciler.lock import target_lock
with target_lock(sys.argv[1], wait=0, command="holder"):
    print("held", flush=True)
    sys.stdin.readline()
"""


@pytest.fixture(autouse=True)
def state(tmp_path: Path, monkeypatch: Any) -> Path:
    folder = tmp_path / "state"
    monkeypatch.setenv(STATE_DIR_ENV, str(folder))
    return folder


def hold(url: str) -> subprocess.Popen[str]:
    """Another process that holds ``url``'s lock until its stdin closes."""
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, url], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, cwd=ROOT, env=os.environ.copy())
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


def release(holder: subprocess.Popen[str]) -> None:
    assert holder.stdin is not None
    holder.stdin.close()
    holder.wait(timeout=30)


def test_state_dir_precedence(monkeypatch: Any, tmp_path: Path) -> None:
    assert state_dir() == tmp_path / "state"
    monkeypatch.delenv(STATE_DIR_ENV)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert state_dir() == tmp_path / "xdg" / "reconciler"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert state_dir() == tmp_path / "home" / ".local" / "state" / "reconciler"


def test_one_file_per_target_url() -> None:
    assert lock_path("https://SCIM.example/v2/") == lock_path("https://scim.example/v2")
    assert lock_path("https://scim.example/v2") != lock_path("https://scim.example/v3")
    assert lock_path("https://scim.example/Users") != lock_path("https://scim.example/users")


def test_second_apply_fails_with_one_line_naming_the_holder(url: str, tmp_path: Path, capsys: Any) -> None:
    holder = hold(url)
    try:
        code = main(["apply", ATEA, "--directory", directory(tmp_path), "--target", url, "--lock-wait", "0"])
        _, err = capsys.readouterr()
    finally:
        release(holder)
    assert code == 1
    assert err.count("\n") == 1
    assert f"another run holds the lock (pid {holder.pid} on " in err and "(holder)" in err and url in err
    assert listing(url) == []  # nothing was written
    code = main(["apply", ATEA, "--directory", directory(tmp_path), "--target", url, "--lock-wait", "0"])
    assert code == 0 and len(listing(url)) == 10


def test_a_waiting_apply_gets_the_lock_when_the_holder_ends() -> None:
    released = threading.Event()
    held = threading.Event()

    def holder() -> None:
        with target_lock("https://scim.example/v2", wait=0):
            held.set()
            released.wait(30)

    thread = threading.Thread(target=holder)
    thread.start()
    held.wait(30)
    waits: list[float] = []

    def sleep(seconds: float) -> None:  # the holder ends during the first wait
        waits.append(seconds)
        released.set()
        thread.join(30)

    with target_lock("https://scim.example/v2", wait=3600, sleep=sleep) as path:
        assert '"command": "apply"' in path.read_text()
    assert len(waits) == 1
    assert path.read_text() == ""  # released: no holder recorded


def test_bounded_wait_gives_up() -> None:
    with target_lock("https://scim.example/v2", wait=0, command="first"):
        waits: list[float] = []

        def sleep(seconds: float) -> None:
            waits.append(seconds)
            time.sleep(0.05)

        with pytest.raises(LockBusy, match=r"pid \d+ on .* \(first\) since .*; waited 0.5s"), \
                target_lock("https://scim.example/v2", wait=0.5, sleep=sleep):
            pass
        assert waits  # it did wait, polling, before giving up


def test_a_crashed_holder_leaves_no_stale_lock(url: str) -> None:
    holder = hold(url)
    holder.kill()
    holder.wait(timeout=30)
    with target_lock(url, wait=0):
        pass
