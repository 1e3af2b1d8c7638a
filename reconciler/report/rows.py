"""The rows every renderer shows: one per attribute change, values shown compactly.

A disable, delete or conflict has a ``(reason)`` row saying why; a membership change names its members (the
first :data:`~reconciler.plan.MEMBERS_SHOWN` by name, then how many more).

How a row shows the object, the values and the reasons is a :class:`Formatter`'s choice: as they are by default;
the pull-request preview passes one that hashes personal data. Escaping is the renderer's (rows are plain text).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from reconciler.plan import FROM_TARGET, MEMBERS_SHOWN, SUMMARY_KEYS, Action, Plan, Step

MAX_VALUE = 60
DRIFTED = "(changed outside the reconciler)"  # after the attribute of a change that undoes one made on the target
REASON = "(reason)"  # the attribute cell of the row that says why a step disables, deletes or is a conflict


@dataclass(frozen=True)
class Row:
    action: Action
    kind: str
    display: str
    attribute: str
    old: str
    new: str

    @property
    def verb(self) -> str:
        return self.action.verb


def show(value: Any, limit: int = MAX_VALUE) -> str:
    """A value as one short line: JSON for structures, bare text for strings, '-' for nothing."""
    if value is None:
        return "-"
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


class Formatter:
    """Shows a step's object, values and reasons as they are, values cut at ``limit`` characters."""

    def __init__(self, limit: int = MAX_VALUE) -> None:
        self.limit = limit

    def display(self, step: Step) -> str:
        return step.display

    def value(self, step: Step, path: str, value: Any) -> str:
        """The old or new value of the attribute at ``path``."""
        return show(value, self.limit)

    def text(self, text: str) -> str:
        """A reason (which may quote a matching value)."""
        return text

    def bare(self, step: Step) -> str:
        """The ``new`` cell of a step with nothing else to show (an adopt that changes nothing): empty."""
        return ""


PLAIN = Formatter()


def step_rows(step: Step, *, detailed: bool = False, formatter: Formatter = PLAIN) -> Iterator[Row]:
    """Rows of one step; a create is one row unless ``detailed`` (its attributes are in the JSON plan)."""
    action, kind, display = step.action, step.kind, formatter.display(step)
    if action in (Action.DELETE, Action.CONFLICT) or (action == Action.DISABLE and not step.changes):
        yield Row(action, kind, display, REASON, "", formatter.text(step.reason))
        return
    changes = step.shown_changes()
    if action == Action.CREATE and not detailed:
        members = f", {len(step.members_add)} member(s)" if step.members_add else ""
        yield Row(action, kind, display, f"{len(changes)} attribute(s){members}", "-", "(new)")
        return
    emitted = False
    for change in changes:
        attribute = f"{change.path} {DRIFTED}" if change.origin == FROM_TARGET else change.path
        yield Row(action, kind, display, attribute, formatter.value(step, change.path, change.old),
                  formatter.value(step, change.path, change.new))
        emitted = True
    if step.members_add:
        yield Row(action, kind, display, "members", "", _members("+", step.members_add, step, formatter))
        emitted = True
    if step.members_remove:
        yield Row(action, kind, display, "members", "", _members("-", step.members_remove, step, formatter))
        emitted = True
    if action == Action.DISABLE and step.reason:
        yield Row(action, kind, display, REASON, "", formatter.text(step.reason))
        emitted = True
    if not emitted:
        yield Row(action, kind, display, "", "", formatter.bare(step))


def _members(sign: str, ids: list[str], step: Step, formatter: Formatter) -> str:
    """``+2: adele.vance@contoso.com, Pilot``: the count, then the first members by name (else by id)."""
    names = [step.member_names.get(i, i) for i in ids[:MEMBERS_SHOWN]]
    more = f", +{len(ids) - MEMBERS_SHOWN} more" if len(ids) > MEMBERS_SHOWN else ""
    return formatter.text(f"{sign}{len(ids)}: {', '.join(names)}{more}")


def summary_line(plan: Plan) -> str:
    counts = plan.summary()
    parts = [f"{counts[k]} to {k}" for k in SUMMARY_KEYS if k != Action.CONFLICT and counts.get(k)]
    if counts.get(Action.CONFLICT):
        parts.append(f"{counts[Action.CONFLICT]} conflict(s)")
    return ", ".join(parts) if parts else "no changes"
