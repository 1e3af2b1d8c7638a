"""``reconciler apply --only NAME ...``: provision on demand (:mod:`reconciler.ondemand`), app by app.

Each app's run holds its provisioning state's lock, as ``apply`` does, and records what it writes in the ledger.
Entra's four steps for every named object go to stdout; a name that finds no directory object is one line on
stderr. The exit code is 0 when every named object ended as expected, 1 otherwise; SIGTERM or SIGINT stop it
between requests, as they stop ``apply``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from reconciler.commands.common import load_valid, options_from, run_async
from reconciler.commands.signals import StopSignals
from reconciler.errors import ReconcilerError, Stopping
from reconciler.ondemand import OnDemandResult, OnDemandRun, transcript
from reconciler.provlog import ProvisioningLog
from reconciler.run import entra_engine, entra_engine_line
from reconciler.state.store import open_backend, open_session
from reconciler.stopgate import install_stop_gate


def run_only(args: argparse.Namespace) -> int:
    if args.plan:
        raise ReconcilerError("--only provisions the named objects now and --plan applies a reviewed plan: "
                              "use one or the other")
    stop = StopSignals()
    results = run_async(_apply_only(args, stop))
    if stop.summary:
        print(stop.summary, file=sys.stderr)
        return stop.exit_code
    return 0 if all(r.ok for r in results) else 1


async def _apply_only(args: argparse.Namespace, stop: StopSignals) -> list[OnDemandResult]:
    stop.install()
    try:
        results = []
        for loaded in load_valid(args):
            name = loaded.manifest.name
            if entra_engine(loaded):
                print(entra_engine_line(name, "use Entra's Provision on demand"))
                continue
            if stop.requested:
                break
            result = await _one(OnDemandRun(loaded, options_from(args), args.only), args, stop)
            if result is None:
                stop.summary = f"{name}: apply --only stopped by {stop.name}; re-run to finish"
                break
            for line in transcript(result):
                print(line)
            for line in result.unresolved:
                print(line, file=sys.stderr)
            results.append(result)
        return results
    finally:
        stop.uninstall()


async def _one(run: OnDemandRun, args: argparse.Namespace, stop: StopSignals) -> OnDemandResult | None:
    """One app's on-demand run under its target's lock; None when a stop signal ended it."""
    name = run.manifest.name
    try:
        async with run:
            install_stop_gate(run.client, stop.event)
            with open_session(open_backend(args.state), name, run.url, wait=args.lock_wait,
                              command=f"apply --only ({name})") as session:
                run.session = session
                log = ProvisioningLog.open(args.log, app=name, target=run.url) if args.log else None
                try:
                    return await run.run(log=log)
                except (Stopping, asyncio.CancelledError) as error:
                    if not stop.caught(error):
                        raise
                    await stop.drain()  # before the client closes: the requests in flight are answered
                finally:
                    if log is not None:
                        log.close()
    except asyncio.CancelledError as error:  # the grace ran out while the client was closing
        if not stop.caught(error):
            raise
    return None
