"""``validate``: load every manifest (structure and cross-field rules) and report every problem at once."""

from __future__ import annotations

import os
from collections.abc import Sequence

from reconciler.errors import ManifestError, Problem
from reconciler.manifest import LoadedManifest, load_manifests


def validate_paths(paths: Sequence[str | os.PathLike[str]]) -> tuple[list[LoadedManifest], list[Problem]]:
    """Load and check ``paths``; returns the valid manifests and the sorted problems (empty when all is well)."""
    try:
        loaded = load_manifests(paths)
    except ManifestError as error:
        return [], error.problems
    return loaded, []
