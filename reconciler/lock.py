"""One writer per target on one machine: an ``fcntl`` lock file per target URL.

Two applies (or an apply and the reconcile loop) against the same target would interleave their writes and each
plan against a target the other is changing. :func:`target_lock` takes an exclusive lock on a file named after the
target URL under the state directory, waits a bounded time for a holder to finish, and otherwise fails with one
line that names the holder (pid, host, since when). The kernel drops the lock when the holder exits, however it
exits, so a crashed apply never leaves a stale lock behind.

The file is keyed on the normalized target URL (:func:`reconciler.targeturl.normalize_target_url`), so that two
spellings of one target share one lock. It is created 0600 in a folder created 0700, and opened with
``O_NOFOLLOW``: a symbolic link planted at the lock path is refused, never followed (it could point a run's writes
at any file the user can write).

The state directory is ``$RECONCILER_STATE_DIR``, else ``$XDG_STATE_HOME/reconciler``, else
``~/.local/state/reconciler``, or the ``--state`` folder: the folder backend of the provisioning state
(:mod:`reconciler.state.folder`) keeps its lock here. Across machines, the Azure Blob backend's lease is the same
guarantee (:mod:`reconciler.state.azblob`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import stat
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reconciler.errors import LockBusy, ReconcilerError
from reconciler.targeturl import normalize_target_url

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no lock, as documented
    fcntl = None  # type: ignore[assignment]

STATE_DIR_ENV = "RECONCILER_STATE_DIR"
DEFAULT_WAIT = 30.0
POLL = 0.2
FOLDER_MODE = 0o700
FILE_MODE = 0o600
HOLDER_BYTES = 4096  # what is read of a holder's record: it is a few dozen bytes when a run wrote it


def state_dir() -> Path:
    override = os.environ.get(STATE_DIR_ENV)
    if override:
        return Path(override)
    xdg = os.environ.get("XDG_STATE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "state"
    return base / "reconciler"


def lock_path(url: str, directory: Path | None = None) -> Path:
    """The lock file of a target: a digest of its normalized URL."""
    digest = hashlib.sha256(normalize_target_url(url).encode()).hexdigest()[:24]
    return (directory or state_dir()) / f"target-{digest}.lock"


def describe_holder(path: Path) -> str:
    """Who holds the lock at ``path``, as its holder recorded it (never following a symbolic link)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return _describe(b"")
    with os.fdopen(fd, "rb") as handle:
        return _describe(handle.read(HOLDER_BYTES))


def _describe(record: bytes) -> str:
    try:
        info: dict[str, Any] = json.loads(record.decode("utf-8") or "{}")
    except ValueError:
        info = {}
    if not isinstance(info, dict):
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
    handle = _open_private(path)
    try:
        _acquire(handle, path, url, wait, sleep)
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "command": command,
                                 "since": datetime.now(UTC).isoformat(timespec="seconds"),
                                 "url": normalize_target_url(url)}))
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


def _private_folder(folder: Path) -> None:
    """Create ``folder`` 0700 if it is missing (an existing folder keeps the mode its owner gave it)."""
    if folder.is_dir():
        return
    folder.parent.mkdir(parents=True, exist_ok=True)
    try:
        folder.mkdir(mode=FOLDER_MODE)
    except FileExistsError:
        return  # another run made it first
    os.chmod(folder, FOLDER_MODE)  # mkdir's mode is narrowed by the umask, never widened: make it exact


def _open_private(path: Path) -> Any:
    """The lock file, opened for reading and writing: created 0600, never through a symbolic link, and only a
    regular file (a FIFO or a device at the lock path is refused)."""
    try:
        _private_folder(path.parent)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE)
    except OSError as error:
        if path.is_symlink():
            raise ReconcilerError(f"the lock file {path} is a symbolic link; refusing to follow it (remove it if "
                                  "you did not put it there)") from None
        raise ReconcilerError(f"cannot open the lock file {path}: {error.strerror or error} "
                              f"(set {STATE_DIR_ENV} to a writable folder)") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise ReconcilerError(f"the lock file {path} is not a regular file; refusing to use it (remove it)")
    if info.st_mode & 0o077 and info.st_uid == os.getuid():
        os.fchmod(fd, FILE_MODE)  # a lock file left by an older version, readable by others
    return os.fdopen(fd, "r+", encoding="utf-8")


def _acquire(handle: Any, path: Path, url: str, wait: float, sleep: Callable[[float], None]) -> None:
    deadline = time.monotonic() + max(0.0, wait)
    while True:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                holder = _describe(_read_record(handle))
                raise LockBusy(f"{url}: another run holds the lock ({holder}); waited {wait:g}s; "
                               f"try again when it ends (lock file {path})") from None
            sleep(POLL)


def _read_record(handle: Any) -> bytes:
    """The holder's record, read through our own descriptor (the path may have been swapped since it was opened)."""
    try:
        return os.pread(handle.fileno(), HOLDER_BYTES, 0)
    except OSError:
        return b""
