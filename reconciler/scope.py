"""Scoping filters (pure): which directory users pass the manifest's attribute-based rules.

A filter is a list of clauses combined with AND; several filters combine with OR; no filter at all lets everyone
through. A clause on a null or empty value is false, except ``IS NULL`` and ``IS NOT NULL`` which test exactly
that (Microsoft: "scoping filters will return false if the value is null / empty"). String comparisons are
case-sensitive, as Entra's are; regular expressions match anywhere in the value (.NET's Regex.IsMatch).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

from reconciler.expressions.text import dotnet_regex
from reconciler.manifest.model import ScopingClause

Lookup = Callable[[str], Any]


def passes(filters: Sequence[Sequence[ScopingClause]], lookup: Lookup) -> bool:
    """True when there are no filters or every clause of at least one filter holds."""
    if not filters:
        return True
    return any(all(clause_holds(clause, lookup(clause.attribute)) for clause in group) for group in filters)


def clause_holds(clause: ScopingClause, value: Any) -> bool:
    operator = clause.operator
    empty = value is None or value == "" or value == []
    if operator == "IS NULL":
        return empty
    if operator == "IS NOT NULL":
        return not empty
    if empty:
        return False
    if operator in ("IS TRUE", "IS FALSE"):
        flag = _boolean(value)
        return flag is not None and flag == (operator == "IS TRUE")
    if isinstance(value, list):  # Entra does not filter on multi-valued attributes
        return False
    text = _text(value)
    operand = _text(clause.value)
    if operator == "EQUALS":
        return text == operand
    if operator == "NOT EQUALS":
        return text != operand
    if operator == "Includes":
        return operand in text
    if operator == "ENDS_WITH":
        return text.endswith(operand)
    if operator == "REGEX MATCH":
        return _regex(operand).search(text) is not None
    if operator == "NOT REGEX MATCH":
        return _regex(operand).search(text) is None
    if operator in ("Greater_Than", "Greater_Than_OR_EQUALS"):
        number, limit = _integer(value), _integer(clause.value)
        if number is None or limit is None:
            return False
        return number > limit if operator == "Greater_Than" else number >= limit
    raise ValueError(f"unknown scoping operator {operator!r}")


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    return str(value)


def _boolean(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    lowered = str(value).strip().lower()
    return {"true": True, "false": False}.get(lowered)


def _integer(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    text = str(value).strip()
    return int(text) if re.fullmatch(r"[+-]?\d+", text) else None


@lru_cache(maxsize=256)
def _regex(pattern: str) -> re.Pattern[str]:
    return dotnet_regex(pattern)
