"""The stop gate: once a stop is requested (a signal, the loop's shutdown), a SCIM client starts no new request.

Requests already on the wire finish; the next one raises :class:`Stopping` before it is sent. Used by ``apply``
(SIGTERM / SIGINT) and by the reconcile loop.
"""

from __future__ import annotations

import threading
from typing import Any

from reconciler.errors import Stopping
from reconciler.scim.client import ScimClient


def install_stop_gate(client: ScimClient, stop: threading.Event) -> None:
    """Refuse new requests once ``stop`` is set (an httpx request hook; requests in flight finish)."""

    async def check(request: Any) -> None:
        if stop.is_set():
            raise Stopping

    client.add_request_hook(check)
