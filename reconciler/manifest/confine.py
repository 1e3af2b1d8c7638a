"""Manifest files stay inside the repository that holds them.

A manifest is reviewed in a pull request, and what it makes a run read should be reviewable too. So a manifest
file whose real location is outside the repository (a symbolic link to a file elsewhere) is refused before it is
read, with one line; ``validate`` applies the same rule to ``provisioning.directory.snapshot``
(:mod:`reconciler.validation.confinement`).

The repository is the top-most folder above the manifest that holds a ``.git`` (the work tree's root), or, when
there is none, the manifest's own folder.
"""

from __future__ import annotations

import os
from pathlib import Path

from reconciler.errors import Problem


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


def is_inside(path: Path, root: Path) -> bool:
    """Whether ``path`` is ``root`` or below it (as written: neither is resolved here)."""
    return path == root or root in path.parents


def manifest_outside_repository(file: str) -> Problem | None:
    """A problem when ``file``'s real location (symbolic links followed) is outside its repository."""
    path = Path(file)
    root = repository_root(path.parent)
    real = path.resolve()
    if is_inside(real, root.resolve()):
        return None
    what = "a symbolic link to" if path.is_symlink() else "reached through a symbolic link at"
    return Problem(file, 1, 1, f"the manifest is {what} {real}, outside its repository ({root}); refusing to read "
                               "it (keep manifests inside the repository they are reviewed in)")
