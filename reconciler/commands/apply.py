"""``reconciler apply``: drive each app's target until it matches (or apply a saved, reviewed plan).

SIGTERM or SIGINT stops it between requests (:mod:`reconciler.commands.signals`): one line says how far it got,
and the exit code is 143 or 130. A directory object that cannot be mapped or sent fails alone: it is named on
stderr, the others are applied, and the exit code is 1. When earlier runs left objects in escrow or the app in
quarantine, one line on stderr says so before planning; the apply runs all the same, and a converged one ends
the quarantine. An app that Entra's own job provisions (``provisioning.engine: entra``) is not applied: one line on
stdout says so, and nothing is sent to its target (``--plan`` skips it too).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import dataclass

from reconciler.commands.apply_only import run_only
from reconciler.commands.common import add_target_flags, load_valid, options_from, run_async
from reconciler.commands.saved import DEFAULT_PATHS, check_targets, read_saved_plan, standalone_args
from reconciler.commands.signals import StopSignals
from reconciler.cycles import IncrementalCycle
from reconciler.errors import ReconcilerError, Stopping
from reconciler.lock import DEFAULT_WAIT
from reconciler.plan import Plan, Step
from reconciler.progress import progress_reporter
from reconciler.report import render_text
from reconciler.run import AppRun, RunResult, entra_engine, entra_engine_line, holding_state
from reconciler.stopgate import install_stop_gate


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("apply", help="apply changes and converge each app's SCIM target")
    add_target_flags(parser)
    parser.add_argument("--plan", metavar="FILE", help="apply this saved plan (from plan --out) to the manifests "
                                                       "and target it was made from; refused if either changed since")
    parser.add_argument("--allow-deletes", action="store_true",
                        help="apply even when disables/deletes exceed the manifest's deletionThreshold")
    parser.add_argument("--concurrency", type=int, metavar="N", help="concurrent writes per target (default 8)")
    parser.add_argument("--log", metavar="FILE", help="append the provisioning log (JSON lines) to FILE")
    parser.add_argument("--no-bulk", action="store_true",
                        help="create with one POST per object even when the target advertises /Bulk")
    parser.add_argument("--only", action="append", metavar="UPN_OR_ID",
                        help="provision on demand: only this user (userPrincipalName or object id) or group "
                             "(displayName or object id); repeatable")
    parser.add_argument("--incremental", action="store_true",
                        help="apply only what changed in the directory since the last apply, against the ledger, "
                             "without reading the target (a full cycle when there is no watermark yet)")
    parser.add_argument("--lock-wait", type=float, default=DEFAULT_WAIT, metavar="SECONDS",
                        help="wait this long for another apply to the same target to end, then fail "
                             f"(default {DEFAULT_WAIT:g})")
    parser.set_defaults(handler=run, paths=[])  # no PATH: manifests/, or with --plan the plan's own manifests


@dataclass
class Tally:
    """How far an app's current round got, for the line that reports a stop."""

    app: str
    total: int = 0
    done: int = 0
    planned: bool = False

    def start_round(self, total: int) -> None:
        self.planned, self.total, self.done = True, total, 0

    def stopped(self, signal_name: str) -> str:
        if not self.planned:
            return f"{self.app}: apply stopped by {signal_name} before any change; re-run to finish"
        return f"{self.app}: apply stopped by {signal_name}: {self.done} of {self.total} steps done; re-run to finish"


async def apply_all(args: argparse.Namespace, stop: StopSignals | None = None) -> list[RunResult]:
    """Converge each app in turn; a stop signal ends the run between requests (``stop.summary`` says where)."""
    stop = stop or StopSignals()
    stop.install()
    try:
        return await _apply_each(args, stop)
    finally:
        stop.uninstall()


async def _apply_each(args: argparse.Namespace, stop: StopSignals) -> list[RunResult]:
    plan_file = read_saved_plan(args.plan) if args.plan else None
    args = standalone_args(args, plan_file) if plan_file else args
    options = options_from(args)
    saved = plan_file.plans if plan_file else {}
    results = []
    for loaded in load_valid(args):
        if entra_engine(loaded):
            print(entra_engine_line(loaded.manifest.name))
            continue
        if args.plan and loaded.manifest.name not in saved:
            raise ReconcilerError(f"{args.plan}: has no plan for app {loaded.manifest.name!r}")
        tally = Tally(loaded.manifest.name)
        if stop.requested:
            stop.summary = tally.stopped(stop.name)
            break
        result: RunResult | None = None
        try:
            async with AppRun(loaded, options) as app:
                if plan_file:
                    check_targets(plan_file, loaded.manifest.name, app.url)
                install_stop_gate(app.client, stop.event)
                try:
                    result = await _converge(app, loaded.manifest.name, args, saved, tally)
                except (Stopping, asyncio.CancelledError) as error:
                    if not stop.caught(error):
                        raise
                    await stop.drain()  # before the client closes: the requests in flight are answered
        except asyncio.CancelledError as error:  # the grace ran out while the client was closing
            if not stop.caught(error):
                raise
        if result is None:
            stop.summary = tally.stopped(stop.name)
            break
        results.append(result)
    return results


async def _converge(app: AppRun, name: str, args: argparse.Namespace, saved: dict[str, Plan],
                    tally: Tally) -> RunResult:
    def waiting(holder: str) -> None:
        print(f"{name}: waiting up to {args.lock_wait:g}s for the state lock, held by {holder}", file=sys.stderr,
              flush=True)

    with holding_state(app, wait=args.lock_wait, command=f"apply {name}", on_wait=waiting), \
            progress_reporter(name) as report:
        if (line := app.state_line()) is not None:
            print(line, file=sys.stderr)
        if (line := app.history_line()) is not None:  # an apply is an explicit request: it runs all the same
            print(line, file=sys.stderr)

        def announce(number: int, plan: Plan) -> None:
            if number == 1:
                sys.stdout.write(render_text([plan], color=sys.stdout.isatty()))
                sys.stdout.flush()
            writes = sum(1 for s in plan.steps if s.writes)
            report.start_round(number, writes)
            tally.start_round(writes)

        def progress(step: Step, ok: bool) -> None:
            report.step(step, ok)
            tally.done += ok

        if getattr(args, "incremental", False):
            cycle = IncrementalCycle(app)
            result = await cycle.converge(progress=progress, on_round=announce)
            if cycle.fallback:
                print(f"{name}: a full cycle: {cycle.fallback}", file=sys.stderr)
            return result
        return await app.converge(saved=saved.get(name), progress=progress, on_round=announce)


def run(args: argparse.Namespace) -> int:
    if args.plan and getattr(args, "incremental", False):
        raise ReconcilerError("--plan applies a reviewed plan and --incremental plans what changed: use one or "
                              "the other")
    if not args.plan:
        args.paths = args.paths or list(DEFAULT_PATHS)
    if getattr(args, "only", None):
        return run_only(args)
    stop = StopSignals()
    results = run_async(apply_all(args, stop))
    status = 0
    for result in results:
        what = ", ".join(f"{n} {a}" for a, n in sorted(result.done().items())) or "nothing to do"
        state = "converged" if result.converged else "NOT converged"
        if result.failed_objects:
            state += f", {len(result.failed_objects)} object(s) failed"
        print(f"{result.app}: {what}; {result.writes} write request(s) in {len(result.rounds)} round(s); {state}")
        for failed in result.failed_objects:
            print(f"{result.app}: failed: {failed.kind.lower()} {failed.display}: {failed.reason}", file=sys.stderr)
            status = 1
        for failure in result.failures:
            print(f"{result.app}: failed: {failure.step.action} {failure.step.kind} {failure.step.display}: "
                  f"{failure.reason}", file=sys.stderr)
        if not result.converged:
            for step in result.final.steps:
                print(f"{result.app}: pending: {step.action} {step.kind} {step.display}"
                      + (f" ({step.reason})" if step.reason else ""), file=sys.stderr)
            status = 1
    if stop.summary:
        print(stop.summary, file=sys.stderr)
        return stop.exit_code
    return status
