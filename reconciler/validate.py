"""``validate``: load every manifest (structure and cross-field rules), then run the checks that need a valid
manifest (policies, expression syntax); report every problem at once, sorted by file and position."""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable, Sequence
from pathlib import Path

from reconciler.errors import ManifestError, Problem
from reconciler.manifest import LoadedManifest, load_manifests

ManifestCheck = Callable[[LoadedManifest], list[Problem]]


def manifest_checks() -> list[ManifestCheck]:
    """The checks run on each loaded manifest, beyond its structure (each returns its problems)."""
    from reconciler.expressions.manifest_check import mapping_problems
    from reconciler.manifest.confine import snapshot_problems
    from reconciler.policy import policy_problems

    return [policy_problems, mapping_problems, ca_bundle_problems, snapshot_problems]


def ca_bundle_problems(loaded: LoadedManifest) -> list[Problem]:
    """``provisioning.target.caBundle`` must name a readable PEM file of CA certificates (relative to the
    manifest's folder), or every run against the target would stop at its first request."""
    name = loaded.manifest.provisioning.target.ca_bundle
    if not name:
        return []
    path = Path(loaded.file).parent / name
    try:
        ssl.create_default_context(cafile=str(path))
    except OSError as error:  # ssl.SSLError is an OSError too
        if isinstance(error, ssl.SSLError):
            reason = f"{name!r} is not a PEM file of CA certificates"
        else:
            reason = f"cannot read {name!r} ({error.strerror or error}; relative to the manifest's folder)"
        return [loaded.problem(("provisioning", "target", "caBundle"), reason)]
    return []


def validate_paths(paths: Sequence[str | os.PathLike[str]]) -> tuple[list[LoadedManifest], list[Problem]]:
    """Load and check ``paths``; returns the valid manifests and the sorted problems (empty when all is well)."""
    try:
        loaded = load_manifests(paths)
    except ManifestError as error:
        return [], error.problems
    problems = [problem for item in loaded for check in manifest_checks() for problem in check(item)]
    return loaded, sorted(problems)
