"""``reconciler apply``: drive each app's target until it matches (or apply a saved, reviewed plan)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from reconciler.commands.common import add_target_flags, load_valid, options_from, run_async
from reconciler.errors import ReconcilerError
from reconciler.lock import DEFAULT_WAIT, target_lock
from reconciler.plan import Plan
from reconciler.progress import progress_reporter
from reconciler.report import render_text
from reconciler.run import AppRun, RunResult


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("apply", help="apply changes and converge each app's SCIM target")
    add_target_flags(parser)
    parser.add_argument("--plan", metavar="FILE", help="apply this saved plan (from plan --out); refused if the "
                                                       "target changed since")
    parser.add_argument("--allow-deletes", action="store_true",
                        help="apply even when disables/deletes exceed the manifest's deletionThreshold")
    parser.add_argument("--concurrency", type=int, metavar="N", help="concurrent writes per target (default 8)")
    parser.add_argument("--log", metavar="FILE", help="append the provisioning log (JSON lines) to FILE")
    parser.add_argument("--no-bulk", action="store_true",
                        help="create with one POST per object even when the target advertises /Bulk")
    parser.add_argument("--lock-wait", type=float, default=DEFAULT_WAIT, metavar="SECONDS",
                        help="wait this long for another apply to the same target to end, then fail "
                             f"(default {DEFAULT_WAIT:g})")
    parser.set_defaults(handler=run)


def saved_plans(path: str) -> dict[str, Plan]:
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
        return {app["name"]: Plan.from_dict(app) for app in document["apps"]}
    except OSError as error:
        raise ReconcilerError(f"{path}: cannot read plan: {error.strerror or error}") from None
    except (ValueError, KeyError, TypeError) as error:
        raise ReconcilerError(f"{path}: not a plan saved by 'reconciler plan --out' ({error})") from None


async def apply_all(args: argparse.Namespace) -> list[RunResult]:
    options = options_from(args)
    saved = saved_plans(args.plan) if args.plan else {}
    results = []
    for loaded in load_valid(args):
        if args.plan and loaded.manifest.name not in saved:
            raise ReconcilerError(f"{args.plan}: has no plan for app {loaded.manifest.name!r}")
        async with AppRun(loaded, options) as app:
            with target_lock(app.url, wait=args.lock_wait, command=f"apply {loaded.manifest.name}"), \
                    progress_reporter(loaded.manifest.name) as report:
                def announce(number: int, plan: Plan, report=report) -> None:
                    if number == 1:
                        sys.stdout.write(render_text([plan], color=sys.stdout.isatty()))
                        sys.stdout.flush()
                    report.start_round(number, sum(1 for s in plan.steps if s.writes))
                results.append(await app.converge(saved=saved.get(loaded.manifest.name), progress=report.step,
                                                  on_round=announce))
    return results


def run(args: argparse.Namespace) -> int:
    results = run_async(apply_all(args))
    status = 0
    for result in results:
        what = ", ".join(f"{n} {a}" for a, n in sorted(result.done().items())) or "nothing to do"
        state = "converged" if result.converged else "NOT converged"
        print(f"{result.app}: {what}; {result.writes} write request(s) in {len(result.rounds)} round(s); {state}")
        for failure in result.failures:
            print(f"{result.app}: failed: {failure.step.action} {failure.step.kind} {failure.step.display}: "
                  f"{failure.reason}", file=sys.stderr)
        if not result.converged:
            for step in result.final.steps:
                print(f"{result.app}: pending: {step.action} {step.kind} {step.display}"
                      + (f" ({step.reason})" if step.reason else ""), file=sys.stderr)
            status = 1
    return status
