"""Incremental cycles of one app (``plan --incremental``, ``apply --incremental``, ``reconcile --full-every``).

An incremental cycle reads what changed in the directory since the state's watermark
(:func:`reconciler.directory_source.read_since`), plans the touched objects against the ledger
(:mod:`reconciler.incremental`) and writes, without reading the target: a cycle with no directory change sends
nothing to the target at all, and a change costs about one write per changed object. The objects in escrow are
touched too, so that they are retried as in a full cycle.

Without a watermark (a first run, a reset, a manifest whose mappings, scope or filters changed, an expired delta
token) the cycle is a full one, and says why: :attr:`IncrementalCycle.fallback`.
"""

from __future__ import annotations

from collections.abc import Callable

from reconciler.apply import Progress
from reconciler.desired import desired_state
from reconciler.directory.changes import directory_from_json
from reconciler.directory_source import SourceRead, read_since
from reconciler.errors import DeletionGuardTripped, DirectoryError, ReconcilerError, Stopping, TargetError
from reconciler.incremental import (
    Scope,
    incremental_plan,
    ledger_live,
    restricted,
    touched_scope,
    unknown,
    written,
)
from reconciler.ledger import QUARANTINE_DELETES, QUARANTINE_FAILED, after_round
from reconciler.plan import Plan
from reconciler.provlog import ProvisioningLog
from reconciler.run import AppRun, RunResult
from reconciler.scim.errors import TargetStatusError
from reconciler.scim.livestate import LiveState
from reconciler.state.model import ledger_key
from reconciler.state.store import now_iso

NO_WATERMARK = "no watermark yet (a first run, a reset, or changed mappings, scope or filters)"
NO_CACHE = "the directory of the last cycle is not in the state"
EXPIRED = "the watermark no longer serves (another directory source, or an expired delta token)"


class IncrementalCycle:
    """One incremental cycle of ``app`` (an :class:`~reconciler.run.AppRun`, open, with its state attached or
    readable); ``fallback`` says why a full cycle ran instead, when one did."""

    def __init__(self, app: AppRun) -> None:
        self.app = app
        self.fallback: str | None = None
        self.read: SourceRead | None = None
        self.scope = Scope()

    async def _since(self) -> SourceRead | None:
        app = self.app
        app._read_state()
        state = app.state
        if state is None or not state.watermark:
            self.fallback = NO_WATERMARK
            return None
        cache = app.read_cache()
        if cache is None:
            self.fallback = NO_CACHE
            return None
        try:
            cached = directory_from_json(cache, f"{app.state_where}: the directory cache of {app.manifest.name}")
        except DirectoryError as error:  # only a shortcut: a full cycle rebuilds it
            self.fallback = f"{error}".splitlines()[0]
            return None
        read = await read_since(app.loaded, app.options.directory, state.watermark, cached)
        if read is None:
            self.fallback = EXPIRED
        return read

    def _empty(self) -> Plan:
        app = self.app
        plan = Plan(app=app.manifest.name, target=app.url, deprovision=app.manifest.provisioning.deprovision,
                    threshold=app.manifest.provisioning.deletion_threshold, fingerprint="", mode="incremental")
        return plan

    async def _prepare(self, read: SourceRead) -> tuple[Plan, LiveState]:
        """The incremental plan of what changed (with the escrow), on the ledger live."""
        app = self.app
        assert app.state is not None and read.changes is not None
        self.read = read
        app.directory = read.directory
        app.new_watermark = read.watermark
        desired = desired_state(app.manifest, read.directory)
        app.desired = desired
        escrowed = {e.source_id for e in app.state.escrow.values()}
        self.scope = touched_scope(app.state, desired, read.changes.touched_users() | escrowed,
                                   read.changes.touched_groups() | escrowed)
        await app._discover()
        live = await self._live(ledger_live(app.state, self.scope.keys))
        return self._plan(live), live

    async def _live(self, live: LiveState) -> LiveState:
        """The ledger live, with the objects whose last-applied values the ledger does not know read by id."""
        app = self.app
        assert app.state is not None
        attributes = app._read_attributes()
        for entry in unknown(app.state, self.scope.keys):
            store = live.users if entry.kind == "User" else live.groups
            try:
                store[entry.target_id] = await app.client.get(entry.kind, entry.target_id,
                                                              attributes=attributes[entry.kind])
            except TargetStatusError as error:
                if error.status != 404:
                    raise
                store.pop(entry.target_id, None)
            except TargetError as error:
                raise app._named(error) from None
        return live

    def _plan(self, live: LiveState) -> Plan:
        app = self.app
        assert app.state is not None and app.desired is not None
        plan = incremental_plan(app.manifest, app.desired, app.state, self.scope, live, target=app.url,
                                schemas=app.schemas, allow_deletes=app.options.allow_deletes)
        plan.notes.extend(app.client.notes)
        return plan

    async def plan(self) -> Plan:
        """The incremental plan (read-only), or a full one when no watermark serves."""
        read = await self._since()
        if read is None:
            return await self.app.plan()
        if read.changes is not None and read.changes.empty and not self.app.state.escrow:  # type: ignore[union-attr]
            return self._empty()
        plan, _ = await self._prepare(read)
        return plan

    async def converge(self, *, progress: Progress | None = None,
                       on_round: Callable[[int, Plan], None] | None = None) -> RunResult:
        """The incremental cycle, written and recorded (the ledger from each write's outcome, the watermark, the
        cycle); a full converging cycle when no watermark serves."""
        app = self.app
        read = await self._since()
        if read is None:
            return await app.converge(progress=progress, on_round=on_round)
        started = now_iso()
        state = app.state
        assert state is not None
        if read.changes is not None and read.changes.empty and not state.escrow:
            result = RunResult(app.manifest.name, self._empty())
            if read.watermark != state.watermark:
                app.new_watermark = read.watermark
            app._record_run(started, result)
            return result
        try:
            result = await self._rounds(read, progress, on_round)
        except DeletionGuardTripped as error:
            app.new_watermark = None
            app._record_run(started, None, error, QUARANTINE_DELETES)
            raise
        except Stopping:
            raise
        except ReconcilerError as error:
            app.new_watermark = None
            app._record_run(started, None, error, QUARANTINE_FAILED)
            raise
        app._record_run(started, result)
        return result

    async def _rounds(self, read: SourceRead, progress: Progress | None,
                      on_round: Callable[[int, Plan], None] | None) -> RunResult:
        app = self.app
        plan, live = await self._prepare(read)
        assert app.desired is not None
        result = RunResult(app.manifest.name, plan,
                           failed_objects=tuple(s for s in app.desired.skipped if s.failed
                                                and s.source_id in self.scope.ids))
        log = ProvisioningLog.open(app.options.log_path, app=app.manifest.name,
                                   target=app.url) if app.options.log_path else None
        touched = restricted(app.desired, self.scope.ids)
        try:
            for number in range(1, app.options.max_rounds + 1):
                if not plan.has_writes:
                    break
                if on_round:
                    on_round(number, plan)
                report = await app.executor(plan, log=log, progress=progress).run()
                result.rounds.append(report)
                failed = {f.step.key for f in report.failures}
                live = written(live, plan, touched, report.created, failed)
                plan = self._plan(live)
                self._record(plan, live, report.created)
                result.final = plan
                if report.failures:
                    break  # failed objects wait in escrow for the next cycle; the rest is done
        finally:
            if log is not None:
                log.close()
        return result

    def _record(self, plan: Plan, live: LiveState, created: dict[str, str]) -> None:
        """Save the ledger for the touched objects as the writes left them (no read of the target)."""
        app = self.app
        if app.session is None or app.state is None or app.desired is None:
            return
        only = set(self.scope.keys) | {ledger_key(k, s) for s in created for k in ("User", "Group")}
        state = after_round(app.state, restricted(app.desired, self.scope.ids), plan, live, now=now_iso(),
                            groups=app.manifest.provisioning.groups.enabled, only=only)
        app.state = app.session.commit(state)
