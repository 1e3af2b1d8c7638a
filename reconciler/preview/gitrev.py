"""Manifests as they were at a git revision: the base of a pull request, read with ``git ls-tree`` and ``git show``.

Nothing in the working tree or the index changes. Every way this can fail (no git, not a repository, a shallow
clone without the base, a path outside the repository) raises :class:`BaseUnavailable` with one line that says
what to do.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from reconciler.errors import BaseUnavailable

MANIFEST_SUFFIXES = (".yaml", ".yml")
GIT_TIMEOUT = 60


@dataclass(frozen=True)
class RevisionFile:
    path: str      # relative to the repository root, with forward slashes
    content: bytes


@dataclass(frozen=True)
class Revision:
    ref: str
    commit: str
    files: tuple[RevisionFile, ...]

    @property
    def short(self) -> str:
        return self.commit[:12]


def _git(args: Sequence[str], cwd: Path) -> subprocess.CompletedProcess[bytes]:
    git = shutil.which("git")
    if git is None:
        raise BaseUnavailable("git is not installed: the Azure side needs it to read the base revision")
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
    try:
        return subprocess.run([git, *args], cwd=cwd, capture_output=True, timeout=GIT_TIMEOUT, env=env, check=False)
    except subprocess.TimeoutExpired:
        raise BaseUnavailable(f"git {args[0]} did not answer within {GIT_TIMEOUT}s") from None


def repository_root(start: Path) -> Path:
    answer = _git(["rev-parse", "--show-toplevel"], start)
    if answer.returncode != 0:
        raise BaseUnavailable(f"{start} is not inside a git repository: there is no base revision to compare with")
    return Path(answer.stdout.decode().strip()).resolve()


def resolve_commit(root: Path, ref: str) -> str:
    answer = _git(["rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}"], root)
    if answer.returncode == 0:
        return answer.stdout.decode().strip()
    shallow = _git(["rev-parse", "--is-shallow-repository"], root).stdout.decode().strip() == "true"
    if shallow:
        raise BaseUnavailable(f"base revision {ref!r} is not in this shallow clone; fetch it (e.g. "
                              "actions/checkout with fetch-depth: 0, or git fetch origin BASE)")
    raise BaseUnavailable(f"base revision {ref!r} is not a commit in this repository (fetch it first?)")


def relative_paths(root: Path, paths: Sequence[str | os.PathLike[str]]) -> list[str]:
    result = []
    for path in paths:
        absolute = Path(path).resolve()
        try:
            relative = absolute.relative_to(root)
        except ValueError:
            raise BaseUnavailable(f"{path} is outside the git repository {root}") from None
        result.append(relative.as_posix() or ".")
    return result


def manifests_at(ref: str, paths: Sequence[str | os.PathLike[str]], *, cwd: Path | None = None) -> Revision:
    """The manifest files (``*.yaml``, ``*.yml``) under ``paths`` at ``ref``; a path absent there has none."""
    root = repository_root(cwd or Path.cwd())
    commit = resolve_commit(root, ref)
    wanted = relative_paths(root, paths)
    listing = _git(["ls-tree", "-r", "-z", "--name-only", commit, "--", *wanted], root)
    if listing.returncode != 0:
        raise BaseUnavailable(f"git ls-tree {ref}: {listing.stderr.decode(errors='replace').strip()[:200]}")
    names = sorted(n for n in listing.stdout.decode().split("\0") if n.endswith(MANIFEST_SUFFIXES))
    files = []
    for name in names:
        shown = _git(["show", f"{commit}:{name}"], root)
        if shown.returncode != 0:
            raise BaseUnavailable(f"git show {ref}:{name}: {shown.stderr.decode(errors='replace').strip()[:200]}")
        files.append(RevisionFile(name, shown.stdout))
    return Revision(ref, commit, tuple(files))
