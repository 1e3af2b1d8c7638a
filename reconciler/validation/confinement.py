"""``validate``'s check that ``provisioning.directory.snapshot`` stays inside the manifest's repository.

A manifest is reviewed in a pull request, and what it makes a run read should be reviewable too: an absolute path,
``..`` past the repository's root, or a symbolic link that leads out of it is a problem at that key. The
repository is :func:`reconciler.manifest.confine.repository_root`'s (the loader refuses a manifest file outside
it). ``--directory`` on the command line is the user's explicit choice and is not checked here.
"""

from __future__ import annotations

import os
from pathlib import Path

from reconciler.errors import Problem
from reconciler.manifest import LoadedManifest
from reconciler.manifest.confine import is_inside, repository_root

SNAPSHOT_KEY = ("provisioning", "directory", "snapshot")


def snapshot_problems(loaded: LoadedManifest) -> list[Problem]:
    """``provisioning.directory.snapshot`` must name a file inside the manifest's repository."""
    snapshot = loaded.manifest.provisioning.directory.snapshot
    if not snapshot:
        return []
    reason = _leaves_repository(Path(loaded.file).parent, snapshot)
    return [loaded.problem(SNAPSHOT_KEY, reason)] if reason else []


def _leaves_repository(folder: Path, relative: str) -> str | None:
    outside = "pass a file outside the repository with --directory"
    if Path(relative).is_absolute():
        return f"must be a path relative to the manifest's folder, not an absolute path; {outside}"
    root = repository_root(folder)
    written = Path(os.path.normpath(os.path.join(os.path.abspath(folder), relative)))
    if not is_inside(written, root):
        return f"{relative!r} leads outside the repository ({root}) with '..'; {outside}"
    if not is_inside(written.resolve(), root.resolve()):
        return (f"{relative!r} leads through a symbolic link to {written.resolve()}, outside the repository "
                f"({root}); {outside}")
    return None
