"""``reconciler reconcile [PATH...] --interval DURATION``: the drift loop, for running as a service.

Converges every app each interval (jittered), backs off an app that keeps failing as Entra's quarantine does,
prints one line per cycle, and stops cleanly on SIGTERM or SIGINT between requests (exit 0). With ``--once`` or
``--max-cycles N`` it ends by itself: exit 0 when the last cycle converged every app, 1 otherwise. With
``--listen HOST:PORT`` it serves ``/metrics``, ``/healthz`` and ``/livez`` while it runs (:mod:`reconciler.metrics`).
An app that Entra's own job provisions (``provisioning.engine: entra``) is never cycled (nor in the metrics): one
line at the start says so; with no other app, the command ends there (exit 0).
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from types import FrameType

from reconciler.commands.common import add_target_flags, load_valid, options_from
from reconciler.errors import ReconcilerError
from reconciler.run import entra_engine, entra_engine_line


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
    parser.add_argument("--full-every", metavar="DURATION",
                        help="run incremental cycles (what changed in the directory, no read of the target) between "
                             "full ones this far apart, e.g. 24h; the first cycle is a full one (default: every "
                             "cycle is full)")
    parser.add_argument("--lock-wait", type=float, default=None, metavar="SECONDS",
                        help="wait this long for an apply holding a target's lock (default 30)")
    parser.add_argument("--listen", metavar="HOST:PORT",
                        help="serve /metrics (Prometheus), /healthz and /livez on HOST:PORT while running; PORT alone "
                             "means 127.0.0.1:PORT; no authentication: listen on loopback or a private pod network")
    parser.add_argument("--unhealthy-after", metavar="DURATION",
                        help="/healthz answers 503 when an app's last successful cycle is older than this, and "
                             "/livez when no cycle ended for this long (default: 3 intervals, at least 30m)")
    ends = parser.add_mutually_exclusive_group()
    ends.add_argument("--once", action="store_true", help="run one cycle and exit")
    ends.add_argument("--max-cycles", type=int, metavar="N", help="run N cycles and exit")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from reconciler.loop import LoopOptions, ReconcileLoop, format_duration, parse_duration

    interval = parse_duration(args.interval)
    if not 0 <= args.jitter < 100:
        raise ReconcilerError("reconcile: --jitter must be a percentage from 0 to 99")
    if args.max_cycles is not None and args.max_cycles < 1:
        raise ReconcilerError("reconcile: --max-cycles must be at least 1")
    if args.unhealthy_after is not None and args.listen is None:
        raise ReconcilerError("reconcile: --unhealthy-after needs --listen")
    listen = unhealthy_after = None
    if args.listen is not None:
        from reconciler.metrics import default_unhealthy_after, parse_listen

        listen = parse_listen(args.listen)
        unhealthy_after = (parse_duration(args.unhealthy_after) if args.unhealthy_after is not None
                           else default_unhealthy_after(interval))
    manifests = []
    for loaded in load_valid(args):
        if entra_engine(loaded):  # Entra's own job cycles it: never this loop
            print(entra_engine_line(loaded.manifest.name), flush=True)
        else:
            manifests.append(loaded)
    if not manifests:
        print("reconcile: no app for the reconciler to converge", flush=True)
        return 0
    options = LoopOptions(interval=interval, jitter=args.jitter / 100, run=options_from(args),
                          max_cycles=1 if args.once else args.max_cycles,
                          max_backoff=parse_duration(args.max_backoff),
                          full_every=parse_duration(args.full_every) if args.full_every else None)
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
        with contextlib.ExitStack() as serving:
            observe = None
            if listen is not None and unhealthy_after is not None:
                from reconciler.metrics import LoopMetrics, MetricsServer

                metrics = LoopMetrics([m.manifest.name for m in manifests], unhealthy_after=unhealthy_after)
                server = serving.enter_context(MetricsServer(*listen, metrics))
                observe = metrics.observe
                print(f"reconcile: serving {server.url}/metrics, /healthz and /livez (no authentication; "
                      f"/healthz unhealthy after {format_duration(unhealthy_after)} without a successful cycle)",
                      flush=True)
            return ReconcileLoop(manifests, options, stop=stop, emit=lambda line: print(line, flush=True),
                                 observe=observe).run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sys.stdout.flush()
