"""The provisioning log: one JSON object per line for every object a cycle considered, in the shape of Entra's
provisioning logs (``docs/reconciler.md`` describes each field and status, with a sample record of each).

- ``jobId`` names the app and its target (:func:`job_id`: the same app and normalized target URL always give the
  same id), ``cycleId`` one run (or one cycle of ``reconcile``), ``changeId`` one record.
- ``action`` is Create, Update, Delete, Disable, StagedDelete or Other; ``status`` Success, Failure, Skipped or
  Warning; ``statusInfo`` holds ``reason`` and, unless the record is a success, an ``errorCode`` (Entra's names
  where Entra has one: EntryConflict, DuplicateTargetEntries, TooManyRequests, InvalidAnchor, ImportSkipped,
  NotEffectivelyEntitled, TooManyDeletes, ServiceIncompatible ...).
- ``provisioningSteps`` lists the stages the object went through (Import, Scoping, Matching, Processing,
  ReferenceResolution, Export); the last one carries the record's outcome.

Who writes what: the executor writes a record per step it applies (:meth:`ProvisioningLog.record`) and, for a
guarded plan, a Skipped record per step it does not apply (:meth:`ProvisioningLog.staged`: disables and deletes
as StagedDelete). After the first round the run writes one record for every other object of the plan
(:meth:`ProvisioningLog.considered`): conflicts, directory objects skipped or out of scope, objects already in
sync, and target objects this app does not manage. Later rounds log only what they apply.

Values are written as the plan shows them (``Redact``-ed values as ``[Redact]``); a file log is written through the
output boundary (:mod:`reconciler.outputs`), so a token a server echoed into data or an error is scrubbed from every
record.
"""

from __future__ import annotations

import io
import itertools
import json
import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import IO, Any

from reconciler.desired import DesiredState
from reconciler.outputs import open_private
from reconciler.plan import DESTRUCTIVE, Action, Plan, Step
from reconciler.scim.errors import (
    OutcomeUnknown,
    PathError,
    TargetResponseError,
    TargetStatusError,
    TargetUnreachable,
)
from reconciler.scim.livestate import LiveState
from reconciler.targeturl import normalize_target_url

STATUSES = ("Success", "Failure", "Skipped", "Warning")
STEP_TYPES = ("Import", "Scoping", "Matching", "Processing", "ReferenceResolution", "Export")
_ACTIONS = {Action.CREATE: "Create", Action.UPDATE: "Update", Action.ADOPT: "Update", Action.DISABLE: "Disable",
            Action.DELETE: "Delete"}
_DONE = {Action.CREATE: "created", Action.UPDATE: "updated", Action.ADOPT: "adopted and updated",
         Action.DISABLE: "disabled", Action.DELETE: "deleted"}
_STATUS_CODES = {409: "EntryConflict", 429: "TooManyRequests", 404: "InvalidAnchor"}
_OUT_OF_SCOPE = {"unassigned": "not assigned to the app", "out of scope": "does not pass the scoping filters",
                 "disabled": "disabled in the directory", "deleted": "deleted in the directory"}
_JOB_NAMESPACE = uuid.UUID("6f1d3c52-8a0e-4b7c-9d3f-2e5a7c1b0f48")
_BATCH = 1000  # records per write when many are logged at once


def job_id(app: str, target: str) -> str:
    """A stable id for one app and one target (as Entra's custom-app job ids, it starts with ``scim.``)."""
    key = f"{app}\n{normalize_target_url(target)}"
    return f"scim.{uuid.uuid5(_JOB_NAMESPACE, key).hex}"


def error_code(error: BaseException) -> str:
    """The ``errorCode`` of a failed write: Entra's name where Entra has one."""
    if isinstance(error, TargetStatusError):
        return _STATUS_CODES.get(error.status, f"Http{error.status}")
    if isinstance(error, OutcomeUnknown):
        return "OutcomeUnknown"
    if isinstance(error, TargetResponseError):
        return "ServiceIncompatible"
    if isinstance(error, TargetUnreachable):
        return "TargetUnreachable"
    if isinstance(error, PathError | UnicodeError):
        return "InvalidData"
    return "TargetError"


def _conflict_code(reason: str) -> str:
    """DuplicateTargetEntries when several target objects answer to one directory object, else EntryConflict."""
    return "DuplicateTargetEntries" if " target objects " in reason else "EntryConflict"


def _step(kind: str, description: str, status: str = "Success", **details: Any) -> dict[str, Any]:
    return {"name": f"Entry{kind}", "provisioningStepType": kind, "status": status, "description": description,
            "details": details}


def _imported(kind: str, display: str, source_id: str | None) -> dict[str, Any]:
    return _step("Import", f"Received {kind} '{display}' from the directory", objectId=source_id)


def _scoped(kind: str, display: str, out_reason: str | None = None, status: str = "Success") -> dict[str, Any]:
    if out_reason is None:
        return _step("Scoping", f"{kind} '{display}' is in scope", status, inScope=True)
    return _step("Scoping", f"{kind} '{display}' is out of scope: {_OUT_OF_SCOPE.get(out_reason, out_reason)}",
                 status, inScope=False, reason=out_reason)


def _matched(step: Step, target_id: str | None) -> dict[str, Any]:
    matching = {str(pair[0]): pair[1] for pair in step.matching if len(pair) == 2}
    if step.action == Action.CREATE:
        return _step("Matching", f"No target {step.kind} matches", matchingAttributes=matching)
    if step.action == Action.ADOPT:
        return _step("Matching", f"Matched target {step.kind} {target_id} ({step.reason}): adopting it",
                     targetId=target_id, matchingAttributes=matching)
    return _step("Matching", f"Target {step.kind} {target_id} carries externalId {step.source_id}",
                 targetId=target_id)


def _deprovisioning(step: Step) -> bool:
    return step.action in DESTRUCTIVE


class ProvisioningLog:
    """Appends records to a file (or any text stream); one instance per run shares one ``cycleId``."""

    def __init__(self, stream: IO[str] | io.TextIOBase, *, app: str, target: str = "",
                 cycle_id: str | None = None) -> None:
        self.stream = stream
        self.app = app
        self.job_id = job_id(app, target)
        self.cycle_id = cycle_id or str(uuid.uuid4())
        self._lock = threading.Lock()

    @classmethod
    def open(cls, path: str, *, app: str, target: str = "", cycle_id: str | None = None) -> ProvisioningLog:
        """Append to ``path``, created 0600, through the output boundary (secrets scrubbed)."""
        return cls(open_private(path, append=True), app=app, target=target, cycle_id=cycle_id)

    # -- what the executor applies ---------------------------------------------------------------------------

    def record(self, step: Step, *, status: str, target_id: str | None = None, duration_ms: int = 0,
               error: str | None = None, code: str | None = None) -> dict[str, Any]:
        """The record of one applied step: Success, or Failure with the target's answer (``error``)."""
        done = _DONE.get(step.action, "written")
        if error is None:
            export = _step("Export", f"{step.kind} '{step.display}' was {done} in the target", targetId=target_id)
            info = {"reason": f"{done}" + (f" ({step.reason})" if _deprovisioning(step) else "")}
        else:
            code = code or "TargetError"
            export = _step("Export", error, "Failure", errorCode=code)
            info = {"reason": error, "errorCode": code}
        processing = _step("Processing", f"{step.kind} '{step.display}': {step.action.value}",
                           changes=len(step.operations) or len(step.shown_changes()))
        entry = self._entry(step.kind, step.display, step.source_id, target_id, action=_ACTIONS.get(step.action,
                            "Other"), status=status, info=info, steps=[*self._path(step, target_id), processing,
                                                                       *_references(step), export],
                            modified=_modified(step), detail=step.action, duration_ms=duration_ms)
        self._write([entry])
        return entry

    def staged(self, plan: Plan) -> None:
        """A guarded plan's steps, none applied: disables and deletes as StagedDelete, the others as their action,
        all Skipped with the guard's reason (Entra's TooManyDeletes)."""
        reason = (f"deletion guard: {plan.destructive} disables/deletes exceed deletionThreshold {plan.threshold}; "
                  "nothing was applied (review the plan, then re-run with --allow-deletes)")
        entries = []
        for step in plan.steps:
            if not step.writes:
                continue
            action = "StagedDelete" if _deprovisioning(step) else _ACTIONS.get(step.action, "Other")
            target_id = step.target_id or plan.targets.get(step.source_id or "")
            processing = _step("Processing", reason, "Skipped", errorCode="TooManyDeletes")
            entries.append(self._entry(step.kind, step.display, step.source_id, target_id, action=action,
                                       status="Skipped", info={"reason": reason, "errorCode": "TooManyDeletes"},
                                       steps=[*self._path(step, target_id), processing], modified=_modified(step),
                                       detail=step.action))
        self._write(entries)

    def _path(self, step: Step, target_id: str | None) -> list[dict[str, Any]]:
        """Import, Scoping and Matching of a planned step."""
        return [_imported(step.kind, step.display, step.source_id),
                _scoped(step.kind, step.display, step.reason if _deprovisioning(step) else None),
                _matched(step, target_id)]

    # -- every other object of the plan ----------------------------------------------------------------------

    def considered(self, plan: Plan, desired: DesiredState, live: LiveState, *, unmanaged: bool = True) -> int:
        """One record for every object of the cycle that no applied step logs; returns how many were written.

        Conflicts (Warning), directory objects skipped (Skipped, or Failure when their mapping failed), objects
        out of scope without a step, objects already in sync, and, with ``unmanaged``, target objects no directory
        object of this app owns or matches (left alone). For a cycle over only some directory objects (provision
        on demand), pass ``unmanaged=False``: the other target objects are not unmanaged, only not considered.
        """
        stepped = {s.key for s in plan.steps}
        owners = _owners(live)
        # Generated, and written in batches as they come: 100,000 records held at once would cost the garbage
        # collector more than building them.
        entries = itertools.chain(
            (self._conflict(s) for s in plan.steps if s.action == Action.CONFLICT),
            (self._skipped_object(s.kind, s.display, s.source_id, s.reason, s.failed,
                                  owners.get((s.kind, s.source_id)))
             for s in desired.skipped if f"{s.kind}:{s.source_id}" not in stepped),
            (self._out_of_scope(d.kind, d.display, d.source_id, d.reason, owners.get((d.kind, d.source_id)), live)
             for d in desired.deprovision if f"{d.kind}:{d.source_id}" not in stepped),
            (self._untouched(o.kind, o.display, o.source_id, plan.targets.get(o.source_id))
             for o in (*desired.users, *desired.groups) if f"{o.kind}:{o.source_id}" not in stepped),
            self._unmanaged(plan, desired, live, owners) if unmanaged else ())
        return self._write(entries)

    def _conflict(self, step: Step) -> dict[str, Any]:
        code = _conflict_code(step.reason)
        matching = _step("Matching", step.reason, "Warning", errorCode=code)
        return self._entry(step.kind, step.display, step.source_id, step.target_id, action="Other",
                           status="Warning", info={"reason": f"conflict: {step.reason}; nothing was written",
                                                   "errorCode": code},
                           steps=[_imported(step.kind, step.display, step.source_id),
                                  _scoped(step.kind, step.display), matching], detail=step.action)

    def _skipped_object(self, kind: str, display: str, source_id: str, reason: str, failed: bool,
                        target_id: str | None) -> dict[str, Any]:
        """A directory object in scope that could not be mapped (Failure) or has no matching value (Skipped)."""
        status, code = ("Failure", "MappingFailed") if failed else ("Skipped", "ImportSkipped")
        processing = _step("Processing", reason, status, errorCode=code)
        return self._entry(kind, display, source_id, target_id, action="Other", status=status,
                           info={"reason": reason, "errorCode": code},
                           steps=[_imported(kind, display, source_id), _scoped(kind, display), processing])

    def _out_of_scope(self, kind: str, display: str, source_id: str, reason: str, target_id: str | None,
                      live: LiveState) -> dict[str, Any]:
        """An out-of-scope directory object the plan does nothing to: not in the target, or already deprovisioned
        (or kept, as the plan's notes say)."""
        why = f"{reason} ({_OUT_OF_SCOPE[reason]})" if reason in _OUT_OF_SCOPE else reason
        if target_id is None:
            action, outcome = "Create", f"{why}: not provisioned; no target {kind} carries its externalId"
        else:
            resource = (live.users if kind == "User" else live.groups).get(target_id, {})
            disabled = kind == "User" and str(resource.get("active")).lower() == "false"
            action = "Disable" if kind == "User" else "Delete"
            outcome = (f"{why}: target {kind} {target_id} is already disabled" if disabled else
                       f"{why}: target {kind} {target_id} is left as it is (see the plan's notes)")
        scoping = _scoped(kind, display, reason, "Skipped")
        return self._entry(kind, display, source_id, target_id, action=action, status="Skipped",
                           info={"reason": outcome, "errorCode": "NotEffectivelyEntitled"},
                           steps=[_imported(kind, display, source_id), scoping])

    def _untouched(self, kind: str, display: str, source_id: str, target_id: str | None) -> dict[str, Any]:
        """A desired object without a step: in sync, or left out of the plan (its notes say why)."""
        if target_id is None:
            reason, matching = "not in the plan (see its notes)", _step("Matching", f"No target {kind} matches")
            processing = _step("Processing", reason, "Skipped")
            action = "Create"
        else:
            reason, matching = "in sync", _step("Matching", f"Target {kind} {target_id} is this object's",
                                                targetId=target_id)
            processing = _step("Processing", f"{kind} '{display}' is in sync: nothing to change", "Skipped")
            action = "Other"
        return self._entry(kind, display, source_id, target_id, action=action, status="Skipped",
                           info={"reason": reason},
                           steps=[_imported(kind, display, source_id), _scoped(kind, display), matching,
                                  processing])

    def _unmanaged(self, plan: Plan, desired: DesiredState, live: LiveState,
                   owners: Mapping[tuple[str, str], str]) -> Iterator[dict[str, Any]]:
        """Target objects that no directory object of this app owns or matches: never written."""
        directory_ids = {o.source_id for o in (*desired.users, *desired.groups)}
        directory_ids |= {d.source_id for d in desired.deprovision} | {s.source_id for s in desired.skipped}
        # (kind, target id): ids may repeat across resource types (a user and a group both "1")
        kinds: dict[str, str] = {o.source_id: o.kind for o in (*desired.users, *desired.groups)}
        managed: set[tuple[str | None, str | None]] = {(kinds.get(s), rid) for s, rid in plan.targets.items()}
        managed |= {(s.kind, s.target_id) for s in plan.steps if s.target_id}
        managed |= {(d.kind, owners[(d.kind, d.source_id)]) for d in desired.deprovision
                    if (d.kind, d.source_id) in owners}
        for kind, resources, name in (("User", live.users, "userName"), ("Group", live.groups, "displayName")):
            for rid, resource in resources.items():
                if (kind, rid) in managed:
                    continue
                external = resource.get("externalId")
                why = (f"its externalId {external!r} names no object of this app's directory" if external and
                       external not in directory_ids else "no directory object of this app owns or matches it")
                reason = f"not managed by this app: {why}; left alone"
                display = str(resource.get(name) or rid)
                steps = [_step("Import", f"Read target {kind} '{display}'", targetId=rid),
                         _step("Matching", reason, "Skipped")]
                yield self._entry(kind, None, None, rid, action="Other", status="Skipped",
                                  info={"reason": reason, "errorCode": "EntrySynchronizationSkipped"},
                                  steps=steps, target_display=display)

    # -- records ---------------------------------------------------------------------------------------------

    def _entry(self, kind: str, display: str | None, source_id: str | None, target_id: str | None, *, action: str,
               status: str, info: dict[str, Any], steps: list[dict[str, Any]],
               modified: list[dict[str, Any]] | None = None, detail: str | None = None, duration_ms: int = 0,
               target_display: str | None = None) -> dict[str, Any]:
        return {
            "activityDateTime": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "jobId": self.job_id,
            "cycleId": self.cycle_id,
            "changeId": str(uuid.uuid4()),
            "app": self.app,
            "action": action,
            "actionDetail": detail,
            "status": status,
            "statusInfo": info,
            "sourceIdentity": {"id": source_id, "displayName": display, "identityType": kind},
            "targetIdentity": {"id": target_id, "displayName": target_display, "identityType": kind},
            "modifiedProperties": modified or [],
            "provisioningSteps": steps,
            "durationInMilliseconds": duration_ms,
        }

    def _write(self, entries: Iterable[dict[str, Any]]) -> int:
        """Write ``entries``, a batch of lines per write call; returns how many."""
        written = 0
        with self._lock:
            iterator = iter(entries)
            while batch := list(itertools.islice(iterator, _BATCH)):
                self.stream.write("".join(json.dumps(e, ensure_ascii=False, default=str) + "\n" for e in batch))
                written += len(batch)
            self.stream.flush()
        return written

    def close(self) -> None:
        self.stream.close()


def _references(step: Step) -> list[dict[str, Any]]:
    """ReferenceResolution of a group's membership changes (members are resolved to target ids when written)."""
    if not (step.members_add or step.members_remove):
        return []
    return [_step("ReferenceResolution", f"Membership: {len(step.members_add)} to add, {len(step.members_remove)} "
                                         "to remove", add=len(step.members_add), remove=len(step.members_remove))]


def _modified(step: Step) -> list[dict[str, Any]]:
    modified = [{"displayName": c.path, "oldValue": c.old, "newValue": c.new} for c in step.shown_changes()]
    if step.members_add or step.members_remove:
        modified.append({"displayName": "members", "oldValue": None,
                         "newValue": {"add": step.members_add, "remove": step.members_remove}})
    return modified


def _owners(live: LiveState) -> dict[tuple[str, str], str]:
    """(kind, externalId) -> target id, for objects that exactly one target object carries the externalId of."""
    seen: dict[tuple[str, str], str | None] = {}
    for kind, resources in (("User", live.users), ("Group", live.groups)):
        for rid, resource in resources.items():
            external = resource.get("externalId")
            if isinstance(external, str) and external:
                key = (kind, external)
                seen[key] = None if key in seen else rid
    return {key: rid for key, rid in seen.items() if rid is not None}
