"""The ledger after a round, from what the target looks like after it. Pure.

A round's writes are journaled as they happen (:mod:`reconciler.state.store`); once the round is over and the
target read again, :func:`after_round` rebuilds the ledger from the plan made on that read, which is the surest
account of what is ours:

- every directory object the plan manages (owned by the ledger or by ``externalId``, or created) is recorded with
  its target id; an object only matched (its adoption still pending, or refused) is not ours yet;
- ``applied`` becomes what the reconciler writes for it (:func:`reconciler.plan.applied_resource`) once it is in
  sync; while an update is pending it keeps the last value known to be applied, so that a change someone makes
  on the target shows as drift, not as a change from the directory. Redacted attributes are never stored;
- a deprovisioned object stays in the ledger (disabled, still ours) until its target object is gone; an object
  gone from the target (deleted by this run or by anyone) leaves the ledger.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from reconciler.desired import DesiredObject, DesiredState
from reconciler.manifest.model import Manifest
from reconciler.plan import Action, Plan, applied_resource
from reconciler.scim.livestate import LiveState
from reconciler.scim.paths import parse_path
from reconciler.state.model import (
    Cycle,
    Failure,
    LedgerEntry,
    ProvisioningState,
    Quarantine,
    ledger_key,
    paused_gc,
    scrubbed,
    with_escrow,
)

PENDING_ADOPTION = frozenset({Action.ADOPT, Action.CONFLICT})


def after_round(state: ProvisioningState, desired: DesiredState, plan: Plan, live: LiveState, *, now: str,
                groups: bool = True, only: set[str] | None = None) -> ProvisioningState:
    """The state with its ledger brought in line with ``plan``, made on ``live`` as read after a round.

    ``only``: the ledger keys ``live`` speaks for, when it holds some objects only (an incremental cycle); the
    other entries are kept as they are.
    """
    with paused_gc():
        return _after_round(state, desired, plan, live, now=now, groups=groups, only=only)


def _after_round(state: ProvisioningState, desired: DesiredState, plan: Plan, live: LiveState, *, now: str,
                 groups: bool, only: set[str] | None) -> ProvisioningState:
    ledger = dict(state.ledger)
    steps = {s.key: s for s in plan.steps}
    for obj in (*desired.users, *(desired.groups if groups else ())):
        target_id = plan.targets.get(obj.source_id)
        key = ledger_key(obj.kind, obj.source_id)
        previous = ledger.get(key)
        step = steps.get(key)
        if target_id is None:
            continue
        if step is not None and step.action in PENDING_ADOPTION and (previous is None or
                                                                     previous.target_id != target_id):
            continue  # matched, not adopted (yet): somebody else's until the adoption is written
        same = previous is not None and previous.target_id == target_id
        in_sync = step is None or (step.action == Action.UPDATE and not step.operations)  # membership only
        applied = _stored(applied_resource(obj, plan.targets), obj) if in_sync else (
            previous.applied if same and previous else None)
        ledger[key] = LedgerEntry(obj.kind, obj.source_id, target_id, obj.display,
                                  [list(pair) for pair in obj.matching], applied,
                                  previous.since if same and previous else now,
                                  members=previous.members if same and previous else None)
    present = {"User": live.users, "Group": live.groups}
    wanted = {o.source_id for o in desired.users}
    for key, entry in list(ledger.items()):
        if (entry.kind == "Group" and not groups) or (only is not None and key not in only):
            continue  # groups are not read when they are not provisioned: nothing to tell
        resource = present.get(entry.kind, {}).get(entry.target_id)
        if resource is None:
            del ledger[key]
            continue
        disabled = entry.kind == "User" and entry.source_id not in wanted and not _active(resource.get("active"))
        members = _members(resource, live) if entry.kind == "Group" else None
        if disabled != entry.disabled or members != entry.members:
            ledger[key] = replace(entry, disabled=disabled, members=members)
    return replace(state, ledger=ledger)


def _members(group: Mapping[str, Any], live: LiveState) -> list[list[str]]:
    """A live group's members as the ledger keeps them: [target id, kind], sorted; a member that does not say
    its kind is a group only when a group, and no user, has its id (as the planner tells them apart)."""
    found: list[list[str]] = []
    for member in group.get("members") or []:
        if not isinstance(member, Mapping) or member.get("value") is None:
            continue
        said = str(member.get("type") or "").lower()
        ref = str(member.get("$ref") or "")
        value = str(member["value"])
        if said in ("user", "group"):
            kind = said.capitalize()
        elif "/Groups/" in ref or "/Users/" in ref:
            kind = "Group" if "/Groups/" in ref else "User"
        else:
            kind = "Group" if value in live.groups and value not in live.users else "User"
        found.append([value, kind])
    return sorted(found)


def _active(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return value.strip().lower() != "false"
    return bool(value)


def _stored(resource: Mapping[str, Any], obj: DesiredObject) -> dict[str, Any]:
    """``resource`` without the attributes whose values are redacted (``Redact``): the state never holds them;
    nor its ``schemas``, which the kind says (a tenth of every entry's size)."""
    if not obj.redacted:
        return {k: v for k, v in resource.items() if k != "schemas"}
    hidden = {_top(p) for p in obj.redacted}
    stored: dict[str, Any] = {}
    for key, value in resource.items():
        if key == "schemas":
            continue
        if isinstance(value, dict) and key.lower().startswith("urn:"):
            kept = {k: v for k, v in value.items() if (key.lower(), k.lower()) not in hidden}
            if kept:
                stored[key] = kept
        elif ("", key.lower()) not in hidden:
            stored[key] = value
    return stored


def _top(text: str) -> tuple[str, str]:
    path = parse_path(text)
    return (path.schema or "").lower(), path.attribute.lower()


# Entra's quarantine reasons (synchronizationQuarantine), as the state records them
QUARANTINE_FAILED = "EncounteredQuarantineException"       # the cycle failed as a whole (target, token, ...)
QUARANTINE_DELETES = "TooManyDeletes"                        # the deletion guard
QUARANTINE_ESCROWS = "EncounteredEscrowProportionThreshold"  # too many objects failed
NOT_CONVERGED = "NotConverged"                               # some objects failed or are pending: retried
ESCROW_MIN = 5000          # Entra evaluates the escrow proportion from this many failures ...
ESCROW_SHARE = 0.4         # ... and quarantines above this share of the objects,
ESCROW_MAX = 60000         # or above this many failures whatever the share


def escrow_quarantined(failures: int, objects: int) -> bool:
    """Entra's escrow threshold: at least 5,000 failures that are more than 40% of the objects (or more than
    40,000), or more than 60,000 whatever the share."""
    return failures > ESCROW_MAX or (failures >= ESCROW_MIN and (failures > ESCROW_SHARE * max(objects, 1)
                                                                 or failures > 40000))


def after_run(state: ProvisioningState, cycle: Cycle, failures: Iterable[Failure], *, objects: int = 0,
              reason: str | None = None) -> ProvisioningState:
    """The state after a run: its cycle, the escrow (:func:`~reconciler.state.model.with_escrow`), and the
    quarantine's count of consecutive failed cycles (a converged cycle ends it, as Entra's first clean one does).

    ``reason`` names why a failed cycle failed (Entra's words); without one, a cycle that did not converge counts
    as :data:`NOT_CONVERGED`, or :data:`QUARANTINE_ESCROWS` past Entra's escrow threshold.
    """
    failed = list(failures)
    state = replace(with_escrow(state, failed, cycle.finished), last_cycle=cycle)
    if cycle.outcome == "converged":
        return replace(state, quarantine=Quarantine())
    previous = state.quarantine
    why = reason or (QUARANTINE_ESCROWS if escrow_quarantined(len(failed), objects) else NOT_CONVERGED)
    return replace(state, quarantine=Quarantine(previous.failures + 1, previous.since or cycle.finished, why,
                                                previous.next_attempt, scrubbed(cycle.error)))


def config_digest(manifest: Manifest) -> str:
    """A digest of what decides the desired state besides the directory: mappings, scope, filters, assignments."""
    provisioning = manifest.provisioning.model_dump(mode="json", exclude={"target", "directory"})
    assignments = [a.model_dump(mode="json") for a in manifest.assignments]
    text = json.dumps({"provisioning": provisioning, "assignments": assignments}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
