"""The SCIM side of a preview: a live plan per app when its directory and target can be reached.

A preview never writes: it runs :meth:`AppRun.plan` (discovery and paged reads only). When an app cannot be
planned (no token, as in a pull request from a fork; no directory credentials; an unreachable target) the result
is one line saying why, never a failed preview.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from dataclasses import dataclass

from reconciler.errors import ReconcilerError
from reconciler.manifest import LoadedManifest
from reconciler.plan import Plan
from reconciler.run import AppRun, RunOptions


@dataclass
class ScimResult:
    plan: Plan | None = None
    reason: str = ""  # why there is no plan


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


def scim_side(loaded: Sequence[LoadedManifest], *, directory: str | None = None,
              target: str | None = None) -> dict[str, ScimResult]:
    """A live plan, or the reason there is none, per app name."""
    options = RunOptions(directory=directory, target=target)

    async def go() -> dict[str, ScimResult]:
        return {item.manifest.name: await _plan_one(item, options) for item in loaded}

    return asyncio.run(go())
