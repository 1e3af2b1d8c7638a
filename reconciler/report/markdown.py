"""Markdown rendering: summary counts first, destructive steps flagged, details in collapsible blocks.

Every value from the directory or the target goes through :func:`reconciler.report.escape.escape_markdown`:
the output is appended to job summaries, where a ``</details>``, a link or an @mention in a user's name must stay
text.
"""

from __future__ import annotations

from collections.abc import Sequence

from reconciler.plan import SUMMARY_KEYS, Plan
from reconciler.report.escape import code_span, escape_markdown, table_row
from reconciler.report.rows import step_rows, summary_line


def render_markdown(plans: Sequence[Plan]) -> str:
    lines: list[str] = []
    for plan in plans:
        counts = plan.summary()
        lines.append(f"### {code_span(plan.app)}: {summary_line(plan)}")
        lines.append("")
        lines.append("| " + " | ".join(SUMMARY_KEYS) + " |")
        lines.append("|" + "---:|" * len(SUMMARY_KEYS))
        lines.append("| " + " | ".join(str(counts[k]) for k in SUMMARY_KEYS) + " |")
        lines.append("")
        if plan.destructive:
            flag = "**over the deletion threshold**" if plan.destructive > plan.threshold else "within the threshold"
            lines.append(f"> :warning: {plan.destructive} disable/delete step(s), {flag} "
                         f"(deletionThreshold {plan.threshold}).")
            lines.append("")
        for note in plan.notes:
            lines.append(f"> {escape_markdown(note)}")
        if plan.notes:
            lines.append("")
        if plan.empty:
            lines.append("No changes.")
            lines.append("")
            continue
        lines.append("<details><summary>Details</summary>")
        lines.append("")
        lines.append("| action | kind | object | attribute | old | new |")
        lines.append("|---|---|---|---|---|---|")
        for step in plan.steps:
            lines += [table_row((row.verb, row.kind, row.display, row.attribute, row.old, row.new))
                      for row in step_rows(step)]
        lines.append("")
        lines.append("</details>")
        lines.append("")
    return "\n".join(lines)
