"""Markdown that fits where it goes: a summary that is never trimmed, then details trimmed to a size budget.

Pull-request comments take at most 65,536 characters (GitHub refuses a longer body), and job summaries and issues
have limits too. :func:`fit` writes the summary, then each :class:`Block` (a ``<details>`` block: a header, rows,
a footer) while the budget lasts; rows are cut from the end, and a block that does not fit is left out whole. When
anything was cut, a closing note says how many rows and characters, and where to see them all. Both the
pull-request preview and ``plan --format markdown`` write through here (``--max-chars``, :func:`checked_limit`).

The writer adds only its own markup; every piece of data in a block is the caller's to escape
(:mod:`reconciler.report.escape`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from reconciler.errors import ReconcilerError

LIMIT = 65_000  # GitHub refuses a comment body above 65,536 characters
MIN_LIMIT = 2_000
NOTE_RESERVE = 400  # room for the note that says what was cut


@dataclass
class Block:
    """One ``<details>`` block: ``summary`` (HTML, already escaped), header lines, rows (trimmed), footer lines."""

    summary: str
    header: list[str] = field(default_factory=list)
    rows: list[str] = field(default_factory=list)
    footer: list[str] = field(default_factory=list)
    open: bool = False

    def opening(self) -> str:
        attribute = " open" if self.open else ""
        return "\n".join([f"<details{attribute}><summary>{self.summary}</summary>", "", *self.header]) + "\n"

    def closing(self) -> str:
        return "\n".join([*self.footer, "", "</details>", ""]) + "\n"


def checked_limit(value: int | None, command: str) -> int:
    """``--max-chars`` as given (default :data:`LIMIT`), refused outside ``MIN_LIMIT`` .. ``LIMIT``."""
    limit = LIMIT if value is None else value
    if not MIN_LIMIT <= limit <= LIMIT:
        raise ReconcilerError(f"{command}: --max-chars must be between {MIN_LIMIT} and {LIMIT}")
    return limit


def fit(summary: str, blocks: Iterable[Block], *, limit: int = LIMIT, rest: str) -> str:
    """``summary`` and as much of ``blocks`` as fits in ``limit`` characters, with a note of what was cut.

    ``rest`` completes the note's last sentence: where to see everything ("for every row, see the JSON plan")."""
    reserve = NOTE_RESERVE + len(rest)
    if len(summary) > limit - reserve:  # only with thousands of apps: cut the summary at a line
        cut = summary[: limit - reserve].rsplit("\n", 1)[0]
        return cut + f"\n\n**Trimmed:** the summary alone passes {limit:,} characters; {rest}.\n"
    budget = limit - len(summary) - reserve
    parts: list[str] = []
    cut_rows = total_rows = cut_chars = 0
    for block in blocks:
        total_rows += len(block.rows)
        opening, closing = block.opening(), block.closing()
        frame = len(opening) + len(closing) + 1  # and the newline that joins it to the next
        if cut_rows or frame > budget:
            cut_rows += len(block.rows)
            cut_chars += sum(len(r) + 1 for r in block.rows)
            continue
        budget -= frame
        kept = []
        for index, line in enumerate(block.rows):
            if len(line) + 1 > budget:
                rest_rows = block.rows[index:]
                cut_rows += len(rest_rows)
                cut_chars += sum(len(r) + 1 for r in rest_rows)
                break
            kept.append(line)
            budget -= len(line) + 1
        parts.append(opening + "".join(f"{line}\n" for line in kept) + closing)
    body = summary + "\n".join(parts)
    if cut_rows:
        body += (f"\n**Trimmed:** {cut_rows:,} of {total_rows:,} detail row(s) ({cut_chars:,} characters) not "
                 f"shown, to stay under {limit:,} characters. The summary above is complete; {rest}.\n")
    return body
