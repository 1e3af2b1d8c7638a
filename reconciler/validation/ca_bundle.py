"""``validate``'s check of ``provisioning.target.caBundle``: a readable PEM file of CA certificates."""

from __future__ import annotations

import ssl
from pathlib import Path

from reconciler.errors import Problem
from reconciler.manifest import LoadedManifest


def ca_bundle_problems(loaded: LoadedManifest) -> list[Problem]:
    """``provisioning.target.caBundle`` must name a readable PEM file of CA certificates (relative to the
    manifest's folder), or every run against the target would stop at its first request."""
    name = loaded.manifest.provisioning.target.ca_bundle
    if not name:
        return []
    path = Path(loaded.file).parent / name
    try:
        ssl.create_default_context(cafile=str(path))
    except OSError as error:  # ssl.SSLError is an OSError too
        if isinstance(error, ssl.SSLError):
            reason = f"{name!r} is not a PEM file of CA certificates"
        else:
            reason = f"cannot read {name!r} ({error.strerror or error}; relative to the manifest's folder)"
        return [loaded.problem(("provisioning", "target", "caBundle"), reason)]
    return []
