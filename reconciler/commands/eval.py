"""``reconciler eval EXPRESSION [--directory FILE --user UPN_OR_ID]``: Entra's expression builder, on the command line.

Prints the value as JSON. Without a user every attribute is null. With ``--manifest`` the computed attributes
(IsSoftDeleted, appRoleAssignments) follow that manifest's scope and assignments.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable
from typing import Any

from reconciler.errors import ExpressionError, ReconcilerError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("eval", help="evaluate an attribute-mapping expression; the value as JSON",
                                   description="Evaluate an Entra attribute-mapping expression and print its "
                                               "value as JSON (null when the attribute would not flow).")
    parser.add_argument("expression", metavar="EXPRESSION", help='e.g. \'Join(" ", [givenName], [surname])\'')
    parser.add_argument("--directory", metavar="FILE", help="a directory snapshot (JSON or YAML)")
    who = parser.add_mutually_exclusive_group()
    who.add_argument("--user", metavar="UPN_OR_ID", help="evaluate for this user of the directory")
    who.add_argument("--group", metavar="NAME_OR_ID", help="evaluate for this group of the directory")
    parser.add_argument("--manifest", metavar="FILE",
                        help="compute IsSoftDeleted and appRoleAssignments from this manifest's scope (and read "
                             "its directory when --directory is not given)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from reconciler.directory.names import GROUP_NAMES, USER_NAMES
    from reconciler.expressions import Context, ExpressionSyntaxError, check_tree, compile_expression, to_json

    try:
        expression = compile_expression(args.expression)
    except ExpressionSyntaxError as error:
        raise ExpressionError(f"expression, {error}") from None
    findings = check_tree(expression.tree)
    if findings:
        raise ExpressionError("; ".join(f"expression, column {f.offset + 1}: {f.message}" for f in findings))
    names = GROUP_NAMES if args.group else USER_NAMES
    for finding in check_tree(expression.tree, names):  # only attribute findings remain: warn, read as null
        print(f"warning: expression, column {finding.offset + 1}: {finding.message}; it reads as null",
              file=sys.stderr)
    value = expression.evaluate(Context(attributes=_attributes(args)))
    sys.stdout.write(json.dumps(to_json(value), ensure_ascii=False) + "\n")
    return 0


def _attributes(args: argparse.Namespace) -> Callable[[str], Any]:
    if not (args.user or args.group):
        if args.manifest:
            raise ReconcilerError("eval: --manifest needs --user")
        return lambda name: None
    from reconciler.desired import user_attributes
    from reconciler.directory import load_snapshot
    from reconciler.directory_source import read_directory
    from reconciler.manifest import load_manifest

    loaded = load_manifest(args.manifest) if args.manifest else None
    if args.directory:
        directory = load_snapshot(args.directory)
    elif loaded is not None:
        directory = asyncio.run(read_directory(loaded, None))
    else:
        raise ReconcilerError("eval: --user and --group need --directory FILE (a directory snapshot) or --manifest")
    if args.group:
        groups = directory.find_groups(args.group)
        if len(groups) != 1:
            found = "no group" if not groups else f"{len(groups)} groups"
            raise ReconcilerError(f"eval: {found} named {args.group!r} in {directory.source}; use the object id")
        group = groups[0]
        return lambda name: False if name == "IsSoftDeleted" else group.get(name)
    user = directory.find_user(args.user)
    if user is None:
        raise ReconcilerError(f"eval: no user {args.user!r} (user principal name or object id) in {directory.source}")
    return user_attributes(loaded.manifest if loaded else None, directory, user)
