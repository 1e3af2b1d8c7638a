"""The SCIM side of a preview: a live plan per app when its directory and target can be reached.

A preview never writes: it runs :meth:`AppRun.plan` (discovery and paged reads only). When an app cannot be
planned (no token, as in a pull request from a fork; no directory credentials; an unreachable target) the result
is one line saying why, never a failed preview.

A preview never sends a token where the base revision does not already send it: an app is planned against the
base revision's target URL and token variable (and Graph endpoint, when the directory is read from Graph). When
the pull request changes one of them, or adds the app, its SCIM side waits for the merge. A ``--target`` given on
the command line is the user's own choice and is used as given.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import Mapping, Sequence

from reconciler.errors import ReconcilerError
from reconciler.manifest import LoadedManifest
from reconciler.preview.model import ScimResult
from reconciler.run import AppRun, RunOptions

AFTER_MERGE = "the SCIM side is planned after merge, so the token is never sent to an unreviewed URL"


def _destinations(loaded: LoadedManifest, *, reads_graph: bool) -> dict[str, str | None]:
    """Where the app's run sends a token, and which token: the keys a pull request must not change unreviewed."""
    provisioning = loaded.manifest.provisioning
    target = provisioning.target
    keys: dict[str, str | None] = {"provisioning.target.url": target.url, "provisioning.target.tokenEnv":
                                   target.token_env, "provisioning.target.caBundle": target.ca_bundle}
    if reads_graph:
        graph = provisioning.directory.graph
        keys |= {"provisioning.directory.graph.endpoint": graph.endpoint,
                 "provisioning.directory.graph.tokenEnv": graph.token_env}
    return keys


def unreviewed(head: LoadedManifest, before: LoadedManifest | None, *, base_known: bool = True,
               reads_graph: bool = False) -> str | None:
    """Why the pull request's token destinations are not those of ``before``, the app at the base revision
    (None when they are the same)."""
    if not base_known:
        return f"the base revision's manifests could not be read, so its target URL is not known; {AFTER_MERGE}"
    if before is None:
        return f"the app is new in the pull request (the base revision has no target URL for it); {AFTER_MERGE}"
    old = _destinations(before, reads_graph=reads_graph)
    changed = [key for key, value in _destinations(head, reads_graph=reads_graph).items() if old[key] != value]
    if changed:
        return f"the pull request changes {' and '.join(changed)}; {AFTER_MERGE}"
    return None


def _why_not(loaded: LoadedManifest) -> str | None:
    name = loaded.manifest.provisioning.target.token_env
    if not os.environ.get(name):
        return (f"no target token (${name} is not set: a pull request from a fork, or the secret is not "
                "configured for this workflow)")
    return None


async def _plan_one(loaded: LoadedManifest, options: RunOptions) -> ScimResult:
    reason = _why_not(loaded)
    if reason:
        return ScimResult(reason=reason)
    try:
        async with AppRun(loaded, options) as app:
            return ScimResult(plan=await app.plan())
    except ReconcilerError as error:
        return ScimResult(reason=" ".join(str(error).split()))
    except Exception as error:  # an unexpected failure must not sink the whole comment
        return ScimResult(reason=f"internal error: {type(error).__name__}")


def scim_side(loaded: Sequence[LoadedManifest], base: Mapping[str, LoadedManifest] | None, *,
              directory: str | None = None, target: str | None = None) -> dict[str, ScimResult]:
    """A live plan, or the reason there is none, per app name. ``base`` holds the base revision's manifests by
    app name (None: the base revision could not be read)."""
    options = RunOptions(directory=directory, target=target)

    async def one(item: LoadedManifest) -> ScimResult:
        if target:  # the command line's --target: the user's choice, not the pull request's
            return await _plan_one(item, options)
        before = base.get(item.manifest.name) if base is not None else None
        reads_graph = directory is None and item.manifest.provisioning.directory.snapshot is None
        reason = unreviewed(item, before, base_known=base is not None, reads_graph=reads_graph)
        if reason or before is None:
            return ScimResult(reason=reason or "")
        reviewed = before.manifest.provisioning.target.url
        return await _plan_one(item, dataclasses.replace(options, target=reviewed))

    async def go() -> dict[str, ScimResult]:
        return {item.manifest.name: await one(item) for item in loaded}

    return asyncio.run(go())
