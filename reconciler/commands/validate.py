"""``reconciler validate [PATH...]``: exit 0 when valid; 1 with one 'FILE:LINE:COL: message' per problem.

Advisory policy findings print as 'FILE:LINE:COL: warning: message' and do not make a manifest invalid."""

from __future__ import annotations

import argparse
import sys

from reconciler.validation import validate_paths


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("validate", help="check manifests; one FILE:LINE:COL line per problem")
    parser.add_argument("paths", nargs="*", default=["manifests"], metavar="PATH",
                        help="manifest files or folders (default: manifests/)")
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing when valid")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    loaded, problems = validate_paths(args.paths)
    for problem in problems:
        print(problem, file=sys.stderr)
    errors = [p for p in problems if p.is_error]
    if errors:
        files = len({p.file for p in errors})
        print(f"{len(errors)} problem(s) in {files} file(s)", file=sys.stderr)
        return 1
    if not args.quiet:
        for item in loaded:
            print(f"ok  {item.file}  ({item.manifest.name})")
    return 0
