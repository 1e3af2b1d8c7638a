"""``reconciler plan``: what apply would change, as text, Markdown or JSON; ``--out`` saves it for apply.

An app that Entra's own job provisions (``provisioning.engine: entra``) is not planned: one line on stderr says so
(stdout is the plan), and in JSON it is an entry of ``apps`` with ``"engine": "entra"``, zero counts and no steps.
``--detailed-exitcode`` counts only the planned apps.
"""

from __future__ import annotations

import argparse
import json
import sys

from reconciler.commands.common import add_target_flags, checked_target, load_valid, options_from, run_async
from reconciler.commands.saved import origin_of
from reconciler.cycles import IncrementalCycle
from reconciler.errors import ReconcilerError
from reconciler.outputs import write_private
from reconciler.plan import SUMMARY_KEYS, Plan
from reconciler.report import render_markdown, render_text
from reconciler.report.budget import checked_limit
from reconciler.report.jsonout import plans_document
from reconciler.run import AppRun, entra_engine, entra_engine_line


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("plan", help="show what apply would change in each app's SCIM target")
    add_target_flags(parser)
    parser.add_argument("--format", choices=("text", "markdown", "json"), default="text")
    parser.add_argument("--detailed-exitcode", action="store_true",
                        help="exit 0 when there is nothing to change, 2 when there is, 1 on error")
    parser.add_argument("--out", metavar="FILE", help="also save the plan as JSON, for apply --plan FILE (with "
                                                      "its manifests' paths and digests, target and directory)")
    parser.add_argument("--detail", action="store_true", help="text: list every attribute of new objects too")
    parser.add_argument("--incremental", action="store_true",
                        help="plan only what changed in the directory since the last apply, against the ledger, "
                             "without reading the target (a full plan when there is no watermark yet)")
    parser.add_argument("--max-chars", type=int, default=None, metavar="N",
                        help="markdown: the size limit (default and maximum 65000, for a pull-request comment); "
                             "details past it are cut, with a note")
    parser.set_defaults(handler=run)


async def make_plans(args: argparse.Namespace) -> tuple[list[Plan], list[ReconcilerError], list[str]]:
    """Each app's plan, the errors, and the apps Entra's job provisions (not planned); an app whose directory or
    target fails is reported, and the others are still planned."""
    plans: list[Plan] = []
    errors: list[ReconcilerError] = []
    entra: list[str] = []
    options = options_from(args)
    for loaded in load_valid(args):
        if entra_engine(loaded):
            print(entra_engine_line(loaded.manifest.name), file=sys.stderr)
            entra.append(loaded.manifest.name)
            continue
        try:
            async with AppRun(loaded, options) as app:
                if args.incremental:
                    cycle = IncrementalCycle(app)
                    plans.append(await cycle.plan())
                    if cycle.fallback:
                        print(f"{loaded.manifest.name}: a full plan: {cycle.fallback}", file=sys.stderr)
                else:
                    plans.append(await app.plan())
                if (line := app.state_line()) is not None:
                    print(line, file=sys.stderr)
        except ReconcilerError as error:
            errors.append(error)
    return plans, errors, entra


def render_document(plans: list[Plan], entra: list[str], origin: dict[str, object] | None = None) -> str:
    """The JSON document: the plans, then an entry per app that Entra's job provisions."""
    document = plans_document(plans, origin)
    document["apps"] += [{"name": name, "engine": "entra", "summary": dict.fromkeys(SUMMARY_KEYS, 0), "steps": []}
                         for name in entra]
    return json.dumps(document, indent=2, ensure_ascii=False, sort_keys=False, default=str) + "\n"


def run(args: argparse.Namespace) -> int:
    if args.max_chars is not None and args.format != "markdown":
        raise ReconcilerError("plan: --max-chars is for --format markdown")
    limit = checked_limit(args.max_chars, "plan")
    origin = origin_of(args.paths, checked_target(args.target), args.directory) if args.out else None
    plans, errors, entra = run_async(make_plans(args))
    if args.format == "json":
        sys.stdout.write(render_document(plans, entra))
    elif args.format == "markdown":
        sys.stdout.write(render_markdown(plans, limit=limit))
    else:
        sys.stdout.write(render_text(plans, color=sys.stdout.isatty(), detailed=args.detail))
    for error in errors:
        for line in error.lines():
            print(line, file=sys.stderr)
    if errors:
        return 1  # no --out file either: a partial plan must not be applied as if it were whole
    if args.out:
        write_private(args.out, render_document(plans, entra, origin))
    if args.detailed_exitcode:
        return 2 if any(not p.empty for p in plans) else 0
    return 0
