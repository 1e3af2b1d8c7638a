"""Apply a plan to a SCIM target: concurrent writes with a bound, no duplicates, one failure never stops the rest.

Order: user steps first (creates, updates, adoptions, disables, deletes), then group steps (a new group is
created without members, as Entra does, then its membership is written in one PATCH per group, its removals in
the form the target accepts: :meth:`~reconciler.scim.client.ScimClient.patch_group`). Safe defaults:

- A guarded plan (more disables/deletes than the threshold) raises :class:`DeletionGuardTripped` before any write.
- A create whose answer was lost (:class:`~reconciler.scim.errors.OutcomeUnknown`) is followed by a lookup on the
  matching attributes, in precedence order, before it is ever sent again; a 409 answer (``scimType``
  ``uniqueness``, or none at all, as some servers send it) looks the object up the same way and adopts it; when
  no object has the matching values, the step fails with one line saying so. So a run never creates a duplicate.
- A lookup is not trusted to filter: of what the server answers, only an object whose matching value really
  equals the one searched for (compared as the schema says, as :class:`~reconciler.match.LiveIndex` does) counts,
  and it is adopted only when ``provisioning.adopt`` allows it. None or several such objects in a non-empty answer
  (a server that ignores ``filter``), or a match the policy refuses, fail that object with one line; nothing is
  written to anybody else's account.
- A PATCH or DELETE whose answer was lost is not resent: the object is reported failed for this round and the
  next read of the target shows what happened. A refusal that the same request would meet again (the target does
  not implement it: :func:`~reconciler.scim.retry.refused_for_the_run`) is marked ``refused`` in its failure, so
  that the rounds that follow do not send it again unchanged.
- Each successful write is told to ``journal`` (the provisioning state's journal), so that a killed run's
  writes are in the ledger of the next.
- Each step's outcome is one provisioning-log record (:mod:`reconciler.provlog`), a failure with its
  ``errorCode``; a guarded plan logs its steps as Skipped (disables and deletes as StagedDelete) before it raises.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from reconciler.errors import DeletionGuardTripped, TargetError
from reconciler.match import LiveIndex, adoption_refusal
from reconciler.plan import Plan, Step
from reconciler.provlog import ProvisioningLog, error_code
from reconciler.scim.bulk import BulkOperation, BulkResult
from reconciler.scim.client import MEMBERS_PER_OPERATION, ScimClient, eq_filter, member_removals
from reconciler.scim.errors import BulkOutcomeUnknown, OutcomeUnknown, PathError, TargetStatusError
from reconciler.scim.normalize import SchemaIndex, diff_resource
from reconciler.scim.paths import CORE_GROUP, CORE_USER, parse_path
from reconciler.scim.retry import refused_for_the_run
from reconciler.state.model import event

DEFAULT_CONCURRENCY = 8
CREATE_ATTEMPTS = 3
BULK_MIN_CREATES = 20  # below this, single POSTs are as fast and simpler to follow in a log
BULK_IN_FLIGHT = 2
API_MESSAGES = "urn:ietf:params:scim:api:messages:"  # a PatchOp or ListResponse echoed back is no resource
# What fails one step alone: the target's answer, or the step's own data (a malformed matching path, or text that
# cannot be encoded as UTF-8, such as a lone surrogate in a saved plan). Anything else is a bug or a stop.
STEP_FAILURES = (TargetError, PathError, UnicodeEncodeError)


@dataclass
class StepFailure:
    step: Step
    reason: str
    refused: bool = False  # a definite refusal of the request itself: sending the same step again cannot help
    cause: BaseException | None = field(default=None, repr=False, compare=False)  # the error, when there was one


@dataclass(frozen=True)
class WriteAnswer:
    """What the writes to one target object answered, and what they set: enough to tell whether the last answer
    can stand for a read of the object (:meth:`ApplyReport.answered`)."""

    resource: dict[str, Any] | None = None  # the last write's answer (None: a DELETE)
    sets: frozenset[str] = frozenset()      # top-level attributes (lower case) the writes gave a value
    clears: frozenset[str] = frozenset()    # top-level attributes the writes removed or emptied
    members: bool = False                   # a group's members changed: only an answer that lists them tells
    new: bool = False                       # the writes created (or adopted) the object: nothing before counts
    deleted: bool = False
    unsure: bool = False                    # an operation whose attribute cannot be told: the object is read


_DELETED = WriteAnswer(deleted=True)


@dataclass
class ApplyReport:
    """What one pass over a plan did.

    ``answers`` holds, per (kind, target id), what the writes to that object answered (:class:`WriteAnswer`): a
    POST's 201 body, a PATCH's 200 body, a Bulk operation's ``response``, a DELETE; a write answered without a
    resource (a 204) leaves none. The read after the round uses an answer in place of a read only when
    :meth:`answered` says it is a full resource.
    """

    done: dict[str, int] = field(default_factory=dict)
    failures: list[StepFailure] = field(default_factory=list)
    writes: int = 0
    created: dict[str, str] = field(default_factory=dict)  # directory id -> new target id
    answers: dict[tuple[str, str], WriteAnswer] = field(default_factory=dict)

    def count(self, action: str) -> None:
        self.done[action] = self.done.get(action, 0) + 1

    def answer(self, kind: str, target_id: str, resource: dict[str, Any] | None, *,
               body: dict[str, Any] | None = None, operations: Sequence[dict[str, Any]] = (),
               members: bool = False, new: bool = False, deleted: bool = False) -> None:
        """Record a successful write to one object: its answer (``resource``) and what it set (a create's
        ``body``, a PATCH's ``operations``), on top of the earlier writes to the same object this round."""
        if deleted:
            self.answers[(kind, target_id)] = _DELETED
            return
        if not isinstance(resource, dict):  # nothing to trust, whatever came before: the object is read back
            self.answers.pop((kind, target_id), None)  # no entry (a Bulk create of 100,000 may answer so)
            return
        sets, clears, unsure = _written(body, operations)
        earlier = self.answers.get((kind, target_id))
        if earlier is not None:
            sets |= earlier.sets - clears
            clears |= earlier.clears - sets
            members, new, unsure = members or earlier.members, new or earlier.new, unsure or earlier.unsure
        self.answers[(kind, target_id)] = WriteAnswer(resource, frozenset(sets), frozenset(clears), members, new,
                                                      unsure=unsure)

    def answered(self, kind: str, target_id: str, before: dict[str, Any] | None,
                 attributes: Sequence[str]) -> dict[str, Any] | None:
        """The object's state as its last write answered it, when that answer is a full resource; else None
        (the object must be read).

        Full means: the object's ``id``, a ``schemas`` list (not an API message's), and every attribute asked
        for (``attributes``, as a read would ask) that the object should hold: those it held ``before`` the
        writes (unless it is new) and those the writes gave a value, minus those they removed. An answer
        without one of them may be partial (a server that answers a PATCH with the attributes it changed, or
        with a default set), so it is not trusted. A group whose members changed is trusted only from an
        answer that lists ``members``. A delete has no answer to trust: it is read (a 404 is gone).
        """
        answer = self.answers.get((kind, target_id))
        if answer is None or answer.resource is None or answer.deleted or answer.unsure:
            return None
        resource = answer.resource
        schemas = resource.get("schemas")
        if resource.get("id") != target_id or not isinstance(schemas, list) or not schemas or not all(
                isinstance(s, str) and not s.lower().startswith(API_MESSAGES) for s in schemas):
            return None
        asked = {parse_path(a).top.lower() for a in attributes}
        held = set() if answer.new or before is None else {k.lower() for k, v in before.items() if _has_value(v)}
        required = ((held | answer.sets) - answer.clears) & asked
        present = {k.lower() for k, v in resource.items() if v is not None}
        if answer.members:
            if not any(k.lower() == "members" and isinstance(v, list) for k, v in resource.items()):
                return None
            required.add("members")
        return resource if required <= present else None


Progress = Callable[[Step, bool], None]


class PlanExecutor:
    """Runs one plan against one client; see the module docstring for the rules it keeps."""

    def __init__(self, client: ScimClient, plan: Plan, *, concurrency: int = DEFAULT_CONCURRENCY,
                 log: ProvisioningLog | None = None, progress: Progress | None = None, bulk: bool = True,
                 adopt: str = "unclaimed", schemas: SchemaIndex | None = None,
                 journal: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.client = client
        self.journal = journal  # told every successful write (the provisioning state's journal)
        self.adopt = adopt  # provisioning.adopt, for lookups after a lost create or a 409
        self.schemas = schemas or SchemaIndex.rfc_defaults()
        self.plan = plan
        self.concurrency = max(1, concurrency)
        self.bulk = bulk
        self.log = log
        self.progress = progress
        self.report = ApplyReport()
        self.targets = dict(plan.targets)

    async def run(self) -> ApplyReport:
        if self.plan.guarded:
            if self.log is not None:
                self.log.staged(self.plan)
            raise DeletionGuardTripped(self.plan.app, self.plan.destructive, self.plan.threshold)
        steps = [s for s in self.plan.steps if s.writes]
        users = [s for s in steps if s.kind == "User"]
        creates = [s for s in users if s.action == "create"]
        if self.bulk and self.client.capabilities.bulk and len(creates) >= BULK_MIN_CREATES:
            users = [s for s in users if s.action != "create"]
            await self._bulk_creates(creates)
        await self._pool(users, self._user_step)
        await self._pool([s for s in steps if s.kind == "Group"], self._group_step)
        return self.report

    async def _bulk_creates(self, steps: Sequence[Step]) -> None:
        """Creates through /Bulk, in batches within the server's limits, a few batches in flight.

        A batch whose answer is lost is not resent: its objects are reported failed for this round, and the read
        that follows finds those that were created (by ``externalId``), so the next round creates only the rest.
        A 409 on one operation is looked up and adopted, as with a single POST.
        """
        size = self.client.capabilities.bulk_max_operations or 100
        batches = [list(steps[i:i + size]) for i in range(0, len(steps), size)]
        queue: asyncio.Queue[list[Step]] = asyncio.Queue()
        for batch in batches:
            queue.put_nowait(batch)

        async def worker() -> None:
            while not queue.empty():
                await self._bulk_batch(queue.get_nowait())

        await _every_worker(worker() for _ in range(min(BULK_IN_FLIGHT, len(batches))))

    async def _bulk_batch(self, batch: Sequence[Step]) -> None:
        by_id = {f"c{index}": step for index, step in enumerate(batch)}
        started = time.monotonic()
        try:
            results = await self._send_bulk(by_id)
        except BulkOutcomeUnknown as lost:
            self._bulk_lost(by_id, lost, started)
            return
        except TargetError as error:
            for step in batch:
                self._finish(step, started, error=str(error), code=error_code(error), refused=_refused(error))
            return
        answered = {r.bulk_id: r for r in results}
        for bulk_id, step in by_id.items():
            await self._bulk_result(step, answered.get(bulk_id), started)

    async def _send_bulk(self, by_id: dict[str, Step]) -> list[BulkResult]:
        """One write: the batch's creates as Bulk POST operations, each named by its key in ``by_id``."""
        operations = [BulkOperation("POST", self.client.endpoint("User"), bulk_id, dict(step.body or {}))
                      for bulk_id, step in by_id.items()]
        results: list[BulkResult] = await self._write(self.client.bulk(operations))
        return results

    def _bulk_lost(self, by_id: dict[str, Step], lost: BulkOutcomeUnknown, started: float) -> None:
        """The batch's answer was lost: what earlier batches created counts, the rest fails for this round."""
        done = {r.bulk_id: r for r in lost.completed}
        for bulk_id, step in by_id.items():
            if bulk_id in done and done[bulk_id].ok and done[bulk_id].id:
                self._created(step, str(done[bulk_id].id))
                self._finish(step, started)
            else:
                self._finish(step, started, error=str(lost), code=error_code(lost))

    async def _bulk_result(self, step: Step, result: BulkResult | None, started: float) -> None:
        """Finish one step by its operation's result: created, adopted after a 409, or failed with one line."""
        step_started = time.monotonic()
        try:
            await self._settle_bulk_result(step, result)
        except TargetError as error:
            self._finish(step, started if result and result.ok else step_started, error=str(error),
                         code=error_code(error))
        else:
            self._finish(step, started)

    async def _settle_bulk_result(self, step: Step, result: BulkResult | None) -> None:
        if result is not None and result.ok and result.id:
            self._created(step, result.id)
            self.report.answer(step.kind, result.id, result.resource, body=step.body, new=True)
        elif result is not None and result.status == 409:
            existing = await self._lookup(step)
            if existing is None:
                raise TargetError(_conflict_unmatched(step, f"POST {self.client.endpoint('User')} (Bulk operation)",
                                                      result.scim_type, result.detail))
            await self._adopt_after_create(step, existing, dict(step.body or {}))
        else:
            why = f"HTTP {result.status}: {result.detail or result.scim_type or 'failed'}" if result else (
                "no result in the Bulk answer")
            raise TargetError(f"POST /Users (Bulk operation for {step.display!r}): {why}")

    async def _pool(self, steps: Sequence[Step], work: Callable[[Step], Any]) -> None:
        queue: asyncio.Queue[Step] = asyncio.Queue()
        for step in steps:
            queue.put_nowait(step)

        async def worker() -> None:
            while not queue.empty():
                step = queue.get_nowait()
                started = time.monotonic()
                try:
                    await work(step)
                except STEP_FAILURES as error:
                    self._finish(step, started, error=str(error), code=error_code(error), refused=_refused(error),
                                 cause=error)
                else:
                    self._finish(step, started)

        await _every_worker(worker() for _ in range(min(self.concurrency, len(steps)) or 1))

    def _finish(self, step: Step, started: float, *, error: str | None = None, code: str | None = None,
                refused: bool = False, cause: BaseException | None = None) -> None:
        if error is None:
            self.report.count(step.action)
            target_id = self._target_of(step)
            if self.journal is not None and step.source_id and target_id:
                self.journal(event(step.action, step.kind, step.source_id, target_id, step.display, step.matching))
        else:
            self.report.failures.append(StepFailure(step, error, refused, cause))
        if self.log is not None:
            self.log.record(step, status="Failure" if error else "Success", target_id=self._target_of(step),
                            duration_ms=int((time.monotonic() - started) * 1000), error=error, code=code)
        if self.progress is not None:
            self.progress(step, error is None)

    def _target_of(self, step: Step) -> str | None:
        return step.target_id or (self.targets.get(step.source_id) if step.source_id else None)

    async def _write(self, call: Any) -> Any:
        self.report.writes += 1
        return await call

    # -- users -----------------------------------------------------------------------------------------------

    async def _user_step(self, step: Step) -> None:
        if step.action == "create":
            await self._create(step)
        elif step.action in ("update", "adopt", "disable"):
            await self._patch(step, step.operations)
        elif step.action == "delete":
            await self._delete(step)

    async def _delete(self, step: Step) -> None:
        await self._write(self.client.delete(step.kind, str(step.target_id)))
        self.report.answer(step.kind, str(step.target_id), None, deleted=True)

    async def _patch(self, step: Step, operations: Sequence[dict[str, Any]]) -> None:
        if operations:
            target_id = str(self._target_of(step))
            answer = await self._write(self.client.patch(step.kind, target_id, list(operations)))
            self.report.answer(step.kind, target_id, answer, operations=operations)

    async def _create(self, step: Step) -> None:
        """POST, never twice blindly: a lost answer or a 409 is answered by a lookup first."""
        body = dict(step.body or {})
        for attempt in range(1, CREATE_ATTEMPTS + 1):
            try:
                created = await self._write(self.client.create(step.kind, body))
            except OutcomeUnknown:
                existing = await self._lookup(step)
                if existing is not None:
                    return await self._adopt_after_create(step, existing, body)
                if attempt == CREATE_ATTEMPTS:
                    raise
                continue
            except TargetStatusError as error:
                if error.status != 409:
                    raise
                existing = await self._lookup(step)
                if existing is None:
                    raise TargetError(_conflict_unmatched(step, f"{error.method} {error.path}", error.scim_type,
                                                          error.detail)) from None
                return await self._adopt_after_create(step, existing, body)
            self._created(step, str(created["id"]))
            self.report.answer(step.kind, str(created["id"]), created, body=body, new=True)
            return None
        return None

    async def _lookup(self, step: Step) -> dict[str, Any] | None:
        """The one live object whose matching value really equals the step's, in precedence order, if any.

        The server's answer is filtered again here: a server that ignores ``filter`` answers with everybody.
        A non-empty answer with none or several equal objects raises, naming the server's behaviour.
        """
        schema = CORE_USER if step.kind == "User" else CORE_GROUP
        for path, value in step.matching:
            path, value = str(path), str(value)
            found = await self.client.find(step.kind, path, value)
            equal = LiveIndex(found, [path], self.schemas).matches(path, value, schema)
            if len(equal) == 1:
                return dict(equal[0])
            if found:
                raise TargetError(_lookup_conflict(step, path, value, len(found), len(equal)))
        return None

    async def _adopt_after_create(self, step: Step, existing: dict[str, Any], body: dict[str, Any]) -> None:
        refusal = adoption_refusal(existing, step.source_id, self.adopt)
        if refusal is not None:
            raise TargetError(f"{step.kind} {step.display!r}: target object {existing.get('id')} matches but "
                              f"{refusal}; not adopting it")
        target_id = str(existing["id"])
        self._created(step, target_id)
        # Additions and updates only: whether a removal is allowed (an add-only role mapping) is the planner's
        # call, made in the next round from the manifest; a body alone cannot tell.
        operations = [c.operation() for c in diff_resource(body, existing) if c.op != "remove"]
        answer: dict[str, Any] | None = existing  # as the lookup read it, unless a PATCH follows
        if operations:
            answer = await self._write(self.client.patch(step.kind, target_id, operations))
        self.report.answer(step.kind, target_id, answer, body=body, operations=operations, new=True)

    def _created(self, step: Step, target_id: str) -> None:
        if step.source_id:
            self.targets[step.source_id] = target_id
            self.report.created[step.source_id] = target_id

    # -- groups ----------------------------------------------------------------------------------------------

    async def _group_step(self, step: Step) -> None:
        if step.action == "delete":
            await self._delete(step)
            return
        if step.action == "create":
            body = {k: v for k, v in (step.body or {}).items() if k != "members"}
            await self._create(Step(**{**step.__dict__, "body": body}))
        operations = [] if step.action == "create" else list(step.operations)
        operations += membership_operations(self._resolve(step.members_add), [])
        if operations or step.members_remove:
            target_id = str(self._target_of(step))
            answer = await self._write(self.client.patch_group(target_id, operations,
                                                               remove_members=step.members_remove))
            members = bool(step.members_remove) or any(str(o.get("path", "")).lower() == "members"
                                                       for o in operations)
            self.report.answer("Group", target_id, answer, operations=operations, members=members)

    def _resolve(self, source_ids: Iterable[str]) -> list[str]:
        """Target ids of members; a member whose create failed this round is left for the next one."""
        return [self.targets[s] for s in source_ids if s in self.targets]


def _has_value(value: Any) -> bool:
    """An attribute value a full resource would show (RFC 7643: unassigned attributes may be left out)."""
    return value is not None and value != "" and value != [] and value != {}


def _tops(path: str) -> set[str]:
    """The top-level keys (lower case) that an attribute path, or a path-less value's key, may write: an
    extension's URN may be the key itself (``urn:...:User`` with an object) or prefix an attribute; both count."""
    tops = {path.lower()} if path.lower().startswith("urn:") else set()
    try:
        tops.add(parse_path(path).top.lower())
    except PathError:
        if not tops:
            raise
    return tops


def _written(body: dict[str, Any] | None, operations: Sequence[dict[str, Any]]) -> tuple[set[str], set[str], bool]:
    """The top-level attributes a create ``body`` and PATCH ``operations`` give a value, those they remove or
    empty, and whether an operation could not be told (a malformed path)."""
    sets = {k.lower() for k, v in (body or {}).items() if _has_value(v)}
    clears: set[str] = set()
    try:
        for operation in operations:
            op = str(operation.get("op", "")).lower()
            path, value = operation.get("path"), operation.get("value")
            if isinstance(path, str) and path:
                pairs = [(_tops(path), value)]
            elif isinstance(value, dict):
                pairs = [(_tops(str(key)), item) for key, item in value.items()]
            else:
                return sets, clears, True
            for tops, item in pairs:
                if op != "remove" and _has_value(item):
                    sets |= tops
                    clears -= tops
                else:
                    clears |= tops
                    sets -= tops
    except PathError:
        return sets, clears, True
    return sets, clears, False


def _refused(error: BaseException) -> bool:
    return isinstance(error, TargetStatusError) and refused_for_the_run(error.status, error.scim_type, error.detail)


def _conflict_unmatched(step: Step, request: str, scim_type: str | None, detail: str | None) -> str:
    """One line for a create answered 409 whose lookup on the matching values found no object."""
    answer = f"409 ({scim_type})" if scim_type else "409 without scimType"
    said = f": {detail}" if detail else ""
    looked = " or ".join(f"{path} {value!r}" for path, value in step.matching) or "its matching values"
    return (f"{step.kind} {step.display!r}: {request} answered {answer}{said}, but no target object has {looked}; "
            "the server may keep another attribute unique, or mean another conflict; nothing adopted")


def _lookup_conflict(step: Step, path: str, value: str, answered: int, equal: int) -> str:
    """One line for a lookup whose answer cannot be trusted to name the step's object."""
    asked = f"the target answered the lookup {eq_filter(path, value)} with {answered} object(s)"
    if equal == 0:
        return (f"{step.kind} {step.display!r}: {asked}, none of which has {path} {value!r}; the server seems to "
                "ignore filter; not adopting any")
    ignored = "; the server seems to ignore filter" if answered > equal else ""
    return f"{step.kind} {step.display!r}: {asked}, {equal} of which have {path} {value!r}{ignored}; not adopting any"


async def _every_worker(workers: Iterable[Awaitable[None]]) -> None:
    """Run every worker to its end, then raise the first error. A stop (a refused request) or a bug in one worker
    must not leave the others writing, and logging, after the executor has returned and the log is closed."""
    outcomes = await asyncio.gather(*workers, return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome


def membership_operations(add: Sequence[str], remove: Sequence[str]) -> list[dict[str, Any]]:
    """RFC 7644 operations for one group: adds in chunks, one filtered-path remove per member (a run sends its
    removals through :meth:`~reconciler.scim.client.ScimClient.patch_group`, in the form the target accepts)."""
    operations: list[dict[str, Any]] = []
    for start in range(0, len(add), MEMBERS_PER_OPERATION):
        chunk = add[start:start + MEMBERS_PER_OPERATION]
        operations.append({"op": "add", "path": "members", "value": [{"value": v} for v in chunk]})
    return operations + member_removals(remove)
