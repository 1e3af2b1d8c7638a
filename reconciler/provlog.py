"""The provisioning log: one JSON object per line and per step, with the fields of Entra's provisioning logs.

``cycleId`` names one run, ``changeId`` one step; ``action`` is Create, Update, Disable, Delete or Other (adopt,
conflict); ``status`` Success, Failure or Skipped; ``modifiedProperties`` lists ``displayName``/``oldValue``/
``newValue``. Values are written as the plan shows them; a file log is written through the output boundary
(:mod:`reconciler.outputs`), so a token a server echoed into data or an error is scrubbed from every record.
"""

from __future__ import annotations

import io
import json
import threading
import uuid
from datetime import UTC, datetime
from typing import IO, Any

from reconciler.outputs import open_private
from reconciler.plan import Step

_ACTIONS = {"create": "Create", "update": "Update", "adopt": "Update", "disable": "Disable", "delete": "Delete"}


class ProvisioningLog:
    """Appends records to a file (or any text stream); one instance per run shares one ``cycleId``."""

    def __init__(self, stream: IO[str] | io.TextIOBase, *, app: str, cycle_id: str | None = None) -> None:
        self.stream = stream
        self.app = app
        self.cycle_id = cycle_id or str(uuid.uuid4())
        self._lock = threading.Lock()

    @classmethod
    def open(cls, path: str, *, app: str, cycle_id: str | None = None) -> ProvisioningLog:
        """Append to ``path``, created 0600, through the output boundary (secrets scrubbed)."""
        return cls(open_private(path, append=True), app=app, cycle_id=cycle_id)

    def record(self, step: Step, *, status: str, target_id: str | None = None, duration_ms: int = 0,
               error: str | None = None) -> dict[str, Any]:
        modified = [{"displayName": c.path, "oldValue": c.old, "newValue": c.new} for c in step.shown_changes()]
        if step.members_add or step.members_remove:
            modified.append({"displayName": "members", "oldValue": None,
                             "newValue": {"add": step.members_add, "remove": step.members_remove}})
        entry: dict[str, Any] = {
            "activityDateTime": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "cycleId": self.cycle_id,
            "changeId": str(uuid.uuid4()),
            "app": self.app,
            "action": _ACTIONS.get(step.action, "Other"),
            "actionDetail": step.action,
            "status": status,
            "sourceIdentity": {"id": step.source_id, "displayName": step.display, "identityType": step.kind},
            "targetIdentity": {"id": target_id, "identityType": step.kind},
            "modifiedProperties": modified,
            "durationInMilliseconds": duration_ms,
            "statusInfo": {"reason": error} if error else None,
        }
        line = json.dumps(entry, ensure_ascii=False, default=str)
        with self._lock:
            self.stream.write(line + "\n")
            self.stream.flush()
        return entry

    def close(self) -> None:
        self.stream.close()
