"""Which directory a command reads: the ``--directory`` override, the manifest's snapshot, or Microsoft Graph."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from reconciler.directory.model import Directory
from reconciler.directory.snapshot import load_snapshot
from reconciler.expressions import compile_expression, walk
from reconciler.expressions.parse import Attribute, ExpressionSyntaxError
from reconciler.manifest.load import LoadedManifest
from reconciler.manifest.model import Manifest, Mapping


def directory_for(loaded: LoadedManifest, override: str | None) -> Directory:
    """``override`` (a snapshot path, as given on the command line), else the manifest's
    ``provisioning.directory.snapshot`` (relative to the manifest's folder), else Microsoft Graph (at the
    manifest's ``provisioning.directory.graph`` endpoint, with its token variable if it names one)."""
    if override:
        return load_snapshot(override)
    snapshot = loaded.manifest.provisioning.directory.snapshot
    if snapshot:
        return load_snapshot(Path(loaded.file).parent / snapshot)
    from reconciler.directory.graph import read_graph_directory  # network code only when it is needed

    return read_graph_directory(loaded.manifest, manifest_file=loaded.file)


def user_attributes(manifest: Manifest) -> set[str]:
    """The Entra attribute names the manifest's user mappings and scoping filters read."""
    names = {c.attribute for group in manifest.provisioning.scoping_filters for c in group}
    return names | _mapped(manifest.provisioning.users.mappings)


def group_attributes(manifest: Manifest) -> set[str]:
    return _mapped(manifest.provisioning.groups.mappings) if manifest.provisioning.groups.enabled else set()


def _mapped(mappings: Sequence[Mapping]) -> set[str]:
    names: set[str] = set()
    for mapping in mappings:
        if mapping.source:
            names.add(mapping.source)
        elif mapping.expression:
            try:
                tree = compile_expression(mapping.expression).tree
            except ExpressionSyntaxError:
                continue
            names.update(node.name for node in walk(tree) if isinstance(node, Attribute))
    return names
