"""``reconciler export-directory --out FILE``: a snapshot of the tenant from Microsoft Graph, for offline previews."""

from __future__ import annotations

import argparse
import asyncio
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export-directory", help="write a directory snapshot from Microsoft Graph",
        description="Read every user, group and direct membership from Microsoft Graph (token from the Azure "
                    "credential chain) and write them as a snapshot that --directory and manifests can use.")
    parser.add_argument("--out", required=True, metavar="FILE", help="the snapshot to write (JSON)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from reconciler.directory.graph import GraphReader
    from reconciler.directory.snapshot import dump_snapshot

    reader = GraphReader()
    directory = asyncio.run(reader.read())
    dump_snapshot(directory, args.out)
    print(f"wrote {len(directory.users)} users and {len(directory.groups)} groups to {args.out} "
          f"({reader.requests} Graph requests)", file=sys.stderr)
    return 0
