"""Entra's attribute-mapping expression language: parse, check, evaluate.

Vocabulary: an *expression* is text such as ``Join(" ", [givenName], [surname])``; its *tree* is what
:func:`parse` makes of it; a :class:`Context` supplies the object's attributes (and the clock and random source
for Now, Guid and RandomString). Evaluation is pure apart from those three functions, which is why mappings that
use them are applied on create only.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from reconciler.errors import EvaluationError, ExpressionSyntaxError
from reconciler.expressions.check import Finding, check_text, check_tree, uses
from reconciler.expressions.evaluate import Context, evaluate
from reconciler.expressions.functions import FUNCTIONS, Function
from reconciler.expressions.parse import Node, parse, walk
from reconciler.expressions.values import Value, to_json, to_text


@dataclass(frozen=True)
class Expression:
    """A parsed expression with what the engine needs to know about it."""

    text: str
    tree: Node

    @property
    def deterministic(self) -> bool:
        """False when it calls Guid, Now or RandomString (each evaluation gives a new value)."""
        return not uses(self.tree, lambda f: not f.deterministic)

    @property
    def create_only(self) -> bool:
        """True when its value may be written only when the object is created."""
        return uses(self.tree, lambda f: not f.deterministic or f.create_only)

    def evaluate(self, context: Context | None = None) -> Value:
        return evaluate(self.tree, context)


@lru_cache(maxsize=1024)
def compile_expression(text: str) -> Expression:
    """Parse ``text`` once (cached); raises :class:`ExpressionSyntaxError`."""
    return Expression(text, parse(text))


__all__ = [
    "FUNCTIONS",
    "Context",
    "EvaluationError",
    "Expression",
    "ExpressionSyntaxError",
    "Finding",
    "Function",
    "Value",
    "check_text",
    "check_tree",
    "compile_expression",
    "evaluate",
    "parse",
    "to_json",
    "to_text",
    "walk",
]
