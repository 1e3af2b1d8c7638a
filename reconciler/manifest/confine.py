"""Files a manifest reads stay inside the repository that holds it.

A manifest is reviewed in a pull request, and what it makes a run read should be reviewable too. So:

- ``provisioning.directory.snapshot`` (relative to the manifest's folder) must not leave the repository: an
  absolute path, ``..`` past the repository's root, or a symbolic link that leads out of it is a problem at that
  key.
- A manifest file whose real location is outside the repository (a symbolic link to a file elsewhere) is refused
  before it is read, with one line.

The repository is the top-most folder above the manifest that holds a ``.git`` (the work tree's root), or, when
there is none, the manifest's own folder. ``--directory`` on the command line is the user's explicit choice and is
not checked here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.errors import Problem

if TYPE_CHECKING:
    from reconciler.manifest.load import LoadedManifest

SNAPSHOT_KEY = ("provisioning", "directory", "snapshot")


def repository_root(folder: str | os.PathLike[str]) -> Path:
    """The top-most folder at or above ``folder`` that holds a ``.git``; ``folder`` itself when none does.

    The walk is over the folder as written (made absolute, not resolved), so that a symbolic link on the way
    does not move the repository somewhere else.
    """
    start = Path(os.path.abspath(folder))
    root = start
    for candidate in (start, *start.parents):
        if (candidate / ".git").exists():
            root = candidate
    return root


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def manifest_outside_repository(file: str) -> Problem | None:
    """A problem when ``file``'s real location (symbolic links followed) is outside its repository."""
    path = Path(file)
    root = repository_root(path.parent)
    real = path.resolve()
    if _inside(real, root.resolve()):
        return None
    what = "a symbolic link to" if path.is_symlink() else "reached through a symbolic link at"
    return Problem(file, 1, 1, f"the manifest is {what} {real}, outside its repository ({root}); refusing to read "
                               "it (keep manifests inside the repository they are reviewed in)")


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
    if not _inside(written, root):
        return f"{relative!r} leads outside the repository ({root}) with '..'; {outside}"
    if not _inside(written.resolve(), root.resolve()):
        return (f"{relative!r} leads through a symbolic link to {written.resolve()}, outside the repository "
                f"({root}); {outside}")
    return None
