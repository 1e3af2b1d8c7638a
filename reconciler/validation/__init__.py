"""``validate``: load every manifest (structure and cross-field rules), then run the checks that need a manifest,
on a file that did not load too (rebuilt from what parsed); report every problem at once, sorted by file and
position.

One module per check, each a function of a :class:`~reconciler.manifest.LoadedManifest` returning its problems:
:mod:`~reconciler.validation.policy` (the rules shared with the CrossGuard pack),
:mod:`~reconciler.validation.mappings` (expressions, source attributes and scoping filters against Entra's language
and attributes), :mod:`~reconciler.validation.ca_bundle` and :mod:`~reconciler.validation.confinement` (the files a
manifest names).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

from reconciler.errors import Problem
from reconciler.manifest import LoadedManifest, PartialManifest, inspect_manifests
from reconciler.validation.ca_bundle import ca_bundle_problems
from reconciler.validation.confinement import snapshot_problems
from reconciler.validation.mappings import mapping_problems
from reconciler.validation.policy import policy_problems

ManifestCheck = Callable[[LoadedManifest], list[Problem]]


def manifest_checks() -> list[ManifestCheck]:
    """The checks run on each loaded manifest, beyond its structure (each returns its problems)."""
    return [policy_problems, mapping_problems, ca_bundle_problems, snapshot_problems]


def validate_paths(paths: Sequence[str | os.PathLike[str]]) -> tuple[list[LoadedManifest], list[Problem]]:
    """Load and check ``paths``; returns the valid manifests and the sorted problems (empty when all is well).

    Every check runs on every file that parsed, even one that does not load (rebuilt as a
    :class:`~reconciler.manifest.PartialManifest`), so that one pass reports every problem. The manifests are
    returned only when all of them loaded whole."""
    loaded, problems = inspect_manifests(paths)
    whole = not problems
    for item in loaded:
        for check in manifest_checks():
            found = check(item)
            hidden = item.hidden if isinstance(item, PartialManifest) else []
            problems.extend(p for p in found if p not in hidden)
    return (loaded if whole else []), sorted(problems)


__all__ = ["ManifestCheck", "manifest_checks", "validate_paths"]
