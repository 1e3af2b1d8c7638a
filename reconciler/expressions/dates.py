"""Dates the way Entra's functions handle them: .NET parsing and custom formats, AD file times, VB intervals.

Every datetime here is timezone-aware UTC, as Entra's date functions return UTC (a text without an offset is
read as UTC, which is what Entra's servers do with their UTC clock).
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from reconciler.errors import EvaluationError
from reconciler.expressions.values import Value, to_text

FILETIME_EPOCH = datetime(1601, 1, 1, tzinfo=UTC)
INTERVALS = ("yyyy", "m", "d", "ww", "h", "n", "s")

_OFFSET = r"(?P<offset>Z|[+-]\d{2}:?\d{2})?"
_ISO = re.compile(
    r"^(?P<y>\d{4})-(?P<mo>\d{1,2})-(?P<d>\d{1,2})"
    r"(?:[T ](?P<h>\d{1,2}):(?P<mi>\d{2})(?::(?P<s>\d{2})(?:\.(?P<f>\d{1,7}))?)?)?\s*" + _OFFSET + r"$"
)
_US = re.compile(
    r"^(?P<mo>\d{1,2})/(?P<d>\d{1,2})/(?P<y>\d{4})"
    r"(?:\s+(?P<h>\d{1,2}):(?P<mi>\d{2})(?::(?P<s>\d{2}))?\s*(?P<tt>AM|PM|am|pm)?)?\s*" + _OFFSET + r"$"
)


def to_datetime(value: Value, what: str = "the date") -> datetime:
    """A datetime from a datetime or a date text (ISO 8601, ``yyyy-MM-dd±hh:mm``, ``M/d/yyyy h:mm:ss tt``)."""
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    text = to_text(value)
    if text is None:
        raise EvaluationError(f"{what} is null")
    stripped = text.strip()
    match = _ISO.match(stripped) or _US.match(stripped)
    if not match:
        raise EvaluationError(f"{what} {text!r} is not a date Entra can read (e.g. 2021-06-30T08:00:00Z)")
    parts = match.groupdict()
    hour = int(parts["h"] or 0)
    if parts.get("tt"):
        if not 1 <= hour <= 12:
            raise EvaluationError(f"{what} {text!r}: hour {hour} with AM/PM")
        hour = hour % 12 + (12 if parts["tt"].upper() == "PM" else 0)
    fraction = (parts.get("f") or "").ljust(6, "0")[:6]
    try:
        result = datetime(int(parts["y"]), int(parts["mo"]), int(parts["d"]), hour, int(parts["mi"] or 0),
                          int(parts["s"] or 0), int(fraction or 0), tzinfo=_zone(parts["offset"]))
    except ValueError as exc:
        raise EvaluationError(f"{what} {text!r} is not a valid date: {exc}") from None
    return result.astimezone(UTC)


def _zone(offset: str | None) -> timezone:
    if not offset or offset == "Z":
        return UTC
    sign = -1 if offset[0] == "-" else 1
    digits = offset[1:].replace(":", "")
    return timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))


def from_filetime(value: int) -> datetime:
    """AD's date format (100-nanosecond ticks since 1601-01-01 UTC) to a datetime."""
    try:
        return FILETIME_EPOCH + timedelta(microseconds=value // 10)
    except OverflowError:
        raise EvaluationError(f"{value} is outside the range of AD dates") from None


def to_filetime(value: datetime) -> int:
    delta = value.astimezone(UTC) - FILETIME_EPOCH
    return (delta.days * 86_400 + delta.seconds) * 10_000_000 + delta.microseconds * 10


def date_add(interval: str, number: int, value: datetime) -> datetime:
    """VB's DateAdd: months and years keep the day, clamped to the month's end."""
    if interval in ("yyyy", "m"):
        months = number * (12 if interval == "yyyy" else 1)
        total = value.year * 12 + value.month - 1 + months
        year, month = divmod(total, 12)
        if not 1 <= year <= 9999:
            raise EvaluationError("the date is out of range")
        day = min(value.day, calendar.monthrange(year, month + 1)[1])
        return value.replace(year=year, month=month + 1, day=day)
    step = {"d": timedelta(days=1), "ww": timedelta(weeks=1), "h": timedelta(hours=1),
            "n": timedelta(minutes=1), "s": timedelta(seconds=1)}.get(interval)
    if step is None:
        raise EvaluationError(f"unknown interval {interval!r}; one of {', '.join(INTERVALS)}")
    try:
        return value + step * number
    except OverflowError:
        raise EvaluationError("the date is out of range") from None


def date_diff(interval: str, first: datetime, second: datetime) -> int:
    """VB's DateDiff(interval, date1, date2): whole intervals from date1 to date2 (negative when earlier)."""
    if interval == "yyyy":
        return second.year - first.year
    if interval == "m":
        return (second.year - first.year) * 12 + second.month - first.month
    if interval == "ww":  # calendar weeks: both dates move back to their Sunday first
        first = first - timedelta(days=(first.weekday() + 1) % 7)
        second = second - timedelta(days=(second.weekday() + 1) % 7)
        return int(_truncate((second - first).total_seconds() / 86_400) / 7)
    seconds = {"d": 86_400, "h": 3_600, "n": 60, "s": 1}.get(interval)
    if seconds is None:
        raise EvaluationError(f"unknown interval {interval!r}; one of {', '.join(INTERVALS)}")
    return _truncate((second - first).total_seconds() / seconds)


def _truncate(number: float) -> int:
    return int(number)  # toward zero, like .NET's (long) cast


# .NET custom date and time format strings (FormatDateTime's inputFormat and outputFormat).
_TOKEN = re.compile(r"'[^']*'|\"[^\"]*\"|\\.|yyyy|yy|MMMM|MMM|MM|M|dddd|ddd|dd|d|HH|H|hh|h|mm|m|ss|s"
                    r"|f{1,7}|F{1,7}|tt|t|zzz|zz|z|K|.", re.DOTALL)
_MONTHS = list(calendar.month_name)[1:]
_DAYS = list(calendar.day_name)
_WORD = r"[A-Za-z]+"
_OFFSET_TEXT = r"[+-]\d{1,2}(?::?\d{2})?"

# The parts of a date a format's fields read, as passed to ``datetime`` (and the AM/PM and offset seen).
Parts = dict[str, Any]
_START: Parts = {"year": 1, "month": 1, "day": 1, "hour": 0, "minute": 0, "second": 0, "micro": 0,
                 "meridiem": None, "zone": None}


@dataclass(frozen=True)
class _Field:
    """One .NET format specifier: what it matches in a text, the parts it reads from that, how a date writes it."""

    pattern: str
    read: Callable[[str, str], Parts]  # (the matched text, the whole text for errors) -> the parts it sets
    write: Callable[[datetime], str]


def _number(part: str, pattern: str, width: int, value: Callable[[datetime], int]) -> _Field:
    return _Field(pattern, lambda raw, _text: {part: int(raw)}, lambda date: f"{value(date):0{width}d}")


def _month(raw: str, text: str) -> Parts:
    return {"month": _month_number(raw, text)}


def _meridiem(raw: str, _text: str) -> Parts:
    return {"meridiem": raw.upper()[0]}


def _offset(raw: str, _text: str) -> Parts:
    """A ``z`` or ``K`` offset (``+2``, ``+02``, ``+0200``, ``+02:00``; ``Z`` is UTC; nothing sets nothing)."""
    if raw == "Z":
        return {"zone": UTC}
    if not raw:
        return {}
    digits = raw[1:].replace(":", "")
    digits = digits.rjust(2, "0") + "00" if len(digits) <= 2 else digits.rjust(4, "0")
    return {"zone": _zone(raw[0] + digits)}


def _fraction(raw: str, _text: str) -> Parts:
    return {"micro": int((raw or "0").ljust(6, "0")[:6])}


def _ignored(_raw: str, _text: str) -> Parts:
    return {}  # the day of the week is read and not checked


def _hour12(date: datetime) -> int:
    return date.hour % 12 or 12


def _fraction_digits(width: int, *, trimmed: bool) -> Callable[[datetime], str]:
    def write(date: datetime) -> str:
        digits = f"{date.microsecond:06d}0"[:width]
        return digits.rstrip("0") if trimmed else digits

    return write


def _fraction_fields() -> dict[str, _Field]:
    """f to fffffff (exactly that many digits) and F to FFFFFFF (up to that many; written without trailing zeros)."""
    fields: dict[str, _Field] = {}
    for width in range(1, 8):
        fields["f" * width] = _Field(rf"\d{{{width}}}", _fraction, _fraction_digits(width, trimmed=False))
        fields["F" * width] = _Field(rf"\d{{0,{width}}}", _fraction, _fraction_digits(width, trimmed=True))
    return fields


_FIELDS: dict[str, _Field] = {
    "yyyy": _number("year", r"\d{4}", 4, lambda d: d.year),
    "yy": _Field(r"\d{2}", lambda raw, _text: {"year": int(raw) + 2000}, lambda d: f"{d.year % 100:02d}"),
    "MMMM": _Field(_WORD, _month, lambda d: _MONTHS[d.month - 1]),
    "MMM": _Field(_WORD, _month, lambda d: _MONTHS[d.month - 1][:3]),
    "MM": _number("month", r"\d{2}", 2, lambda d: d.month),
    "M": _number("month", r"\d{1,2}", 1, lambda d: d.month),
    "dddd": _Field(_WORD, _ignored, lambda d: _DAYS[d.weekday()]),
    "ddd": _Field(_WORD, _ignored, lambda d: _DAYS[d.weekday()][:3]),
    "dd": _number("day", r"\d{2}", 2, lambda d: d.day),
    "d": _number("day", r"\d{1,2}", 1, lambda d: d.day),
    "HH": _number("hour", r"\d{2}", 2, lambda d: d.hour),
    "H": _number("hour", r"\d{1,2}", 1, lambda d: d.hour),
    "hh": _number("hour", r"\d{2}", 2, _hour12),
    "h": _number("hour", r"\d{1,2}", 1, _hour12),
    "mm": _number("minute", r"\d{2}", 2, lambda d: d.minute),
    "m": _number("minute", r"\d{1,2}", 1, lambda d: d.minute),
    "ss": _number("second", r"\d{2}", 2, lambda d: d.second),
    "s": _number("second", r"\d{1,2}", 1, lambda d: d.second),
    **_fraction_fields(),
    "tt": _Field("AM|PM|A|P", _meridiem, lambda d: "AM" if d.hour < 12 else "PM"),
    "t": _Field("AM|PM|A|P", _meridiem, lambda d: "A" if d.hour < 12 else "P"),
    "zzz": _Field(_OFFSET_TEXT, _offset, lambda d: "+00:00"),  # every date here is UTC
    "zz": _Field(_OFFSET_TEXT, _offset, lambda d: "+00"),
    "z": _Field(_OFFSET_TEXT, _offset, lambda d: "+0"),
    "K": _Field(r"Z|[+-]\d{2}:\d{2}|", _offset, lambda d: "Z"),
}


def _tokens(fmt: str) -> list[str]:
    return _TOKEN.findall(fmt)


def _literal(token: str) -> str | None:
    """The text a token stands for as itself (quoted, escaped, or not a specifier); None for a specifier."""
    if len(token) >= 2 and token[0] == token[-1] and token[0] in "'\"":
        return token[1:-1]
    if token.startswith("\\") and len(token) == 2:
        return token[1]
    return None if token in _FIELDS else token


def parse_with_format(text: str, fmt: str) -> datetime:
    """.NET's DateTime.ParseExact with a custom format; an offset in the text converts the result to UTC."""
    pattern = ""
    fields: list[tuple[str, _Field]] = []
    for index, token in enumerate(_tokens(fmt)):
        literal = _literal(token)
        if literal is not None:
            pattern += re.escape(literal)
            continue
        group = f"g{index}"
        pattern += f"(?P<{group}>{_FIELDS[token].pattern})"
        fields.append((group, _FIELDS[token]))
    match = re.fullmatch(pattern, text.strip(), flags=re.IGNORECASE)
    if not match:
        raise EvaluationError(f"{text!r} does not have the format {fmt!r}")
    parts = dict(_START)
    for group, field in fields:  # in the format's order: a later field overrides an earlier one
        parts.update(field.read(match.group(group), text))
    if parts["meridiem"] is not None:
        parts["hour"] = parts["hour"] % 12 + (12 if parts["meridiem"] == "P" else 0)
    try:
        result = datetime(parts["year"], parts["month"], parts["day"], parts["hour"], parts["minute"],
                          parts["second"], parts["micro"], tzinfo=parts["zone"] or UTC)
    except ValueError as exc:
        raise EvaluationError(f"{text!r} is not a valid date: {exc}") from None
    return result.astimezone(UTC)


def _month_number(name: str, text: str) -> int:
    for index, month in enumerate(_MONTHS, start=1):
        if month.lower() == name.lower() or month[:3].lower() == name.lower():
            return index
    raise EvaluationError(f"{text!r}: unknown month {name!r}")


def format_with(value: datetime, fmt: str) -> str:
    """.NET's DateTime.ToString(format) with the invariant culture."""
    out: list[str] = []
    for token in _tokens(fmt):
        literal = _literal(token)
        out.append(literal if literal is not None else _FIELDS[token].write(value))
    return "".join(out)
