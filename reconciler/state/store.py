"""Where provisioning state lives, and a run's hold on it: the lock, the journal, the atomic save.

``--state URL`` (else ``$RECONCILER_STATE``, else the state folder) picks a :class:`Backend`: a folder
(:mod:`reconciler.state.folder`) or Azure Blob Storage (:mod:`reconciler.state.azblob`). Each keeps one document
per app and normalized target URL (:func:`document_name`), a journal beside it, and a lock around the run (a lock
file, or the document blob's lease).

A run that writes state holds a :class:`StateSession` (:func:`open_session`): the lock is taken **before the
first read**, the document and any journal a killed run left are read and replayed, every successful write is
appended to the journal while a round runs, and :meth:`StateSession.commit` saves the whole document atomically
after each round and empties the journal. So a SIGKILL at any point loses nothing a re-run cannot finish: what the
journal holds is replayed, and a create whose answer was lost is found again by its ``externalId``.

``plan`` reads without the lock (:func:`read_state`) and never writes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from reconciler.errors import ReconcilerError, StateError, StateFormatError
from reconciler.state.model import ProvisioningState
from reconciler.targeturl import normalize_target_url

STATE_ENV = "RECONCILER_STATE"
JOURNAL_FLUSH_EVENTS = 200     # a remote journal is appended in batches of this many events ...
JOURNAL_FLUSH_SECONDS = 1.0    # ... or after this long, whichever comes first


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def document_name(app: str, target: str) -> str:
    """The file (or blob) stem of an app's state for a target: the app's name and a digest of the normalized
    URL, so that two spellings of one target share one document and a URL never becomes a path."""
    digest = hashlib.sha256(normalize_target_url(target).encode()).hexdigest()[:16]
    return f"{app}-{digest}"


class Backend(Protocol):
    """One place state documents live. Names are :func:`document_name` stems."""

    location: str         # as the user gave it, for messages
    remote: bool          # True when each journal append is a request (it is then batched)

    def lock(self, name: str, target: str, *, wait: float, command: str,
             on_wait: Callable[[str], None] | None = None) -> contextlib.AbstractContextManager[None]:
        """Hold the document's lock for the body; wait up to ``wait`` seconds, then raise LockBusy naming the
        holder. ``on_wait`` is told once, with the holder's description, when the run has to wait."""
        ...

    def read(self, name: str) -> tuple[bytes | None, bytes]:
        """The document (None when there is none yet) and the journal's bytes (b"" when empty)."""
        ...

    def write(self, name: str, document: bytes) -> None:
        """Replace the document atomically, then empty the journal."""
        ...

    def append_journal(self, name: str, lines: bytes) -> None:
        ...

    def read_cache(self, name: str) -> bytes | None:
        """The directory as the last cycle read it (an incremental cycle's starting point), or None."""
        ...

    def write_cache(self, name: str, data: bytes) -> None:
        """Replace the directory cache atomically (under the lock, as the document)."""
        ...

    def names(self) -> list[str]:
        """Every document stem held here."""
        ...


def open_backend(location: str | None = None) -> Backend:
    """The backend of ``--state`` (or ``$RECONCILER_STATE``, else the default state folder)."""
    text = location or os.environ.get(STATE_ENV) or ""
    if text.startswith("azblob://"):
        from reconciler.state.azblob import BlobBackend  # azure-storage-blob is loaded only when used
        return BlobBackend.from_url(text)
    from reconciler.state.folder import FolderBackend
    if text.startswith("file:"):
        text = text.removeprefix("file:").removeprefix("//")
    if "://" in text:
        raise ReconcilerError(f"--state {text.split('://')[0]}://...: expected a folder, file:PATH or "
                              "azblob://CONTAINER[/PREFIX]")
    return FolderBackend.at(text or None)


def parse_journal(data: bytes) -> list[dict[str, Any]]:
    """The events of a journal; a last line cut short by a kill is ignored, as is anything not an event."""
    events: list[dict[str, Any]] = []
    for line in data.splitlines():
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if isinstance(item, dict):
            events.append(item)
    return events


def load(backend: Backend, app: str, target: str) -> tuple[ProvisioningState, bool]:
    """The state of ``app`` at ``target`` with its journal replayed, and whether it is new (no document, no
    journal: the run infers ownership as a first run does)."""
    name = document_name(app, target)
    where = f"{backend.location} ({name})"
    document, journal = backend.read(name)
    events = parse_journal(journal)
    if document:
        state = ProvisioningState.from_json(document, where)
        if state.app != app:
            raise StateFormatError(f"{where}: holds the state of app {state.app!r}, not {app!r}")
    else:
        state = ProvisioningState(app=app, target=normalize_target_url(target))
    if events:
        state = state.with_events(events, now_iso())
    return state, not document and not events


def read_state(location: str | None, app: str, target: str) -> tuple[ProvisioningState, bool]:
    """The state as ``plan`` sees it: read without the lock, never written."""
    return load(open_backend(location), app, target)


def list_states(backend: Backend) -> list[ProvisioningState]:
    """Every document in ``backend``, journals replayed, sorted by app and target."""
    states = []
    for name in backend.names():
        document, journal = backend.read(name)
        if not document and not journal:
            continue
        events = parse_journal(journal)
        if document:
            state = ProvisioningState.from_json(document, f"{backend.location} ({name})")
        else:  # a first run killed before its first save: only the journal is there
            app = name.rsplit("-", 1)[0]
            state = ProvisioningState(app=app, target="(not saved yet)")
        states.append(state.with_events(events, now_iso()) if events else state)
    return sorted(states, key=lambda s: (s.app, s.target))


class StateSession:
    """A run's hold on one document, under its lock: the state as loaded, the journal, and the saves."""

    def __init__(self, backend: Backend, app: str, target: str, state: ProvisioningState, fresh: bool,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.backend = backend
        self.name = document_name(app, target)
        self.state = state
        self.fresh = fresh
        self._clock = clock
        self._pending: list[bytes] = []
        self._last_flush = clock()

    def journal(self, event: Mapping[str, Any]) -> None:
        """Record one successful write; a folder journal is appended at once (a kill loses none), a remote one
        in batches (a kill loses at most a batch, which the next run finds again by externalId)."""
        self._pending.append(json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode() + b"\n")
        if not self.backend.remote or len(self._pending) >= JOURNAL_FLUSH_EVENTS or (
                self._clock() - self._last_flush >= JOURNAL_FLUSH_SECONDS):
            self.flush()

    def flush(self) -> None:
        if self._pending:
            lines, self._pending = b"".join(self._pending), []
            self.backend.append_journal(self.name, lines)
        self._last_flush = self._clock()

    def read_cache(self) -> bytes | None:
        return self.backend.read_cache(self.name)

    def write_cache(self, data: bytes) -> None:
        self.backend.write_cache(self.name, data)

    def commit(self, state: ProvisioningState) -> ProvisioningState:
        """Save ``state`` (its serial moved on, stamped now) atomically; the journal is emptied."""
        self._pending.clear()
        state.serial = self.state.serial + 1
        state.updated = now_iso()
        self.backend.write(self.name, state.to_json())
        self.state = state
        self.fresh = False
        return state


@contextlib.contextmanager
def open_session(backend: Backend, app: str, target: str, *, wait: float, command: str,
                 on_wait: Callable[[str], None] | None = None) -> Iterator[StateSession]:
    """Lock ``app``'s document for ``target``, load it (journal replayed), and yield the session; the lock is
    released when the body ends, however it ends."""
    with backend.lock(document_name(app, target), target, wait=wait, command=command, on_wait=on_wait):
        try:
            state, fresh = load(backend, app, target)
        except OSError as error:
            raise StateError(f"{backend.location}: cannot read the state of {app}: {error}") from None
        session = StateSession(backend, app, target, state, fresh)
        try:
            yield session
        finally:
            # the body's own error matters more; the next run finds these writes by externalId
            with contextlib.suppress(OSError, StateError):
                session.flush()
