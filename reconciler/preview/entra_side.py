"""The Entra side of a preview: for an ``engine: entra`` app, its job's schema diff instead of a SCIM plan.

Entra's own job provisions such an app, so the preview never plans (nor reads) its target. What a pull request
changes for it is the managed part of the job's ``synchronizationSchema`` (:func:`~reconciler.entra.schema.
compile_schema`), base revision against working tree, described by :func:`~reconciler.entra.managed.schema_changes`;
an app the base revision does not run on Entra's job (new, or on the reconciler) is compared with nothing. Offline
and pure: no request, no Pulumi.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reconciler.entra.managed import schema_changes
from reconciler.entra.schema import compile_schema, compile_warnings
from reconciler.errors import ReconcilerError
from reconciler.manifest import LoadedManifest
from reconciler.preview.model import EntraSide

ENTRA = "entra"


def is_entra(loaded: LoadedManifest) -> bool:
    return loaded.manifest.provisioning.engine == ENTRA


def switched(head: LoadedManifest | None, before: LoadedManifest | None) -> tuple[str, str] | None:
    """(base engine, head engine) when they differ, None when they do not or either side lacks the app."""
    if head is None or before is None:
        return None
    old, new = before.manifest.provisioning.engine, head.manifest.provisioning.engine
    return (old, new) if old != new else None


def entra_side(head: LoadedManifest, before: LoadedManifest | None, *, base_known: bool = True) -> EntraSide:
    """The schema diff of ``head`` (an engine entra app) against ``before``, the app at the base revision."""
    try:
        new = compile_schema(head.manifest)
        side = EntraSide(warnings=compile_warnings(head.manifest))
        if not base_known:
            side.reason = "the base revision's manifests could not be read, so there is no schema to compare with"
            return side
        old: Mapping[str, Any] = compile_schema(before.manifest) if before is not None and is_entra(before) else {}
        side.changes = schema_changes(old, new)
    except ReconcilerError as error:
        return EntraSide(reason=f"the schema could not be compiled: {' '.join(str(error).split())}")
    except Exception as error:  # an unexpected failure must not sink the whole comment
        return EntraSide(reason=f"internal error: {type(error).__name__}")
    return side
