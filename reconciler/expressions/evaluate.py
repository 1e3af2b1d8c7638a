"""Evaluate a parsed expression for one object: attributes come from a lookup, functions from the registry."""

from __future__ import annotations

from datetime import datetime

from reconciler.errors import EvaluationError
from reconciler.expressions import dates
from reconciler.expressions.context import Context
from reconciler.expressions.functions import FUNCTIONS
from reconciler.expressions.parse import Attribute, Call, Compare, Literal, Node
from reconciler.expressions.values import Value, to_text


class Args:
    """A call's arguments, evaluated on first use; an omitted argument reads as null."""

    def __init__(self, nodes: tuple[Node | None, ...], context: Context) -> None:
        self.nodes = nodes
        self.context = context
        self._values: dict[int, Value] = {}

    def __len__(self) -> int:
        return len(self.nodes)

    def given(self, index: int) -> bool:
        return index < len(self.nodes) and self.nodes[index] is not None

    def __getitem__(self, index: int) -> Value:
        if index not in self._values:
            node = self.nodes[index] if index < len(self.nodes) else None
            self._values[index] = None if node is None else evaluate(node, self.context)
        return self._values[index]

    def text(self, index: int) -> str | None:
        return to_text(self[index])


def evaluate(node: Node, context: Context | None = None) -> Value:
    """The value of ``node``; raises :class:`EvaluationError` when the object's data does not fit."""
    context = context or Context()
    if isinstance(node, Literal):
        return node.value
    if isinstance(node, Attribute):
        return context.attributes(node.name)
    if isinstance(node, Call):
        function = FUNCTIONS.get(node.name)
        if function is None:
            raise EvaluationError(f"unknown function {node.name!r}")
        try:
            return function.impl(Args(node.args, context))
        except EvaluationError as error:
            message = str(error)
            raise EvaluationError(message if message.startswith(node.name) else f"{node.name}: {message}") from None
    if isinstance(node, Compare):
        return _compare(node.op, evaluate(node.left, context), evaluate(node.right, context))
    raise EvaluationError(f"cannot evaluate {type(node).__name__}")


def _compare(op: str, left: Value, right: Value) -> bool:
    if left is None or right is None:
        raise EvaluationError(f"'{op}' compares a null value (Entra's IIF fails on a null source; "
                              "use Switch with a \"\" key instead)")
    a, b = _comparable(left, right, ordering=op not in ("=", "<>"))
    if op == "=":
        return a == b
    if op == "<>":
        return a != b
    if op == ">":
        return a > b
    if op == ">=":
        return a >= b
    if op == "<":
        return a < b
    return a <= b


def _comparable(left: Value, right: Value, *, ordering: bool) -> tuple[Value, Value]:
    """Numbers compare as numbers (numeric texts too, for > and <), dates as dates, the rest as exact text."""
    if isinstance(left, datetime) or isinstance(right, datetime):
        return dates.to_datetime(left), dates.to_datetime(right)
    numbers = (_number(left), _number(right))
    numeric = _is_number(left) or _is_number(right) or (ordering and _both_numeric_text(left, right))
    if None not in numbers and numeric:
        return numbers
    return to_text(left), to_text(right)


def _is_number(value: Value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _both_numeric_text(left: Value, right: Value) -> bool:
    return isinstance(left, str) and isinstance(right, str) and _number(left) is not None \
        and _number(right) is not None


def _number(value: Value) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None
