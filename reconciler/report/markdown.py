"""Markdown rendering: summary counts first, destructive steps flagged, details in collapsible blocks.

The summary of every app (its counts and flags) comes first and is never trimmed; then, per app, its notes and its
steps in ``<details>`` blocks, within ``limit`` characters (:mod:`reconciler.report.budget`, as for the
pull-request preview): rows past it are cut, and a note says how many and points to the JSON plan.

Every value from the directory or the target goes through :func:`reconciler.report.escape.escape_markdown`:
the output is appended to job summaries, where a ``</details>``, a link or an @mention in a user's name must stay
text.
"""

from __future__ import annotations

from collections.abc import Sequence

from reconciler.plan import SUMMARY_KEYS, Plan
from reconciler.report.budget import LIMIT, Block, fit
from reconciler.report.escape import code_span, escape_markdown, table_row
from reconciler.report.rows import step_rows, summary_line

EVERY_ROW = "for every row, see the JSON plan (`reconciler plan --format json`, or `--out FILE`)"


def render_markdown(plans: Sequence[Plan], *, limit: int = LIMIT) -> str:
    """Every plan's summary, then its notes and steps, in at most ``limit`` characters."""
    summary = "".join(_summary(plan) for plan in plans)
    return fit(summary, [block for plan in plans for block in _details(plan)], limit=limit, rest=EVERY_ROW)


def _summary(plan: Plan) -> str:
    counts = plan.summary()
    lines = [f"### {code_span(plan.app)}: {summary_line(plan)}", "",
             "| " + " | ".join(SUMMARY_KEYS) + " |",
             "|" + "---:|" * len(SUMMARY_KEYS),
             "| " + " | ".join(str(counts[k]) for k in SUMMARY_KEYS) + " |", ""]
    if plan.destructive:
        flag = "**over the deletion threshold**" if plan.destructive > plan.threshold else "within the threshold"
        lines += [f"> :warning: {plan.destructive} disable/delete step(s), {flag} "
                  f"(deletionThreshold {plan.threshold}).", ""]
    if plan.empty:
        lines += ["No changes.", ""]
    return "\n".join(lines) + "\n"


def _details(plan: Plan) -> list[Block]:
    name = f"<code>{escape_markdown(plan.app)}</code>"
    blocks = []
    if plan.notes:
        blocks.append(Block(f"{name}: {len(plan.notes):,} note(s)",
                            rows=[f"- {escape_markdown(note)}" for note in plan.notes], open=True))
    if plan.steps:
        block = Block(f"{name}: {len(plan.steps):,} step(s)",
                      ["| action | kind | object | attribute | old | new |", "|---|---|---|---|---|---|"])
        block.rows = [table_row((row.verb, row.kind, row.display, row.attribute, row.old, row.new))
                      for step in plan.steps for row in step_rows(step)]
        blocks.append(block)
    return blocks
