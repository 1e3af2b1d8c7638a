"""``validate``: load every manifest (structure and cross-field rules), then run the checks that need a valid
manifest (policies, expression syntax); report every problem at once, sorted by file and position."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

from reconciler.errors import ManifestError, Problem
from reconciler.manifest import LoadedManifest, load_manifests

ManifestCheck = Callable[[LoadedManifest], list[Problem]]


def manifest_checks() -> list[ManifestCheck]:
    """The checks run on each loaded manifest, beyond its structure (each returns its problems)."""
    from reconciler.expressions.manifest_check import mapping_problems
    from reconciler.policy import policy_problems

    return [policy_problems, mapping_problems]


def validate_paths(paths: Sequence[str | os.PathLike[str]]) -> tuple[list[LoadedManifest], list[Problem]]:
    """Load and check ``paths``; returns the valid manifests and the sorted problems (empty when all is well)."""
    try:
        loaded = load_manifests(paths)
    except ManifestError as error:
        return [], error.problems
    problems = [problem for item in loaded for check in manifest_checks() for problem in check(item)]
    return loaded, sorted(problems)
