"""Incremental cycles: the directory objects that changed, planned against the ledger, with no read of the target.
Pure.

An incremental cycle knows what changed in the directory (Graph deltas, or two snapshots compared) and what the
reconciler last wrote (the ledger's ``applied`` values and group members). Its vocabulary:

- **touched**: the directory ids whose desired state may have changed: changed, new, disabled, deleted or purged
  users and groups, the users added to or removed from a group, and the managed groups a touched user is a member
  of (a leaver must leave them);
- **ledger live**: the target as the ledger says the reconciler left it, for the touched objects only
  (:func:`ledger_live`); the plan is made on it with :func:`reconciler.plan.make_plan`, so every rule of a full
  plan holds (ownership, the deletion guard, the adopt policy, ``actions``), and its diff is exactly what the
  directory changed;
- **written**: after the writes, the target as they left it (:func:`written`), from which the ledger is updated
  (:func:`reconciler.ledger.after_round` with ``only``), without reading the target either.

What an incremental cycle cannot see is drift made on the target since the last full cycle: that is what full
cycles are for (``reconcile --full-every``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.desired import DesiredObject, DesiredState
from reconciler.manifest.model import Manifest
from reconciler.plan import Action, Plan, applied_resource, make_plan
from reconciler.scim.livestate import LiveState
from reconciler.scim.normalize import SchemaIndex
from reconciler.scim.paths import CORE_GROUP, CORE_USER
from reconciler.state.model import LedgerEntry, ProvisioningState, ledger_key


@dataclass
class Scope:
    """What an incremental plan covers: the touched directory ids and the ledger keys the ledger live holds."""

    ids: set[str] = field(default_factory=set)
    keys: set[str] = field(default_factory=set)


def touched_scope(state: ProvisioningState, desired: DesiredState, users: Iterable[str],
                  groups: Iterable[str]) -> Scope:
    """The touched ids (see the module docstring) and the ledger keys they and the purged objects stand for."""
    ids = set(users) | set(groups)
    known = _directory_ids(desired)
    user_targets = {e.target_id for e in state.entries("User") if e.source_id in ids}
    for entry in state.entries("Group"):
        if entry.members and any(kind == "User" and target in user_targets for target, kind in entry.members):
            ids.add(entry.source_id)
    keys = {e.key for e in state.ledger.values() if e.source_id in ids or e.source_id not in known}
    return Scope(ids, keys)


def _directory_ids(desired: DesiredState) -> set[str]:
    return ({o.source_id for o in desired.users} | {o.source_id for o in desired.groups}
            | {d.source_id for d in desired.deprovision} | {s.source_id for s in desired.skipped})


def restricted(desired: DesiredState, ids: set[str]) -> DesiredState:
    return DesiredState(users=tuple(o for o in desired.users if o.source_id in ids),
                        groups=tuple(o for o in desired.groups if o.source_id in ids),
                        deprovision=tuple(d for d in desired.deprovision if d.source_id in ids),
                        skipped=tuple(s for s in desired.skipped if s.source_id in ids))


def ledger_live(state: ProvisioningState, keys: Iterable[str]) -> LiveState:
    """The target as the ledger says the reconciler left it, for the ledger entries ``keys``."""
    live = LiveState()
    for key in keys:
        entry = state.ledger.get(key)
        if entry is None:
            continue
        resource = _resource(entry)
        if entry.kind == "User":
            live.users[entry.target_id] = resource
        else:
            live.groups[entry.target_id] = resource
    return live


def _resource(entry: LedgerEntry) -> dict[str, Any]:
    schema = CORE_USER if entry.kind == "User" else CORE_GROUP
    resource: dict[str, Any] = {**(entry.applied or {}), "id": entry.target_id, "schemas": [schema]}
    if entry.kind == "User" and entry.disabled:
        resource["active"] = False
    if entry.kind == "Group":
        resource["members"] = [{"value": target, "type": kind} for target, kind in entry.members or []]
    return resource


def unknown(state: ProvisioningState, keys: Iterable[str]) -> list[LedgerEntry]:
    """The entries among ``keys`` whose last-applied values the ledger does not know: read them from the target."""
    return [e for k in keys if (e := state.ledger.get(k)) is not None and e.applied is None]


def incremental_plan(manifest: Manifest, desired: DesiredState, state: ProvisioningState, scope: Scope,
                     live: LiveState, *, target: str, schemas: SchemaIndex | None = None,
                     allow_deletes: bool = False) -> Plan:
    """make_plan over the touched objects and ``live`` (the ledger live, with what was read of the unknown)."""
    plan = make_plan(manifest, restricted(desired, scope.ids), live, target=target, schemas=schemas,
                     allow_deletes=allow_deletes, known_ids=_directory_ids(desired), ledger=state.ledger,
                     purge=True, members_from_ledger=True)
    plan.mode = "incremental"
    plan.unmanaged = {}
    return plan


def written(live: LiveState, plan: Plan, desired: DesiredState, created: Mapping[str, str],
            failed: set[str]) -> LiveState:
    """The target as the plan's writes left it: each write that succeeded (not in ``failed``, by step key) moves
    its object to what it wrote; a delete removes it."""
    after = LiveState(users=dict(live.users), groups=dict(live.groups))
    objects: dict[str, DesiredObject] = {ledger_key(o.kind, o.source_id): o for o in (*desired.users,
                                                                                       *desired.groups)}
    targets = {**plan.targets, **created}
    for step in plan.steps:
        if not step.writes or step.key in failed:
            continue
        store = after.users if step.kind == "User" else after.groups
        target_id = step.target_id or (created.get(step.source_id) if step.source_id else None)
        if target_id is None:
            continue
        if step.action == Action.DELETE:
            store.pop(target_id, None)
            continue
        before = store.get(target_id, {"id": target_id})
        obj = objects.get(step.key)
        resource = dict(before)
        if step.action == Action.DISABLE:
            resource["active"] = False
        elif obj is not None:
            schema = CORE_USER if step.kind == "User" else CORE_GROUP
            resource = {**applied_resource(obj, targets), "id": target_id, "schemas": [schema]}
            if step.action == Action.CREATE:
                resource.update({k: v for k, v in obj.on_create.items() if k not in resource})
            if "members" in before:
                resource["members"] = before["members"]
        if step.kind == "Group":
            members = {(str(m.get("value")), str(m.get("type") or "User")) for m in resource.get("members") or []}
            group_sources = {o.source_id for o in desired.groups}
            for source in step.members_add:
                member = targets.get(source)
                if member is not None:
                    members.add((member, "Group" if source in group_sources else "User"))
            removed = set(step.members_remove)
            resource["members"] = [{"value": m, "type": k} for m, k in sorted(members) if m not in removed]
        store[target_id] = resource
    return after
