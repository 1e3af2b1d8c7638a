"""Saved plans that stand alone: what ``plan --out`` records beside the plans, and what ``apply --plan`` takes
from it.

Beside ``format`` and ``apps``, a saved plan records where it came from: ``manifests`` (the PATHs as given and
absolute, and every manifest file as given, absolute and with its sha256 digest), ``target`` (the ``--target``
it was made with, or null) and ``directory`` (the ``--directory`` snapshot, or null). ``apply --plan FILE``
then needs nothing else, from any working directory: it loads exactly those files, against that target and
directory; it refuses a manifest whose digest changed (or that is gone) since the plan, and a PATH, ``--target``
or ``--directory`` that says otherwise than the plan, each with one line. A plan saved before these fields
existed is applied as it always was: manifests and flags from the command line.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.errors import PlanFormatError, ReconcilerError
from reconciler.manifest import manifest_files
from reconciler.plan import Plan
from reconciler.targeturl import normalize_target_url

DEFAULT_PATHS = ("manifests",)
NEW_PLAN = "make a new plan"


@dataclass(frozen=True)
class ManifestFile:
    path: str      # as the plan named it (relative to where the plan was made, or as given)
    absolute: str
    sha256: str


@dataclass(frozen=True)
class Origin:
    """Where a saved plan came from (see the module docstring)."""

    paths: tuple[str, ...]         # the PATHs, absolute
    given: tuple[str, ...]         # the PATHs as given
    files: tuple[ManifestFile, ...]
    target: str | None
    directory: str | None          # absolute


@dataclass(frozen=True)
class SavedPlan:
    plans: dict[str, Plan]
    origin: Origin | None          # None for a plan saved before plans stood alone


def _absolute(path: str) -> str:
    return os.path.abspath(path)


def file_digest(path: str) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def origin_of(paths: Sequence[str], target: str | None, directory: str | None) -> dict[str, Any]:
    """The fields ``plan --out`` adds to the document, read before the manifests are loaded (a manifest edited
    while the plan is made then fails the digest check, rather than passing it)."""
    files, _ = manifest_files(paths)  # problems are the loader's to report
    entries = []
    for file in dict.fromkeys(files):
        try:
            entries.append({"path": file, "absolute": _absolute(file), "sha256": file_digest(file)})
        except OSError:
            continue  # unreadable: loading it fails and reports why, and no plan is saved
    return {"manifests": {"paths": [{"path": p, "absolute": _absolute(p)} for p in paths], "files": entries},
            "target": target,
            "directory": {"path": directory, "absolute": _absolute(directory)} if directory else None}


def read_saved_plan(path: str) -> SavedPlan:
    """The plans of a file written by ``plan --out``, by app name, and where they came from."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
        plans = {app["name"]: Plan.from_dict(app) for app in document["apps"]
                 if app.get("engine") != "entra"}  # Entra's job provisions those apps: no plan to apply
        origin = _origin(document) if "manifests" in document else None
    except OSError as error:
        raise ReconcilerError(f"{path}: cannot read plan: {error.strerror or error}") from None
    except (PlanFormatError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise ReconcilerError(f"{path}: not a plan saved by 'reconciler plan --out' ({error})") from None
    return SavedPlan(plans, origin)


def _origin(document: Mapping[str, Any]) -> Origin:
    manifests = document["manifests"]
    files = tuple(ManifestFile(str(f["path"]), str(f["absolute"]), str(f["sha256"])) for f in manifests["files"])
    if not files:
        raise ValueError("it names no manifest file")
    directory = document.get("directory")
    target = document.get("target")
    return Origin(paths=tuple(str(p["absolute"]) for p in manifests["paths"]),
                  given=tuple(str(p["path"]) for p in manifests["paths"]),
                  files=files, target=str(target) if target else None,
                  directory=str(directory["absolute"]) if directory else None)


def standalone_args(args: argparse.Namespace, saved: SavedPlan) -> argparse.Namespace:
    """``args`` for applying ``saved``: with a plan that records its origin, its manifest files, target and
    directory (a flag that contradicts them is refused); with an older plan, the command line's."""
    origin = saved.origin
    if origin is None:
        return argparse.Namespace(**{**vars(args), "paths": args.paths or list(DEFAULT_PATHS)})
    plan_file = args.plan
    if args.paths and sorted(map(_absolute, args.paths)) != sorted(origin.paths):
        raise ReconcilerError(f"PATH {' '.join(args.paths)} is not what {plan_file} was made from "
                              f"({' '.join(origin.given)}); leave PATH out to apply the plan as made, or {NEW_PLAN}")
    if args.target and any(normalize_target_url(args.target) != normalize_target_url(p.target)
                           for p in saved.plans.values()):
        raise ReconcilerError(f"--target is not the target {plan_file} was made for; leave --target out to apply "
                              f"the plan as made, or {NEW_PLAN}")
    if args.directory and _absolute(args.directory) != origin.directory:
        made = f"--directory {origin.directory}" if origin.directory else "the manifests' directory source"
        raise ReconcilerError(f"--directory is not what {plan_file} was made with ({made}); leave --directory "
                              f"out to apply the plan as made, or {NEW_PLAN}")
    for file in origin.files:
        _unchanged(file)
    return argparse.Namespace(**{**vars(args), "paths": [f.absolute for f in origin.files],
                                 "target": origin.target, "directory": origin.directory})


def _unchanged(file: ManifestFile) -> None:
    try:
        digest = file_digest(file.absolute)
    except OSError as error:
        raise ReconcilerError(f"{file.path}: cannot read it since the plan was made ({error.strerror or error}); "
                              f"{NEW_PLAN}") from None
    if digest != file.sha256:
        raise ReconcilerError(f"{file.path} changed since the plan was made; {NEW_PLAN}")


def check_targets(saved: SavedPlan, app: str, url: str) -> None:
    """Refuse to apply an app's saved plan to another target than the one it was made against."""
    plan = saved.plans.get(app)
    if plan is not None and normalize_target_url(plan.target) != normalize_target_url(url):
        hint = f"pass --target {plan.target}, or " if saved.origin is None else ""
        raise ReconcilerError(f"{app}: the saved plan was made against {plan.target}, not {url}; {hint}{NEW_PLAN}")
