"""One writer per target on one machine: an ``fcntl`` lock file per target URL.

Two applies (or an apply and the reconcile loop) against the same target would interleave their writes and each
plan against a target the other is changing. :func:`target_lock` takes an exclusive lock on a file named after the
target URL under the state directory, waits a bounded time for a holder to finish, and otherwise fails with one
line that names the holder (pid, host, since when). The kernel drops the lock when the holder exits, however it
exits, so a crashed apply never leaves a stale lock behind.

The state directory is ``$RECONCILER_STATE_DIR``, else ``$XDG_STATE_HOME/reconciler``, else
``~/.local/state/reconciler``. Across machines, pipelines serialise applies with a concurrency group (see
docs/operations.md); this lock is the same guarantee for one machine.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reconciler.errors import ReconcilerError

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no lock, as documented
    fcntl = None  # type: ignore[assignment]

STATE_DIR_ENV = "RECONCILER_STATE_DIR"
DEFAULT_WAIT = 30.0
POLL = 0.2


class LockBusy(ReconcilerError):
    """Another process holds the target's lock and did not release it within the wait."""


def state_dir() -> Path:
    override = os.environ.get(STATE_DIR_ENV)
    if override:
        return Path(override)
    xdg = os.environ.get("XDG_STATE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "state"
    return base / "reconciler"


def lock_path(url: str, directory: Path | None = None) -> Path:
    """The lock file of a target: a digest of its URL (without a trailing slash, scheme and host lowercased)."""
    normal = url.strip().rstrip("/")
    scheme, sep, rest = normal.partition("://")
    if sep:
        host, slash, path = rest.partition("/")
        normal = f"{scheme.lower()}://{host.lower()}{slash}{path}"
    digest = hashlib.sha256(normal.encode()).hexdigest()[:24]
    return (directory or state_dir()) / f"target-{digest}.lock"


def describe_holder(path: Path) -> str:
    try:
        info: dict[str, Any] = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        info = {}
    if not info.get("pid"):
        return "another process (its pid is not recorded yet)"
    where = f" on {info['host']}" if info.get("host") else ""
    since = f" since {info['since']}" if info.get("since") else ""
    what = f" ({info['command']})" if info.get("command") else ""
    return f"pid {info['pid']}{where}{what}{since}"


@contextlib.contextmanager
def target_lock(url: str, *, wait: float = DEFAULT_WAIT, command: str = "apply", directory: Path | None = None,
                sleep: Callable[[float], None] = time.sleep) -> Iterator[Path]:
    """Hold the lock of ``url`` for the body; wait up to ``wait`` seconds for another holder, then raise
    :class:`LockBusy`. Yields the lock file's path."""
    path = lock_path(url, directory)
    if fcntl is None:  # pragma: no cover
        yield path
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held for the body, closed below
    except OSError as error:
        raise ReconcilerError(f"cannot open the lock file {path}: {error.strerror or error} "
                              f"(set {STATE_DIR_ENV} to a writable folder)") from None
    try:
        _acquire(handle, path, url, wait, sleep)
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "command": command,
                                 "since": datetime.now(UTC).isoformat(timespec="seconds"), "url": url}))
        handle.flush()
        try:
            yield path
        finally:
            handle.seek(0)
            handle.truncate()
            handle.flush()
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    finally:
        handle.close()


def _acquire(handle: Any, path: Path, url: str, wait: float, sleep: Callable[[float], None]) -> None:
    deadline = time.monotonic() + max(0.0, wait)
    while True:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise LockBusy(f"{url}: another run holds the lock ({describe_holder(path)}); waited {wait:g}s; "
                               f"try again when it ends (lock file {path})") from None
            sleep(POLL)
