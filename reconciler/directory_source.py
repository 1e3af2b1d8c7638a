"""Which directory a run reads: the ``--directory`` override, the manifest's snapshot, or Microsoft Graph.

The Graph reader is async and is awaited on the caller's event loop; a snapshot is a local file, read directly.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.directory.model import Directory
from reconciler.directory.snapshot import load_snapshot
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
