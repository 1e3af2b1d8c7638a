"""Provision on demand (Entra's "Provision on demand"): a few named users or groups, now, through Entra's steps.

``reconciler apply --only NAME`` takes users (by userPrincipalName or object id) and groups (by displayName or
object id) and reports, for each, Entra's four steps with their outcome:

1. **Import**: the object as read from the directory, with the attributes the manifest reads.
2. **Scope**: assigned (directly, or as a direct member of an assigned group)? enabled? scoping filters passed?
   With the reason when not.
3. **Match**: the target is asked for this object only, by filter (``externalId eq``, then each matching attribute
   in precedence order): **owned** (its ``externalId``), **matched** (a matching attribute), no match, or a conflict.
4. **Action**: Create, Update, Disable, Delete or Skip, with the attributes it changes and how the write went.

The safe defaults are a full run's, because the plan is :func:`reconciler.plan.make_plan`'s:

- The target is never read whole: one filtered lookup per attribute, and each answer is filtered again here (a
  server that ignores ``filter`` answers with everybody). An answer in which nothing equals what was asked fails
  that object with one line, and nothing is written for it.
- The plan is made over a desired state that holds only the named objects (and the members a group brings
  along) and a live state that holds only what the lookups found, with every directory id known: nothing the
  lookups did not find is deprovisioned, and ownership, adoption (``provisioning.adopt``), conflicts,
  ``provisioning.actions`` and the deletion guard work as in a full run.
- An object that left scope (unassigned, filtered out, disabled, soft-deleted) is deprovisioned on demand when
  this app owns its target object: disabled or deleted as ``deprovision`` says. (Entra's own on-demand
  provisioning does not disable users disabled or deleted in Entra; this does.)
- A group brings its in-scope direct members along, each through the same steps, when it has at most
  :data:`GROUP_MEMBERS` of them (Entra's limit); a larger group brings only the members named too, and the
  membership of the others stays as it is.
- Writes go through :class:`reconciler.apply.PlanExecutor` (no duplicates, a failure fails its object alone, one
  provisioning-log record per step); the named objects are then looked up and planned again, until their plan is
  empty or ``max_rounds`` passed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from reconciler import desired as desired_module
from reconciler import selection
from reconciler.apply import PlanExecutor
from reconciler.desired import Deprovision, DesiredObject, DesiredState, Skipped, desired_state
from reconciler.directory.model import Directory, DirectoryGroup, DirectoryUser
from reconciler.directory_source import read_directory
from reconciler.errors import TargetError
from reconciler.manifest import LoadedManifest
from reconciler.manifest.model import Manifest, ScopingClause
from reconciler.match import LiveIndex
from reconciler.plan import Action, Plan, Step, make_plan
from reconciler.provlog import ProvisioningLog
from reconciler.run import RunOptions, TargetSession
from reconciler.scim.client import ScimClient, eq_filter
from reconciler.scim.errors import PathError, TargetStatusError
from reconciler.scim.livestate import LiveState, Resource
from reconciler.scim.normalize import SchemaIndex
from reconciler.scim.paths import CORE_GROUP, CORE_USER
from reconciler.scope import clause_holds
from reconciler.state.store import StateSession, now_iso

GROUP_MEMBERS = 5  # Entra provisions a group on demand with at most five members
VERBS = {Action.CREATE: "Create", Action.UPDATE: "Update", Action.ADOPT: "Update (adopt: sets externalId)",
         Action.DISABLE: "Disable", Action.DELETE: "Delete"}


@dataclass
class Subject:
    """One object provisioned on demand: what the directory says of it (steps 1 and 2), then what became of it."""

    kind: str                                   # "User" | "Group"
    source_id: str
    display: str
    attributes: list[tuple[str, Any]]           # step 1: the attributes the manifest reads, with their values
    scope: str                                  # step 2, in words
    desired: DesiredObject | None = None        # in scope
    gone: Deprovision | None = None             # must not be active in the target
    skipped: Skipped | None = None              # in scope, but its mapping failed or it has no matching value
    via: str = ""                               # the group that brought it along
    note: str = ""                              # a group too large to bring its members along
    found: str = "found in the directory"       # step 1's outcome
    match: str = ""                             # step 3, in words
    asked: list[str] = field(default_factory=list)  # the filters the target was asked
    lookup_error: str | None = None
    actions: list[tuple[Step, str]] = field(default_factory=list)  # step 4: each round's step and its outcome
    idle: str = ""                              # why there is nothing to do (step 4's Skip)
    pending: Step | None = None                 # what is still to do after the last round

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.source_id}"

    @property
    def matching(self) -> tuple[tuple[str, Any], ...]:
        item = self.desired or self.gone
        return item.matching if item is not None else ()

    @property
    def looked_up(self) -> bool:
        """Whether the target is asked for it: it is either wanted or to be deprovisioned."""
        return self.desired is not None or self.gone is not None

    @property
    def expected(self) -> bool:
        """It ended as its directory object says: nothing failed, no conflict, nothing left to do."""
        failed_mapping = self.skipped is not None and self.skipped.failed
        return self.lookup_error is None and not failed_mapping and self.pending is None


@dataclass
class OnDemandResult:
    app: str
    subjects: list[Subject] = field(default_factory=list)
    unresolved: list[str] = field(default_factory=list)  # one line per name that finds no directory object
    notes: list[str] = field(default_factory=list)
    rounds: int = 0
    writes: int = 0

    @property
    def ok(self) -> bool:
        return not self.unresolved and all(s.expected for s in self.subjects)

    def done(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for subject in self.subjects:
            for step, outcome in subject.actions:
                if outcome.startswith("Success"):
                    totals[step.action] = totals.get(step.action, 0) + 1
        return totals


# -- steps 1 and 2: the named objects in the directory (pure) ---------------------------------------------------

def select(manifest: Manifest, directory: Directory, desired: DesiredState, names: Sequence[str]
           ) -> tuple[list[Subject], list[str]]:
    """The subjects for ``names`` (in that order, a group's members right after it) and one line per name that
    names no single directory object."""
    wanted: dict[tuple[str, str], DesiredObject] = {(o.kind, o.source_id): o
                                                    for o in (*desired.users, *desired.groups)}
    gone: dict[tuple[str, str], Deprovision] = {(d.kind, d.source_id): d for d in desired.deprovision}
    skipped: dict[tuple[str, str], Skipped] = {(s.kind, s.source_id): s for s in desired.skipped}
    subjects: dict[str, Subject] = {}
    named: list[Subject] = []
    unresolved: list[str] = []
    for name in names:
        found, problem = _resolve(directory, name)
        if problem is not None:
            unresolved.append(f"{manifest.name}: --only {desired_module.shown(name)!r}: {problem}")
            continue
        assert found is not None
        subject = _subject(manifest, directory, found, wanted, gone, skipped)
        if subject.key not in subjects:
            subjects[subject.key] = subject
            named.append(subject)
    ordered: list[Subject] = []
    for subject in named:
        ordered.append(subject)
        members, subject.note = _members_along(subject, directory, wanted, subjects)
        for member in members:
            brought = _subject(manifest, directory, member, wanted, gone, skipped)
            brought.via = subject.display
            subjects[brought.key] = brought
            ordered.append(brought)
    return ordered, unresolved


def _resolve(directory: Directory, name: str) -> tuple[DirectoryUser | DirectoryGroup | None, str | None]:
    user = directory.find_user(name) or next((u for u in directory.deleted_users
                                              if u.id == name or u.upn.lower() == name.lower()), None)
    groups = directory.find_groups(name)
    if user is not None and groups:
        return None, f"names both user {user.upn} and group {groups[0].display_name}; give the object id"
    if len(groups) > 1:
        return None, f"{len(groups)} groups in {directory.source} are named so; give the group's object id"
    if user is None and not groups:
        return None, (f"no user (userPrincipalName or object id) or group (displayName or object id) of that name "
                      f"in {directory.source}")
    return (user if user is not None else groups[0]), None


def _subject(manifest: Manifest, directory: Directory, found: DirectoryUser | DirectoryGroup,
             wanted: dict[tuple[str, str], DesiredObject], gone: dict[tuple[str, str], Deprovision],
             skipped: dict[tuple[str, str], Skipped]) -> Subject:
    kind = "User" if isinstance(found, DirectoryUser) else "Group"
    key = (kind, found.id)
    subject = Subject(kind, found.id, desired_module.shown(found.upn if isinstance(found, DirectoryUser)
                                                           else found.display_name),
                      attributes=[], scope="", desired=wanted.get(key), gone=gone.get(key), skipped=skipped.get(key))
    if isinstance(found, DirectoryUser):
        if found.id not in directory.users_by_id:
            subject.found = "found among the directory's soft-deleted users"
        subject.attributes = _user_attributes(manifest, directory, found)
        subject.scope = _user_scope(manifest, directory, found, subject.gone)
    else:
        subject.attributes = _group_attributes(manifest, found)
        subject.scope = _group_scope(manifest, found, subject.gone)
    return subject


def _members_along(group: Subject, directory: Directory, wanted: dict[tuple[str, str], DesiredObject],
                   taken: dict[str, Subject]) -> tuple[list[DirectoryUser], str]:
    """The in-scope user members a group brings along (all of them when there are at most GROUP_MEMBERS), and a
    note when there are more."""
    if group.kind != "Group" or group.desired is None:
        return [], ""
    users = [m for m in group.desired.members if ("User", m) in wanted]
    if len(users) > GROUP_MEMBERS:
        named = sum(1 for m in users if f"User:{m}" in taken)
        return [], (f"{len(users)} in-scope members, more than the {GROUP_MEMBERS} that provision on demand brings "
                    f"along (as Entra does): only the {named} also named with --only are provisioned with it; the "
                    "membership of the others stays as it is")
    return [directory.users_by_id[m] for m in users if f"User:{m}" not in taken and m in directory.users_by_id], ""


def _user_attributes(manifest: Manifest, directory: Directory, user: DirectoryUser) -> list[tuple[str, Any]]:
    lookup = desired_module.user_attributes(manifest, directory, user)
    deleted = user.id not in directory.users_by_id
    names = sorted(selection.user_attributes(manifest) | {"objectId", "userPrincipalName"}, key=str.lower)
    return [(name, True if name == "IsSoftDeleted" and deleted else lookup(name)) for name in names]


def _group_attributes(manifest: Manifest, group: DirectoryGroup) -> list[tuple[str, Any]]:
    names = sorted((selection.group_attributes(manifest) | {"objectId", "displayName"}) - {"members"},
                   key=str.lower)
    return [*((name, group.get(name)) for name in names), ("direct members", len(group.members))]


def _user_scope(manifest: Manifest, directory: Directory, user: DirectoryUser, gone: Deprovision | None) -> str:
    provisioning = manifest.provisioning
    if gone is not None:
        why = {
            "unassigned": "not assigned to the app (neither directly nor as a direct member of an assigned group)",
            "disabled": "the account is disabled in the directory (accountEnabled is false)",
            "deleted": "the account is soft-deleted in the directory",
            "out of scope": "scoping filters not passed: " + _failed_filters(provisioning.scoping_filters, user),
        }
        return f"not in scope: {why.get(gone.reason, gone.reason)}"
    if provisioning.scope == "all":
        assigned = "every user (scope: all)"
    else:
        assigned = "assigned " + ", ".join(_assignments_of(manifest, directory, user))
    filters = "scoping filters passed" if provisioning.scoping_filters else "no scoping filters"
    return f"in scope: {assigned}; {filters}"


def _assignments_of(manifest: Manifest, directory: Directory, user: DirectoryUser) -> list[str]:
    found: list[str] = []
    for assignment in manifest.assignments:
        if assignment.user is not None:
            direct = directory.find_user(assignment.user)
            if direct is not None and direct.id == user.id:
                found.append(f"directly (role {assignment.role})")
            continue
        groups = directory.find_groups(assignment.principal)
        if len(groups) == 1 and user.id in groups[0].members:
            found.append(f"through group {groups[0].display_name} (role {assignment.role})")
    return found


def _failed_filters(filters: Sequence[Sequence[ScopingClause]], user: DirectoryUser) -> str:
    """For each scoping filter (they are ORed), its first clause that does not hold, with the user's value."""
    reasons: list[str] = []
    for clauses in filters:
        for clause in clauses:
            value = False if clause.attribute == "IsSoftDeleted" else user.get(clause.attribute)
            if not clause_holds(clause, value):
                operand = "" if clause.value is None else f" {_json(clause.value)}"
                reasons.append(f"{clause.attribute} {clause.operator}{operand} does not hold "
                               f"({clause.attribute} is {_json(value)})")
                break
    return "; ".join(reasons) or "no filter holds"


def _group_scope(manifest: Manifest, group: DirectoryGroup, gone: Deprovision | None) -> str:
    provisioning = manifest.provisioning
    if not provisioning.groups.enabled:
        return "not in scope: this app does not provision groups (provisioning.groups.enabled is false)"
    if gone is not None:
        return "not in scope: the group is not assigned to the app"
    if provisioning.scope == "all":
        return "in scope: every group (scope: all)"
    roles = [a.role for a in manifest.assignments
             if a.group is not None and (a.group == group.id or a.group.lower() == group.display_name.lower())]
    return "in scope: assigned" + (f" (role {', '.join(roles)})" if roles else "")


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


# -- steps 3 and 4: the target, asked for these objects only ---------------------------------------------------

class OnDemandRun(TargetSession):
    """Provision the objects ``names`` names of one app, now; see the module docstring."""

    def __init__(self, loaded: LoadedManifest, options: RunOptions, names: Sequence[str], *,
                 client: ScimClient | None = None) -> None:
        super().__init__(loaded, options, client=client)
        self.names = list(names)
        self.attributes = self._read_attributes()
        self.session: StateSession | None = None  # the provisioning state, held under its lock by the command
        self._events: list[dict[str, Any]] = []

    async def run(self, *, log: ProvisioningLog | None = None) -> OnDemandResult:
        directory = await read_directory(self.loaded, self.options.directory)
        desired = desired_state(self.manifest, directory)
        result = OnDemandResult(self.manifest.name)
        result.subjects, result.unresolved = select(self.manifest, directory, desired, self.names)
        if not any(s.looked_up for s in result.subjects):
            for subject in result.subjects:
                subject.match, subject.idle = "not attempted", _idle(subject, None, self.manifest)
            return result
        await self._discover()
        known = ({o.source_id for o in (*desired.users, *desired.groups)} | {d.source_id for d in desired.deprovision}
                 | {s.source_id for s in desired.skipped})
        live = await self._look_up(result.subjects)
        plan = self._plan(result.subjects, live, known)
        _describe(result.subjects, live, plan, self.schemas, self.manifest)
        result.notes = list(plan.notes)
        for _ in range(self.options.max_rounds):
            if not plan.has_writes:
                break
            await self._round(plan, result, log)
            live = await self._look_up(result.subjects)
            plan = self._plan(result.subjects, live, known)
        steps = {s.key: s for s in plan.steps}
        for subject in result.subjects:
            subject.pending = steps.get(subject.key)
        if self.session is not None and self._events:
            self.session.commit(self.session.state.with_events(self._events, now_iso()))
        return result

    def _journal(self, item: dict[str, Any]) -> None:
        """A write of this run: journaled now, and folded into the ledger when the run ends."""
        self._events.append(item)
        if self.session is not None:
            self.session.journal(item)

    async def _round(self, plan: Plan, result: OnDemandResult, log: ProvisioningLog | None) -> None:
        outcomes: dict[str, bool] = {}
        executor = PlanExecutor(self.client, plan, concurrency=self.options.concurrency, log=log,
                                progress=lambda step, ok: outcomes.__setitem__(step.key, ok), bulk=self.options.bulk,
                                adopt=self.manifest.provisioning.adopt, schemas=self.schemas, journal=self._journal)
        report = await executor.run()
        result.rounds += 1
        result.writes += report.writes
        failures = {f.step.key: f.reason for f in report.failures}
        steps = {s.key: s for s in plan.steps if s.writes}
        for subject in result.subjects:
            step = steps.get(subject.key)
            if step is None:
                continue
            if outcomes.get(subject.key) and subject.key not in failures:
                created = report.created.get(subject.source_id)
                subject.actions.append((step, f"Success (target id {created})" if created else "Success"))
            else:
                subject.actions.append((step, f"Failure: {failures.get(subject.key, 'not applied')}"))

    async def _look_up(self, subjects: Sequence[Subject]) -> LiveState:
        """The live objects that stand for ``subjects``, by filtered lookups only (a bounded few at a time)."""
        live = LiveState()
        limit = asyncio.Semaphore(self.options.concurrency)

        async def one(subject: Subject) -> None:
            async with limit:
                try:
                    found = await self._find_subject(subject)
                except (TargetError, PathError) as error:
                    subject.lookup_error = str(error)
                    return
            store = live.users if subject.kind == "User" else live.groups
            store.update((str(r["id"]), r) for r in found)

        await asyncio.gather(*(one(s) for s in subjects if s.looked_up and s.lookup_error is None))
        return live

    async def _find_subject(self, subject: Subject) -> list[Resource]:
        filterable = {a.lower() for a in self.manifest.provisioning.filterable_attributes}
        pairs: list[tuple[str, str]] = [("externalId", subject.source_id)] if "externalid" in filterable else []
        pairs += [(str(p), str(v)) for p, v in subject.matching if (str(p), str(v)) not in pairs]
        subject.asked = [eq_filter(path, value) for path, value in pairs]
        found: dict[str, Resource] = {}
        entry = self.session.state.entry(subject.kind, subject.source_id) if self.session is not None else None
        if entry is not None:  # the ledger names its object: read it by id, whatever its externalId says now
            try:
                found[entry.target_id] = await self.client.get(subject.kind, entry.target_id,
                                                               attributes=self.attributes[subject.kind])
            except TargetStatusError as error:
                if error.status != 404:
                    raise
        for path, value in pairs:
            for resource in await self._find(subject, path, value):
                found[str(resource["id"])] = resource
        return list(found.values())

    async def _find(self, subject: Subject, path: str, value: str) -> list[Resource]:
        """What the target answers for ``path eq value``, filtered again: only objects that really hold the value
        (the lookup-equality rule of :meth:`reconciler.apply.PlanExecutor._lookup`)."""
        answer = await self.client.find(subject.kind, path, value, attributes=self.attributes[subject.kind])
        answer = [r for r in answer if isinstance(r.get("id"), str)]
        if path == "externalId":
            equal = [r for r in answer if r.get("externalId") == value]  # ownership is exact
        else:
            schema = CORE_USER if subject.kind == "User" else CORE_GROUP
            equal = [dict(r) for r in LiveIndex(answer, [path], self.schemas).matches(path, value, schema)]
        if answer and not equal:
            raise TargetError(f"the target answered the lookup {eq_filter(path, value)} with {len(answer)} "
                              f"object(s), none of which has {path} {value!r}; the server seems to ignore filter; "
                              "nothing written for this object")
        return equal

    def _plan(self, subjects: Sequence[Subject], live: LiveState, known: set[str]) -> Plan:
        """make_plan over the subjects alone (those whose lookups answered) and what the lookups found."""
        ready = [s for s in subjects if s.lookup_error is None]
        chosen = {s.source_id for s in ready if s.desired is not None}
        users = tuple(s.desired for s in ready if s.kind == "User" and s.desired is not None)
        groups = tuple(replace(s.desired, members=tuple(m for m in s.desired.members if m in chosen))
                       for s in ready if s.kind == "Group" and s.desired is not None)
        restricted = DesiredState(users=tuple(sorted(users, key=lambda o: o.source_id)),
                                  groups=tuple(sorted(groups, key=lambda o: o.source_id)),
                                  deprovision=tuple(s.gone for s in ready if s.gone is not None),
                                  skipped=tuple(s.skipped for s in ready if s.skipped is not None))
        ledger = self.session.state.ledger if self.session is not None else None
        return make_plan(self.manifest, restricted, live, target=self.url, schemas=self.schemas,
                         allow_deletes=self.options.allow_deletes, known_ids=known, ledger=ledger, purge=False)


def _describe(subjects: Sequence[Subject], live: LiveState, plan: Plan, schemas: SchemaIndex,
              manifest: Manifest) -> None:
    """Step 3 (how each subject matched) and, for those the plan leaves alone, why step 4 is a Skip."""
    steps = {s.key: s for s in plan.steps}
    indexes = {kind: LiveIndex(resources.values(), list({str(p) for s in subjects if s.kind == kind
                                                        for p, _ in s.matching}), schemas)
               for kind, resources in (("User", live.users), ("Group", live.groups))}
    for subject in subjects:
        step = steps.get(subject.key)
        subject.match = _match_text(subject, indexes[subject.kind], step)
        if step is not None and step.action == Action.CONFLICT:
            subject.idle = "conflict: nothing written"
        elif step is None:
            subject.idle = _idle(subject, indexes[subject.kind], manifest)


def _match_text(subject: Subject, index: LiveIndex, step: Step | None) -> str:
    if subject.lookup_error is not None:
        return f"failed: {subject.lookup_error}"
    if not subject.looked_up:
        return "not attempted"
    if step is not None and step.action == Action.CONFLICT:
        return f"conflict: {step.reason}"
    schema = CORE_USER if subject.kind == "User" else CORE_GROUP
    found = index.match(subject.source_id, subject.matching, schema)
    noun = f"target {subject.kind.lower()}"
    if found.how == "owned" and found.live is not None:
        return f"owned: {noun} {found.live.get('id')} carries externalId {subject.source_id}"
    if found.how == "matched" and found.live is not None:
        ours = "" if subject.desired is not None else ", not provisioned by this app (no externalId of this object)"
        return f"matched by {found.detail}: {noun} {found.live.get('id')}{ours}"
    if found.how in ("ambiguous", "refused"):
        return f"conflict: {found.detail}"
    return f"no match (asked: {', '.join(subject.asked)})"


def _idle(subject: Subject, index: LiveIndex | None, manifest: Manifest) -> str:
    """Why a subject gets no step."""
    provisioning = manifest.provisioning
    if subject.lookup_error is not None:
        return "nothing written (the lookup failed)"
    if subject.skipped is not None:
        return f"{'mapping failed' if subject.skipped.failed else 'skipped'}: {subject.skipped.reason}"
    if subject.kind == "Group" and not provisioning.groups.enabled:
        return "group provisioning is off for this app"
    schema = CORE_USER if subject.kind == "User" else CORE_GROUP
    found = index.match(subject.source_id, subject.matching, schema) if index is not None else None
    if subject.desired is not None:
        if found is None or found.how == "none":
            return "not created (provisioning.actions has no create)" if "create" not in provisioning.actions \
                else "nothing to do"
        return "the target object already matches; nothing to change"
    if found is None or found.how == "none":
        return "not in the target; nothing to deprovision"
    if found.how != "owned":
        return "the matching target object was not provisioned by this app; left alone"
    if subject.gone is not None and subject.gone.left_scope and provisioning.skip_out_of_scope_deletions:
        return "provisioning.skipOutOfScopeDeletions keeps objects that left scope"
    if "delete" not in provisioning.actions:
        return "not deprovisioned (provisioning.actions has no delete)"
    if subject.kind == "Group":
        return "groups have no active; with deprovision: disable they are left in place"
    return "already disabled"


# -- the transcript -------------------------------------------------------------------------------------------

def transcript(result: OnDemandResult) -> list[str]:
    """Entra's four steps for each subject, with their outcome, then one summary line."""
    lines: list[str] = []
    names = {s.source_id: s.display for s in result.subjects}
    for subject in result.subjects:
        noun = subject.kind.lower()
        via = f", member of group {subject.via}" if subject.via else ""
        lines.append(f"{result.app}: {noun} {subject.display} ({subject.source_id}{via})")
        lines.append(f"  1. Import {noun}: {subject.found}")
        lines += [f"       {name}: {_json(value)}" for name, value in subject.attributes]
        lines.append(f"  2. Determine if {noun} is in scope: {subject.scope}")
        lines.append(f"  3. Match {noun} between source and target system: {subject.match}")
        lines += _action_lines(subject, names)
        if subject.note:
            lines.append(f"     note: {subject.note}")
    for note in result.notes:
        lines.append(f"{result.app}: note: {note}")
    what = ", ".join(f"{n} {a}" for a, n in sorted(result.done().items())) or "nothing to do"
    wrong = sum(1 for s in result.subjects if not s.expected)
    problems = [f"{wrong} object(s) did NOT end as expected"] if wrong else []
    problems += [f"{len(result.unresolved)} name(s) found nothing"] if result.unresolved else []
    state = "; ".join(problems) or "every named object ended as expected"
    lines.append(f"{result.app}: on demand: {what}; {result.writes} write request(s) in {result.rounds} round(s); "
                 f"{state}")
    return lines


def _action_lines(subject: Subject, names: dict[str, str]) -> list[str]:
    head = "  4. Perform action:"
    if not subject.actions:
        lines = [f"{head} Skip: {subject.idle}"]
    else:
        first, outcome = subject.actions[0]
        lines = [f"{head} {VERBS.get(first.action, first.action)}: {outcome}"]
        lines += [f"       {line}" for line in _modified(first, names)]
        lines += [f"     then {VERBS.get(step.action, step.action)}: {outcome}"
                  for step, outcome in subject.actions[1:]]
    if subject.pending is not None and subject.pending.action != Action.CONFLICT:
        reason = f" ({subject.pending.reason})" if subject.pending.reason else ""
        lines.append(f"     pending: {subject.pending.action} {subject.pending.kind} {subject.pending.display}{reason}")
    return lines


def _modified(step: Step, names: dict[str, str]) -> list[str]:
    """The attributes a step writes: ``path: new`` for a create, ``path: old -> new`` otherwise; members by name
    (added: directory objects) or target id (removed)."""
    lines = [f"{c.path}: {_json(c.new)}" if step.action == Action.CREATE
             else f"{c.path}: {_json(c.old)} -> {_json(c.new)}" for c in step.shown_changes()]
    if step.members_add:
        lines.append("members added: " + ", ".join(names.get(m, m) for m in step.members_add))
    if step.members_remove:
        lines.append("members removed (target ids): " + ", ".join(step.members_remove))
    return lines
