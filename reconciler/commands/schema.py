"""``reconciler schema``: the manifest JSON Schema on stdout."""

from __future__ import annotations

import argparse
import sys

from reconciler.manifest.schema import manifest_schema_text


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("schema", help="print the manifest JSON Schema")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    sys.stdout.write(manifest_schema_text())
    return 0
