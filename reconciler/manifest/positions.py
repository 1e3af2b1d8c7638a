"""Where each key and value of a YAML document sits, so that any problem can be reported as FILE:LINE:COL."""

from __future__ import annotations

from dataclasses import dataclass, field

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Position:
    """1-based line and column of a value, and of its key when it sits in a mapping."""

    line: int
    column: int
    key_line: int | None = None
    key_column: int | None = None
    quote: str = ""  # the scalar's quote character ('' plain, '"' or "'"), for columns inside the value


@dataclass
class SourceMap:
    """Positions of every node of one document, addressed by the path of keys and indices that leads to it."""

    file: str
    positions: dict[Loc, Position] = field(default_factory=dict)

    def nearest(self, loc: Loc) -> tuple[Loc, Position]:
        """The deepest known prefix of ``loc`` and its position (the document root at worst)."""
        for end in range(len(loc), -1, -1):
            prefix = tuple(loc[:end])
            if prefix in self.positions:
                return prefix, self.positions[prefix]
        return (), Position(1, 1)

    def at(self, loc: Loc, *, key: bool = False) -> tuple[int, int]:
        """Line and column of the value at ``loc`` (or of its key), falling back to the nearest parent."""
        found, pos = self.nearest(loc)
        if key and found == tuple(loc) and pos.key_line is not None:
            return pos.key_line, pos.key_column or 1
        return pos.line, pos.column

    def inside(self, loc: Loc, offset: int) -> tuple[int, int]:
        """Line and column of character ``offset`` (0-based) inside a single-line scalar value at ``loc``."""
        found, pos = self.nearest(loc)
        if found != tuple(loc):
            return pos.line, pos.column
        return pos.line, pos.column + len(pos.quote) + offset


def dotted(loc: Loc) -> str:
    """``('provisioning', 'users', 'mappings', 3, 'target')`` -> ``provisioning.users.mappings[3].target``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text
