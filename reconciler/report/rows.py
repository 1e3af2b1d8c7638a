"""The rows every renderer shows: one per attribute change, destructive steps first, values shown compactly."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from reconciler.plan import Plan, Step

MAX_VALUE = 60
VERBS = {"create": "create", "update": "update", "adopt": "adopt", "disable": "disable", "delete": "DELETE",
         "conflict": "CONFLICT"}


@dataclass(frozen=True)
class Row:
    action: str
    kind: str
    display: str
    attribute: str
    old: str
    new: str


def show(value: Any, limit: int = MAX_VALUE) -> str:
    """A value as one short line: JSON for structures, bare text for strings, '-' for nothing."""
    if value is None:
        return "-"
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def step_rows(step: Step, *, detailed: bool = False) -> Iterator[Row]:
    """Rows of one step; a create is one row unless ``detailed`` (its attributes are in the JSON plan)."""
    verb = VERBS.get(step.action, step.action)
    head = Row(verb, step.kind, step.display, "", "", "")
    if step.action in ("delete", "conflict") or (step.action == "disable" and not step.changes):
        yield Row(verb, step.kind, step.display, "", "", step.reason)
        return
    changes = step.shown_changes()
    if step.action == "create" and not detailed:
        members = f", {len(step.members_add)} member(s)" if step.members_add else ""
        yield Row(verb, step.kind, step.display, f"{len(changes)} attribute(s){members}", "-", "(new)")
        return
    emitted = False
    for change in changes:
        yield Row(verb, step.kind, step.display, change.path, show(change.old), show(change.new))
        emitted = True
    if step.members_add:
        yield Row(verb, step.kind, step.display, "members", "", f"+{len(step.members_add)}")
        emitted = True
    if step.members_remove:
        yield Row(verb, step.kind, step.display, "members", "", f"-{len(step.members_remove)}")
        emitted = True
    if not emitted:
        yield head


def summary_line(plan: Plan) -> str:
    counts = plan.summary()
    parts = [f"{counts[k]} to {k}" for k in ("create", "update", "adopt", "disable", "delete") if counts.get(k)]
    if counts.get("conflict"):
        parts.append(f"{counts['conflict']} conflict(s)")
    return ", ".join(parts) if parts else "no changes"
