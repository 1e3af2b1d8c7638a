"""JSON rendering (contract): one object whose ``apps`` list has, per manifest, ``name`` and ``summary``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from reconciler.plan import Plan


def plans_document(plans: Sequence[Plan]) -> dict[str, Any]:
    return {"format": 1, "apps": [{"name": plan.app, **plan.to_dict()} for plan in plans]}


def render_json(plans: Sequence[Plan]) -> str:
    return json.dumps(plans_document(plans), indent=2, ensure_ascii=False, sort_keys=False, default=str) + "\n"
