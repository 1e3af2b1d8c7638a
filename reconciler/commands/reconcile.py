"""``reconciler reconcile [PATH...] --interval DURATION``: the drift loop, for running as a service.

Converges every app each interval (jittered), backs off an app that keeps failing as Entra's quarantine does,
prints one line per cycle, and stops cleanly on SIGTERM or SIGINT between requests (exit 0). With ``--once`` or
``--max-cycles N`` it ends by itself: exit 0 when the last cycle converged every app, 1 otherwise.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

from reconciler.commands.common import add_target_flags, load_valid, options_from
from reconciler.errors import ReconcilerError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("reconcile", help="converge every app each interval until stopped (a service)",
                                   description="Converge every app's SCIM target each interval, like Flux's "
                                               "interval; stop with SIGTERM.")
    add_target_flags(parser)
    parser.add_argument("--interval", required=True, metavar="DURATION", help="e.g. 10m, 1h, 1h30m")
    parser.add_argument("--jitter", type=float, default=10.0, metavar="PERCENT",
                        help="spread each wait by up to this share of the interval, either way (default 10)")
    parser.add_argument("--allow-deletes", action="store_true",
                        help="apply even when disables/deletes exceed the manifest's deletionThreshold")
    parser.add_argument("--log", metavar="FILE", help="append the provisioning log (JSON lines) to FILE")
    parser.add_argument("--concurrency", type=int, metavar="N", help="concurrent writes per target (default 8)")
    parser.add_argument("--max-backoff", default="24h", metavar="DURATION",
                        help="the longest wait after consecutive failures (default 24h, as Entra's quarantine)")
    parser.add_argument("--lock-wait", type=float, default=None, metavar="SECONDS",
                        help="wait this long for an apply holding a target's lock (default 30)")
    ends = parser.add_mutually_exclusive_group()
    ends.add_argument("--once", action="store_true", help="run one cycle and exit")
    ends.add_argument("--max-cycles", type=int, metavar="N", help="run N cycles and exit")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from reconciler.loop import LoopOptions, ReconcileLoop, parse_duration

    interval = parse_duration(args.interval)
    if not 0 <= args.jitter < 100:
        raise ReconcilerError("reconcile: --jitter must be a percentage from 0 to 99")
    if args.max_cycles is not None and args.max_cycles < 1:
        raise ReconcilerError("reconcile: --max-cycles must be at least 1")
    manifests = load_valid(args)
    options = LoopOptions(interval=interval, jitter=args.jitter / 100, run=options_from(args),
                          max_cycles=1 if args.once else args.max_cycles,
                          max_backoff=parse_duration(args.max_backoff))
    if args.lock_wait is not None:
        options.lock_wait = args.lock_wait
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    names = ", ".join(m.manifest.name for m in manifests)
    print(f"reconcile: {names} every {args.interval} (jitter {args.jitter:g}%); SIGTERM stops between requests",
          flush=True)
    try:
        return ReconcileLoop(manifests, options, stop=stop,
                             emit=lambda line: print(line, flush=True)).run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sys.stdout.flush()
