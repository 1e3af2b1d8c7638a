"""SCIM Bulk (RFC 7644 section 3.7) as plain values: one operation, and the result of one operation.

:meth:`~reconciler.scim.client.ScimClient.bulk` sends operations in batches and maps the answer back onto them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class BulkOperation:
    """One operation of a Bulk request; ``path`` is relative to the base URL (``/Users``, ``/Users/{id}``)."""

    method: str
    path: str
    bulk_id: str
    data: dict[str, Any] | None = None
    version: str | None = None

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {"method": self.method.upper(), "path": self.path, "bulkId": self.bulk_id}
        if self.data is not None:
            wire["data"] = self.data
        if self.version is not None:
            wire["version"] = self.version
        return wire


@dataclass(frozen=True)
class BulkResult:
    """The outcome of one Bulk operation, mapped back by ``bulk_id``; ``id`` is taken from ``location``.

    ``resource`` is the operation's ``response`` when it succeeded and the server sent the resource in it (RFC 7644
    makes that body optional); None otherwise.
    """

    bulk_id: str
    method: str
    status: int
    location: str | None = None
    id: str | None = None
    detail: str | None = None
    scim_type: str | None = None
    resource: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300
