"""The folder backend: ``<folder>/<name>.json`` (the document), ``<name>.journal`` beside it, and the lock file of
:mod:`reconciler.lock` in the same folder.

Every file is created 0600 in a folder created 0700, and opened with ``O_NOFOLLOW``: a symbolic link planted at a
state path is refused, never followed. A save writes a temporary file, flushes it to disk, renames it over the
document and flushes the folder, so a reader sees the old document or the new one, never half of one. Journal
lines are written straight to the file (no buffer in the process), so a killed run loses none of them.
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from reconciler.errors import StateError
from reconciler.lock import FILE_MODE, FOLDER_MODE, describe_holder, lock_path, state_dir, target_lock

DOCUMENT = ".json"
JOURNAL = ".journal"
CACHE = ".cache"  # the directory as the last cycle read it, for incremental cycles
MAX_DOCUMENT_BYTES = 2 * 1024 ** 3  # far above 100,000 objects (about 66 MB); a larger file is not ours


class FolderBackend:
    remote = False

    def __init__(self, folder: Path, location: str) -> None:
        self.folder = folder
        self.location = location

    @classmethod
    def at(cls, path: str | None) -> FolderBackend:
        folder = Path(path).expanduser() if path else state_dir()
        return cls(folder, str(folder))

    # -- the lock ----------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self, name: str, target: str, *, wait: float, command: str,
             on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
        told = False

        def sleep(seconds: float) -> None:
            nonlocal told
            if not told and on_wait is not None:
                told = True
                on_wait(describe_holder(lock_path(target, self.folder)))
            time.sleep(seconds)

        with target_lock(target, wait=wait, command=command, directory=self.folder, sleep=sleep):
            yield

    # -- documents ---------------------------------------------------------------------------------------------

    def _path(self, name: str, suffix: str) -> Path:
        return self.folder / f"{name}{suffix}"

    def read(self, name: str) -> tuple[bytes | None, bytes]:
        return self._read(self._path(name, DOCUMENT)), self._read(self._path(name, JOURNAL)) or b""

    def _read(self, path: Path) -> bytes | None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        except OSError as error:
            raise StateError(_refusal(path, error)) from None
        with os.fdopen(fd, "rb") as handle:
            if os.fstat(handle.fileno()).st_size > MAX_DOCUMENT_BYTES:
                raise StateError(f"{path}: larger than {MAX_DOCUMENT_BYTES} bytes; not a provisioning state")
            data = handle.read()  # sized by the file, not by the cap (a read of the cap allocates it up front)
        if len(data) > MAX_DOCUMENT_BYTES:
            raise StateError(f"{path}: larger than {MAX_DOCUMENT_BYTES} bytes; not a provisioning state")
        return data

    def read_cache(self, name: str) -> bytes | None:
        return self._read(self._path(name, CACHE))

    def write_cache(self, name: str, data: bytes) -> None:
        self._replace(self._path(name, CACHE), data)

    def write(self, name: str, document: bytes) -> None:
        path = self._path(name, DOCUMENT)
        self._replace(path, document)
        try:
            fd = os.open(self._path(name, JOURNAL), os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
                         | os.O_CLOEXEC, FILE_MODE)
            os.close(fd)
        except OSError as error:
            raise StateError(_refusal(self._path(name, JOURNAL), error)) from None

    def _replace(self, path: Path, document: bytes) -> None:
        """Write ``path`` atomically: a private temporary file, flushed, renamed over it, the folder flushed."""
        self._folder()
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE)
            with os.fdopen(fd, "wb") as handle:
                handle.write(document)
                handle.flush()
                os.fsync(handle.fileno())
            if path.is_symlink():
                raise StateError(f"{path}: is a symbolic link; refusing to replace it (remove it)")
            os.replace(temporary, path)
            self._sync_folder()
        except OSError as error:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise StateError(_refusal(path, error)) from None

    def append_journal(self, name: str, lines: bytes) -> None:
        self._folder()
        path = self._path(name, JOURNAL)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE)
        except OSError as error:
            raise StateError(_refusal(path, error)) from None
        try:
            os.write(fd, lines)
        finally:
            os.close(fd)

    def names(self) -> list[str]:
        if not self.folder.is_dir():
            return []
        stems = {p.name[: -len(s)] for s in (DOCUMENT, JOURNAL) for p in self.folder.glob(f"*{s}")
                 if not p.name.startswith(".")}
        return sorted(stems)

    def _folder(self) -> None:
        if self.folder.is_dir():
            return
        try:
            self.folder.parent.mkdir(parents=True, exist_ok=True)
            self.folder.mkdir(mode=FOLDER_MODE)
            os.chmod(self.folder, FOLDER_MODE)
        except FileExistsError:
            return
        except OSError as error:
            raise StateError(_refusal(self.folder, error)) from None

    def _sync_folder(self) -> None:
        try:
            fd = os.open(self.folder, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            return
        try:
            os.fsync(fd)
        except OSError:
            pass
        finally:
            os.close(fd)


def _refusal(path: Path, error: OSError) -> str:
    if error.errno == errno.ELOOP:
        return f"{path}: is a symbolic link; refusing to follow it (remove it if you did not put it there)"
    return f"{path}: {error.strerror or error} (choose another --state folder)"

