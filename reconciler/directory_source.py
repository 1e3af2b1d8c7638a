"""Which directory a run reads: the ``--directory`` override, the manifest's snapshot, or Microsoft Graph.

The Graph reader is async and is awaited on the caller's event loop; a snapshot is a local file, read directly.
A run that keeps state also takes a **watermark** (:func:`read_with_watermark`): a snapshot's digest, or Graph's
delta links; an incremental cycle reads only what changed since one (:func:`read_since`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler.directory.changes import NO_CHANGES, DirectoryChanges, diff_snapshots, merge
from reconciler.directory.model import Directory
from reconciler.directory.snapshot import load_snapshot
from reconciler.errors import DirectoryError
from reconciler.manifest.load import LoadedManifest
from reconciler.selection import selection

if TYPE_CHECKING:
    from reconciler.directory.graph import GraphReader


async def read_directory(loaded: LoadedManifest, override: str | None) -> Directory:
    """``override`` (a snapshot path, as given on the command line), else the manifest's
    ``provisioning.directory.snapshot`` (relative to the manifest's folder), else Microsoft Graph (at the
    manifest's ``provisioning.directory.graph`` endpoint, with its token variable if it names one)."""
    if override:
        return load_snapshot(override)
    snapshot = loaded.manifest.provisioning.directory.snapshot
    if snapshot:
        return load_snapshot(Path(loaded.file).parent / snapshot)
    return await read_graph(loaded)


async def read_graph(loaded: LoadedManifest, reader: GraphReader | None = None) -> Directory:
    """What the manifest needs from Microsoft Graph (:func:`reconciler.selection.selection`), through ``reader``,
    else the one its ``provisioning.directory.graph`` describes (errors name the manifest's file)."""
    from reconciler.directory.graph import graph_reader  # network code only when it is needed

    if reader is None:
        source = loaded.manifest.provisioning.directory.graph
        reader = graph_reader(source.endpoint, source.token_env, loaded.file)
    wanted = selection(loaded.manifest)
    return await reader.read(wanted.user_attributes, wanted.group_attributes, member_groups=wanted.member_groups)


# -- watermarks: where an incremental cycle resumes ----------------------------------------------------------------

SNAPSHOT_SOURCE = "snapshot"
GRAPH_SOURCE = "graph"


@dataclass
class SourceRead:
    """A directory as read, the watermark that says where it was read up to, and (when read since a watermark)
    what changed since then."""

    directory: Directory
    watermark: dict[str, Any]
    changes: DirectoryChanges | None = None


def _snapshot_path(loaded: LoadedManifest, override: str | None) -> Path | None:
    if override:
        return Path(override)
    snapshot = loaded.manifest.provisioning.directory.snapshot
    return Path(loaded.file).parent / snapshot if snapshot else None


def _digest(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as error:
        raise DirectoryError(f"{path}: cannot read directory snapshot: {error.strerror or error}") from None


async def read_with_watermark(loaded: LoadedManifest, override: str | None) -> SourceRead:
    """A full read and its watermark: a snapshot's digest, or Graph's latest delta links, taken before the read
    so that a change made during it is seen again by the next incremental cycle (applying it twice is harmless)."""
    path = _snapshot_path(loaded, override)
    if path is not None:
        digest = _digest(path)
        return SourceRead(load_snapshot(path), {"source": SNAPSHOT_SOURCE, "digest": digest})
    from reconciler.directory.delta import latest_links
    from reconciler.directory.graph import graph_reader

    source = loaded.manifest.provisioning.directory.graph
    reader = graph_reader(source.endpoint, source.token_env, loaded.file)
    wanted = selection(loaded.manifest)
    links = await latest_links(reader, wanted.user_attributes, wanted.group_attributes)
    directory = await read_graph(loaded, reader)
    return SourceRead(directory, {"source": GRAPH_SOURCE, "users": links.users, "groups": links.groups})


async def read_since(loaded: LoadedManifest, override: str | None, watermark: Mapping[str, Any],
                     cached: Directory) -> SourceRead | None:
    """The directory now, from ``cached`` (the last cycle's) and what changed since ``watermark``; None when the
    watermark cannot serve (another source, an expired delta token): the caller runs a full cycle."""
    path = _snapshot_path(loaded, override)
    if path is not None:
        if watermark.get("source") != SNAPSHOT_SOURCE:
            return None
        digest = _digest(path)
        if digest == watermark.get("digest"):
            return SourceRead(cached, dict(watermark), NO_CHANGES)
        directory = load_snapshot(path)
        return SourceRead(directory, {"source": SNAPSHOT_SOURCE, "digest": digest},
                          diff_snapshots(cached, directory))
    if watermark.get("source") != GRAPH_SOURCE or not watermark.get("users") or not watermark.get("groups"):
        return None
    from reconciler.directory.changes import DeltaLinks
    from reconciler.directory.delta import DeltaExpired, read_changes
    from reconciler.directory.graph import graph_reader

    source = loaded.manifest.provisioning.directory.graph
    reader = graph_reader(source.endpoint, source.token_env, loaded.file)
    try:
        changes = await read_changes(reader, DeltaLinks(str(watermark["users"]), str(watermark["groups"])))
    except DeltaExpired:
        return None
    mark = {"source": GRAPH_SOURCE, "users": changes.links.users, "groups": changes.links.groups}
    if changes.empty:
        return SourceRead(cached, dict(watermark), changes)  # the old links still serve: nothing to save
    return SourceRead(merge(cached, changes), mark, changes)
