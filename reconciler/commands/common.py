"""Flags and helpers shared by the commands that talk to targets (plan, apply)."""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Awaitable
from typing import TypeVar

from pydantic import ValidationError

from reconciler.errors import ManifestError, ReconcilerError
from reconciler.manifest import LoadedManifest, Target
from reconciler.run import RunOptions
from reconciler.secrets import REGISTRY
from reconciler.validation import validate_paths

T = TypeVar("T")


def add_target_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="*", default=["manifests"], metavar="PATH",
                        help="manifest files or folders (default: manifests/)")
    parser.add_argument("--directory", metavar="FILE", help="a directory snapshot instead of the manifest's source")
    parser.add_argument("--target", metavar="URL", help="the SCIM base URL instead of the manifest's (one app only)")
    parser.add_argument("--state", metavar="URL", help="where the provisioning state lives: a folder, file:PATH or "
                        "azblob://CONTAINER[/PREFIX] (default: $RECONCILER_STATE, else the state folder)")


def load_valid(args: argparse.Namespace) -> list[LoadedManifest]:
    loaded, problems = validate_paths(args.paths)
    errors = [p for p in problems if p.is_error]
    if errors:
        raise ManifestError(errors)
    register_manifest_secrets(loaded)
    if args.target and len(loaded) != 1:
        raise ReconcilerError(f"--target names one target, but {len(loaded)} manifests were given; "
                              "pass the one manifest it is for")
    return loaded


def register_manifest_secrets(loaded: list[LoadedManifest]) -> None:
    """Every token variable the manifests name becomes a known secret before any request is made."""
    names: list[str] = []
    for item in loaded:
        provisioning = item.manifest.provisioning
        names.append(provisioning.target.token_env)
        if provisioning.directory.graph.token_env:
            names.append(provisioning.directory.graph.token_env)
    REGISTRY.register_environment(names, os.environ)


def checked_target(url: str | None) -> str | None:
    """``--target`` under the manifest's rules for a target URL (https, plain http only to loopback, no
    credentials); the error names the flag, never the URL, which may hold a password."""
    if not url:
        return None
    try:
        return Target(url=url, token_env="UNUSED").url
    except ValidationError as error:
        reason = str(error.errors(include_url=False, include_input=False)[0]["msg"]).removeprefix("Value error, ")
        raise ReconcilerError(f"--target: {reason}") from None


def options_from(args: argparse.Namespace) -> RunOptions:
    return RunOptions(directory=args.directory, target=checked_target(args.target),
                      allow_deletes=getattr(args, "allow_deletes", False),
                      concurrency=getattr(args, "concurrency", None) or RunOptions.concurrency,
                      log_path=getattr(args, "log", None), bulk=not getattr(args, "no_bulk", False),
                      state=getattr(args, "state", None))


def run_async(coroutine: Awaitable[T]) -> T:
    return asyncio.run(coroutine)  # type: ignore[arg-type]
