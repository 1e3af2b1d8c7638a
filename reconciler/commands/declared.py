"""``reconciler declared [PATH...] [--format text|json]``: the Azure resources the manifests declare, offline.

Runs the Pulumi program under Pulumi's mocks (no CLI, no tenant, no credentials) and prints each resource with its
inputs, secrets masked, in a fixed order; policy findings go to stderr, and a mandatory one makes the exit code 1.
"""

from __future__ import annotations

import argparse
import json
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("declared", help="list the Azure resources the manifests declare (offline)")
    parser.add_argument("paths", nargs="*", default=["manifests"], metavar="PATH",
                        help="manifest files or folders (default: manifests/)")
    parser.add_argument("--format", choices=("text", "json"), default="text", help="output format (default: text)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from reconciler.azure.declared import declared_paths  # imports Pulumi: only for this command

    declaration = declared_paths(args.paths)
    if args.format == "json":
        print(declaration.to_json())
    else:
        for resource in declaration.resources:
            parent = f"  (in {resource.parent})" if resource.parent else ""
            print(f"{resource.type}  {resource.name}{parent}")
            for key, value in resource.inputs.items():
                print(f"    {key}: {json.dumps(value, sort_keys=True)}")
    for violation in declaration.violations:
        print(violation, file=sys.stderr)
    return 1 if any(v.rule.mandatory for v in declaration.violations) else 0
