"""JSON rendering (contract): one object whose ``apps`` list has, per manifest, ``name`` and ``summary``."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from reconciler.plan import Plan


def plans_document(plans: Sequence[Plan], origin: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The document; ``origin`` (a saved plan's manifests, target and directory) sits between format and apps."""
    return {"format": 1, **(origin or {}), "apps": [{"name": plan.app, **plan.to_dict()} for plan in plans]}


def render_json(plans: Sequence[Plan], origin: Mapping[str, Any] | None = None) -> str:
    document = plans_document(plans, origin)
    return json.dumps(document, indent=2, ensure_ascii=False, sort_keys=False, default=str) + "\n"
