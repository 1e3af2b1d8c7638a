"""One app's run against its target: read, plan, apply, and converge (read again until the plan is empty).

This is where the pure core meets the edges: the directory (a snapshot or Graph), the token (the environment
variable the manifest names), the SCIM client, and the provisioning state. A run that writes holds the state's
lock (:func:`holding_state`): the ledger is saved after every round, every write journaled during one, and the
run's cycle, escrow and quarantine are recorded at its end. ``plan`` reads the state without the lock.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Self

from reconciler.apply import DEFAULT_CONCURRENCY, ApplyReport, PlanExecutor, Progress, StepFailure
from reconciler.desired import DesiredState, Skipped, desired_state
from reconciler.directory.changes import directory_to_json
from reconciler.directory.model import Directory
from reconciler.directory_source import read_directory, read_with_watermark
from reconciler.errors import DeletionGuardTripped, ReconcilerError, Stopping, TargetError
from reconciler.ledger import (
    QUARANTINE_DELETES,
    QUARANTINE_FAILED,
    after_round,
    after_run,
    config_digest,
    escrow_quarantined,
)
from reconciler.manifest import LoadedManifest
from reconciler.plan import Plan, Step, fingerprint, make_plan
from reconciler.provlog import ProvisioningLog
from reconciler.scim.client import (
    DEFAULT_MAX_OBJECTS,
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_REQUEST_TIMEOUT,
    MAX_OBJECTS_ENV,
    MAX_RESPONSE_BYTES_ENV,
    REQUEST_TIMEOUT_ENV,
    ScimClient,
    target_ssl_context,
)
from reconciler.scim.errors import OutcomeUnknown
from reconciler.scim.live import read_live
from reconciler.scim.livestate import LiveState, read_attributes
from reconciler.scim.normalize import SchemaIndex
from reconciler.secrets import register_secret
from reconciler.settings import env_number
from reconciler.state.model import Cycle, Failure, ProvisioningState
from reconciler.state.store import Backend, StateSession, document_name, load, now_iso, open_backend, open_session

MAX_ROUNDS = 5
NO_STATE = ("no provisioning state for this app and target yet ({where}): ownership is inferred from externalId, "
            "and users purged from the directory before the first apply cannot be recognised")
# After a round, read back only the written objects that no write's answer gave, when they are at most
# max(TARGETED_MIN, live / TARGETED_SHARE); else read the whole target again.
TARGETED_MIN = 200
TARGETED_SHARE = 10


@dataclass
class RunOptions:
    directory: str | None = None        # a snapshot file overriding the manifest's directory source
    target: str | None = None           # a target URL overriding the manifest's
    allow_deletes: bool = False
    concurrency: int = DEFAULT_CONCURRENCY
    max_rounds: int = MAX_ROUNDS
    log_path: str | None = None
    bulk: bool = True                   # use /Bulk for many creates when the target advertises it
    state: str | None = None            # --state: where the provisioning state lives (None: $RECONCILER_STATE, ...)
    stateless: bool = False             # neither read nor write the provisioning state


def entra_engine(loaded: LoadedManifest) -> bool:
    """Entra's own synchronization job provisions the app (``provisioning.engine: entra``): one engine per app, so
    no command of the reconciler sends anything to its target or reads its directory."""
    return loaded.manifest.provisioning.engine == "entra"


def entra_engine_line(name: str, advice: str = "") -> str:
    """The one line each command says for such an app, instead of running it."""
    line = (f"{name}: provisioned by Entra's own synchronization job (provisioning.engine: entra); "
            "nothing sent to its target")
    return f"{line}: {advice}" if advice else line


@dataclass
class RunResult:
    """How a converging apply ended: the last plan (empty when converged) and what each round did."""

    app: str
    final: Plan
    rounds: list[ApplyReport] = field(default_factory=list)
    failed_objects: tuple[Skipped, ...] = ()  # directory objects that could not be mapped or sent: left alone

    @property
    def failures(self) -> list[StepFailure]:
        return self.rounds[-1].failures if self.rounds else []

    @property
    def converged(self) -> bool:
        """The target, read after the last round, matches the desired state (failures that healed, such as a
        write whose answer was lost but which was applied, do not count)."""
        return self.final.empty

    @property
    def writes(self) -> int:
        return sum(r.writes for r in self.rounds)

    def done(self) -> dict[str, int]:
        """Successful steps by action, over all rounds."""
        totals: dict[str, int] = {}
        for report in self.rounds:
            for action, count in report.done.items():
                totals[action] = totals.get(action, 0) + count
        return totals


def _same_request(refused: StepFailure | None, step: Step) -> bool:
    """True when ``step`` would send what the ``refused`` step sent (the same object, action and content)."""
    def sent(s: Step) -> tuple[object, ...]:
        return (s.key, s.action, s.target_id, s.body, s.operations, s.members_add, s.members_remove)
    return refused is not None and sent(refused.step) == sent(step)


def _failing_every_round(report: ApplyReport, answered: dict[str, StepFailure]) -> dict[str, StepFailure]:
    """PATCHes the target answered with a 5xx this round and the round before, the same request both times.

    Such an answer leaves the outcome unknown, but the read in between showed the PATCH was not applied: a server
    that answers a uniqueness clash with 500 would answer it so every round. Each is renamed in ``report`` and
    returned, marked refused, so that the rounds that follow do not send it again; ``answered`` becomes this
    round's 5xx PATCHes.
    """
    held: dict[str, StepFailure] = {}
    now: dict[str, StepFailure] = {}
    for index, failure in enumerate(report.failures):
        lost = failure.cause
        if not (isinstance(lost, OutcomeUnknown) and lost.method == "PATCH" and lost.status is not None):
            continue
        now[failure.step.key] = failure
        if _same_request(answered.get(failure.step.key), failure.step):
            hint = ("the server may refuse the value (a uniqueness clash?)" if lost.status == 500 else
                    "the server keeps failing it")
            held[failure.step.key] = report.failures[index] = StepFailure(
                failure.step, f"{lost.method} {lost.path} answered {lost.status} every round: {hint}", refused=True,
                cause=lost)
    answered.clear()
    answered.update(now)
    return held


def read_token(loaded: LoadedManifest) -> str:
    name = loaded.manifest.provisioning.target.token_env
    token = os.environ.get(name)
    if not token:
        raise TargetError(f"{loaded.file}: environment variable {name} is not set; it must hold the target's "
                          "bearer token (provisioning.target.tokenEnv)")
    register_secret(token)
    return token


def target_client(loaded: LoadedManifest, url: str, *, max_connections: int) -> ScimClient:
    """The SCIM client for a manifest's target: its token, its caBundle (relative to the manifest's folder) and
    the limits set in the environment (``RECONCILER_REQUEST_TIMEOUT`` seconds per request,
    ``RECONCILER_MAX_RESPONSE_BYTES``, ``RECONCILER_MAX_OBJECTS`` per paged read)."""
    ca_bundle = loaded.manifest.provisioning.target.ca_bundle
    context = None
    if ca_bundle:
        try:
            context = target_ssl_context(Path(loaded.file).parent / ca_bundle)
        except TargetError as error:
            raise TargetError(f"{loaded.file}: provisioning.target.caBundle: {error}") from None
    return ScimClient(
        url, read_token(loaded), max_connections=max_connections, ssl_context=context,
        request_timeout=env_number(REQUEST_TIMEOUT_ENV, DEFAULT_REQUEST_TIMEOUT),
        max_response_bytes=int(env_number(MAX_RESPONSE_BYTES_ENV, DEFAULT_MAX_RESPONSE_BYTES, whole=True)),
        max_objects=int(env_number(MAX_OBJECTS_ENV, DEFAULT_MAX_OBJECTS, whole=True)))


class TargetSession:
    """One app and an open client to its target (``async with``): what a full run and an on-demand run share."""

    def __init__(self, loaded: LoadedManifest, options: RunOptions, *, client: ScimClient | None = None) -> None:
        self.loaded = loaded
        self.manifest = loaded.manifest
        self.options = options
        self.url = options.target or self.manifest.provisioning.target.url
        self.client = client or target_client(loaded, self.url, max_connections=max(options.concurrency, 4))
        self.schemas = SchemaIndex.rfc_defaults()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.aclose()

    def _named(self, error: TargetError) -> TargetError:
        """The same error, prefixed with the app and its target (a request path alone is ambiguous)."""
        return TargetError(f"{self.manifest.name} ({self.url}): {error}")

    def _paths(self) -> tuple[list[str], list[str]]:
        """The target paths the manifest maps, for users (with ``active``) and groups (without ``members``)."""
        provisioning = self.manifest.provisioning
        user_paths = [*(m.target for m in provisioning.users.mappings), "active"]
        group_paths = [m.target for m in provisioning.groups.mappings if m.target != "members"]
        return user_paths, group_paths

    async def _discover(self) -> None:
        """Read what the target says it can do; its schemas, when it publishes them, drive comparisons."""
        try:
            capabilities = await self.client.discover()
        except TargetError as error:
            raise self._named(error) from None
        if capabilities.schemas:
            self.schemas = SchemaIndex.from_schemas(capabilities.schemas)

    def _read_attributes(self) -> dict[str, list[str]]:
        """The ``attributes`` to ask for when reading objects by id or by filter, per kind."""
        user_paths, group_paths = self._paths()
        return {"User": read_attributes(user_paths),
                "Group": read_attributes(group_paths, always=("externalId", "displayName", "members"))}


class AppRun(TargetSession):
    """The state of one app's run: its manifest, desired state, and an open client to its target."""

    def __init__(self, loaded: LoadedManifest, options: RunOptions, *, client: ScimClient | None = None) -> None:
        super().__init__(loaded, options, client=client)
        self.desired: DesiredState | None = None
        self.state: ProvisioningState | None = None   # the provisioning state the plan reads
        self.state_fresh = False                      # no state yet: ownership is inferred from externalId
        self.session: StateSession | None = None      # held under the lock by a run that writes state
        self.state_where = ""                         # the state's location, for messages
        self.backend: Backend | None = None           # where the state was read from (plan: read-only)
        self.directory: Directory | None = None       # the directory this run planned from
        self.new_watermark: dict[str, Any] | None = None  # where the next incremental cycle resumes, once saved
        # the reconcile loop's schedule: the ISO time of the next attempt after N consecutive failed cycles,
        # saved in the quarantine by the same commit that records the run (None: the stored time is kept)
        self.schedule: Callable[[int], str] | None = None
        self.recorded = False                         # this run's outcome is saved in the state

    def attach(self, state: ProvisioningState, fresh: bool, session: StateSession | None = None, *,
               where: str = "") -> None:
        self.state = state.with_config(config_digest(self.manifest))
        self.state_where = session.backend.location if session is not None else where
        self.state_fresh = fresh
        self.session = session

    def state_line(self) -> str | None:
        """The one line a run without provisioning state prints (None when it has state, or runs without)."""
        if not self.state_fresh:
            return None
        return f"{self.manifest.name}: " + NO_STATE.format(where=self.state_where)

    def history_line(self) -> str | None:
        """The one line a run prints before planning when earlier runs left objects in escrow or the app in
        quarantine (None otherwise): how many objects, since when, and the quarantine's reason in Entra's words."""
        if self.state is None:
            return None
        parts: list[str] = []
        if self.state.escrow:
            oldest = min(self.state.escrow.values(), key=lambda e: (e.first, e.key))
            times = "1 time" if oldest.count == 1 else f"{oldest.count} times"
            parts.append(f"{len(self.state.escrow)} object(s) in escrow from earlier runs (oldest failing since "
                         f"{oldest.first}, {times})")
        quarantine = self.state.quarantine
        if quarantine.active:
            reason = f" ({quarantine.reason})" if quarantine.reason else ""
            parts.append(f"quarantined since {quarantine.since or 'an earlier run'}{reason}, "
                         f"{quarantine.failures} failed cycles")
        return f"{self.manifest.name}: " + "; ".join(parts) if parts else None

    def _read_state(self) -> None:
        """The state as a plan sees it (read without the lock), unless one is attached or the run is stateless."""
        if self.state is None and not self.options.stateless:
            backend = open_backend(self.options.state)
            self.backend = backend
            self.attach(*load(backend, self.manifest.name, self.url), where=backend.location)

    def read_cache(self) -> bytes | None:
        """The directory as the last cycle that saved state read it (None: no incremental cycle can start)."""
        if self.session is not None:
            return self.session.read_cache()
        if self.backend is not None:
            return self.backend.read_cache(document_name(self.manifest.name, self.url))
        return None

    async def prepare(self) -> None:
        self._read_state()
        if self.session is not None:  # a run that saves state leaves a watermark for the next incremental cycle
            read = await read_with_watermark(self.loaded, self.options.directory)
            directory, self.new_watermark = read.directory, read.watermark
        else:
            directory = await read_directory(self.loaded, self.options.directory)
        self.directory = directory
        self.desired = desired_state(self.manifest, directory)
        await self._discover()

    async def read(self) -> LiveState:
        user_paths, group_paths = self._paths()
        try:
            return await read_live(self.client, user_attributes=user_paths, group_attributes=group_paths,
                                   groups=self.manifest.provisioning.groups.enabled)
        except TargetError as error:
            raise self._named(error) from None

    async def reread(self, live: LiveState, plan: Plan, report: ApplyReport) -> LiveState:
        """The live state after a round: the objects the round wrote, as their writes answered them or read
        back by id, when that is certain and cheaper than a full read; else a full paged read.

        Certain means every write's outcome is known (no failures, so no lost answers) and every written object
        has a known id; untouched objects were read moments ago and are not read again. A write's answer stands
        for the object when it is a full resource (:meth:`~reconciler.apply.ApplyReport.answered`); the others
        are read back many per request where the target allows it, else one GET each
        (:meth:`~reconciler.scim.client.ScimClient.read_ids`); a deleted object is gone when a GET answers 404
        or a filtered read leaves it out.
        """
        touched = {(s.kind, s.target_id or report.created.get(s.source_id or "")): s.action
                   for s in plan.steps if s.writes}
        total = len(live.users) + len(live.groups)
        if report.failures or any(rid is None for _, rid in touched):
            return await self.read()
        attributes = self._read_attributes()
        state = LiveState(users=dict(live.users), groups=dict(live.groups))
        unread: dict[str, dict[str, bool]] = {"User": {}, "Group": {}}  # kind -> id -> deleted this round
        for (kind, rid), action in touched.items():
            store = state.users if kind == "User" else state.groups
            answered = report.answered(kind, str(rid), store.get(str(rid)), attributes[kind])
            if answered is not None:
                store[str(rid)] = answered
            else:
                unread.setdefault(kind, {})[str(rid)] = action == "delete"
        if sum(map(len, unread.values())) > max(TARGETED_MIN, total // TARGETED_SHARE):
            return await self.read()
        try:
            for kind, ids in unread.items():
                if not ids:
                    continue
                store = state.users if kind == "User" else state.groups
                found = await self.client.read_ids(kind, ids, attributes=attributes[kind],
                                                   gone={rid for rid, deleted in ids.items() if deleted},
                                                   concurrency=self.options.concurrency)
                for rid, resource in found.items():
                    if resource is None:
                        store.pop(rid, None)
                    else:
                        store[rid] = resource
        except TargetError as error:
            raise self._named(error) from None
        return state

    def plan_for(self, live: LiveState) -> Plan:
        assert self.desired is not None, "prepare() first"
        plan = make_plan(self.manifest, self.desired, live, target=self.url, schemas=self.schemas,
                         allow_deletes=self.options.allow_deletes,
                         ledger=self.state.ledger if self.state is not None else None)
        for skipped in self.desired.skipped:
            label = "failed" if skipped.failed else "skipped"
            plan.notes.append(f"{label} {skipped.kind.lower()} {skipped.display}: {skipped.reason}")
        plan.notes.extend(self.client.notes)  # how the target departs from RFC 7644 (a fallback endpoint, ...)
        return plan

    async def plan(self) -> Plan:
        await self.prepare()
        return self.plan_for(await self.read())

    def _log_considered(self, log: ProvisioningLog | None, plan: Plan, live: LiveState) -> None:
        """The first round's records of every object no step logs (conflicts, skipped, in sync, unmanaged)."""
        if log is not None and self.desired is not None:
            log.considered(plan, self.desired, live)

    def executor(self, plan: Plan, *, log: ProvisioningLog | None, progress: Progress | None) -> PlanExecutor:
        """The executor of one round of ``plan``: the run's options, the manifest's adopt policy, the target's
        schemas, and the state's journal when one is held."""
        return PlanExecutor(self.client, plan, concurrency=self.options.concurrency, log=log, progress=progress,
                            bulk=self.options.bulk, adopt=self.manifest.provisioning.adopt, schemas=self.schemas,
                            journal=self.session.journal if self.session is not None else None)

    def _record_round(self, plan: Plan, live: LiveState) -> None:
        """Save the ledger as ``plan`` (made on ``live``, read after a round) shows it; journal emptied."""
        if self.session is None or self.desired is None or self.state is None:
            return
        state = after_round(self.state, self.desired, plan, live, now=now_iso(),
                            groups=self.manifest.provisioning.groups.enabled)
        self.state = self.session.commit(state)

    def _record_run(self, started: str, result: RunResult | None, error: ReconcilerError | None = None,
                    reason: str | None = None) -> None:
        """Save the run's cycle, its escrow and the quarantine count (nothing without a held state), with the
        next attempt's time when a :attr:`schedule` is set, in one save.

        As in Entra, objects that failed alone are escrowed without failing the cycle: a run whose target
        converged counts as converged unless its escrow passes Entra's threshold
        (:func:`~reconciler.ledger.escrow_quarantined`); then, and when the target did not converge, the cycle
        counts towards the quarantine."""
        if self.session is None or self.state is None:
            return
        failures: list[Failure] = []
        if result is not None:
            failures = [Failure(f.step.kind, f.step.source_id or str(f.step.target_id), f.step.display, f.reason)
                        for f in result.failures]
            failures += [Failure(s.kind, s.source_id, s.display, s.reason) for s in result.failed_objects]
        objects = len(self.desired.users) + len(self.desired.groups) if self.desired else 0
        converged = result is not None and result.converged and not escrow_quarantined(len(failures), objects)
        outcome = "failed" if error is not None else ("converged" if converged else "not converged")
        cycle = Cycle(started=started, finished=now_iso(), outcome=outcome,
                      writes=result.writes if result else 0, done=result.done() if result else {},
                      error=str(error) if error is not None else None)
        state = self.state
        if error is None and self.new_watermark is not None and self.directory is not None:
            # the cache first: a saved watermark never points past the directory it resumes from
            self.session.write_cache(directory_to_json(self.directory))
            state = replace(state, watermark=self.new_watermark)
        state = after_run(state, cycle, failures, objects=objects, reason=reason)
        if self.schedule is not None and state.quarantine.failures:
            state = replace(state, quarantine=replace(state.quarantine,
                                                      next_attempt=self.schedule(state.quarantine.failures)))
        self.state = self.session.commit(state)
        self.recorded = True

    async def converge(self, *, saved: Plan | None = None, progress: Progress | None = None,
                       on_round: Callable[[int, Plan], None] | None = None) -> RunResult:
        """:meth:`converge_rounds`, with the run recorded in the provisioning state when one is held: a failed
        run counts towards the quarantine (a stop does not: the journal keeps what it wrote)."""
        started = now_iso()
        try:
            result = await self.converge_rounds(saved=saved, progress=progress, on_round=on_round)
        except DeletionGuardTripped as error:
            self._record_run(started, None, error, QUARANTINE_DELETES)
            raise
        except Stopping:
            raise
        except ReconcilerError as error:
            self._record_run(started, None, error, QUARANTINE_FAILED)
            raise
        self._record_run(started, result)
        return result

    async def converge_rounds(self, *, saved: Plan | None = None, progress: Progress | None = None,
                              on_round: Callable[[int, Plan], None] | None = None) -> RunResult:
        """Apply, read again, and repeat until the plan is empty or ``max_rounds`` passed.

        With ``saved``, the first round applies that plan (refused if the target moved since it was made), and
        later rounds touch only the objects it named. A step the target refused for good (a failure marked
        ``refused``) is not sent again unchanged: its failure is carried into the later rounds' reports, and when
        nothing else is left to send the run ends there, not converged. So is a PATCH answered 5xx in two rounds
        running, the same request both times (:func:`_failing_every_round`).
        """
        await self.prepare()
        live = await self.read()
        plan = self.plan_for(live)
        reviewed: set[str] | None = None
        if saved is not None:
            if saved.fingerprint != fingerprint(live):
                raise ReconcilerError(f"{self.manifest.name}: the target has changed since the plan was made; "
                                      "make a new plan (reconciler plan --out FILE) and review it again")
            saved.allow_deletes = saved.allow_deletes or self.options.allow_deletes
            plan = saved
            reviewed = {s.key for s in saved.steps}
        result = RunResult(self.manifest.name, plan,
                           failed_objects=tuple(s for s in self.desired.skipped if s.failed) if self.desired else ())
        log = ProvisioningLog.open(self.options.log_path, app=self.manifest.name,
                                   target=self.url) if self.options.log_path else None
        refused: dict[str, StepFailure] = {}
        answered: dict[str, StepFailure] = {}  # PATCHes answered 5xx last round (outcome unknown, read again since)
        try:
            for round_number in range(1, self.options.max_rounds + 1):
                if not plan.has_writes:
                    if round_number == 1:
                        self._log_considered(log, plan, live)
                    break
                carried = [refused[s.key] for s in plan.steps if _same_request(refused.get(s.key), s)]
                if len(carried) == sum(1 for s in plan.steps if s.writes):
                    break  # all that is left was refused for good: sending it again the same cannot help
                not_resent = {c.step.key for c in carried}
                applied = replace(plan, steps=[s for s in plan.steps if s.key not in not_resent])
                if on_round:
                    on_round(round_number, applied)
                executor = self.executor(applied, log=log, progress=progress)
                try:
                    report = await executor.run()
                except DeletionGuardTripped:  # nothing was written; the cycle's objects are still logged
                    if round_number == 1:
                        self._log_considered(log, plan, live)
                    raise
                if round_number == 1:  # after the writes, so that logging every object never delays them
                    self._log_considered(log, plan, live)
                result.rounds.append(report)
                live = await self.reread(live, applied, report)
                refused.update((f.step.key, f) for f in report.failures if f.refused)
                refused.update(_failing_every_round(report, answered))
                report.failures.extend(carried)
                plan = self.plan_for(live)
                self._record_round(plan, live)
                if reviewed is not None:
                    plan.steps = [s for s in plan.steps if s.key in reviewed]
                result.final = plan
            if not result.rounds:
                self._record_round(plan, live)  # nothing to write: what is ours is recorded all the same
        finally:
            if log is not None:
                log.close()
        return result


@contextlib.contextmanager
def holding_state(app: AppRun, *, wait: float, command: str,
                  on_wait: Callable[[str], None] | None = None) -> Iterator[StateSession | None]:
    """Hold ``app``'s provisioning state for the body: its lock taken before anything is read, the state loaded
    (a killed run's journal replayed) and attached to ``app``. A stateless run yields None."""
    if app.options.stateless:
        yield None
        return
    backend = open_backend(app.options.state)
    with open_session(backend, app.manifest.name, app.url, wait=wait, command=command, on_wait=on_wait) as session:
        app.attach(session.state, session.fresh, session)
        yield session
