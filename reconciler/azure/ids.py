"""Stable identifiers: app role ids and logical resource names derived from the manifest alone.

Role ids are UUIDv5 of the app name and role value under a fixed namespace, so a re-run, a fresh stack or a second
tenant always declares the same id for the same role (Entra refers to assignments by role id; a new id would orphan
them). Never change :data:`ROLE_NAMESPACE`.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections import Counter
from collections.abc import Sequence

from reconciler.manifest.model import Assignment

ROLE_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://reconciler.invalid/v1/app-role")


def role_id(app: str, value: str) -> str:
    return str(uuid.uuid5(ROLE_NAMESPACE, f"{app}/{value}"))


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


def assignment_names(app: str, assignments: Sequence[Assignment]) -> list[str]:
    """``atea-group-atea-users-user`` per assignment; a short digest keeps apart two that slug alike."""
    bases = [f"{app}-{a.principal_type}-{slug(a.principal)}-{slug(a.role)}" for a in assignments]
    counts = Counter(bases)
    names = []
    for base, a in zip(bases, assignments, strict=True):
        if counts[base] > 1:
            exact = f"{a.principal_type}\0{a.principal}\0{a.role}"
            base = f"{base}-{hashlib.sha256(exact.encode()).hexdigest()[:8]}"
        names.append(base)
    return names
