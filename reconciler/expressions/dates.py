"""Dates the way Entra's functions handle them: .NET parsing and custom formats, AD file times, VB intervals.

Every datetime here is timezone-aware UTC, as Entra's date functions return UTC (a text without an offset is
read as UTC, which is what Entra's servers do with their UTC clock).
"""

from __future__ import annotations

import calendar
import re
from datetime import UTC, datetime, timedelta, timezone

from reconciler.expressions.values import EvaluationError, Value, to_text

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
_NUMERIC = {"yyyy": r"\d{4}", "yy": r"\d{2}", "MM": r"\d{2}", "M": r"\d{1,2}", "dd": r"\d{2}", "d": r"\d{1,2}",
            "HH": r"\d{2}", "H": r"\d{1,2}", "hh": r"\d{2}", "h": r"\d{1,2}", "mm": r"\d{2}", "m": r"\d{1,2}",
            "ss": r"\d{2}", "s": r"\d{1,2}"}
_MONTHS = list(calendar.month_name)[1:]
_DAYS = list(calendar.day_name)


def _tokens(fmt: str) -> list[str]:
    return _TOKEN.findall(fmt)


def _literal(token: str) -> str | None:
    if len(token) >= 2 and token[0] == token[-1] and token[0] in "'\"":
        return token[1:-1]
    if token.startswith("\\") and len(token) == 2:
        return token[1]
    if token in _NUMERIC or token[0] in "fFtzK" or token in ("MMMM", "MMM", "dddd", "ddd"):
        return None
    return token


def parse_with_format(text: str, fmt: str) -> datetime:
    """.NET's DateTime.ParseExact with a custom format; an offset in the text converts the result to UTC."""
    pattern = ""
    names: list[str] = []
    for index, token in enumerate(_tokens(fmt)):
        literal = _literal(token)
        group = f"g{index}"
        if literal is not None:
            pattern += re.escape(literal)
            continue
        names.append(token)
        if token in _NUMERIC:
            pattern += f"(?P<{group}>{_NUMERIC[token]})"
        elif token[0] in "fF":
            pattern += f"(?P<{group}>\\d{{{len(token)}}})" if token[0] == "f" else f"(?P<{group}>\\d{{0,{len(token)}}})"
        elif token in ("tt", "t"):
            pattern += f"(?P<{group}>AM|PM|A|P)"
        elif token in ("zzz", "zz", "z"):
            pattern += f"(?P<{group}>[+-]\\d{{1,2}}(?::?\\d{{2}})?)"
        elif token == "K":
            pattern += f"(?P<{group}>Z|[+-]\\d{{2}}:\\d{{2}}|)"
        elif token in ("MMMM", "MMM"):
            pattern += f"(?P<{group}>[A-Za-z]+)"
        else:  # ddd, dddd: the day name is read and ignored
            pattern += f"(?P<{group}>[A-Za-z]+)"
        names[-1] = f"{group}:{token}"
    match = re.fullmatch(pattern, text.strip(), flags=re.IGNORECASE)
    if not match:
        raise EvaluationError(f"{text!r} does not have the format {fmt!r}")
    fields = {"year": 1, "month": 1, "day": 1, "hour": 0, "minute": 0, "second": 0, "micro": 0}
    meridiem = None
    zone = None
    for entry in names:
        group, token = entry.split(":", 1)
        raw = match.group(group)
        if token in ("yyyy", "yy"):
            fields["year"] = int(raw) + (2000 if token == "yy" else 0)
        elif token in ("MM", "M"):
            fields["month"] = int(raw)
        elif token in ("MMMM", "MMM"):
            fields["month"] = _month_number(raw, text)
        elif token in ("dd", "d"):
            fields["day"] = int(raw)
        elif token[0] in "Hh":
            fields["hour"] = int(raw)
        elif token[0] == "m":
            fields["minute"] = int(raw)
        elif token[0] == "s":
            fields["second"] = int(raw)
        elif token[0] in "fF":
            fields["micro"] = int((raw or "0").ljust(6, "0")[:6])
        elif token[0] == "t":
            meridiem = raw.upper()[0]
        elif token[0] in "zK" and raw and raw != "Z":
            digits = raw[1:].replace(":", "")
            digits = digits.rjust(2, "0") + "00" if len(digits) <= 2 else digits.rjust(4, "0")
            zone = _zone(raw[0] + digits)
        elif token == "K" and raw == "Z":
            zone = UTC
    if meridiem is not None:
        fields["hour"] = fields["hour"] % 12 + (12 if meridiem == "P" else 0)
    try:
        result = datetime(fields["year"], fields["month"], fields["day"], fields["hour"], fields["minute"],
                          fields["second"], fields["micro"], tzinfo=zone or UTC)
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
        if literal is not None:
            out.append(literal)
        elif token in ("yyyy", "yy"):
            out.append(f"{value.year:04d}" if token == "yyyy" else f"{value.year % 100:02d}")
        elif token == "MMMM":
            out.append(_MONTHS[value.month - 1])
        elif token == "MMM":
            out.append(_MONTHS[value.month - 1][:3])
        elif token in ("MM", "M"):
            out.append(f"{value.month:0{len(token)}d}")
        elif token == "dddd":
            out.append(_DAYS[value.weekday()])
        elif token == "ddd":
            out.append(_DAYS[value.weekday()][:3])
        elif token in ("dd", "d"):
            out.append(f"{value.day:0{len(token)}d}")
        elif token in ("HH", "H"):
            out.append(f"{value.hour:0{len(token)}d}")
        elif token in ("hh", "h"):
            out.append(f"{value.hour % 12 or 12:0{len(token)}d}")
        elif token in ("mm", "m"):
            out.append(f"{value.minute:0{len(token)}d}")
        elif token in ("ss", "s"):
            out.append(f"{value.second:0{len(token)}d}")
        elif token[0] in "fF":
            digits = f"{value.microsecond:06d}0"[: len(token)]
            out.append(digits.rstrip("0") if token[0] == "F" else digits)
        elif token in ("tt", "t"):
            meridiem = "AM" if value.hour < 12 else "PM"
            out.append(meridiem if token == "tt" else meridiem[0])
        elif token == "zzz":
            out.append("+00:00")
        elif token == "zz":
            out.append("+00")
        elif token == "z":
            out.append("+0")
        elif token == "K":
            out.append("Z")
    return "".join(out)
