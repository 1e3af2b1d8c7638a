"""Plain-text rendering: a header and a table per app, per-attribute old -> new."""

from __future__ import annotations

import io
from collections.abc import Sequence

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from reconciler.plan import Plan
from reconciler.report.rows import step_rows, summary_line


def render_text(plans: Sequence[Plan], *, color: bool = False, width: int = 120, detailed: bool = False) -> str:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=color, no_color=not color, width=width, highlight=False)
    for plan in plans:
        console.print(f"[bold]{escape(plan.app)}[/bold] -> {escape(plan.target)}: {summary_line(plan)}")
        unmanaged = ", ".join(f"{n} {k.lower()}(s)" for k, n in plan.unmanaged.items() if n)
        if unmanaged:
            console.print(f"  left alone (not managed): {unmanaged}")
        for note in plan.notes:
            console.print(f"  [yellow]note:[/yellow] {escape(note)}")
        if plan.empty:
            console.print("  No changes. The target matches the desired state.")
            continue
        table = Table(show_edge=False, pad_edge=False, box=None, header_style="bold")
        for column in ("action", "kind", "object", "attribute", "old", "new"):
            table.add_column(column, overflow="fold")
        for step in plan.steps:
            for row in step_rows(step, detailed=detailed):
                style = "red" if row.action in ("DELETE", "disable", "CONFLICT") else (
                    "green" if row.action == "create" else "")
                table.add_row(*(Text(cell) for cell in (row.action, row.kind, row.display, row.attribute, row.old,
                                                        row.new)), style=style)
        console.print(table)
    return buffer.getvalue()
