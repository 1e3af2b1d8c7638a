"""The values an expression works with, and how they read as text.

- ``None`` is null: an absent attribute, an omitted argument, or a function with nothing to return.
- ``str``; ``bool`` (reads as "True" / "False", as .NET writes it); ``int`` / ``float``.
- ``datetime`` (always UTC), from CDate, Now, DateAdd, DateFromNum; it reads as ``M/d/yyyy h:mm:ss tt``.
- ``list`` for multi-valued attributes (proxyAddresses, Split's result, appRoleAssignments).
- ``dict`` for complex values (a role from AppRoleAssignmentsComplex).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from reconciler.errors import EvaluationError

Value = Any


def is_null(value: Value) -> bool:
    return value is None or (isinstance(value, list) and not value)


def is_empty(value: Value) -> bool:
    return is_null(value) or value == ""


def to_text(value: Value) -> str | None:
    """A value as a string, the way Entra's functions read their string arguments (None stays None)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, str):
        return value
    if isinstance(value, datetime):
        return format_entra_datetime(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list):
        if len(value) == 1:
            return to_text(value[0])
        raise EvaluationError(f"expected one value, got {len(value)} (use Item() or Join())")
    raise EvaluationError(f"expected a string, got a {type(value).__name__}")


def to_int(value: Value, what: str) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    text = to_text(value)
    try:
        return int(str(text).strip())
    except (TypeError, ValueError):
        raise EvaluationError(f"{what} must be a whole number, got {text!r}") from None


def to_bool(value: Value, what: str) -> bool:
    """CBool's reading: booleans, "True"/"False" in any case, and numbers (non-zero is true)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    text = to_text(value)
    if text is None:
        raise EvaluationError(f"{what} is null")
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        return float(lowered) != 0
    except ValueError:
        raise EvaluationError(f"{what} must be a boolean or a number, got {text!r}") from None


def values_of(value: Value) -> list[Value]:
    """A value as a list of values: null is empty, a single value is one item."""
    if value is None:
        return []
    if isinstance(value, list):
        return [v for v in value if v is not None]
    return [value]


def to_json(value: Value) -> Any:
    """A value as JSON data: datetimes become Entra's date text, everything else is already JSON."""
    if isinstance(value, datetime):
        return format_entra_datetime(value)
    if isinstance(value, list):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    return value


def format_entra_datetime(value: datetime) -> str:
    """.NET's ``M/d/yyyy h:mm:ss tt`` (invariant culture), the format Entra's date functions return."""
    hour = value.hour % 12 or 12
    meridiem = "AM" if value.hour < 12 else "PM"
    return f"{value.month}/{value.day}/{value.year} {hour}:{value.minute:02d}:{value.second:02d} {meridiem}"
