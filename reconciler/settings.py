"""Numeric settings read from the environment (limits, grace periods): a bad value is one line, never a crash."""

from __future__ import annotations

import math
import os

from reconciler.errors import ReconcilerError


def env_number(name: str, default: float, *, whole: bool = False, zero: bool = False) -> float:
    """The number in the variable ``name`` (``default`` when unset or empty); positive, or also 0 with ``zero``;
    a whole number with ``whole``. Anything else (text, nan, infinity, out of range) is a :class:`ReconcilerError`."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value: float = int(raw) if whole else float(raw)
    except ValueError:
        value = math.nan
    low_ok = value >= 0 if zero else value > 0
    if not (low_ok and value < math.inf):  # nan fails every comparison
        unit = "whole number" if whole else "number"
        wanted = f"{unit} (0 or more)" if zero else f"positive {unit}"
        raise ReconcilerError(f"{name}={raw[:40]!r}: expected a {wanted}")
    return value
