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
  written, and the run does not count as converged.
- Group members are managed only when they are users or groups the reconciler manages; a member someone added by
  hand to a managed group stays.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from reconciler.desired import Deprovision, DesiredObject, DesiredState
from reconciler.errors import PlanFormatError
from reconciler.manifest.model import Manifest
from reconciler.match import LiveIndex, Match, adoption_refusal
from reconciler.scim.errors import PathError
from reconciler.scim.livestate import LiveState
from reconciler.scim.normalize import Change, SchemaIndex, diff_resource
from reconciler.scim.paths import CORE_GROUP, CORE_USER, parse_path

PLAN_FORMAT = 1


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


@dataclass
class Step:
    """One change to one target object.

    ``action`` is an :class:`Action` (a plain string is converted, as from a saved plan). Group steps may carry
    membership changes: ``members_add`` holds directory ids (resolved to target ids when applied, since a member
    may be created in the same run) and ``members_remove`` target ids.
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
                   targets=dict(data.get("targets", {})))


def make_plan(manifest: Manifest, desired: DesiredState, live: LiveState, *, target: str = "",
              schemas: SchemaIndex | None = None, allow_deletes: bool = False) -> Plan:
    """Diff ``desired`` against ``live`` under the manifest's rules; see the module docstring."""
    provisioning = manifest.provisioning
    index = schemas or SchemaIndex.rfc_defaults()
    plan = Plan(app=manifest.name, target=target or provisioning.target.url, deprovision=provisioning.deprovision,
                threshold=provisioning.deletion_threshold, fingerprint=fingerprint(live),
                allow_deletes=allow_deletes)
    directory_ids = ({o.source_id for o in desired.users} | {o.source_id for o in desired.groups}
                     | {d.source_id for d in desired.deprovision})

    users = LiveIndex(live.users.values(), _matching_paths(desired.users, desired.deprovision, "User"), index)
    adopt = provisioning.adopt
    user_targets, touched_users = _plan_kind(plan, desired.users, users, CORE_USER, directory_ids, index, adopt)
    touched_users |= _plan_deprovision(plan, [d for d in desired.deprovision if d.kind == "User"], users,
                                       CORE_USER)

    plan.targets.update(user_targets)
    groups_enabled = provisioning.groups.enabled
    touched_groups: set[str] = set()
    if groups_enabled:
        groups = LiveIndex(live.groups.values(), _matching_paths(desired.groups, desired.deprovision, "Group"), index)
        group_targets, touched_groups = _plan_kind(plan, desired.groups, groups, CORE_GROUP, directory_ids, index,
                                                   adopt)
        touched_groups |= _plan_deprovision(plan, [d for d in desired.deprovision if d.kind == "Group"], groups,
                                            CORE_GROUP)
        plan.targets.update(group_targets)
        managed_targets = {**user_targets, **group_targets}
        _plan_members(plan, desired.groups, groups, managed_targets, set(user_targets.values()) | set(
            group_targets.values()) | touched_users)
    managed_users = touched_users | set(user_targets.values())
    orphans = sum(1 for rid, r in live.users.items() if rid not in managed_users
                  and isinstance(r.get("externalId"), str) and r["externalId"] and r["externalId"] not in directory_ids)
    if orphans:
        plan.notes.append(f"{orphans} target user(s) carry an externalId that names no object in the directory "
                          "(deleted there, or not provisioned from it): left alone")
    plan.unmanaged = {"User": len(live.users) - len(managed_users),
                      "Group": (len(live.groups) - len(touched_groups)) if groups_enabled else len(live.groups)}
    plan.steps.sort(key=step_order)
    if plan.guarded:
        plan.notes.append(f"deletion guard: {plan.destructive} disables/deletes exceed deletionThreshold "
                          f"{plan.threshold}; nothing will be applied without --allow-deletes")
    return plan


def _matching_paths(objects: Iterable[DesiredObject], gone: Iterable[Deprovision], kind: str) -> list[str]:
    paths: dict[str, None] = {}
    items: list[DesiredObject | Deprovision] = [*objects, *(d for d in gone if d.kind == kind)]
    for item in items:
        for path, _ in item.matching:
            paths.setdefault(path, None)
    return list(paths)


def _plan_kind(plan: Plan, objects: Sequence[DesiredObject], index: LiveIndex, schema: str,
               directory_ids: set[str], schemas: SchemaIndex, adopt: str) -> tuple[dict[str, str], set[str]]:
    """Create, update or adopt each desired object; returns source id -> target id, and the target ids touched.

    Matching runs first for every object, so that references between them (a manager) resolve to target ids.
    """
    targets: dict[str, str] = {}
    claimed: dict[str, str] = {}  # target id -> the source id that took it, so that two never share one
    matched: list[tuple[DesiredObject, Match]] = []
    for obj in objects:
        found = _resolve(index.match(obj.source_id, obj.matching, schema), obj.source_id, directory_ids, adopt)
        taken_by = claimed.get(str(found.live.get("id"))) if found.live is not None else None
        if found.how in ("ambiguous", "refused") or taken_by is not None:
            detail = found.detail or f"target object is matched by {taken_by} too"
            plan.steps.append(Step(Action.CONFLICT, obj.kind, obj.display, obj.source_id, reason=detail,
                                   matching=[list(pair) for pair in obj.matching]))
            continue
        if found.live is not None:
            targets[obj.source_id] = str(found.live.get("id"))
            claimed[str(found.live.get("id"))] = obj.source_id
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
        resource = _with_references({k: v for k, v in obj.resource.items() if k != "members"}, obj.references,
                                    targets)
        diffs = [c for c in diff_resource(resource, found.live, schemas) if not _removes(c, obj.add_only)]
        if found.how == "matched" or diffs:
            action = Action.ADOPT if found.how == "matched" else Action.UPDATE
            step = _patch_step(action, obj, targets[obj.source_id], diffs, found.detail, matching)
            step.changes = _redact(step.changes, obj.redacted)
            plan.steps.append(step)
    return targets, set(claimed)


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
        path = parse_path(text)
        container = result.get(path.schema, {}) if path.schema else result
        if not isinstance(container, dict) or path.attribute not in container:
            continue
        value = container[path.attribute]
        source_id = value.get("value") if isinstance(value, Mapping) else value
        target_id = targets.get(str(source_id))
        if target_id is None:
            del container[path.attribute]
        else:
            container[path.attribute] = {"value": target_id}
    return result


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
    return [AttributeChange(c.path, None if c.old is None else "[Redact]", "[Redact]")
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


def _plan_deprovision(plan: Plan, gone: Sequence[Deprovision], index: LiveIndex, schema: str) -> set[str]:
    """Disable or delete the live objects this app provisioned (or adopted) for directory objects now out of scope.

    Only owned objects (``externalId`` = the directory id) are deprovisioned: an object that merely matches an
    out-of-scope directory object on a matching attribute was never provisioned by this app, and Entra leaves
    such objects alone too. The plan counts them in a note.
    """
    touched: set[str] = set()
    not_ours = 0
    for item in gone:
        owned = index.owned_by(item.source_id)
        if len(owned) > 1:
            ids = ", ".join(sorted(str(o.get("id")) for o in owned))
            plan.steps.append(Step(Action.CONFLICT, item.kind, item.display, item.source_id,
                                   reason=f"{len(owned)} target objects carry externalId {item.source_id!r} ({ids})"))
            continue
        if not owned:
            not_ours += index.match(item.source_id, item.matching, schema).how == "matched"
            continue
        live = owned[0]
        target_id = str(live.get("id"))
        touched.add(target_id)
        if plan.deprovision == "delete" or item.kind == "Group":
            if item.kind == "Group" and plan.deprovision == "disable":
                continue  # groups have no 'active'; with deprovision: disable they are left in place
            plan.steps.append(Step(Action.DELETE, item.kind, item.display, item.source_id, target_id,
                                   reason=item.reason))
        elif _is_active(live.get("active")):
            operation = {"op": "replace", "path": "active", "value": False}
            plan.steps.append(Step(Action.DISABLE, item.kind, item.display, item.source_id, target_id,
                                   reason=item.reason, operations=[operation],
                                   changes=[AttributeChange("active", live.get("active"), False)]))
    if not_ours:
        plan.notes.append(f"{not_ours} target object(s) match out-of-scope directory objects but were not "
                          "provisioned by this app (no externalId of theirs): left alone")
    return touched


def _is_active(value: Any) -> bool:
    """SCIM says a missing ``active`` means active; some servers send it as a string."""
    if value is None:
        return True
    if isinstance(value, str):
        return value.strip().lower() != "false"
    return bool(value)


def _plan_members(plan: Plan, groups: Sequence[DesiredObject], index: LiveIndex, managed: dict[str, str],
                  managed_target_ids: set[str]) -> None:
    """Membership adds and removals for each desired group, folded into its step (or a new update step)."""
    steps = {s.source_id: s for s in plan.steps if s.kind == "Group" and s.action != Action.CONFLICT}
    conflicts = {s.source_id for s in plan.steps if s.action == Action.CONFLICT}
    for group in groups:
        if group.source_id in conflicts:
            continue
        step = steps.get(group.source_id)
        live_group = index.by_id.get(managed.get(group.source_id, ""), {})
        live_members = {str(m.get("value")) for m in live_group.get("members") or [] if isinstance(m, Mapping)}
        wanted_targets: set[str] = set()
        add: list[str] = []
        for member in group.members:
            target_id = managed.get(member)
            if target_id is not None:
                wanted_targets.add(target_id)
            if target_id is None or target_id not in live_members:
                add.append(member)
        remove = sorted(t for t in live_members - wanted_targets if t in managed_target_ids)
        if not add and not remove:
            continue
        if step is None:
            step = Step(Action.UPDATE, "Group", group.display, group.source_id, managed.get(group.source_id),
                        reason="membership")
            plan.steps.append(step)
            steps[group.source_id] = step
        step.members_add = sorted(add)
        step.members_remove = remove


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
