"""Plain-text rendering: a header and a table per app, per-attribute old -> new.

Directory and server text is stripped of control characters and escape sequences
(:func:`reconciler.report.escape.strip_controls`), so a value cannot move the cursor, retitle or clear a terminal.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from reconciler.plan import DESTRUCTIVE, Action, Plan
from reconciler.report.escape import strip_controls
from reconciler.report.rows import step_rows, summary_line


def _inert(text: str) -> str:
    """Data for the console: no controls, no rich markup."""
    return escape(strip_controls(text))


def render_text(plans: Sequence[Plan], *, color: bool = False, width: int = 120, detailed: bool = False) -> str:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=color, no_color=not color, width=width, highlight=False)
    for plan in plans:
        console.print(f"[bold]{_inert(plan.app)}[/bold] -> {_inert(plan.target)}: {summary_line(plan)}")
        unmanaged = ", ".join(f"{n} {k.lower()}(s)" for k, n in plan.unmanaged.items() if n)
        if unmanaged:
            console.print(f"  left alone (not managed): {unmanaged}")
        for note in plan.notes:
            console.print(f"  [yellow]note:[/yellow] {_inert(note)}")
        if plan.empty:
            console.print("  No changes. The target matches the desired state.")
            continue
        table = Table(show_edge=False, pad_edge=False, box=None, header_style="bold")
        for column in ("action", "kind", "object", "attribute", "old", "new"):
            table.add_column(column, overflow="fold")
        for step in plan.steps:
            for row in step_rows(step, detailed=detailed):
                style = "red" if row.action in DESTRUCTIVE or row.action == Action.CONFLICT else (
                    "green" if row.action == Action.CREATE else "")
                table.add_row(*(Text(strip_controls(cell)) for cell in (row.verb, row.kind, row.display,
                                                                        row.attribute, row.old, row.new)),
                              style=style)
        console.print(table)
    return buffer.getvalue()
