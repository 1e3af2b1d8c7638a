"""Expression trees as Graph ``attributeMappingSource`` objects, and back to expression text.

A source is ``{"expression", "name", "parameters": [{"key", "value"}], "type"}`` with ``type`` ``Attribute``
(``name`` the attribute), ``Constant`` (``name`` the value as text) or ``Function`` (``name`` the function), keys
in Graph's order, as in the Graph reference's sample for ``Mid([userPrincipalName], 1, 8)``.

How the tree is written, and why:

- Parameter keys (:data:`PARAMETER_NAMES`) are the names Graph itself gives a function's parameters where Graph
  publishes them (``GET .../schema/functions``, the ``attributeMappingFunctionSchema`` list: Append, FormatDateTime,
  Join, Mid, Not, Replace, SingleAppRoleAssignment, Split, StripSpaces, Switch), else the names of Entra's function
  reference, as its signatures write them. The two differ for Replace: Graph's keys (``Find``, ``Replacement``,
  ...) are the ones its objectMapping example uses, so they win.
- A repeated parameter repeats one key, unnumbered: Graph marks Join's ``source`` and Switch's ``switchValue``
  ``allowMultipleOccurrences``, so every source of Join is keyed ``source`` and every key and value of Switch's
  pairs ``switchValue``. Coalesce (``source``) and SelectUniqueValue (``uniqueValueRule``) follow the same rule.
- An omitted argument in a fixed position is left out of ``parameters``: Graph's example of
  ``Replace([preferredLanguage], "-", , , "_", , )`` lists only ``source``, ``Find`` and ``Replacement``; the key
  says where each one goes. An omitted argument among repeated ones (``Join(",", , [a])``) has no key of its own
  to say where it was, so it keeps its place with ``"value": null``, which is how Graph writes an absent source.
- Constants are text: Graph writes the number 1 of ``Mid(..., 1, 8)`` as ``{"expression": "\\"1\\"", "name":
  "1"}``, and so do we; a Function's own ``expression`` is its text as written (numbers unquoted).
- A comparison (IIF's or CBool's condition) has no documented form in Graph; it is written as a ``Function``
  named by its operator (``=``, ``<>``, ``>``, ``>=``, ``<``, ``<=``) with parameters ``left`` and ``right``, and
  its ``expression`` the comparison's text.
- A function this project does not know keeps its arguments in order, keyed ``arg1``, ``arg2``, ...
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from reconciler.expressions.functions import FUNCTIONS
from reconciler.expressions.parse import (
    COMPARISONS,
    NAMED_CONSTANTS,
    Attribute,
    Call,
    Compare,
    Literal,
    Node,
    parse,
)

ATTRIBUTE = "Attribute"
CONSTANT = "Constant"
FUNCTION = "Function"

PARAMETER_NAMES: dict[str, tuple[str, ...]] = {
    "Append": ("source", "suffix"),
    "AppRoleAssignmentsComplex": ("source",),
    "AssertiveAppRoleAssignmentsComplex": ("source",),
    "BitAnd": ("value1", "value2"),
    "CBool": ("Expression",),
    "CDate": ("expression",),
    "Coalesce": ("source",),
    "ConvertToBase64": ("source",),
    "ConvertToUTF8Hex": ("source",),
    "Count": ("attribute",),
    "CStr": ("value",),
    "DateAdd": ("interval", "value", "dateTime"),
    "DateDiff": ("interval", "date1", "date2"),
    "DateFromNum": ("value",),
    "FormatDateTime": ("source", "dateTimeStyles", "inputFormat", "outputFormat"),
    "Guid": (),
    "IgnoreFlowIfNullOrEmpty": ("expression",),
    "IIF": ("condition", "valueIfTrue", "valueIfFalse"),
    "InStr": ("value1", "value2", "start", "compareType"),
    "IsNull": ("Expression",),
    "IsNullOrEmpty": ("Expression",),
    "IsPresent": ("Expression",),
    "IsString": ("Expression",),
    "Item": ("attribute", "index"),
    "Join": ("separator", "source"),
    "Left": ("String", "NumChars"),
    "Mid": ("source", "start", "length"),
    "NormalizeDiacritics": ("source",),
    "Not": ("source",),
    "Now": (),
    "NumFromDate": ("value",),
    "PCase": ("source", "wordSeparators"),
    "RandomString": ("Length", "MinimumNumbers", "MinimumSpecialCharacters", "MinimumCapital", "MinimumLowerCase",
                     "CharactersToAvoid"),
    "Redact": ("source",),
    "RemoveDuplicates": ("attribute",),
    "Replace": ("source", "Find", "RegularExpression", "RegularExpressionGroupName", "Replacement",
                "ReplacementPropertyName", "Template"),
    "SelectUniqueValue": ("uniqueValueRule",),
    "SingleAppRoleAssignment": ("source",),
    "Split": ("source", "delimiter"),
    "StripSpaces": ("source",),
    "Switch": ("source", "defaultValue", "switchValue"),
    "ToLower": ("source", "culture"),
    "ToUpper": ("source", "culture"),
    "Word": ("String", "WordNumber", "Delimiters"),
}
# functions whose last parameter repeats (Graph's allowMultipleOccurrences)
REPEATING = frozenset({"Coalesce", "Join", "SelectUniqueValue", "Switch"})
# FormatDateTime's three-argument form (no dateTimeStyles), as Graph's function list gives it
SHORT_FORMS: dict[tuple[str, int], tuple[str, ...]] = {
    ("FormatDateTime", 3): ("source", "inputFormat", "outputFormat"),
}
COMPARE_KEYS = ("left", "right")


def parameter_keys(name: str, count: int) -> tuple[str, ...]:
    """The keys of a call of ``name`` with ``count`` arguments, one per argument."""
    short = SHORT_FORMS.get((name, count))
    if short is not None:
        return short
    names = PARAMETER_NAMES.get(name)
    if names is None:
        return tuple(f"arg{i + 1}" for i in range(count))
    if name in REPEATING:
        fixed = names[:-1]
        return (fixed + (names[-1],) * max(count - len(fixed), 0))[:count]
    return (names + tuple(f"arg{i + 1}" for i in range(len(names), count)))[:count]


def attribute_source(name: str) -> dict[str, Any]:
    return {"expression": f"[{name}]", "name": name, "parameters": [], "type": ATTRIBUTE}


def constant_source(value: str | bool | int | float) -> dict[str, Any]:
    text = literal_text(value)
    return {"expression": quote(text), "name": text, "parameters": [], "type": CONSTANT}


def expression_source(text: str) -> dict[str, Any]:
    """An expression as written in a manifest: its tree, with the text itself (stripped) as ``expression``."""
    source = to_source(parse(text))
    source["expression"] = text.strip()
    return source


def to_source(node: Node) -> dict[str, Any]:
    """A parse tree as an attributeMappingSource (see the module's notes for omitted arguments and comparisons)."""
    if isinstance(node, Attribute):
        return attribute_source(node.name)
    if isinstance(node, Literal):
        return constant_source(node.value)
    if isinstance(node, Compare):
        sides = [{"key": key, "value": to_source(side)}
                 for key, side in zip(COMPARE_KEYS, (node.left, node.right), strict=True)]
        return {"expression": node_text(node), "name": node.op, "parameters": sides, "type": FUNCTION}
    if isinstance(node, Call):
        keys = parameter_keys(node.name, len(node.args))
        repeated = _repeated_from(node.name)
        parameters: list[dict[str, Any]] = []
        for index, (key, arg) in enumerate(zip(keys, node.args, strict=True)):
            if arg is not None:
                parameters.append({"key": key, "value": to_source(arg)})
            elif repeated is not None and index >= repeated:
                parameters.append({"key": key, "value": None})
        return {"expression": node_text(node), "name": node.name, "parameters": parameters, "type": FUNCTION}
    raise TypeError(f"not an expression node: {node!r}")


def node_text(node: Node | None) -> str:
    """A parse tree as expression text, in the canonical spacing (``Mid([userPrincipalName], 1, 8)``)."""
    if node is None:
        return ""
    if isinstance(node, Attribute):
        return f"[{node.name}]"
    if isinstance(node, Literal):
        if isinstance(node.value, str):
            return node.value if node.value in NAMED_CONSTANTS else quote(node.value)
        return literal_text(node.value)
    if isinstance(node, Compare):
        return f"{node_text(node.left)}{node.op}{node_text(node.right)}"
    if isinstance(node, Call):
        return f"{node.name}({', '.join(node_text(arg) for arg in node.args)})"
    raise TypeError(f"not an expression node: {node!r}")


def source_text(source: Mapping[str, Any]) -> str:
    """An attributeMappingSource as expression text: its ``expression`` when it has one, else :func:`render`."""
    expression = source.get("expression")
    if isinstance(expression, str) and expression.strip():
        return expression.strip()
    return render(source)


def render(source: Mapping[str, Any] | None) -> str:
    """Expression text built from the tree alone (``expression`` ignored at every level)."""
    if source is None:
        return ""
    kind = source.get("type") or ATTRIBUTE  # Graph's default type
    name = str(source.get("name") or "")
    if kind == ATTRIBUTE:
        return f"[{name}]"
    if kind == CONSTANT:
        return name if name in NAMED_CONSTANTS else quote(name)
    parameters = [p for p in source.get("parameters") or [] if isinstance(p, Mapping)]
    if name in COMPARISONS and [p.get("key") for p in parameters] == list(COMPARE_KEYS):
        return f"{render(parameters[0].get('value'))}{name}{render(parameters[1].get('value'))}"
    return f"{name}({', '.join(render(arg) for arg in _arguments(name, parameters))})"


def quote(text: str) -> str:
    """A string constant as Entra writes it: in double quotes, backslash escaping backslash and quote."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def literal_text(value: str | bool | int | float) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, float):
        text = repr(value)
        return f"{Decimal(text):f}" if "e" in text or "E" in text else text
    return str(value)


def _repeated_from(name: str) -> int | None:
    """The position where ``name``'s repeated parameter starts, or None when it has none."""
    if name not in REPEATING:
        return None
    return len(PARAMETER_NAMES[name]) - 1


def _arguments(name: str, parameters: list[Mapping[str, Any]]) -> list[Mapping[str, Any] | None]:
    """The arguments of a Function source in call order, omitted ones as None, from the parameters' keys."""
    names = PARAMETER_NAMES.get(name)
    if names is None:
        return [p.get("value") for p in parameters]
    keys = [p.get("key") for p in parameters]
    if name == "FormatDateTime" and "dateTimeStyles" not in keys:
        names = SHORT_FORMS[("FormatDateTime", 3)]
    repeated = _repeated_from(name)
    fixed = names if repeated is None else names[:repeated]
    slots: dict[int, Mapping[str, Any] | None] = {}
    tail: list[Mapping[str, Any] | None] = []
    extra: list[Mapping[str, Any] | None] = []
    for parameter in parameters:
        key, value = parameter.get("key"), parameter.get("value")
        if key in fixed and fixed.index(key) not in slots:
            slots[fixed.index(key)] = value
        elif repeated is not None and key == names[repeated]:
            tail.append(value)
        else:
            extra.append(value)
    function = FUNCTIONS.get(name)
    minimum = min(function.min_args if function is not None else 0, len(fixed))
    width = max([minimum, len(fixed) if tail else 0, *(i + 1 for i in slots)])
    return [slots.get(i) for i in range(width)] + tail + extra
