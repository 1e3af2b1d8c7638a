"""The command line: parse flags, call the core, render, set the exit code.

Each command lives in ``reconciler/commands/<name>.py`` with ``register(subparsers)``; the parser it adds sets
``handler``, a function of the parsed arguments that returns the exit code. Errors of the
:class:`~reconciler.errors.ReconcilerError` family are printed as plain lines on stderr, never as a traceback.
Every secret-looking environment variable's value is a known secret from the start (:mod:`reconciler.secrets`).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from reconciler import __version__
from reconciler.errors import ReconcilerError
from reconciler.outputs import guarded_stdio
from reconciler.secrets import REGISTRY

COMMANDS = (
    "validate",
    "schema",
    "plan",
    "apply",
    "serve_target",
    "declared",
    "eval",
    "export_directory",
    "preview",
    "reconcile",
    "state",
    "entra_schema",
    "import_app",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reconciler",
        description="App provisioning as code for Entra ID: validate manifests, plan and apply SCIM changes.",
    )
    parser.add_argument("--version", action="version", version=f"reconciler {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in COMMANDS:
        importlib.import_module(f"reconciler.commands.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; everything it prints passes the output boundary (:mod:`reconciler.outputs`)."""
    REGISTRY.register_environment((), os.environ)
    with guarded_stdio():
        return _run(argv)


def _run(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except ReconcilerError as error:
        for line in error.lines():
            print(line, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("reconciler: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1
    except Exception as error:  # a bug: one line by default, the traceback on request
        if os.environ.get("RECONCILER_DEBUG"):
            raise
        print(f"reconciler: internal error: {type(error).__name__}: {error} "
              "(set RECONCILER_DEBUG=1 for a traceback)", file=sys.stderr)
        return 1
