"""The plan: what must change in the target so that it matches the desired state. Pure, plain data.

``make_plan(manifest, desired, live)`` diffs the desired SCIM objects (from the directory and the manifest) against
the live ones (one paged read of the target) and returns a :class:`Plan`: a list of steps that can be rendered,
saved as JSON, reviewed, and applied later. The safe defaults, in the words of the rules that protect users' data:

- A step touches a live object only if it is **owned** (its ``externalId`` is the directory object's id) or
  **matched** (equal on a matching attribute, in precedence order) by a directory object and adoptable under
  ``provisioning.adopt`` (by default only an account with no ``externalId``); see :mod:`reconciler.match`.
  Everything else is unmanaged: never updated, disabled or deleted.
- ``deprovision: disable`` sends ``active=false`` and never deletes a user; ``delete`` deletes.
- Disables and deletes are counted; above ``deletionThreshold`` the plan is **guarded** and applies nothing
  unless deletes are allowed explicitly.
- A matching value that finds several live objects, an object owned by another directory object, or a match
  that ``provisioning.adopt`` does not allow (another system's ``externalId``) is a **conflict**: reported, never
  written, and the run does not count as converged. So is a write the target would refuse as a duplicate
  (:data:`UNIQUE_ATTRIBUTES`: a value another live object holds, or one that several directory objects want).
- Group members are managed only when they are users or groups the reconciler manages; a member someone added by
  hand to a managed group stays.
- Entra's switches: ``provisioning.actions`` (create, update, delete) leaves out the steps of an action turned
  off (an adopt is an update; disables and deletes are ``delete``); ``skipOutOfScopeDeletions`` keeps objects
  that only left scope, while those disabled or deleted in the directory are still deprovisioned.
- A reference (a manager) to a user not in the target is left unset and named in a note: set next round when
  the manager is created this run, else said not to be provisioned (and why).
- With the provisioning state's **ledger** (:mod:`reconciler.state.model`), a live object the ledger names is
  owned whatever its ``externalId`` says now; a ledger object whose directory object is gone altogether
  (**purged**) is deprovisioned like any leaver and counted by the deletion guard; and an update's attribute
  changes say where they come from (``origin``): the directory (the wanted value moved since the last apply)
  or the target (someone changed it there: "changed outside the reconciler").
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from reconciler.desired import Deprovision, DesiredObject, DesiredState, Skipped
from reconciler.errors import PlanFormatError
from reconciler.manifest.model import Manifest
from reconciler.match import LiveIndex, Match, adoption_refusal
from reconciler.scim.errors import PathError
from reconciler.scim.livestate import LiveState
from reconciler.scim.normalize import Change, SchemaIndex, comparable, diff_resource, identity_key
from reconciler.scim.paths import CORE_GROUP, CORE_USER, parse_path
from reconciler.state.model import LedgerEntry, ledger_key

PLAN_FORMAT = 1
PURGED = "purged from the directory"  # the deprovision reason of a ledger object whose directory object is gone
# AttributeChange.origin: where a change of an update comes from (empty when the ledger cannot tell)
FROM_DIRECTORY = "directory"
FROM_TARGET = "target"


class Action(StrEnum):
    """What a step does to one target object. A ``str``: a saved plan's JSON holds the bare value."""

    CREATE = "create"
    UPDATE = "update"
    ADOPT = "adopt"
    DISABLE = "disable"
    DELETE = "delete"
    CONFLICT = "conflict"

    @property
    def verb(self) -> str:
        """The action as every renderer shows it: deletes and conflicts stand out."""
        return VERBS[self]


# The plan's vocabulary, defined here only. Summaries count in this order; steps are listed in ORDER (users before
# groups, then destructive first so that reviewers see them at the top).
SUMMARY_KEYS: tuple[str, ...] = tuple(a.value for a in Action)
DESTRUCTIVE = frozenset({Action.DISABLE, Action.DELETE})
ORDER = (Action.CONFLICT, Action.DELETE, Action.DISABLE, Action.CREATE, Action.ADOPT, Action.UPDATE)
VERBS = {**{a: a.value for a in Action}, Action.DELETE: "DELETE", Action.CONFLICT: "CONFLICT"}
_RANK = {action: rank for rank, action in enumerate(ORDER)}
# How many members of a membership change (or other objects in a conflict) a plan names; the rest are counted.
MEMBERS_SHOWN = 10
# The attribute a target keeps unique per kind: a write that would repeat a value is a conflict at plan time.
UNIQUE_ATTRIBUTES = {CORE_USER: "userName", CORE_GROUP: "displayName"}
# The provisioning.actions switch (Entra's target object action) each write needs; adopting writes externalId.
ACTION_SWITCHES = {Action.CREATE: "create", Action.UPDATE: "update", Action.ADOPT: "update",
                   Action.DISABLE: "delete", Action.DELETE: "delete"}


def fingerprint(live: LiveState) -> str:
    """A digest of the live objects (without server metadata), to tell whether the target moved since a plan."""
    digest = hashlib.sha256()
    for kind, resources in (("User", live.users), ("Group", live.groups)):
        for rid in sorted(resources):
            content = {k: v for k, v in resources[rid].items() if k != "meta"}
            if isinstance(content.get("members"), list):
                content["members"] = sorted(str(m.get("value")) for m in content["members"] if isinstance(m, Mapping))
            digest.update(kind.encode())
            digest.update(json.dumps(content, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:32]


@dataclass
class AttributeChange:
    path: str
    old: Any
    new: Any
    origin: str = ""  # FROM_DIRECTORY, FROM_TARGET (changed outside the reconciler), or "" (not known)


@dataclass
class Step:
    """One change to one target object.

    ``action`` is an :class:`Action` (a plain string is converted, as from a saved plan). Group steps may carry
    membership changes: ``members_add`` holds directory ids (resolved to target ids when applied, since a member
    may be created in the same run) and ``members_remove`` target ids, each listed by display name;
    ``member_names`` maps the first :data:`MEMBERS_SHOWN` ids of each to their display names.
    """

    action: Action
    kind: str
    display: str
    source_id: str | None = None
    target_id: str | None = None
    reason: str = ""
    body: dict[str, Any] | None = None
    operations: list[dict[str, Any]] = field(default_factory=list)
    changes: list[AttributeChange] = field(default_factory=list)
    matching: list[list[Any]] = field(default_factory=list)
    members_add: list[str] = field(default_factory=list)
    members_remove: list[str] = field(default_factory=list)
    member_names: dict[str, str] = field(default_factory=dict)  # display names of the members the plan shows

    def __post_init__(self) -> None:
        self.action = Action(self.action)

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.source_id or self.target_id}"

    @property
    def writes(self) -> bool:
        return self.action != Action.CONFLICT

    def shown_changes(self) -> list[AttributeChange]:
        """The per-attribute changes to show: a create's come from its body unless the plan kept them."""
        if self.changes or self.action != Action.CREATE or not self.body:
            return self.changes
        return _new_attributes(self.body)


@dataclass
class Plan:
    app: str
    target: str
    deprovision: str
    threshold: int
    fingerprint: str
    steps: list[Step] = field(default_factory=list)
    unmanaged: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    allow_deletes: bool = False
    targets: dict[str, str] = field(default_factory=dict)  # directory id -> target id of every managed object
    mode: str = "full"  # "full": planned on a read of the target; "incremental": on the ledger, what changed

    @property
    def destructive(self) -> int:
        return sum(1 for s in self.steps if s.action in DESTRUCTIVE)

    @property
    def guarded(self) -> bool:
        """True when the plan would disable or delete more than the threshold and deletes were not allowed."""
        return self.destructive > self.threshold and not self.allow_deletes

    @property
    def empty(self) -> bool:
        return not self.steps

    @property
    def has_writes(self) -> bool:
        return any(s.writes for s in self.steps)

    def summary(self) -> dict[str, int]:
        counts = dict.fromkeys(SUMMARY_KEYS, 0)
        for step in self.steps:
            counts[step.action] = counts.get(step.action, 0) + 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["format"] = PLAN_FORMAT
        data["summary"] = self.summary()
        data["guarded"] = self.guarded
        data["destructive"] = self.destructive
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Plan:
        if data.get("format") != PLAN_FORMAT:
            raise PlanFormatError(f"unsupported plan format {data.get('format')!r} (expected {PLAN_FORMAT})")
        steps = [Step(**{**s, "changes": [AttributeChange(**c) for c in s.get("changes", [])]})
                 for s in data.get("steps", [])]
        fields = {k: data[k] for k in ("app", "target", "deprovision", "threshold", "fingerprint")}
        return cls(**fields, steps=steps, unmanaged=dict(data.get("unmanaged", {})),
                   notes=list(data.get("notes", [])), allow_deletes=bool(data.get("allow_deletes", False)),
                   targets=dict(data.get("targets", {})), mode=str(data.get("mode", "full")))


def make_plan(manifest: Manifest, desired: DesiredState, live: LiveState, *, target: str = "",
              schemas: SchemaIndex | None = None, allow_deletes: bool = False,
              known_ids: Iterable[str] = (), ledger: Mapping[str, LedgerEntry] | None = None,
              purge: bool = True, members_from_ledger: bool = False) -> Plan:
    """Diff ``desired`` against ``live`` under the manifest's rules; see the module docstring.

    ``known_ids``: directory ids beyond those in ``desired``, when it holds only some objects (provision on
    demand), so that a live object carrying another directory object's id stays that object's, never adopted.
    ``ledger``: the provisioning state's ledger, keyed by :func:`~reconciler.state.model.ledger_key`; with
    ``purge``, its objects that the directory no longer knows are deprovisioned (a run over some objects only,
    such as provision on demand, passes ``purge=False``). ``members_from_ledger``: members that ``desired`` does
    not hold resolve to their ledger objects (an incremental cycle plans some objects only).
    """
    provisioning = manifest.provisioning
    index = schemas or SchemaIndex.rfc_defaults()
    plan = Plan(app=manifest.name, target=target or provisioning.target.url, deprovision=provisioning.deprovision,
                threshold=provisioning.deletion_threshold, fingerprint=fingerprint(live),
                allow_deletes=allow_deletes)
    directory_ids = ({o.source_id for o in desired.users} | {o.source_id for o in desired.groups}
                     | {d.source_id for d in desired.deprovision} | {s.source_id for s in desired.skipped}
                     | set(known_ids))
    keep_leavers = provisioning.skip_out_of_scope_deletions
    ledger = ledger or {}
    gone = [*desired.deprovision, *(_purged(ledger, directory_ids) if purge else ())]

    users = LiveIndex(live.users.values(), _matching_paths(desired.users, gone, "User"), index)
    adopt = provisioning.adopt
    user_targets, touched_users = _plan_kind(plan, desired.users, users, CORE_USER, directory_ids, index, adopt,
                                             ledger)
    touched_users |= _plan_deprovision(plan, [d for d in gone if d.kind == "User"], users,
                                       CORE_USER, keep_leavers=keep_leavers, ledger=ledger)

    plan.targets.update(user_targets)
    groups_enabled = provisioning.groups.enabled
    touched_groups: set[str] = set()
    if groups_enabled:
        groups = LiveIndex(live.groups.values(), _matching_paths(desired.groups, gone, "Group"), index)
        group_targets, touched_groups = _plan_kind(plan, desired.groups, groups, CORE_GROUP, directory_ids, index,
                                                   adopt, ledger)
        touched_groups |= _plan_deprovision(plan, [d for d in gone if d.kind == "Group"], groups,
                                            CORE_GROUP, keep_leavers=keep_leavers, ledger=ledger)
        plan.targets.update(group_targets)
        known = {e.source_id: e for e in ledger.values() if not e.disabled} if members_from_ledger else {}
        managed_targets = {**{s: e.target_id for s, e in known.items()}, **user_targets, **group_targets}
        # (kind, target id): ids may repeat across resource types (a user and a group both "1")
        managed_ids = ({("User", t) for t in (*user_targets.values(), *touched_users)}
                       | {("Group", t) for t in group_targets.values()}
                       | {(e.kind, e.target_id) for e in known.values()})
        group_sources = set(group_targets) | {s for s, e in known.items() if e.kind == "Group"}
        kinds = _MemberKinds(users.by_id, groups.by_id, group_sources)
        _plan_members(plan, desired.groups, groups, managed_targets, managed_ids,
                      _member_names(desired, managed_targets, users, groups), kinds)
    managed_users = touched_users | set(user_targets.values())
    orphans = sum(1 for rid, r in live.users.items() if rid not in managed_users
                  and isinstance(r.get("externalId"), str) and r["externalId"] and r["externalId"] not in directory_ids)
    if orphans:
        plan.notes.append(f"{orphans} target user(s) carry an externalId that names no object in the directory "
                          "(deleted there, or not provisioned from it): left alone")
    _note_skipped_targets(plan, desired.skipped, live)
    _note_drift(plan)
    _within_actions(plan, provisioning.actions)
    _note_references(plan, desired, "update" in provisioning.actions)
    plan.unmanaged = {"User": len(live.users) - len(managed_users),
                      "Group": (len(live.groups) - len(touched_groups)) if groups_enabled else len(live.groups)}
    plan.steps.sort(key=step_order)
    if plan.guarded:
        plan.notes.append(f"deletion guard: {plan.destructive} disables/deletes exceed deletionThreshold "
                          f"{plan.threshold}; nothing will be applied without --allow-deletes")
    return plan


def _purged(ledger: Mapping[str, LedgerEntry], directory_ids: Container[str]) -> list[Deprovision]:
    """The ledger's objects whose directory objects are gone altogether, not even among the deleted items."""
    return [Deprovision(e.kind, e.source_id, e.display or e.source_id,  # type: ignore[arg-type]
                        tuple((str(p[0]), p[1]) for p in e.matching if len(p) == 2), PURGED)
            for e in ledger.values() if e.source_id not in directory_ids and e.kind in ("User", "Group")]


def _note_drift(plan: Plan) -> None:
    """One note counting the attribute changes that undo changes made on the target outside the reconciler."""
    drifted = [s for s in plan.steps if any(c.origin == FROM_TARGET for c in s.changes)]
    if drifted:
        changes = sum(1 for s in drifted for c in s.changes if c.origin == FROM_TARGET)
        plan.notes.append(f"{changes} attribute(s) of {len(drifted)} object(s) changed outside the reconciler "
                          "since the last apply; this plan sets them back (marked in the changes)")


def applied_resource(obj: DesiredObject, targets: Mapping[str, str]) -> dict[str, Any]:
    """What an update of ``obj`` writes, references resolved: the ledger's ``applied`` once it is in sync."""
    return _with_references({k: v for k, v in obj.resource.items() if k != "members"}, obj.references, targets)


def _matching_paths(objects: Iterable[DesiredObject], gone: Iterable[Deprovision], kind: str) -> list[str]:
    """The paths to index live objects by: every matching path, and the attribute the target keeps unique."""
    paths: dict[str, None] = {}
    items: list[DesiredObject | Deprovision] = [*objects, *(d for d in gone if d.kind == kind)]
    for item in items:
        for path, _ in item.matching:
            paths.setdefault(path, None)
    paths.setdefault(UNIQUE_ATTRIBUTES[CORE_GROUP if kind == "Group" else CORE_USER], None)
    return list(paths)


def _within_actions(plan: Plan, actions: Sequence[str]) -> None:
    """Leave out the steps of the target object actions that ``provisioning.actions`` turns off (Entra's flowTypes
    Add, Update, Delete): creates are reported as skipped, the rest counted in a note."""
    kept: list[Step] = []
    left_out: dict[Action, int] = {}
    for step in plan.steps:
        switch = ACTION_SWITCHES.get(step.action)
        if switch is None or switch in actions:
            kept.append(step)
        elif step.action == Action.CREATE:
            plan.notes.append(f"skipped {step.kind.lower()} {step.display}: provisioning.actions has no create")
        else:
            left_out[step.action] = left_out.get(step.action, 0) + 1
    if "create" not in actions:
        # A member that is never created cannot be added; asking for it every run would never converge.
        for step in kept:
            step.members_add = [m for m in step.members_add if m in plan.targets]
        kept = [s for s in kept if s.action != Action.UPDATE or s.operations or s.members_add or s.members_remove]
    for action, count in left_out.items():
        plan.notes.append(f"{count} {action.value} step(s) left out: provisioning.actions has no "
                          f"{ACTION_SWITCHES[action]}")
    plan.steps = kept


def _note_skipped_targets(plan: Plan, skipped: Sequence[Skipped], live: LiveState) -> None:
    """Target objects of directory objects skipped this run are left alone, and the plan says why (they are not
    orphans: their directory objects exist)."""
    owners = {(kind, str(r.get("externalId"))): rid for kind, resources in (("User", live.users),
                                                                            ("Group", live.groups))
              for rid, r in resources.items() if r.get("externalId")}
    for item in skipped:
        target_id = owners.get((item.kind, item.source_id))
        if target_id is not None:
            why = "its mapping failed" if item.failed else "it has no matching value"
            plan.notes.append(f"target {item.kind.lower()} {target_id} ({item.display}) left alone: {why}")


def _plan_kind(plan: Plan, objects: Sequence[DesiredObject], index: LiveIndex, schema: str,
               directory_ids: set[str], schemas: SchemaIndex, adopt: str,
               ledger: Mapping[str, LedgerEntry]) -> tuple[dict[str, str], set[str]]:
    """Create, update or adopt each desired object; returns source id -> target id, and the target ids touched.

    Matching runs first for every object, so that references between them (a manager) resolve to target ids.
    """
    targets: dict[str, str] = {}
    claimed: dict[str, str] = {}  # target id -> the source id that took it, so that two never share one
    matched: list[tuple[DesiredObject, Match]] = []
    resolved = [(obj, _owned_by_ledger(ledger.get(ledger_key(obj.kind, obj.source_id)), index)
                 or _resolve(index.match(obj.source_id, obj.matching, schema), obj.source_id, directory_ids, adopt))
                for obj in objects]
    clashes = _unique_clashes(resolved, index, schema, schemas)
    for obj, found in resolved:
        live_id = str(found.live.get("id")) if found.live is not None else None
        taken_by = claimed.get(live_id) if live_id is not None else None
        if found.how in ("ambiguous", "refused") or taken_by is not None:
            detail = found.detail or f"target object is matched by {taken_by} too"
            plan.steps.append(Step(Action.CONFLICT, obj.kind, obj.display, obj.source_id, reason=detail,
                                   matching=[list(pair) for pair in obj.matching]))
            continue
        clash = clashes.get(obj.source_id)
        if live_id is not None and (clash is None or found.how == "owned"):
            # An owned object in a conflict stays ours (its memberships too); a match in one is not adopted.
            targets[obj.source_id] = live_id
            claimed[live_id] = obj.source_id
        if clash is not None:
            plan.steps.append(Step(Action.CONFLICT, obj.kind, obj.display, obj.source_id, live_id, reason=clash,
                                   matching=[list(pair) for pair in obj.matching]))
            continue
        matched.append((obj, found))
    for obj, found in matched:
        matching = [list(pair) for pair in obj.matching]
        if found.live is None:
            body = _with_references(obj.create_body(), obj.references, targets)
            # A create's attribute list is derived from its body when shown; kept only when values are hidden.
            changes = _redact(_new_attributes(body), obj.redacted) if obj.redacted else []
            plan.steps.append(Step(Action.CREATE, obj.kind, obj.display, obj.source_id, body=body, matching=matching,
                                   changes=changes))
            continue
        resource = applied_resource(obj, targets)
        diffs = [c for c in diff_resource(resource, found.live, schemas) if not _removes(c, obj.add_only)]
        if found.how == "matched" or diffs:
            action = Action.ADOPT if found.how == "matched" else Action.UPDATE
            step = _patch_step(action, obj, targets[obj.source_id], diffs, found.detail, matching)
            entry = ledger.get(ledger_key(obj.kind, obj.source_id))
            if action == Action.UPDATE and entry is not None and entry.applied is not None:
                _mark_origins(step.changes, resource, entry.applied, schemas)
            step.changes = _redact(step.changes, obj.redacted)
            plan.steps.append(step)
    return targets, set(claimed)


def _owned_by_ledger(entry: LedgerEntry | None, index: LiveIndex) -> Match | None:
    """The live object the ledger names for a directory object, when it is still in the target."""
    if entry is None:
        return None
    live = index.by_id.get(entry.target_id)
    return Match("owned", live, detail="in the ledger") if live is not None else None


def _mark_origins(changes: list[AttributeChange], resource: Mapping[str, Any], applied: Mapping[str, Any],
                  schemas: SchemaIndex) -> None:
    """Mark each change as from the directory (the wanted value differs from the one last applied) or from the
    target (the wanted value is the one last applied, so the target's value was changed there)."""
    moved = {c.path for c in diff_resource(dict(resource), {**applied, "schemas": resource.get("schemas")}, schemas)}
    for change in changes:
        change.origin = FROM_DIRECTORY if change.path in moved else FROM_TARGET


def _unique_clashes(resolved: Sequence[tuple[DesiredObject, Match]], index: LiveIndex, schema: str,
                    schemas: SchemaIndex) -> dict[str, str]:
    """Why each object whose write would break the target's uniqueness (:data:`UNIQUE_ATTRIBUTES`) is a conflict.

    Two or more directory objects wanting one value are all conflicts (which one is right is the directory's to
    say); so is a create, adopt or update whose new value another live object already holds (the target would
    answer 409). Values compare as the schema says (``userName`` case-insensitively).
    """
    attribute = UNIQUE_ATTRIBUTES[schema]
    candidates = [(obj, found, value, comparable(value, schemas.rule(schema, attribute, value)))
                  for obj, found in resolved if found.how not in ("ambiguous", "refused")
                  for value in [_unique_value(obj, found, attribute)] if value is not None]
    wanted: dict[Any, list[DesiredObject]] = {}
    for obj, _, _, key in candidates:
        wanted.setdefault(key, []).append(obj)
    held = index.by_path.get(attribute, {})  # keyed as ``key`` is: the same schema rule, the same comparison
    clashes: dict[str, str] = {}
    for obj, found, value, key in candidates:
        claimants = wanted[key]
        holders = held.get(key, [])
        if len(claimants) < 2 and not holders:
            continue  # the common case: nobody else wants the value, nobody holds it
        shown = "[Redact]" if ("", attribute.lower()) in {_attribute(p) for p in obj.redacted} else repr(value)
        if len(claimants) > 1:
            others = [f"{o.display} ({o.source_id})" for o in claimants[:MEMBERS_SHOWN + 1] if o is not obj]
            clashes[obj.source_id] = (f"{attribute} {shown} is wanted by directory object(s) "
                                      f"{_first(others, len(claimants) - 1)} too; none of them is written until "
                                      "each has its own")
            continue
        live_id = found.live.get("id") if found.live is not None else None
        if not any(h.get("id") == live_id for h in holders):  # held, and not by the object itself
            ids = [str(h.get("id")) for h in holders]
            clashes[obj.source_id] = (f"{attribute} {shown} is already held by another target object "
                                      f"({_first(ids, len(ids))}); not sent, the target would refuse a duplicate")
    return clashes


def _unique_value(obj: DesiredObject, found: Match, attribute: str) -> str | None:
    """The value ``obj`` would send for the unique ``attribute``: a create sends its whole body, an update only
    the attributes applied always."""
    source = obj.create_body() if found.live is None else obj.resource
    value = next((v for k, v in source.items() if k.lower() == attribute.lower()), None)
    return value if isinstance(value, str) and value else None


def _first(names: Sequence[str], total: int) -> str:
    """The first :data:`MEMBERS_SHOWN` of ``names``, then how many more of ``total``."""
    shown = names[:MEMBERS_SHOWN]
    return ", ".join(shown) + (f", +{total - len(shown)} more" if total > len(shown) else "")


def _with_references(resource: dict[str, Any], references: Sequence[str], targets: Mapping[str, str]
                     ) -> dict[str, Any]:
    """``resource`` with directory ids at ``references`` (a manager) replaced by target ids, as ``{"value": id}``.

    A reference to an object not in the target yet is left out this round; the next round sets it (as Entra
    resolves references in a later PATCH).
    """
    if not references:
        return resource
    result = json.loads(json.dumps(resource))
    for text in references:
        slot = _reference_slot(result, text)
        if slot is None:
            continue
        container, attribute, source_id = slot
        target_id = targets.get(source_id)
        if target_id is None:
            del container[attribute]
        else:
            container[attribute] = {"value": target_id}
    return result


def _reference_slot(body: dict[str, Any], text: str) -> tuple[dict[str, Any], str, str] | None:
    """Where the reference at path ``text`` sits in ``body``: (container, attribute, directory id), or None."""
    path = parse_path(text)
    container = body.get(path.schema, {}) if path.schema else body
    if not isinstance(container, dict) or path.attribute not in container:
        return None
    value = container[path.attribute]
    source_id = value.get("value") if isinstance(value, Mapping) else value
    return container, path.attribute, str(source_id)


def _note_references(plan: Plan, desired: DesiredState, updates: bool) -> None:
    """A note for every reference (a manager) that this plan leaves unset, naming the user and the manager.

    A manager created this run is set next round (its create keeps the plan from being empty, so the run goes
    on); one that will not be provisioned (out of scope, its mapping failed, a conflict ...) is said to be so and
    does not hold the run: a later run sets the reference once the manager is provisioned.
    """
    steps = {s.source_id: s for s in plan.steps if s.kind == "User"}
    known: tuple[dict[str, str], dict[str, str]] | None = None
    for obj in desired.users:
        step = steps.get(obj.source_id)
        creating = step is not None and step.action == Action.CREATE
        if not obj.references or not (creating or (updates and obj.source_id in plan.targets)):
            continue
        body = obj.create_body()
        for text in obj.references:
            slot = _reference_slot(body, text)
            if slot is None or slot[2] in plan.targets:
                continue
            _, attribute, ref = slot
            known = known or _unprovisioned(plan, desired)
            displays, reasons = known
            what = f"unresolved reference: {attribute} {displays.get(ref, ref)} of user {obj.display}"
            referenced = steps.get(ref)
            if referenced is not None and referenced.action == Action.CREATE:
                plan.notes.append(f"{what} is created this run; it is set next round")
            else:
                reason = reasons.get(ref, "not among the directory objects of this run")
                plan.notes.append(f"{what} will not be provisioned ({reason}); left unset")


def _unprovisioned(plan: Plan, desired: DesiredState) -> tuple[dict[str, str], dict[str, str]]:
    """Every directory user's display, and why those without a target object this run are not provisioned."""
    named: list[DesiredObject | Deprovision | Skipped] = [*desired.users, *desired.deprovision, *desired.skipped]
    displays = {o.source_id: o.display for o in named if o.kind == "User"}
    reasons = {d.source_id: d.reason for d in desired.deprovision if d.kind == "User"}
    reasons |= {s.source_id: "its mapping failed" if s.failed else s.reason for s in desired.skipped
                if s.kind == "User"}
    reasons |= {s.source_id: "a conflict" for s in plan.steps
                if s.kind == "User" and s.action == Action.CONFLICT and s.source_id}
    reasons |= {o.source_id: "provisioning.actions has no create" for o in desired.users
                if o.source_id not in plan.targets and o.source_id not in reasons}
    return displays, reasons


@functools.lru_cache(maxsize=4096)
def _attribute(text: str) -> tuple[str, str]:
    """(extension URN or "", top attribute) of a SCIM path, lowercased: what a mapping writes, coarsely."""
    try:
        path = parse_path(text)
    except PathError:
        return "", text.split("[")[0].split(".")[0].lower()
    return (path.schema or "").lower(), path.attribute.lower()


def _removes(change: Change, add_only: Sequence[str]) -> bool:
    """A removal from an attribute whose mapping only ever adds (Entra's AppRoleAssignmentsComplex)."""
    return change.op == "remove" and _attribute(change.path) in {_attribute(p) for p in add_only}


def _redact(changes: list[AttributeChange], redacted: Sequence[str]) -> list[AttributeChange]:
    """Changes with the values of ``Redact``-ed mappings shown as "[Redact]", as Entra logs them (the whole
    attribute is hidden, which may hide a little more than the mapping wrote, never less)."""
    if not redacted:
        return changes
    hidden = {_attribute(p) for p in redacted}
    return [AttributeChange(c.path, None if c.old is None else "[Redact]", "[Redact]", c.origin)
            if _attribute(c.path) in hidden else c for c in changes]


def _resolve(found: Match, source_id: str, directory_ids: set[str], adopt: str) -> Match:
    """A match on a matching attribute whose externalId names another directory object is a conflict, whatever
    the adopt policy; so is a match the policy does not allow (``refused``)."""
    if found.how != "matched" or found.live is None:
        return found
    external = found.live.get("externalId")
    if isinstance(external, str) and external != source_id and external in directory_ids:
        return Match("ambiguous", detail=f"target object {found.live.get('id')} ({found.detail}) belongs to "
                                         f"directory object {external}")
    refusal = adoption_refusal(found.live, source_id, adopt)
    if refusal is not None:
        return Match("refused", detail=f"target object {found.live.get('id')} ({found.detail}) {refusal}; "
                                       "not adopting it")
    return found


def _patch_step(action: Action, obj: DesiredObject, target_id: str, changes: list[Change], detail: str,
                matching: list[list[Any]]) -> Step:
    return Step(action, obj.kind, obj.display, obj.source_id, target_id, reason=detail,
                operations=[c.operation() for c in changes], matching=matching,
                changes=[AttributeChange(c.path, c.old, c.new) for c in changes])


def _plan_deprovision(plan: Plan, gone: Sequence[Deprovision], index: LiveIndex, schema: str, *,
                      keep_leavers: bool = False, ledger: Mapping[str, LedgerEntry] | None = None) -> set[str]:
    """Disable or delete the live objects this app provisioned (or adopted) for directory objects now out of scope.

    Only owned objects (the ledger names them, or their ``externalId`` is the directory id) are deprovisioned,
    purged ones (:data:`PURGED`) included: an object that merely matches an
    out-of-scope directory object on a matching attribute was never provisioned by this app, and Entra leaves
    such objects alone too. The plan counts them in a note. With ``keep_leavers`` (skipOutOfScopeDeletions),
    objects that only left scope stay as they are (still managed); disabled or deleted ones are deprovisioned.
    """
    touched: set[str] = set()
    not_ours = 0
    kept = 0
    for item in gone:
        by_ledger = _owned_by_ledger((ledger or {}).get(ledger_key(item.kind, item.source_id)), index)
        owned = [by_ledger.live] if by_ledger is not None and by_ledger.live is not None else (
            index.owned_by(item.source_id))
        if len(owned) > 1:
            ids = ", ".join(sorted(str(o.get("id")) for o in owned))
            plan.steps.append(Step(Action.CONFLICT, item.kind, item.display, item.source_id,
                                   reason=f"{len(owned)} target objects carry externalId {item.source_id!r} ({ids})"))
            continue
        if not owned:
            not_ours += index.match(item.source_id, item.matching, schema).how == "matched"
            continue
        touched.add(str(owned[0].get("id")))
        step = _deprovision_step(plan.deprovision, item, owned[0])
        if step is not None and keep_leavers and item.left_scope:
            kept += 1
        elif step is not None:
            plan.steps.append(step)
    if not_ours:
        plan.notes.append(f"{not_ours} target object(s) match out-of-scope directory objects but were not "
                          "provisioned by this app (no externalId of theirs): left alone")
    if kept:
        plan.notes.append(f"{kept} target object(s) of directory objects that left scope (unassigned or filtered "
                          "out) stay as they are: provisioning.skipOutOfScopeDeletions")
    return touched


def _deprovision_step(mode: str, item: Deprovision, live: Mapping[str, Any]) -> Step | None:
    """The disable or delete of one owned object, or None when there is nothing to do."""
    target_id = str(live.get("id"))
    if mode == "delete" or item.kind == "Group":
        if item.kind == "Group" and mode == "disable":
            return None  # groups have no 'active'; with deprovision: disable they are left in place
        return Step(Action.DELETE, item.kind, item.display, item.source_id, target_id, reason=item.reason)
    if not _is_active(live.get("active")):
        return None
    operation = {"op": "replace", "path": "active", "value": False}
    return Step(Action.DISABLE, item.kind, item.display, item.source_id, target_id, reason=item.reason,
                operations=[operation], changes=[AttributeChange("active", live.get("active"), False)])


def _is_active(value: Any) -> bool:
    """SCIM says a missing ``active`` means active; some servers send it as a string."""
    if value is None:
        return True
    if isinstance(value, str):
        return value.strip().lower() != "false"
    return bool(value)


@dataclass(frozen=True)
class _MemberKinds:
    """Tells users from groups among members: live ones by :meth:`live`, directory ones by ``group_sources``."""

    user_ids: Container[str]
    group_ids: Container[str]
    group_sources: Container[str]  # directory ids of the managed groups

    def live(self, member: Mapping[str, Any]) -> tuple[str, str]:
        """(kind, id) of a live member: its ``type`` (or ``$ref``) when it says; else a user when a user has the id
        (group members reference users, and ids may repeat across resource types), a group when only a group
        has it, else a user."""
        value = str(member.get("value"))
        said = str(member.get("type") or "").lower()
        ref = str(member.get("$ref") or "")
        if said in ("user", "group"):
            return said.capitalize(), value
        if "/Groups/" in ref or "/Users/" in ref:
            return ("Group" if "/Groups/" in ref else "User"), value
        return ("Group" if value not in self.user_ids and value in self.group_ids else "User"), value

    def wanted(self, source_id: str, target_id: str) -> tuple[str, str]:
        return ("Group" if source_id in self.group_sources else "User"), target_id


def _plan_members(plan: Plan, groups: Sequence[DesiredObject], index: LiveIndex, managed: dict[str, str],
                  managed_ids: set[tuple[str, str]], names: Mapping[str, str], kinds: _MemberKinds) -> None:
    """Membership adds and removals for each desired group, folded into its step (or a new update step), listed by
    name; the step keeps the names of the members a plan shows (:data:`MEMBERS_SHOWN` of each list).

    Members compare as (kind, id), so that a hand-added user "1" is never taken for the managed group "1"."""
    steps = {s.source_id: s for s in plan.steps if s.kind == "Group" and s.action != Action.CONFLICT}
    conflicts = {s.source_id for s in plan.steps if s.action == Action.CONFLICT}
    for group in groups:
        if group.source_id in conflicts:
            continue
        step = steps.get(group.source_id)
        live_group = index.by_id.get(managed.get(group.source_id, ""), {})
        live_members = {kinds.live(m) for m in live_group.get("members") or [] if isinstance(m, Mapping)}
        wanted_targets: set[tuple[str, str]] = set()
        add: list[str] = []
        for member in group.members:
            target_id = managed.get(member)
            if target_id is not None:
                wanted_targets.add(kinds.wanted(member, target_id))
            elif member in conflicts:
                continue  # not in the target and not written this run: asking every round would never converge
            if target_id is None or kinds.wanted(member, target_id) not in live_members:
                add.append(member)
        remove = [t for kind, t in live_members - wanted_targets if (kind, t) in managed_ids]
        if not add and not remove:
            continue
        if step is None:
            step = Step(Action.UPDATE, "Group", group.display, group.source_id, managed.get(group.source_id),
                        reason="membership")
            plan.steps.append(step)
            steps[group.source_id] = step
        step.members_add, step.members_remove = _by_name(add, names), _by_name(remove, names)
        step.member_names = {m: names[m] for m in [*step.members_add[:MEMBERS_SHOWN],
                                                   *step.members_remove[:MEMBERS_SHOWN]] if m in names}


def _by_name(ids: Iterable[str], names: Mapping[str, str]) -> list[str]:
    """Member ids in the order plans list them: by display name (case-insensitive), then id."""
    return sorted(ids, key=lambda i: (names.get(i, i).casefold(), i))


def _member_names(desired: DesiredState, targets: Mapping[str, str], users: LiveIndex,
                  groups: LiveIndex) -> dict[str, str]:
    """Display names by directory id and by target id: the directory's for managed objects, else the target's own
    ``userName`` or ``displayName``."""
    names: dict[str, str] = {}
    # users last: where a user and a group share an id, a member id names the user
    for index, attribute in ((groups, "displayName"), (users, "userName")):
        for rid, resource in index.by_id.items():
            value = resource.get(attribute)
            if isinstance(value, str) and value:
                names[rid] = value
    for obj in (*desired.groups, *desired.users):
        names[obj.source_id] = obj.display
        if obj.source_id in targets:
            names[targets[obj.source_id]] = obj.display
    return names


def _new_attributes(body: Mapping[str, Any]) -> list[AttributeChange]:
    return [AttributeChange(path, None, value) for path, value in _flatten(body)]


def _flatten(resource: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Display pairs for a new object: ``name.givenName``, ``emails[type eq "work"].value``, ``urn:...:User:x``."""
    pairs: list[tuple[str, Any]] = []
    for key, value in resource.items():
        if key in ("schemas", "members"):
            continue
        separator = ":" if prefix.lower().startswith("urn:") else "."
        path = f"{prefix}{separator}{key}" if prefix else key
        if isinstance(value, Mapping):
            pairs.extend(_flatten(value, path))
        elif isinstance(value, list) and value and all(isinstance(e, Mapping) for e in value) \
                and identity_key(key, value) == "value":
            pairs.append((path, [e.get("value") for e in value]))  # roles: the values, one pair
        elif isinstance(value, list) and all(isinstance(e, Mapping) and "type" in e for e in value):
            for element in value:
                pairs.extend((f'{path}[type eq "{element["type"]}"].{sub}', sub_value)
                             for sub, sub_value in element.items() if sub != "type")
        else:
            pairs.append((path, value))
    return pairs


def step_order(step: Step) -> tuple[int, int, str]:
    """Where a step is listed: users before groups (members must exist first), then by :data:`ORDER`."""
    return (0 if step.kind == "User" else 1, _RANK[step.action], step.display.lower())
