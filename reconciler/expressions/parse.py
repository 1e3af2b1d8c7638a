"""Entra's attribute-mapping expression syntax, parsed into a small tree.

The grammar (Microsoft's "Reference for writing expressions for attribute mappings"):

    expression := operand [ ("=" | "<>" | ">" | ">=" | "<" | "<=") operand ]
    operand    := Name "(" [ argument { "," argument } ] ")"     a function call
                | "[" attribute "]"                              a source attribute
                | '"' characters '"'                             a string; backslash escapes the next character
                | number | "&H" hex digits                       a number (VBA's hex form too)
                | vbTextCompare | vbBinaryCompare                InStr's comparison modes
    argument   := expression | nothing                          an omitted argument, as in Switch([a], , "k", "v")

Comparisons exist for IIF's condition (``IIF([country]="USA", ...)``) and CBool. Whitespace (newlines too) may
surround any token. Every node keeps its offset in the text, so problems can point inside the expression.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from reconciler.errors import ExpressionSyntaxError

_DIGITS = frozenset("0123456789")

MAX_LENGTH = 10_000  # Entra's documented limit on one expression
COMPARISONS = ("<>", ">=", "<=", "=", ">", "<")
NAMED_CONSTANTS = {"vbTextCompare": "vbTextCompare", "vbBinaryCompare": "vbBinaryCompare"}
MAX_DEPTH = 100


@dataclass(frozen=True)
class Node:
    offset: int


@dataclass(frozen=True)
class Literal(Node):
    value: str | int | float


@dataclass(frozen=True)
class Attribute(Node):
    name: str


@dataclass(frozen=True)
class Call(Node):
    name: str
    args: tuple[Node | None, ...]  # None: an omitted argument


@dataclass(frozen=True)
class Compare(Node):
    op: str
    left: Node
    right: Node


def parse(text: str) -> Node:
    """Parse one expression or raise :class:`ExpressionSyntaxError` at the offending character."""
    if not isinstance(text, str):
        raise ExpressionSyntaxError("an expression is text", 0)
    if len(text) > MAX_LENGTH:
        raise ExpressionSyntaxError(f"an expression has at most {MAX_LENGTH} characters (Entra's limit)", MAX_LENGTH)
    parser = _Parser(text)
    parser.skip_space()
    if parser.at_end():
        raise ExpressionSyntaxError("empty expression", 0)
    node = parser.expression(0)
    parser.skip_space()
    if not parser.at_end():
        raise ExpressionSyntaxError(f"unexpected {parser.describe()} after the end of the expression", parser.pos)
    return node


def walk(node: Node | None) -> Iterator[Node]:
    """Every node of a tree, parents first."""
    if node is None:
        return
    yield node
    if isinstance(node, Call):
        for arg in node.args:
            yield from walk(arg)
    elif isinstance(node, Compare):
        yield from walk(node.left)
        yield from walk(node.right)


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def describe(self) -> str:
        if self.at_end():
            return "end of expression"
        return repr(self.text[self.pos])

    def expression(self, depth: int) -> Node:
        if depth > MAX_DEPTH:
            raise ExpressionSyntaxError(f"functions are nested more than {MAX_DEPTH} deep", self.pos)
        left = self.operand(depth)
        self.skip_space()
        op = self.comparison()
        if op is None:
            return left
        start = self.pos
        self.pos += len(op)
        self.skip_space()
        right = self.operand(depth)
        self.skip_space()
        if self.comparison() is not None:
            raise ExpressionSyntaxError("comparisons cannot be chained; nest IIF instead", self.pos)
        return Compare(start, op, left, right)

    def comparison(self) -> str | None:
        for op in COMPARISONS:
            if self.text.startswith(op, self.pos):
                return op
        return None

    def operand(self, depth: int) -> Node:
        self.skip_space()
        char = self.peek()
        if char == "[":
            return self.attribute()
        if char == '"':
            return self.string()
        if char in _DIGITS or (char in ("+", "-") and self.text[self.pos + 1:self.pos + 2] in _DIGITS):
            return self.number()
        if self.text.startswith(("&H", "&h"), self.pos):
            return self.hex_number()
        if char.isalpha() or char == "_":
            return self.name(depth)
        if self.at_end():
            raise ExpressionSyntaxError("the expression ends where a value was expected", self.pos)
        raise ExpressionSyntaxError(
            f"unexpected {self.describe()}; expected a function call, an [attribute] or a \"string\"", self.pos
        )

    def attribute(self) -> Attribute:
        start = self.pos
        end = self.text.find("]", start + 1)
        if end < 0:
            raise ExpressionSyntaxError("unclosed '[': an attribute is written [attributeName]", start)
        name = self.text[start + 1:end]
        if not name.strip():
            raise ExpressionSyntaxError("empty attribute name '[]'", start)
        if "[" in name or '"' in name:
            raise ExpressionSyntaxError("unclosed '[': an attribute is written [attributeName]", start)
        self.pos = end + 1
        return Attribute(start, name.strip())

    def string(self) -> Literal:
        start = self.pos
        self.pos += 1
        chars: list[str] = []
        while True:
            if self.at_end():
                raise ExpressionSyntaxError("unclosed string: a string ends with '\"'", start)
            char = self.text[self.pos]
            if char == "\\":
                if self.pos + 1 >= len(self.text):
                    raise ExpressionSyntaxError("a backslash at the end escapes nothing", self.pos)
                chars.append(self.text[self.pos + 1])
                self.pos += 2
            elif char == '"':
                self.pos += 1
                return Literal(start, "".join(chars))
            else:
                chars.append(char)
                self.pos += 1

    def number(self) -> Literal:
        start = self.pos
        if self.peek() in ("+", "-"):
            self.pos += 1
        while self.peek() in _DIGITS:
            self.pos += 1
        is_float = False
        if self.peek() == "." and self.text[self.pos + 1:self.pos + 2] in _DIGITS:
            is_float = True
            self.pos += 1
            while self.peek() in _DIGITS:
                self.pos += 1
        if self.peek().isalpha() or self.peek() == "_":
            raise ExpressionSyntaxError(f"malformed number {self.text[start:self.pos + 1]!r}", start)
        literal = self.text[start:self.pos]
        return Literal(start, float(literal) if is_float else int(literal))

    def hex_number(self) -> Literal:
        start = self.pos
        self.pos += 2
        digits_start = self.pos
        while self.peek() and self.peek() in "0123456789abcdefABCDEF":
            self.pos += 1
        if self.pos == digits_start:
            raise ExpressionSyntaxError("'&H' must be followed by hexadecimal digits, as in &HF7", start)
        return Literal(start, int(self.text[digits_start:self.pos], 16))

    def name(self, depth: int) -> Node:
        start = self.pos
        while self.peek() and (self.peek().isalnum() or self.peek() == "_"):
            self.pos += 1
        name = self.text[start:self.pos]
        after_name = self.pos
        self.skip_space()
        if self.peek() != "(":
            if name in NAMED_CONSTANTS:
                self.pos = after_name
                return Literal(start, NAMED_CONSTANTS[name])
            raise ExpressionSyntaxError(
                f"{name!r} is neither a function call nor a value; write attributes as [{name}] and "
                f"strings as \"{name}\"", start)
        self.pos += 1
        args: list[Node | None] = []
        self.skip_space()
        if self.peek() == ")":
            self.pos += 1
            return Call(start, name, ())
        while True:
            self.skip_space()
            if self.peek() in (",", ")"):
                args.append(None)
            else:
                args.append(self.expression(depth + 1))
                self.skip_space()
            char = self.peek()
            if char == ",":
                self.pos += 1
                continue
            if char == ")":
                self.pos += 1
                return Call(start, name, tuple(args))
            if self.at_end():
                raise ExpressionSyntaxError(f"unclosed '(' of {name}: expected ',' or ')'", start + len(name))
            raise ExpressionSyntaxError(f"unexpected {self.describe()} in the arguments of {name}; "
                                        "expected ',' or ')'", self.pos)
