"""Making directory and server text inert: for terminals (:func:`strip_controls`) and for Markdown/HTML
(:func:`escape_markdown`, :func:`table_row`, :func:`code_span`, :func:`pre_text`).

Every piece of data that a renderer did not write itself (user names, attribute values, server messages, target
URLs) goes through one of these before it reaches a terminal, a pull-request comment or a job summary. The
Markdown escaper uses HTML entities rather than backslashes: entities work the same in table cells, block quotes
and inside HTML blocks such as ``<summary>``, where backslash escapes are shown literally. This is the only module
that escapes Markdown or HTML; :func:`trusted_cell` is for the project's own Markdown (the generated reference).
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable

__all__ = ["code_span", "escape_markdown", "pre_text", "strip_controls", "table_row", "trusted_cell"]

# ANSI escape sequences as a whole: CSI (ESC [ ... final), OSC / DCS / SOS / PM / APC strings up to BEL or ST,
# and the two-character ESC sequences; then any control left over (C0 but tab and newline, DEL, C1).
_ANSI = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"                       # CSI, e.g. ESC [ 2 J
    r"|\x1b[\]PX^_][^\x07\x1b]*(?:\x07|\x1b\\)?"     # OSC, DCS, SOS, PM, APC, e.g. ESC ] 0 ; title BEL
    r"|\x1b[ -/]*[0-~]"                              # nF / Fp / Fe / Fs escapes, e.g. ESC ( B, ESC c
    r"|\x9b[0-?]*[ -/]*[@-~]"                        # 8-bit CSI
    r"|\x9d[^\x07\x1b\x9c]*(?:\x07|\x9c|\x1b\\)?"    # 8-bit OSC
)
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")

# Characters that mean something in GitHub-flavoured Markdown or HTML, as entities. ( ) ! { } stay as they are:
# with [ ] escaped they cannot form a link or an image, and JSON values stay readable. An ``_`` between two letters
# or digits cannot emphasise (``ATEA_SCIM_TOKEN``) and stays too. GitHub decodes entities before it looks for
# @mentions and #references, so a ``#`` and an ``@`` that could start one (an ``@`` after anything but a letter,
# digit or underscore: ``alice@contoso.com`` stays copyable) also get a zero-width space after them.
_ZWSP = "&#8203;"
_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_ENTITIES = {
    "&": "&amp;", "<": "&lt;", ">": "&gt;", "|": "&#124;", "`": "&#96;", "\\": "&#92;", "*": "&#42;",
    "_": "&#95;", "[": "&#91;", "]": "&#93;", "~": "&#126;", "$": "&#36;", "@": "&#64;", "#": "&#35;" + _ZWSP,
}
_SIGNIFICANT = re.compile("[" + re.escape("".join(_ENTITIES)) + "]")
# A list marker at the start of the text opens a list where the text follows "> " or "- " (the other block
# markers, # > *, are entities anyway).
_LEADING_MARKER = re.compile(r"^(?:[-+]|\d{1,9}[.)])(?= )")


def strip_controls(text: str) -> str:
    """``text`` without ANSI escape sequences and control characters (tab and newline are kept)."""
    return _CONTROLS.sub("", _ANSI.sub("", text))


def _one_line(text: object) -> str:
    """Controls stripped, every run of whitespace (newlines included) one space."""
    return " ".join(strip_controls(str(text)).split())


def _entity(match: re.Match[str]) -> str:
    char, text, start = match.group(0), match.string, match.start()
    before = text[start - 1] if start else " "
    if char == "_" and before in _ALNUM and text[start + 1:start + 2] in _ALNUM:
        return char
    if char == "@" and before not in _ALNUM and before != "_":
        return _ENTITIES[char] + _ZWSP
    return _ENTITIES[char]


def escape_markdown(text: object) -> str:
    """``text`` as one line of inert Markdown: no HTML, links, emphasis, table breaks, @mentions or controls."""
    line = _SIGNIFICANT.sub(_entity, _one_line(text))
    return _LEADING_MARKER.sub(lambda m: f"{m.group(0)[:-1]}&#{ord(m.group(0)[-1])};", line)


def code_span(text: object) -> str:
    """``text`` in a Markdown code span whose fence is longer than any run of backticks inside it.

    Not for table cells (GitHub splits cells at a ``|`` even inside a code span) nor for HTML blocks."""
    line = _one_line(text)
    longest = max((len(run) for run in re.findall(r"`+", line)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if line.startswith("`") or line.endswith("`") or not line.strip() else ""
    return f"{fence}{pad}{line}{pad}{fence}"


def table_row(cells: Iterable[object]) -> str:
    """One Markdown table row, every cell escaped (an empty cell is a space, so the row keeps its columns)."""
    return "| " + " | ".join(escape_markdown(cell) or " " for cell in cells) + " |"


def pre_text(line: str) -> str:
    """One line for inside an HTML ``<pre>`` block, where Markdown is not parsed: ``& < >`` as entities.

    Controls are the caller's to strip, before the text is split into lines."""
    return html.escape(line, quote=False)


def trusted_cell(text: str) -> str:
    """The project's own Markdown (a schema description) as one table cell: pipes escaped, newlines spaces.

    Never for data from a directory, a target or a pull request: that is :func:`table_row`'s."""
    return text.replace("|", "\\|").replace("\n", " ")
