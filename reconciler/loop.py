"""The reconcile loop: converge every app, sleep a jittered interval, repeat, until SIGTERM.

Like Flux's ``interval``, each cycle re-applies the desired state, so drift in a target is corrected within about
one interval. The loop's safe defaults:

- **Stops between requests.** A stop request (SIGTERM, SIGINT) ends the sleep at once; during a cycle no new SCIM
  request is started, the requests in flight are answered, and the loop exits 0. A write cut short is safe to
  redo: the next run converges without duplicates.
- **Backs off like Entra's quarantine.** An app whose cycle fails (unreachable target, rejected token, the deletion
  guard, not converged) is retried after ``interval x 2^(failures-1)``, capped at 24 hours, which is where Entra's
  provisioning quarantine ends up (once a day). The first clean cycle ends it. Other apps keep their interval.
  A cycle whose target converged still counts as failed when its escrow passes Entra's threshold
  (:func:`~reconciler.ledger.escrow_quarantined`).
- **Remembers the quarantine.** The count of failed cycles, the reason (Entra's words) and the next attempt's
  wall time are saved in the app's provisioning state by the commit that records the cycle; a restarted
  service (or the next pipeline run) starts from them, and sends nothing before the next attempt is due. While
  an app waits, the loop reads its state again, so a clean ``apply`` in between ends the wait. A cycle that
  fails before it holds the state (its lock busy) counts in memory only.
- **One writer per target.** Each app's cycle holds its provisioning state's lock
  (:func:`~reconciler.run.holding_state`), so an ``apply`` waits for it, and it for the apply.
- **One line per cycle** on stdout, for a log collector; nothing in it can hold a token.
- **Observable.** After each app's part of a cycle an ``observe`` hook (the metrics of :mod:`reconciler.metrics`)
  gets a :class:`CycleReport` of plain values; a hook that raises never stops the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import random
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from reconciler.cycles import IncrementalCycle
from reconciler.errors import ReconcilerError, Stopping
from reconciler.lock import DEFAULT_WAIT
from reconciler.manifest import LoadedManifest
from reconciler.run import AppRun, RunOptions, RunResult, holding_state
from reconciler.secrets import REGISTRY, scrub
from reconciler.state.model import Quarantine
from reconciler.state.store import load, open_backend
from reconciler.stopgate import install_stop_gate

MAX_BACKOFF = 24 * 3600.0  # Entra's quarantine settles at one attempt a day
DRAIN = 30.0               # how long a stop waits for requests in flight
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """Seconds in ``90``, ``30s``, ``5m``, ``1h30m``, ``250ms``, ``1d`` (Go's and Flux's notation)."""
    value = text.strip().lower()
    if re.fullmatch(r"\d+(?:\.\d+)?", value):
        seconds = float(value)
    else:
        parts = _DURATION.findall(value)
        if not parts or "".join(n + u for n, u in parts) != value:
            raise ReconcilerError(f"duration {text!r}: expected e.g. 30s, 5m, 1h30m")
        seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if seconds <= 0:
        raise ReconcilerError(f"duration {text!r}: must be more than zero")
    return seconds


def format_duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f}s" if seconds >= 1 else f"{seconds:.1f}s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes}m" if minutes else f"{hours}h"


@dataclass
class LoopOptions:
    interval: float
    jitter: float = 0.1                 # +-10% of the interval
    max_cycles: int | None = None
    max_backoff: float = MAX_BACKOFF
    lock_wait: float = DEFAULT_WAIT
    run: RunOptions = field(default_factory=RunOptions)
    full_every: float | None = None     # incremental cycles between full ones this far apart (None: all full)


@dataclass
class AppState:
    failures: int = 0
    due: float = 0.0            # the loop clock's time of the next attempt
    reason: str | None = None   # why the stored quarantine counts (Entra's words), as the state says
    serial: int | None = None   # the stored document last seen (None: not read yet)
    last_full: float | None = None  # the loop clock's time of the last clean full cycle (None: none yet)


@dataclass
class Outcome:
    ok: bool
    text: str
    quarantine: Quarantine | None = None  # as the cycle saved it in the state (None: nothing saved)
    serial: int | None = None             # the saved document's serial
    result: RunResult | None = None       # what the run did (None: it raised)
    escrow: int | None = None             # objects in the saved state's escrow (None: nothing saved)
    mode: str = "full"                    # the cycle's mode: full | incremental


@dataclass(frozen=True)
class CycleReport:
    """One app's part of a cycle as plain values, for the loop's ``observe`` hook (the metrics).

    ``outcome`` is one of :data:`OUTCOMES`: ``converged``; ``not_converged`` (the target still differs after the
    last round, or the escrow passed Entra's threshold); ``failed`` (the cycle raised: an unreachable target, a
    rejected token, the deletion guard, a busy lock); ``backoff`` (the app waited out its quarantine, nothing was
    sent); ``stopped`` (a stop request cut the cycle short).
    """

    app: str
    outcome: str
    finished: float                       # wall time, seconds since the epoch
    mode: str = "full"                    # full | incremental
    duration: float = 0.0                 # seconds on the loop's clock; 0 when nothing ran
    written: Mapping[str, int] = field(default_factory=dict)        # successful writes by action
    failed_writes: Mapping[str, int] = field(default_factory=dict)  # writes still failing at the end, by action
    failed_objects: int = 0               # objects that failed this cycle (writes, and objects not mappable)
    escrow: int | None = None             # objects in the state's escrow after the cycle (None: not known)
    failures: int = 0                     # consecutive failed cycles
    reason: str | None = None             # why the quarantine counts, in Entra's words

    @property
    def quarantined(self) -> bool:
        """As the cycle line and the state say it: more than one consecutive failure."""
        return self.failures > 1


OUTCOMES = ("converged", "not_converged", "failed", "backoff", "stopped")


def wall_iso(seconds: float) -> str:
    """A wall time (seconds since the epoch) as the state stores it, rounded up to the second (never early)."""
    return datetime.fromtimestamp(math.ceil(seconds), UTC).isoformat().replace("+00:00", "Z")


def parse_wall(text: str | None) -> float | None:
    """The wall time of a stored ISO time; None when absent or unreadable."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def backoff(interval: float, failures: int, cap: float) -> float:
    """The wait before the next attempt after ``failures`` consecutive failures (1: the plain interval)."""
    return min(cap, interval * 2 ** max(0, failures - 1))


async def _drain() -> None:
    others = asyncio.all_tasks() - {asyncio.current_task()}
    if others:
        await asyncio.wait(others, timeout=DRAIN)


def describe(result: RunResult) -> str:
    what = ", ".join(f"{n} {a}" for a, n in sorted(result.done().items())) or "no changes"
    if result.converged:
        return f"{what}; converged ({result.writes} write(s))"
    pending = len(result.final.steps)
    failed = f", {len(result.failures)} failed" if result.failures else ""
    return f"{what}; NOT converged ({pending} pending{failed})"


def failed(error: ReconcilerError) -> str:
    return "FAILED: " + " ".join(str(error).split())


async def converge_once(loaded: LoadedManifest, options: LoopOptions, stop: threading.Event, *,
                        schedule: Callable[[int], str] | None = None, incremental: bool = False) -> Outcome:
    """One app's cycle under its state's lock.

    Once the cycle is recorded in the state, the outcome follows the saved quarantine (a cycle counts as failed
    when it raised, did not converge, or escrowed past Entra's threshold), and ``schedule`` (failed cycles ->
    the next attempt's ISO time) is saved with it. An error raised after the cycle was recorded comes back as a
    failed outcome; one raised before (the lock busy, an unreadable state) is raised. With ``incremental``, the
    cycle is an incremental one (:mod:`reconciler.cycles`) unless no watermark serves; ``Outcome.mode`` says which.
    """
    name = loaded.manifest.name
    mode = "full"
    async with AppRun(loaded, options.run) as app:
        app.schedule = schedule
        install_stop_gate(app.client, stop)
        try:
            with holding_state(app, wait=options.lock_wait, command=f"reconcile {name}"):
                try:
                    if incremental:
                        cycle = IncrementalCycle(app)
                        result = await cycle.converge()
                        mode = "full" if cycle.fallback else "incremental"
                    else:
                        result = await app.converge()
                except Stopping:
                    await _drain()
                    raise
        except ReconcilerError as error:
            if not app.recorded or app.state is None:
                raise
            return Outcome(False, failed(error), app.state.quarantine, app.state.serial,
                           escrow=len(app.state.escrow), mode=mode)
    if not app.recorded or app.state is None:
        return Outcome(result.converged, describe(result), result=result, mode=mode)
    quarantine = app.state.quarantine
    text = ("incremental: " if mode == "incremental" else "") + describe(result)
    if result.converged and quarantine.failures:
        text += f"; {len(app.state.escrow)} object(s) in escrow, past Entra's escrow threshold"
    return Outcome(quarantine.failures == 0, text, quarantine, app.state.serial, result=result,
                   escrow=len(app.state.escrow), mode=mode)


class ReconcileLoop:
    """Runs cycles until ``stop`` is set or ``max_cycles`` passed; ``emit`` receives one line per cycle.

    ``clock`` (the schedule's), ``wall`` (seconds since the epoch, for the times saved in the state), ``rand``
    and ``sleep`` are injectable so that tests can run the schedule without waiting. ``observe`` receives a
    :class:`CycleReport` after each app's part of a cycle.
    """

    def __init__(self, manifests: Sequence[LoadedManifest], options: LoopOptions, *, stop: threading.Event,
                 emit: Callable[[str], None] = print, clock: Callable[[], float] = time.monotonic,
                 rand: Callable[[], float] = random.random, sleep: Callable[[float], Any] | None = None,
                 wall: Callable[[], float] = time.time,
                 observe: Callable[[CycleReport], None] | None = None) -> None:
        self.manifests = list(manifests)
        self.options = options
        self.stop = stop
        self.emit = emit
        self.clock = clock
        self.wall = wall
        self.rand = rand
        self.sleep = sleep or self.stop.wait  # returns early when a stop is requested
        self.observe = observe
        self.state = {m.manifest.name: AppState() for m in self.manifests}
        REGISTRY.register_environment({m.manifest.provisioning.target.token_env for m in self.manifests}, os.environ)
        self.cycles = 0
        self.last_ok = True

    def jittered(self) -> float:
        spread = self.options.interval * self.options.jitter
        return max(0.0, self.options.interval + spread * (2 * self.rand() - 1))

    def wait(self, failures: int) -> float:
        return backoff(self.options.interval, failures, self.options.max_backoff)

    def schedule(self, failures: int) -> str:
        """The next attempt's wall time after ``failures`` failed cycles, as the state stores it."""
        return wall_iso(self.wall() + self.wait(failures))

    def _stored(self, loaded: LoadedManifest) -> tuple[int, Quarantine] | None:
        """The serial and quarantine of the app's stored state, read without the lock; None when the run is
        stateless or the state cannot be read (the cycle's own read then says why)."""
        if self.options.run.stateless:
            return None
        url = self.options.run.target or loaded.manifest.provisioning.target.url
        try:
            stored, _ = load(open_backend(self.options.run.state), loaded.manifest.name, url)
        except (ReconcilerError, OSError):
            return None
        return stored.serial, stored.quarantine

    def _refresh(self, loaded: LoadedManifest, state: AppState) -> None:
        """Seed ``state`` from the stored quarantine at first; later, while the app waits out a backoff, take on
        what another run (an ``apply``) saved since, if anything."""
        if state.serial is not None and state.due <= self.clock():
            return
        stored = self._stored(loaded)
        if stored is None or stored[0] == state.serial:
            return
        state.serial, quarantine = stored
        state.failures, state.reason = quarantine.failures, quarantine.reason
        at = parse_wall(quarantine.next_attempt) if quarantine.failures else None
        state.due = 0.0 if at is None else self.clock() + (at - self.wall())

    def _incremental(self, state: AppState, now: float) -> bool:
        """Whether this cycle of an app may be incremental: a clean full cycle ran less than ``full_every`` ago."""
        every = self.options.full_every
        return every is not None and state.last_full is not None and now - state.last_full < every

    def _attempt(self, loaded: LoadedManifest, incremental: bool = False) -> Outcome:
        try:
            return asyncio.run(converge_once(loaded, self.options, self.stop, schedule=self.schedule,
                                             incremental=incremental))
        except ReconcilerError as error:
            return Outcome(False, failed(error))
        except Stopping:
            raise
        except Exception as error:  # a bug must not end a service; it counts as a failure and is backed off
            return Outcome(False, f"FAILED: internal error: {type(error).__name__}: {error}")

    def _report(self, name: str, outcome: str, state: AppState, done: Outcome | None = None,
                duration: float = 0.0) -> None:
        """Tell the ``observe`` hook how the app's part of the cycle went (a hook that raises is ignored)."""
        if self.observe is None:
            return
        result = done.result if done is not None else None
        failed_writes: dict[str, int] = {}
        for failure in result.failures if result is not None else []:
            action = str(failure.step.action)
            failed_writes[action] = failed_writes.get(action, 0) + 1
        report = CycleReport(
            app=name, outcome=outcome, finished=self.wall(), mode=done.mode if done is not None else "full",
            duration=max(0.0, duration),
            written={str(action): n for action, n in result.done().items()} if result is not None else {},
            failed_writes=failed_writes,
            failed_objects=len(result.failures) + len(result.failed_objects) if result is not None else 0,
            escrow=done.escrow if done is not None else None, failures=state.failures, reason=state.reason)
        with contextlib.suppress(Exception):
            self.observe(report)

    def cycle(self) -> str:
        self.cycles += 1
        parts: list[str] = []
        all_ok = True
        for loaded in self.manifests:
            name = loaded.manifest.name
            state = self.state[name]
            if self.stop.is_set():
                parts.append(f"{name}: skipped (stopping)")
                continue
            self._refresh(loaded, state)
            now = self.clock()
            if state.due > now:
                why = f" ({state.reason})" if state.reason else ""
                parts.append(f"{name}: quarantined after {state.failures} consecutive failure(s), next attempt in "
                             f"{format_duration(state.due - now)}{why}")
                all_ok = False
                self._report(name, "backoff", state)
                continue
            started = self.clock()
            try:
                outcome = self._attempt(loaded, self._incremental(state, started))
            except Stopping:
                parts.append(f"{name}: stopped between requests; the next run resumes")
                self._report(name, "stopped", state, duration=self.clock() - started)
                continue
            took = self.clock() - started
            parts.append(f"{name}: {outcome.text}")
            if outcome.quarantine is not None:  # saved: the state's count and reason are the truth
                state.serial, state.reason = outcome.serial, outcome.quarantine.reason
            if outcome.ok:
                if state.failures > 1:
                    parts[-1] += f"; out of quarantine after {state.failures} failure(s)"
                state.failures, state.due = 0, 0.0
                if outcome.mode == "full":
                    state.last_full = started
                self._report(name, "converged", state, outcome, took)
                continue
            all_ok = False
            state.failures = (max(1, outcome.quarantine.failures) if outcome.quarantine is not None
                              else state.failures + 1)
            wait = self.wait(state.failures)
            state.due = self.clock() + wait
            if state.failures > 1:
                why = f"{state.reason}; " if state.reason and outcome.quarantine is not None else ""
                parts[-1] += (f"; {state.failures} consecutive failures: quarantined like Entra's provisioning "
                              f"quarantine, next attempt in {format_duration(wait)} ({why}the wait doubles per "
                              f"failure, at most {format_duration(self.options.max_backoff)})")
            self._report(name, "failed" if outcome.result is None else "not_converged", state, outcome, took)
        self.last_ok = all_ok
        stamp = datetime.fromtimestamp(self.wall(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return scrub(f"cycle {self.cycles} {stamp}: " + " | ".join(parts))

    def run(self) -> int:
        """Cycles until stopped (exit 0), or until ``max_cycles`` (exit 0 when the last cycle was clean)."""
        while not self.stop.is_set():
            line = self.cycle()
            limit = self.options.max_cycles
            last = limit is not None and self.cycles >= limit
            if self.stop.is_set() or last:
                self.emit(line)
                break
            delay = self.jittered()
            self.emit(f"{line}; next cycle in {format_duration(delay)}")
            self.sleep(delay)
        if self.stop.is_set():
            self.emit(f"reconcile: stopped after {self.cycles} cycle(s)")
            return 0
        return 0 if self.last_ok else 1
