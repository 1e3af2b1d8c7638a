"""Static checks of a parsed expression: known functions, argument counts, known attributes, placement rules."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Collection
from dataclasses import dataclass

from reconciler.errors import ExpressionSyntaxError
from reconciler.expressions.functions import FUNCTIONS, Function
from reconciler.expressions.parse import Attribute, Call, Node, parse, walk


@dataclass(frozen=True)
class Finding:
    """One problem in an expression, at a 0-based ``offset`` in its text."""

    offset: int
    message: str


def check_text(text: str, attributes: Collection[str] | None = None) -> list[Finding]:
    """Parse and check ``text``; ``attributes`` are the known source attribute names (None: any name)."""
    try:
        tree = parse(text)
    except ExpressionSyntaxError as error:
        return [Finding(error.offset, error.message)]
    return check_tree(tree, attributes)


def check_tree(tree: Node, attributes: Collection[str] | None = None) -> list[Finding]:
    findings: list[Finding] = []
    for node in walk(tree):
        if isinstance(node, Call):
            findings.extend(_call(node, tree))
        elif isinstance(node, Attribute) and attributes is not None and node.name not in attributes:
            findings.append(Finding(node.offset, unknown_attribute(node.name, attributes)))
    return findings


def unknown_attribute(name: str, attributes: Collection[str]) -> str:
    if name.lower().startswith("extension_"):
        return (f"malformed directory extension attribute {name!r}: Entra writes them extension_<appId>_<name>, "
                "the appId as 32 lowercase hex digits without dashes "
                "(e.g. extension_0123456789abcdef0123456789abcdef_costCenter)")
    exact = next((a for a in attributes if a.lower() == name.lower()), None)
    close = [exact] if exact else difflib.get_close_matches(name, list(attributes), n=1, cutoff=0.7)
    hint = f" (did you mean {close[0]!r}? names are case-sensitive)" if close else ""
    return f"unknown source attribute {name!r}{hint}"


def _call(node: Call, root: Node) -> list[Finding]:
    function = FUNCTIONS.get(node.name)
    if function is None:
        exact = next((n for n in FUNCTIONS if n.lower() == node.name.lower()), None)
        close = [exact] if exact else difflib.get_close_matches(node.name, list(FUNCTIONS), n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}? the syntax is case-sensitive)" if close else ""
        return [Finding(node.offset, f"unknown function {node.name!r}{hint}")]
    count = len(node.args)
    findings = []
    too_few = count < function.min_args
    too_many = function.max_args is not None and count > function.max_args
    if too_few or too_many:
        findings.append(Finding(node.offset, f"{node.name} takes {function.arity()}, got {count}"))
    elif node.name == "Switch" and count % 2:
        findings.append(Finding(node.offset, "Switch takes a source, a default, then key/value pairs: an even "
                                             f"number of arguments, got {count}"))
    if node.name == "SelectUniqueValue" and node is not root:
        findings.append(Finding(node.offset, "SelectUniqueValue must be the outermost function (Entra's rule)"))
    required = _required_positions(node.name, count)
    findings.extend(Finding(node.offset, f"{node.name}: argument {i + 1} must not be empty")
                    for i in required if i < count and node.args[i] is None)
    return findings


def _required_positions(name: str, count: int) -> range:
    """Positions that may not be left empty (Switch's default, Coalesce's sources and Replace's options may)."""
    if name in ("Switch", "Replace", "FormatDateTime", "InStr", "Join", "Coalesce"):
        return range(1)
    if name == "RandomString":
        return range(5)
    function = FUNCTIONS[name]
    return range(function.min_args)


def uses(tree: Node, predicate: Callable[[Function], bool]) -> bool:
    """True when ``tree`` calls a function for which ``predicate`` holds."""
    return any(isinstance(n, Call) and n.name in FUNCTIONS and predicate(FUNCTIONS[n.name]) for n in walk(tree))
