"""Every function of Entra's expression language, with Microsoft's documented semantics.

Each function receives its arguments lazily (:class:`Args`), so that IIF, Switch and Coalesce evaluate only the
branch they return, as Entra does. Null in, null out, unless the function's documentation says otherwise
(Left and Word return "" for a null string; the Is* tests and Coalesce look at nulls by design).
"""

from __future__ import annotations

import base64
import re
import string
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from reconciler.errors import EvaluationError
from reconciler.expressions import dates, text
from reconciler.expressions.context import Context
from reconciler.expressions.values import (
    Value,
    is_empty,
    is_null,
    to_bool,
    to_int,
    to_text,
    values_of,
)


class Args(Protocol):
    """A call's arguments as a function sees them (the evaluator's lazy arguments): evaluated on first use."""

    context: Context

    def __len__(self) -> int: ...

    def given(self, index: int) -> bool: ...

    def __getitem__(self, index: int) -> Value: ...

    def text(self, index: int) -> str | None: ...


ROLE_TYPE = "WindowsAzureActiveDirectoryRole"
# The special characters of Windows' password complexity rules, which RandomString draws from.
SPECIAL_CHARACTERS = "~!@#$%^&*_-+=`|\\(){}[]:;\"'<>,.?/"


@dataclass(frozen=True)
class Function:
    name: str
    min_args: int
    max_args: int | None  # None: any number
    impl: Callable[[Args], Value]
    deterministic: bool = True  # False: a new value each call (Guid, Now, RandomString): applied on create only
    create_only: bool = False  # also applied on create only (SelectUniqueValue depends on the target's state)

    def arity(self) -> str:
        if self.max_args == self.min_args:
            return f"{self.min_args} argument{'s' if self.min_args != 1 else ''}"
        if self.max_args is None:
            return f"at least {self.min_args} arguments"
        return f"{self.min_args} to {self.max_args} arguments"


def _text_fn(convert: Callable[[str], Value]) -> Callable[[Args], Value]:
    def run(args: Args) -> Value:
        source = args.text(0)
        return None if source is None else convert(source)
    return run


def _append(args: Args) -> Value:
    source = args.text(0)
    if source is None:
        return None
    return source + (args.text(1) or "")


def _roles(args: Args) -> list[dict[str, Value]]:
    roles = [r for r in values_of(args[0]) if isinstance(r, dict)]
    if len(roles) != len(values_of(args[0])):
        raise EvaluationError("expects [appRoleAssignments]")
    return sorted(roles, key=lambda r: str(r.get("value")))


def _app_roles_complex(args: Args) -> Value:
    roles = _roles(args)
    if not roles:
        return None
    return [{"primary": False, "type": ROLE_TYPE, "display": r.get("displayName"), "value": r.get("value")}
            for r in roles]


def _single_app_role(args: Args) -> Value:
    roles = _roles(args)
    return roles[0].get("value") if roles else None  # Entra: "no guarantee which"; here the first by value


def _bit_and(args: Args) -> Value:
    if args[0] is None or args[1] is None:
        return None
    return to_int(args[0], "BitAnd's value1") & to_int(args[1], "BitAnd's value2")


def _cbool(args: Args) -> Value:
    value = args[0]
    return None if value is None else to_bool(value, "CBool's expression")


def _cdate(args: Args) -> Value:
    value = args[0]
    return None if value is None else dates.to_datetime(value, "CDate's expression")


def _coalesce(args: Args) -> Value:
    for index in range(len(args)):
        value = args[index]
        if not is_null(value):
            return value
    return None


def _base64(source: str) -> str:
    return base64.b64encode(source.encode("utf-16-le")).decode("ascii")


def _utf8_hex(source: str) -> str:
    return source.encode("utf-8").hex().upper()


def _count(args: Args) -> Value:
    return len(values_of(args[0]))


def _cstr(args: Args) -> Value:
    return args.text(0)


def _interval(args: Args, index: int) -> str:
    interval = args.text(index)
    if interval not in dates.INTERVALS:
        raise EvaluationError(f"interval {interval!r} is not one of {', '.join(dates.INTERVALS)}")
    return interval


def _date_add(args: Args) -> Value:
    interval = _interval(args, 0)
    if args[1] is None or args[2] is None:
        return None
    return dates.date_add(interval, to_int(args[1], "DateAdd's value"), dates.to_datetime(args[2], "DateAdd's date"))


def _date_diff(args: Args) -> Value:
    interval = _interval(args, 0)
    if args[1] is None or args[2] is None:
        return None
    return dates.date_diff(interval, dates.to_datetime(args[1], "DateDiff's date1"),
                           dates.to_datetime(args[2], "DateDiff's date2"))


def _date_from_num(args: Args) -> Value:
    value = args[0]
    return None if value is None else dates.from_filetime(to_int(value, "DateFromNum's value"))


def _format_date_time(args: Args) -> Value:
    source = args.text(0)
    if len(args) == 3:
        input_format, output_format = args.text(1), args.text(2)
    else:
        input_format, output_format = args.text(2), args.text(3)
    if source is None:
        return None
    if not input_format or not output_format:
        raise EvaluationError("FormatDateTime needs an inputFormat and an outputFormat")
    return dates.format_with(dates.parse_with_format(source, input_format), output_format)


def _guid(args: Args) -> Value:
    return str(uuid.UUID(int=args.context.random.getrandbits(128), version=4))


def _ignore_flow(args: Args) -> Value:
    value = args[0]
    return None if is_empty(value) else value


def _iif(args: Args) -> Value:
    condition = args[0]
    if condition is None:
        raise EvaluationError("IIF's condition is null (Entra's IIF fails on a null source; "
                              "use Switch with a \"\" key instead)")
    return args[1] if to_bool(condition, "IIF's condition") else args[2]


def _instr(args: Args) -> Value:
    haystack, needle = args.text(0), args.text(1)
    if haystack is None or needle is None:
        return None
    start = to_int(args[2], "InStr's start") if args.given(2) and args[2] is not None else 1
    if start < 1:
        raise EvaluationError(f"InStr's start must be 1 or more, got {start}")
    mode = args.text(3) if args.given(3) else "vbBinaryCompare"
    if mode not in ("vbBinaryCompare", "vbTextCompare"):
        raise EvaluationError(f"InStr's compareType is vbBinaryCompare or vbTextCompare, got {mode!r}")
    if mode == "vbTextCompare":
        haystack, needle = haystack.casefold(), needle.casefold()
    return haystack.find(needle, start - 1) + 1


def _is_string(args: Args) -> Value:
    return isinstance(args[0], str)


def _item(args: Args) -> Value:
    items = values_of(args[0])
    if args[1] is None:
        return None
    index = to_int(args[1], "Item's index")
    return items[index - 1] if 1 <= index <= len(items) else None


def _join(args: Args) -> Value:
    separator = args.text(0) or ""
    parts: list[str] = []
    for index in range(1, len(args)):
        for value in values_of(args[index]):
            piece = to_text(value)
            if piece:  # Microsoft's example Join(", ", "", [surname], [givenName]) gives "Doe, John"
                parts.append(piece)
    return separator.join(parts) if parts else None


def _left(args: Args) -> Value:
    source = args.text(0)
    if source is None:
        return ""
    count = to_int(args[1], "Left's numChars")
    return source if count < 0 else source[:count]


def _mid(args: Args) -> Value:
    source = args.text(0)
    if source is None:
        return None
    start = to_int(args[1], "Mid's start")
    length = to_int(args[2], "Mid's length")
    if start < 1 or length < 0:
        raise EvaluationError(f"Mid needs start >= 1 and length >= 0, got {start} and {length}")
    return source[start - 1:start - 1 + length]


def _not(args: Args) -> Value:
    value = args[0]
    if value is None:
        return None
    return (to_text(value) or "").strip().lower() != "true"


def _now(args: Args) -> Value:
    return args.context.clock()


def _num_from_date(args: Args) -> Value:
    value = args[0]
    return None if value is None else dates.to_filetime(dates.to_datetime(value, "NumFromDate's value"))


def _pcase(args: Args) -> Value:
    source = args.text(0)
    if source is None:
        return None
    separators = args.text(1) if args.given(1) else None
    return text.proper_case(source, separators)


def _random_string(args: Args) -> Value:
    length, digits, specials, capitals, lowers = (to_int(args[i], "RandomString's counts") for i in range(5))
    avoid = set(args.text(5) or "") if args.given(5) else set()
    if not 0 < length <= 256:
        raise EvaluationError(f"RandomString's length is 1 to 256, got {length}")
    if min(digits, specials, capitals, lowers) < 0 or digits + specials + capitals + lowers > length:
        raise EvaluationError("RandomString's minimums must be >= 0 and add up to at most its length")
    pools = [[c for c in pool if c not in avoid] for pool in
             (string.digits, SPECIAL_CHARACTERS, string.ascii_uppercase, string.ascii_lowercase)]
    rng = args.context.random
    chars: list[str] = []
    for pool, count in zip(pools, (digits, specials, capitals, lowers), strict=True):
        if count and not pool:
            raise EvaluationError("RandomString's charactersToAvoid leaves no character for a required class")
        chars.extend(rng.choice(pool) for _ in range(count))
    everything = [c for pool in (pools[0], pools[2], pools[3]) for c in pool] or pools[1]
    chars.extend(rng.choice(everything) for _ in range(length - len(chars)))
    rng.shuffle(chars)
    return "".join(chars)


def _remove_duplicates(args: Args) -> Value:
    value = args[0]
    if not isinstance(value, list):
        return value
    seen: list[Value] = []
    for item in value:
        if item not in seen:
            seen.append(item)
    return seen


def _replace(args: Args) -> Value:
    """Replace's modes, chosen by which of its seven arguments are given (Microsoft's documented table)."""
    given = {name: args.given(i) for i, name in enumerate(
        ("source", "oldValue", "regexPattern", "regexGroupName", "replacementValue", "replacementAttributeName",
         "template"))}
    source = args.text(0)
    if given["regexPattern"] and given["regexGroupName"] and given["replacementAttributeName"]:
        if not is_empty(source):
            return source
        other = args.text(5)
        if other is None:
            return None
        pattern, group = _regex(args.text(2)), _group_name(args.text(3))
        _check_group(pattern, group)
        match = pattern.search(other)
        return match.group(group) if match else None
    if given["oldValue"] and given["template"]:
        template, old = args.text(6), args.text(1)
        return None if source is None or template is None else template.replace(old or "", source)
    if source is None:
        return None
    if given["oldValue"] and given["replacementValue"]:
        old = args.text(1) or ""
        return source.replace(old, args.text(4) or "") if old else source
    if given["regexPattern"] and given["replacementValue"]:
        pattern, replacement = _regex(args.text(2)), args.text(4) or ""
        if given["regexGroupName"]:
            group = _group_name(args.text(3))
            return _replace_group(pattern, group, replacement, source)
        return pattern.sub(lambda m: _expand(replacement, m), source)
    raise EvaluationError("Replace needs oldValue with replacementValue or template, or regexPattern with "
                          "replacementValue or regexGroupName and replacementAttributeName")


def _regex(pattern: str | None) -> re.Pattern[str]:
    """A .NET regular expression in Python's dialect: named groups (?<name>...) become (?P<name>...)."""
    try:
        return text.dotnet_regex(pattern or "")
    except re.error as exc:
        raise EvaluationError(f"invalid regular expression {pattern!r}: {exc}") from None


def _group_name(name: str | None) -> str:
    if not name:
        raise EvaluationError("regexGroupName is empty")
    return name


def _check_group(pattern: re.Pattern[str], group: str) -> None:
    if group not in pattern.groupindex:
        raise EvaluationError(f"the regular expression has no group named {group!r}")


def _replace_group(pattern: re.Pattern[str], group: str, replacement: str, source: str) -> str:
    _check_group(pattern, group)
    out: list[str] = []
    last = 0
    for match in pattern.finditer(source):
        start, end = match.span(group)
        if start < 0 or (start == end and start == last and out):
            continue
        out.append(source[last:start])
        out.append(replacement)
        last = end
    out.append(source[last:])
    return "".join(out)


_SUBSTITUTION = re.compile(r"\$(?:\{(?P<name>[A-Za-z_][A-Za-z0-9_]*|\d+)\}|(?P<number>\d+)|(?P<special>[$&]))")


def _expand(replacement: str, match: re.Match[str]) -> str:
    """.NET substitutions in a replacement: ${name}, $1, $& and $$."""
    def one(sub: re.Match[str]) -> str:
        if sub.group("special") == "$":
            return "$"
        if sub.group("special") == "&":
            return match.group(0)
        key = sub.group("name") or sub.group("number")
        try:
            return match.group(int(key) if key.isdigit() else key) or ""
        except IndexError:
            return sub.group(0)
    return _SUBSTITUTION.sub(one, replacement)



def _select_unique(args: Args) -> Value:
    last = None
    for index in range(len(args)):
        value = args[index]
        if is_null(value):
            continue
        last = value
        if not args.context.taken(value):
            return value
    raise EvaluationError(f"SelectUniqueValue: every candidate is already taken (last: {to_text(last)!r})")


def _split(args: Args) -> Value:
    source, delimiter = args.text(0), args.text(1)
    if source is None:
        return None
    if not delimiter:
        return [source]
    # Microsoft's example splits "PermissionSetOne, PermissionSetTwo" into two names without the space.
    return [part.strip() for part in source.split(delimiter)]


def _switch(args: Args) -> Value:
    source = args[0]
    key_text = "" if is_empty(source) else to_text(source)
    for index in range(2, len(args) - 1, 2):
        key = args[index]
        if (to_text(key) or "") == key_text:
            return args[index + 1]
    return args[1]


def _case(convert: Callable[[str, str | None], str]) -> Callable[[Args], Value]:
    def run(args: Args) -> Value:
        source = args.text(0)
        if source is None:
            return None
        return convert(source, args.text(1) if args.given(1) else None)
    return run


def _word(args: Args) -> Value:
    source = args.text(0)
    if source is None:
        return ""
    number = to_int(args[1], "Word's number")
    delimiters = args.text(2) or ""
    if number < 1:
        return ""
    words = [w for w in re.split("[" + re.escape(delimiters) + "]", source) if w] if delimiters else [source]
    return words[number - 1] if number <= len(words) else ""


def _test(check: Callable[[Value], bool]) -> Callable[[Args], Value]:
    return lambda args: check(args[0])


_FUNCTIONS = [
    Function("Append", 2, 2, _append),
    Function("AppRoleAssignmentsComplex", 1, 1, _app_roles_complex),
    Function("AssertiveAppRoleAssignmentsComplex", 1, 1, _app_roles_complex),
    Function("BitAnd", 2, 2, _bit_and),
    Function("CBool", 1, 1, _cbool),
    Function("CDate", 1, 1, _cdate),
    Function("Coalesce", 1, None, _coalesce),
    Function("ConvertToBase64", 1, 1, _text_fn(_base64)),
    Function("ConvertToUTF8Hex", 1, 1, _text_fn(_utf8_hex)),
    Function("Count", 1, 1, _count),
    Function("CStr", 1, 1, _cstr),
    Function("DateAdd", 3, 3, _date_add),
    Function("DateDiff", 3, 3, _date_diff),
    Function("DateFromNum", 1, 1, _date_from_num),
    Function("FormatDateTime", 3, 4, _format_date_time),
    Function("Guid", 0, 0, _guid, deterministic=False),
    Function("IgnoreFlowIfNullOrEmpty", 1, 1, _ignore_flow),
    Function("IIF", 3, 3, _iif),
    Function("InStr", 2, 4, _instr),
    Function("IsNull", 1, 1, _test(is_null)),
    Function("IsNullOrEmpty", 1, 1, _test(is_empty)),
    Function("IsPresent", 1, 1, _test(lambda v: not is_empty(v))),
    Function("IsString", 1, 1, _is_string),
    Function("Item", 2, 2, _item),
    Function("Join", 2, None, _join),
    Function("Left", 2, 2, _left),
    Function("Mid", 3, 3, _mid),
    Function("NormalizeDiacritics", 1, 1, _text_fn(text.normalize_diacritics)),
    Function("Not", 1, 1, _not),
    Function("Now", 0, 0, _now, deterministic=False),
    Function("NumFromDate", 1, 1, _num_from_date),
    Function("PCase", 1, 2, _pcase),
    Function("RandomString", 5, 6, _random_string, deterministic=False),
    Function("Redact", 1, 1, lambda args: args[0]),
    Function("RemoveDuplicates", 1, 1, _remove_duplicates),
    Function("Replace", 7, 7, _replace),
    Function("SelectUniqueValue", 2, None, _select_unique, create_only=True),
    Function("SingleAppRoleAssignment", 1, 1, _single_app_role),
    Function("Split", 2, 2, _split),
    Function("StripSpaces", 1, 1, _text_fn(lambda s: s.replace(" ", ""))),
    Function("Switch", 4, None, _switch),
    Function("ToLower", 1, 2, _case(text.to_lower)),
    Function("ToUpper", 1, 2, _case(text.to_upper)),
    Function("Word", 3, 3, _word),
]

FUNCTIONS: dict[str, Function] = {f.name: f for f in _FUNCTIONS}
