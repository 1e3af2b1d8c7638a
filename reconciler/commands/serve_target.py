"""``reconciler serve-target``: the embedded SCIM 2.0 target (scim2-server) on loopback."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from reconciler.errors import TargetError

DEFAULT_TOKEN_ENV = "RECONCILER_TARGET_TOKEN"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve-target", help="run an embedded SCIM 2.0 target on loopback (demos, development, tests)",
        description="Serve a SCIM 2.0 target (scim2-server) at http://HOST:PORT/v2 until SIGINT or SIGTERM.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="listen port; 0 picks a free one (default 8080)")
    parser.add_argument("--data", type=Path, metavar="FILE",
                        help="load objects from FILE at start and save them there on changes and at exit")
    parser.add_argument("--token-env", default=DEFAULT_TOKEN_ENV, metavar="NAME",
                        help=f"read the bearer token from this environment variable (default {DEFAULT_TOKEN_ENV})")
    parser.add_argument("--no-auth", action="store_true",
                        help="accept requests without a token (anyone who can reach the port can write)")
    parser.add_argument("--allow-remote", action="store_true",
                        help="allow listening on a non-loopback address (plain HTTP: the token travels in clear)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from reconciler.scim.client import is_loopback
    from reconciler.target.serve import TargetServer

    if not is_loopback(args.host) and not args.allow_remote:
        raise TargetError(f"serve-target: refusing to listen on non-loopback host {args.host!r} "
                          "(plain HTTP); pass --allow-remote to do it anyway")
    if not 0 <= args.port <= 65535:
        raise TargetError(f"serve-target: --port {args.port} is not a port number (0-65535)")
    token = None
    if args.no_auth:
        auth = "no authentication (--no-auth)"
    else:
        token = os.environ.get(args.token_env)
        if not token:
            raise TargetError(f"serve-target: environment variable {args.token_env} holds no bearer token; "
                              "set it, or pass --no-auth to serve without authentication")
        auth = f"bearer token from ${args.token_env}"

    server = TargetServer(host=args.host, port=args.port, token=token, data=args.data)
    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        if not stopping.is_set():
            stopping.set()
            threading.Thread(target=server.stop_serving, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    storage = f"data {args.data} ({server.loaded} objects loaded)" if args.data else "in memory"
    print(f"serving SCIM target on {server.url} ({auth}; {storage})", flush=True)
    try:
        server.serve_forever()
    finally:
        server.shutdown()
    if server.saver and server.saver.error:
        print(f"serve-target: an earlier save to {args.data} failed: {server.saver.error}", file=sys.stderr)
    print("serve-target: stopped", file=sys.stderr, flush=True)
    return 0
