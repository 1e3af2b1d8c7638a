"""``reconciler entra-schema [PATH...]``: the Graph synchronizationSchema each ``engine: entra`` manifest compiles to.

Offline and deterministic: one JSON object ``{"apps": [{"name": APP, "schema": SCHEMA}]}`` on stdout, SCHEMA being
the managed part of the job's schema (:func:`reconciler.entra.schema.compile_schema`), in Graph's property names
and key order. A manifest the reconciler provisions itself (``engine: reconciler``) is left out, with one line on
stderr; where Entra's job will behave differently from the manifest's words, ``APP: warning: ...`` lines on stderr
say so (:func:`reconciler.entra.schema.compile_warnings`).
"""

from __future__ import annotations

import argparse
import json
import sys

from reconciler.entra.schema import compile_schema, compile_warnings
from reconciler.manifest import load_manifests


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "entra-schema", help="the Graph synchronizationSchema each engine: entra manifest compiles to (offline)",
        description="Print, as one JSON object, the managed part of the Graph synchronizationSchema (user and group "
                    "object mappings: attribute mappings, scope, flow types) of each engine: entra manifest.")
    parser.add_argument("paths", nargs="*", default=["manifests"], metavar="PATH",
                        help="manifest files or folders (default: manifests/)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    apps = []
    for loaded in load_manifests(args.paths):
        manifest = loaded.manifest
        if manifest.provisioning.engine != "entra":
            print(f"{manifest.name}: skipped: provisioning.engine is {manifest.provisioning.engine}, not entra "
                  f"({loaded.file})", file=sys.stderr)
            continue
        for warning in compile_warnings(manifest):
            print(f"{manifest.name}: warning: {warning}", file=sys.stderr)
        apps.append({"name": manifest.name, "schema": compile_schema(manifest)})
    print(json.dumps({"apps": apps}, indent=2, ensure_ascii=False))
    return 0
