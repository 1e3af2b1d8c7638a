"""One hierarchy of errors, named for what went wrong.

Every error renders as one line (``str(error)``) that names the file and position, the object, or the request.
The command line prints those lines and exits non-zero; it never prints a traceback for them.
"""

from __future__ import annotations

from dataclasses import dataclass


class ReconcilerError(Exception):
    """Base of every error the command line reports as plain lines."""

    def lines(self) -> list[str]:
        return [str(self)]


@dataclass(frozen=True, order=True)
class Problem:
    """One problem in an input file, at a 1-based line and column."""

    file: str
    line: int
    column: int
    message: str
    severity: str = "error"  # "error" or "warning"; only errors make a manifest invalid

    def __str__(self) -> str:
        label = "warning: " if self.severity == "warning" else ""
        return f"{self.file}:{self.line}:{self.column}: {label}{self.message}"

    @property
    def is_error(self) -> bool:
        return self.severity != "warning"


class ManifestError(ReconcilerError):
    """One or more manifests are invalid; carries every problem found, sorted by place."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    def lines(self) -> list[str]:
        return [str(p) for p in self.problems]


class DirectoryError(ReconcilerError):
    """The directory (a snapshot file or Microsoft Graph) could not be read."""


class TargetError(ReconcilerError):
    """The SCIM target answered badly or could not be reached."""


class ExpressionError(ReconcilerError):
    """An attribute-mapping expression is malformed or cannot be evaluated."""
