"""Manifest v1: models, the position-keeping loader, and the JSON Schema."""

from reconciler.manifest.load import (
    LoadedManifest,
    PartialManifest,
    inspect_manifests,
    load_manifest,
    load_manifests,
    load_text,
    manifest_files,
)
from reconciler.manifest.model import (
    Assignment,
    GroupProvisioning,
    Manifest,
    Mapping,
    Provisioning,
    Role,
    ScopingClause,
    Target,
    UserProvisioning,
)

__all__ = [
    "Assignment",
    "GroupProvisioning",
    "LoadedManifest",
    "Manifest",
    "Mapping",
    "PartialManifest",
    "Provisioning",
    "Role",
    "ScopingClause",
    "Target",
    "UserProvisioning",
    "inspect_manifests",
    "load_manifest",
    "load_manifests",
    "load_text",
    "manifest_files",
]
