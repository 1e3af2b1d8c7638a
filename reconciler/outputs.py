"""The output boundary: every byte the command line writes passes here, scrubbed of secrets and control characters.

- :class:`SafeStream` wraps a text stream (stdout, stderr, a log file). It writes whole lines: each line is
  scrubbed (:func:`reconciler.secrets.scrub`) and stripped of terminal control characters before it is written, so
  a secret split across two ``write`` calls is still found. ``flush()`` writes a pending partial line too (progress
  bars flush after every refresh).
- Control characters: on a terminal, the CSI sequences the renderers use for colour and progress bars pass (data
  is stripped of them where it is rendered); everything else (OSC title/clipboard/hyperlink sequences, other escapes,
  C0 and C1 controls but newline and tab) is removed. Anywhere else (a pipe, a CI log, a file) every escape
  sequence and control character but newline and tab is removed. A lone surrogate (a JSON ``\ud800`` escape in
  a server's data) is written as U+FFFD instead of failing the write.
- :func:`open_private` / :func:`write_private` create files 0600 without following a symlink at the path, and
  return or write through a :class:`SafeStream`.

:func:`guarded_stdio` installs the wrappers on ``sys.stdout`` and ``sys.stderr`` for the duration of a command.
"""

from __future__ import annotations

import io
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import IO, Any

from reconciler.errors import ReconcilerError
from reconciler.report.escape import strip_controls
from reconciler.secrets import scrub

PRIVATE_FILE = 0o600
_SURROGATES = re.compile("[\ud800-\udfff]")  # lone surrogates (from JSON escapes) cannot be written as UTF-8
_CSI = re.compile(r"(\x1b\[[0-?]*[ -/]*[@-~])")  # colour and cursor movement, as the renderers write them


def terminal_text(text: str) -> str:
    """``text`` for a terminal: CSI sequences (colour, cursor) and carriage returns stay, every other control goes."""
    pieces = _CSI.split(text)
    for index in range(0, len(pieces), 2):
        pieces[index] = "\r".join(strip_controls(part) for part in pieces[index].split("\r"))
    return "".join(pieces)


class SafeStream(io.TextIOBase):
    """A text stream that scrubs secrets and control characters from every line it writes on."""

    def __init__(self, stream: IO[str], *, terminal: bool | None = None, owns: bool = False) -> None:
        super().__init__()
        self._stream = stream
        self._owns = owns
        self._pending = ""
        if terminal is None:
            isatty = getattr(stream, "isatty", None)
            terminal = bool(isatty and isatty())
        self._clean = terminal_text if terminal else strip_controls

    @property
    def wrapped(self) -> IO[str]:
        return self._stream

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        isatty = getattr(self._stream, "isatty", None)
        return bool(isatty and isatty())

    def fileno(self) -> int:
        return self._stream.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._stream, "encoding", None) or "utf-8"

    def write(self, text: str) -> int:
        if not text:
            return 0
        self._pending += text
        if "\n" in self._pending:
            complete, _, self._pending = self._pending.rpartition("\n")
            self._emit(complete + "\n")
        return len(text)

    def flush(self) -> None:
        if self._pending:
            pending, self._pending = self._pending, ""
            self._emit(pending)
        flush = getattr(self._stream, "flush", None)
        if flush and not getattr(self._stream, "closed", False):
            flush()

    def close(self) -> None:
        if self.closed:
            return
        try:
            self.flush()
        finally:
            if self._owns:
                self._stream.close()
            super().close()

    def _emit(self, text: str) -> None:
        self._stream.write(_SURROGATES.sub("\ufffd", self._clean(scrub(text))))


def open_private(path: str | os.PathLike[str], *, append: bool = False) -> SafeStream:
    """A text file created 0600 (an existing one keeps its content when ``append``), never through a symlink."""
    flags = os.O_WRONLY | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    flags |= os.O_APPEND if append else os.O_TRUNC
    try:
        descriptor = os.open(path, flags, PRIVATE_FILE)
    except OSError as error:
        reason = "it is a symbolic link" if os.path.islink(path) else (error.strerror or str(error))
        raise ReconcilerError(f"{os.fspath(path)}: cannot write: {reason}") from None
    with suppress(OSError):
        os.fchmod(descriptor, PRIVATE_FILE)
    return SafeStream(os.fdopen(descriptor, "w", encoding="utf-8"), terminal=False, owns=True)


def write_private(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to a 0600 file through the boundary (scrubbed, no control characters)."""
    with open_private(path) as stream:
        stream.write(text)


@contextmanager
def guarded_stdio() -> Iterator[None]:
    """``sys.stdout`` and ``sys.stderr`` wrapped in :class:`SafeStream` for the duration of the block."""
    saved: dict[str, Any] = {"stdout": sys.stdout, "stderr": sys.stderr}
    sys.stdout = SafeStream(saved["stdout"])
    sys.stderr = SafeStream(saved["stderr"])
    try:
        yield
    finally:
        for name, original in saved.items():
            current = getattr(sys, name)
            with suppress(OSError, ValueError):
                current.flush()
            setattr(sys, name, original)
