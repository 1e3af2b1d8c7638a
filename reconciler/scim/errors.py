"""What can go wrong talking to a SCIM target, as a hierarchy under :class:`~reconciler.errors.TargetError`.

Every error names the request (method and path, never the token) and, when the server gave one, its SCIM
``detail`` and ``scimType``. Catch exactly what you can handle:

- :class:`TargetUnreachable`: nothing reached the server (or an idempotent request kept failing); safe to
  retry later.
- :class:`TargetStatusError`: the server answered with an error status (``status``, ``scim_type``,
  ``retry_after``): the request was refused and nothing was applied (but see :class:`OutcomeUnknown`).
  :class:`UnsupportedOperation` (one of them): a PATCH the target does not implement, naming its operations.
- :class:`TargetResponseError`: the server answered something that is not the SCIM it should be.
  :class:`ResponseTooLarge` (one of them): an answer past the size limit, never read whole.
- :class:`OutcomeUnknown`: a write was sent and its answer lost; it may or may not have been applied. Look the
  object up (by its matching attribute) before any retry, or a create could make a duplicate.
  :class:`BulkOutcomeUnknown` (one of them): a Bulk batch's answer was lost.

:class:`PathError` is not about a request: a SCIM attribute path (as a mapping writes it) is malformed.
"""

from __future__ import annotations

from reconciler.errors import ReconcilerError, TargetError
from reconciler.scim.bulk import BulkResult


class ScimRequestError(TargetError):
    """Base of the errors about one request; ``method`` and ``path`` name it (query strings included)."""

    def __init__(self, method: str, path: str, message: str) -> None:
        self.method = method
        self.path = path
        self.message = message
        super().__init__(f"{method} {path}: {message}")


class TargetUnreachable(ScimRequestError):
    """The target could not be reached, or an idempotent request failed on every attempt."""


class TargetStatusError(ScimRequestError):
    """The target answered with an error status (after any retries)."""

    def __init__(self, method: str, path: str, status: int, *, detail: str | None = None,
                 scim_type: str | None = None, retry_after: float | None = None) -> None:
        self.status = status
        self.detail = detail
        self.scim_type = scim_type
        self.retry_after = retry_after
        text = f"HTTP {status}"
        if scim_type:
            text += f" ({scim_type})"
        if detail:
            text += f": {detail}"
        super().__init__(method, path, text)


class UnsupportedOperation(TargetStatusError):
    """The target refused a PATCH as not supported (HTTP 501 or 405, or 400 for ``mutability`` or "not implemented").

    ``operations`` names what the PATCH asked for, as "replace of displayName"; the server's answer follows in
    brackets. Nothing was applied, and the same PATCH would be refused again.
    """

    def __init__(self, refused: TargetStatusError, operations: tuple[str, ...]) -> None:
        super().__init__(refused.method, refused.path, refused.status, detail=refused.detail,
                         scim_type=refused.scim_type, retry_after=refused.retry_after)
        self.operations = operations
        what = operations[0] if len(operations) == 1 else f"one of {', '.join(operations)}"
        self.message = f"the target does not support {what} ({refused.message})"
        self.args = (f"{self.method} {self.path}: {self.message}",)


class TargetResponseError(ScimRequestError):
    """The target's answer could not be understood (not JSON, not the expected SCIM shape)."""


class ResponseTooLarge(TargetResponseError):
    """The target's answer was larger than the client's response size limit; it was not read further."""


class OutcomeUnknown(ScimRequestError):
    """A non-idempotent write reached the wire and its answer was lost: it may have been applied.

    ``bulk_ids`` lists the operations of a lost Bulk request whose outcome is unknown.
    """

    def __init__(self, method: str, path: str, cause: str, *, bulk_ids: tuple[str, ...] = (),
                 status: int | None = None) -> None:
        self.cause = cause
        self.bulk_ids = bulk_ids
        self.status = status
        super().__init__(method, path, f"the answer was lost ({cause}); the write may have been applied, "
                                       "look the object up before retrying")


class BulkOutcomeUnknown(OutcomeUnknown):
    """A Bulk batch's answer was lost.

    ``completed`` holds the results of earlier batches and ``bulk_ids`` the lost batch; operations of later
    batches were not sent.
    """

    def __init__(self, lost: OutcomeUnknown, bulk_ids: tuple[str, ...], completed: list[BulkResult]) -> None:
        super().__init__(lost.method, lost.path, lost.cause, bulk_ids=bulk_ids, status=lost.status)
        self.completed = completed


class PathError(ReconcilerError, ValueError):
    """A SCIM path is malformed; ``column`` is 1-based within the path.

    Also a ``ValueError``: a manifest's validators and the mapping engine read it as a bad value.
    """

    def __init__(self, message: str, column: int = 1) -> None:
        super().__init__(message)
        self.column = column
