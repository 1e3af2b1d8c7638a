"""One hierarchy of errors, named for what went wrong.

Every error renders as one line (``str(error)``) that names the file and position, the object, or the request.
The command line prints those lines and exits non-zero; it never prints a traceback for them.

- :class:`ReconcilerError`: the base of all of them.
- :class:`ManifestError`: invalid manifests (every :class:`Problem` found).
- :class:`DirectoryError`: the directory could not be read.
- :class:`TargetError`: a SCIM target answered badly or could not be reached; what can go wrong with one request
  is in :mod:`reconciler.scim.errors`, with :class:`~reconciler.scim.errors.PathError` (a malformed SCIM path).
- :class:`ExpressionError`: an attribute-mapping expression; :class:`ExpressionSyntaxError` (malformed),
  :class:`EvaluationError` (fails for one object) and :class:`NoMatchingValue` (an object that cannot be matched).
- :class:`PlanFormatError`: a saved plan is not one this version reads.
- :class:`DeletionGuardTripped`: a plan disables or deletes more than the manifest allows.
- :class:`LockBusy`: another run holds the target's lock (a lock file, or a blob lease).
- :class:`StateFormatError`: a provisioning state document this version cannot read; :class:`StateError`: the
  state backend failed (unreachable, refused, a lease lost).
- :class:`BaseUnavailable`: a preview cannot read the base revision's manifests.

:class:`Stopping` is not an error: it ends a run between requests once a stop was requested.
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


class ExpressionSyntaxError(ExpressionError):
    """An expression is malformed; ``offset`` is the 0-based position in the text, ``column`` 1-based."""

    def __init__(self, message: str, offset: int) -> None:
        self.message = message
        self.offset = offset
        super().__init__(f"column {offset + 1}: {message}")

    @property
    def column(self) -> int:
        return self.offset + 1


class EvaluationError(ExpressionError):
    """An expression could not be evaluated for one object (Entra escrows such an object)."""


class NoMatchingValue(EvaluationError):
    """Every matching attribute of an object is null: it cannot be looked up, so it is skipped (not a failure)."""


class PlanFormatError(ReconcilerError):
    """A saved plan is in a format this version does not read."""


class DeletionGuardTripped(ReconcilerError):
    """The plan would disable or delete more objects than the manifest's deletionThreshold."""

    def __init__(self, app: str, destructive: int, threshold: int) -> None:
        super().__init__(
            f"{app}: deletion guard: {destructive} disables/deletes exceed deletionThreshold "
            f"{threshold}; nothing was applied (review the plan, then re-run with --allow-deletes)")


class LockBusy(ReconcilerError):
    """Another process holds the target's lock and did not release it within the wait."""


class StateFormatError(ReconcilerError):
    """A provisioning state document is not one this version reads (or is not one at all)."""


class StateError(ReconcilerError):
    """The provisioning state could not be read, written or locked (a backend's answer, or a lost lease)."""


class BaseUnavailable(ReconcilerError):
    """The base revision's manifests cannot be read."""


class Stopping(Exception):
    """Raised before a SCIM request once a stop was requested; never reaches the user.

    Not a :class:`ReconcilerError`, so that no handler of errors takes a stop for a failed request.
    """
