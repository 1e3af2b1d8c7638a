"""The managed part of a live ``synchronizationSchema``: extract it, compare two, put one back, describe a change.

A job's schema (``GET .../jobs/{id}/schema``) holds ``directories``, ``synchronizationRules`` (each with ``id``,
``name``, ``metadata`` and ``objectMappings``) and a ``version``. The manifest decides only the object mappings whose
``sourceObjectName`` is ``User`` or ``Group``, and of those only the keys :func:`~reconciler.entra.schema.managed_keys`
names; everything else is the template's and is kept as the job has it.

Comparison (:func:`comparable`) is insensitive where Entra is:

- object mappings by ``sourceObjectName``, attribute mappings by ``targetAttributeName`` (their order in the list
  carries no meaning);
- ``flowTypes`` as a set (``Add, Update`` equals ``Update,Add``);
- scope: filter groups are OR-ed and clauses AND-ed, so both are compared as sets; group names are labels and are
  not compared;
- a source by its expression text, parsed and written back canonically (whitespace, the spelling of a constant
  ``1`` or ``"1"`` and the source's ``type`` do not matter); parameter keys are not compared, they follow from the
  expression;
- a missing ``scope`` (null) is the empty filter, and missing properties take Graph's defaults (``flowTypes``
  ``Add, Update, Delete``, ``flowType`` ``Always``, ...).

Pure: no I/O.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from reconciler.entra.schema import (
    ALWAYS,
    FLOW_BEHAVIOR,
    FLOW_TYPES,
    GROUP_SOURCE,
    USER_SOURCE,
    managed_keys,
)
from reconciler.entra.sources import node_text, source_text
from reconciler.errors import ExpressionSyntaxError, ReconcilerError
from reconciler.expressions.parse import Call, Compare, Literal, Node, parse

MANAGED_SOURCES = (USER_SOURCE, GROUP_SOURCE)
FILTER_SETS = ("categoryFilterGroups", "groups", "inputFilterGroups")
ATTRIBUTE_DEFAULTS: dict[str, Any] = {
    "defaultValue": None,
    "exportMissingReferences": False,
    "flowBehavior": FLOW_BEHAVIOR,
    "flowType": ALWAYS,
    "matchingPriority": 0,
    "source": None,
    "targetAttributeName": None,
}
SOURCE_KEYS = ("expression", "name", "parameters", "type")
LONGEST_TEXT = 80
DEFAULT_FLOW_TYPES = ", ".join(flow for _, flow in FLOW_TYPES)  # Graph's default for an objectMapping


class SchemaError(ReconcilerError):
    """A synchronization schema lacks what the managed part needs (an object mapping the template should have)."""


def managed_part(schema: Mapping[str, Any]) -> dict[str, Any]:
    """The User and Group object mappings of a Graph synchronizationSchema, in :func:`compile_schema`'s shape."""
    rules = []
    for rule in _dicts(schema.get("synchronizationRules")):
        mappings = [m for m in _dicts(rule.get("objectMappings")) if m.get("sourceObjectName") in MANAGED_SOURCES]
        if mappings:
            mappings.sort(key=lambda m: MANAGED_SOURCES.index(m["sourceObjectName"]))
            rules.append({"objectMappings": [_object_mapping(m) for m in mappings]})
    return {"synchronizationRules": rules}


def merged(live_schema: Mapping[str, Any], managed: Mapping[str, Any]) -> dict[str, Any]:
    """``live_schema`` with its managed part replaced by ``managed``: the body to PUT back. Each managed object
    mapping replaces the managed keys of the live one with the same ``sourceObjectName`` (the first, across the
    rules), in place; directories, rule ids and names, mapping names and metadata stay as they are, and so does
    ``targetObjectName``: a gallery template names its target objects its own way, and the source name is the key."""
    result = copy.deepcopy(dict(live_schema))
    live = [m for rule in _dicts(result.get("synchronizationRules")) for m in _dicts(rule.get("objectMappings"))]
    for mapping in _object_mappings(managed):
        source = mapping.get("sourceObjectName")
        target = next((m for m in live if m.get("sourceObjectName") == source), None)
        if target is None:
            raise SchemaError(f"the job's synchronization schema has no object mapping for {source} "
                              "(sourceObjectName); its template must have one")
        for key in managed_keys(bool(mapping.get("enabled"))):
            if key != "targetObjectName":
                target[key] = copy.deepcopy(mapping[key])
    return result


def comparable(part: Mapping[str, Any]) -> dict[str, Any]:
    """A normal form of a managed part: two parts Entra would run the same way compare equal."""
    normal: dict[str, Any] = {}
    seen: dict[str, int] = {}
    for mapping in _object_mappings(part):
        name = str(mapping.get("sourceObjectName"))
        seen[name] = seen.get(name, 0) + 1
        normal[name if seen[name] == 1 else f"{name}#{seen[name]}"] = _comparable_mapping(mapping)
    return normal


def schema_changes(old_part: Mapping[str, Any], new_part: Mapping[str, Any]) -> list[str]:
    """Short lines describing how ``new_part`` differs from ``old_part`` (empty when they compare equal)."""
    old, new = comparable(old_part), comparable(new_part)
    old_raw, new_raw = _by_source(old_part), _by_source(new_part)
    lines: list[str] = []
    for name in _ordered(old, new):
        if name not in old:
            lines.append(f"{name}: + object mapping ({'enabled' if new[name]['enabled'] else 'disabled'})")
            continue
        if name not in new:
            lines.append(f"{name}: - object mapping")
            continue
        lines.extend(f"{name}: {line}" for line in _mapping_changes(old[name], new[name], old_raw.get(name, {}),
                                                                    new_raw.get(name, {})))
    return lines


# --- extraction ---

def _object_mapping(mapping: Mapping[str, Any]) -> dict[str, Any]:
    enabled = bool(mapping.get("enabled", True))
    full = {
        "attributeMappings": [_attribute_mapping(a) for a in _dicts(mapping.get("attributeMappings"))],
        "enabled": enabled,
        "flowTypes": mapping.get("flowTypes") or DEFAULT_FLOW_TYPES,
        "scope": _filter(mapping.get("scope")),
        "sourceObjectName": mapping.get("sourceObjectName"),
        "targetObjectName": mapping.get("targetObjectName"),
    }
    return {key: full[key] for key in managed_keys(enabled)}


def _attribute_mapping(mapping: Mapping[str, Any]) -> dict[str, Any]:
    result = {key: mapping.get(key, default) for key, default in ATTRIBUTE_DEFAULTS.items()}
    result["source"] = _source(mapping.get("source"))
    return result


def _source(source: Any) -> dict[str, Any] | None:
    if not isinstance(source, Mapping):
        return None
    result = {key: source.get(key) for key in SOURCE_KEYS}
    result["parameters"] = [{"key": p.get("key"), "value": _source(p.get("value"))}
                            for p in _dicts(source.get("parameters"))]
    return result


def _filter(scope: Any) -> dict[str, Any]:
    scope = scope if isinstance(scope, Mapping) else {}
    return {name: [_filter_group(g) for g in _dicts(scope.get(name))] for name in FILTER_SETS}


def _filter_group(group: Mapping[str, Any]) -> dict[str, Any]:
    clauses = [{"operatorName": c.get("operatorName"), "sourceOperandName": c.get("sourceOperandName"),
                "targetOperand": {"values": _values(c.get("targetOperand"))}} for c in _dicts(group.get("clauses"))]
    return {"clauses": clauses, "name": group.get("name")}


def _values(operand: Any) -> list[str]:
    values = operand.get("values") if isinstance(operand, Mapping) else None
    return [str(v) for v in values] if isinstance(values, list) else []


# --- comparison ---

def _comparable_mapping(mapping: Mapping[str, Any]) -> dict[str, Any]:
    enabled = bool(mapping.get("enabled", True))
    normal: dict[str, Any] = {
        "enabled": enabled,
        "flowTypes": sorted(_flow_types(mapping.get("flowTypes") or DEFAULT_FLOW_TYPES)),
    }
    if enabled:
        attributes = [_comparable_attribute(a) for a in _dicts(mapping.get("attributeMappings"))]
        normal["attributeMappings"] = sorted(attributes, key=lambda a: (str(a["targetAttributeName"]), repr(a)))
        scope = _filter(mapping.get("scope"))
        normal["scope"] = {name: sorted(sorted(_clause_key(c) for c in g["clauses"]) for g in scope[name])
                           for name in FILTER_SETS}
    return normal


def _comparable_attribute(mapping: Mapping[str, Any]) -> dict[str, Any]:
    normal = _attribute_mapping(mapping)
    normal["source"] = canonical_text(normal["source"])
    return normal


def canonical_text(source: Mapping[str, Any] | None) -> str | None:
    """A source's expression in one canonical spelling (None for no source)."""
    if source is None:
        return None
    text = source_text(source)
    try:
        return node_text(_text_literals(parse(text)))
    except ExpressionSyntaxError:
        return " ".join(text.split())


def _text_literals(node: Node) -> Node:
    """The tree with every number written as the text it stands for, as Entra reads constants."""
    if isinstance(node, Literal):
        return Literal(0, node.value if isinstance(node.value, str) else node_text(node))
    if isinstance(node, Call):
        return Call(0, node.name, tuple(None if a is None else _text_literals(a) for a in node.args))
    if isinstance(node, Compare):
        return Compare(0, node.op, _text_literals(node.left), _text_literals(node.right))
    return node


def _clause_key(clause: Mapping[str, Any]) -> tuple[str, str, tuple[str, ...]]:
    return (str(clause.get("sourceOperandName")), str(clause.get("operatorName")),
            tuple(_values(clause.get("targetOperand"))))


def _flow_types(text: Any) -> set[str]:
    return {part.strip() for part in str(text or "").split(",") if part.strip()}


# --- change lines ---

def _mapping_changes(old: Mapping[str, Any], new: Mapping[str, Any], old_raw: Mapping[str, Any],
                     new_raw: Mapping[str, Any]) -> list[str]:
    lines = []
    if old["enabled"] != new["enabled"]:
        lines.append(f"enabled {_bool(old['enabled'])} -> {_bool(new['enabled'])}")
    if old["flowTypes"] != new["flowTypes"]:
        lines.append(f"flowTypes {_flow_text(old['flowTypes'])} -> {_flow_text(new['flowTypes'])}")
    if old["enabled"] and new["enabled"]:
        lines.extend(_attribute_changes(old_raw, new_raw))
        lines.extend(_scope_changes(old["scope"], new["scope"]))
    return lines


def _attribute_changes(old_raw: Mapping[str, Any], new_raw: Mapping[str, Any]) -> list[str]:
    old = {str(a["targetAttributeName"]): a for a in map(_attribute_mapping, _dicts(old_raw.get("attributeMappings")))}
    new = {str(a["targetAttributeName"]): a for a in map(_attribute_mapping, _dicts(new_raw.get("attributeMappings")))}
    lines = []
    for target in [t for t in old if t not in new]:
        lines.append(f"- {target}")
    for target, mapping in new.items():
        if target not in old:
            lines.append(f"+ {target} <- {_short(mapping['source'])}")
            continue
        before = old[target]
        if canonical_text(before["source"]) != canonical_text(mapping["source"]):
            lines.append(f"~ {target}: {_short(before['source'])} -> {_short(mapping['source'])}")
        for key in ("matchingPriority", "flowType", "flowBehavior", "defaultValue", "exportMissingReferences"):
            if before[key] != mapping[key]:
                lines.append(f"~ {target}: {key} {_value(before[key])} -> {_value(mapping[key])}")
    return lines


def _scope_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    lines: list[str] = []
    gone = [g for g in old["groups"] if g not in new["groups"]]
    came = [g for g in new["groups"] if g not in old["groups"]]
    if len(gone) == 1 and len(came) == 1:  # one filter edited: say which clauses
        lines.extend(f"scope: - {_clause_text(c)}" for c in gone[0] if c not in came[0])
        lines.extend(f"scope: + {_clause_text(c)}" for c in came[0] if c not in gone[0])
    else:
        lines.extend(f"scope: - filter {' AND '.join(map(_clause_text, g)) or '(empty)'}" for g in gone)
        lines.extend(f"scope: + filter {' AND '.join(map(_clause_text, g)) or '(empty)'}" for g in came)
    for name in ("categoryFilterGroups", "inputFilterGroups"):
        if old[name] != new[name]:
            lines.append(f"scope: {name}: {len(old[name])} group(s) -> {len(new[name])} group(s)")
    return lines


def _clause_text(clause: Sequence[Any]) -> str:
    attribute, operator, values = clause
    return " ".join([attribute, operator, *([", ".join(values)] if values else [])])


def _short(source: Mapping[str, Any] | None) -> str:
    if source is None:
        return "(none)"
    text = " ".join(source_text(source).split())
    return text if len(text) <= LONGEST_TEXT else text[:LONGEST_TEXT - 1] + "…"


def _flow_text(flow_types: Sequence[str]) -> str:
    order = [flow for _, flow in FLOW_TYPES]
    ranked = sorted(flow_types, key=lambda f: (order.index(f) if f in order else len(order), f))
    return ", ".join(ranked) or "(none)"


def _value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return _bool(value)
    return str(value)


def _bool(value: bool) -> str:
    return "true" if value else "false"


# --- shapes ---

def _object_mappings(part: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [m for rule in _dicts(part.get("synchronizationRules")) for m in _dicts(rule.get("objectMappings"))]


def _by_source(part: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    found: dict[str, Mapping[str, Any]] = {}
    for mapping in _object_mappings(part):
        found.setdefault(str(mapping.get("sourceObjectName")), mapping)
    return found


def _ordered(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    names = list(dict.fromkeys([*old, *new]))
    return sorted(names, key=lambda n: (MANAGED_SOURCES.index(n) if n in MANAGED_SOURCES else len(MANAGED_SOURCES), n))


def _dicts(value: Any) -> list[Any]:
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []

