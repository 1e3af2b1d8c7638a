"""Schema-aware comparison of a desired SCIM resource with the live one, and the PATCH that closes the gap.

Pure: no I/O. The vocabulary and the safe defaults:

- Only what the desired resource declares is compared; the target may hold more, and nothing the desired
  resource omits (or sets to None) is ever removed (Entra never propagates nulls).
- Strings compare case-insensitively unless the schema says ``caseExact: true`` (the server's /Schemas when
  known, else RFC 7643: ``id``, ``externalId``, ``members.value``, ``manager.value`` ... are case-exact).
- Booleans given as strings (``"True"``, ``"false"``) are booleans.
- Multi-valued attributes whose elements carry a ``type`` (emails, phoneNumbers, addresses) are matched by
  type, in any order; a missing typed element is written whole (``add`` to ``emails`` with
  ``[{"type": "work", "value": ...}]``) because servers may answer a filtered-path write to a missing element
  with 400 noTarget; an existing one is updated with a filtered path (``emails[type eq "work"].value``).
- Untyped lists of ``{"value": ...}`` (group ``members``) compare as sets: missing values are added, extra values
  are removed one by one (``members[value eq "<id>"]``).
- Server-added values are ignored: ``schemas``, ``id``, ``meta``, and within elements ``primary``, ``display``,
  ``$ref``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.scim.paths import CORE_GROUP, CORE_USER, ENTERPRISE_USER, TargetPath

IGNORED_TOP = frozenset({"schemas", "id", "meta"})
IGNORED_SUB = frozenset({"primary", "display", "$ref"})
# Reference lists compared as sets of ids, whatever their elements' ``type`` (User/Group) says.
VALUE_SETS = frozenset({"members"})


@dataclass(frozen=True)
class AttributeRule:
    """How one attribute compares: its SCIM type, case exactness, multi-valuedness, sub-attributes."""

    type: str = "string"
    case_exact: bool = False
    multi_valued: bool = False
    sub: Mapping[str, AttributeRule] = field(default_factory=dict)

    def child(self, name: str) -> AttributeRule:
        return _ci_get(self.sub, name) or _default_sub(name)


def _default_sub(name: str) -> AttributeRule:
    if name.lower() == "primary":
        return AttributeRule(type="boolean")
    if name.lower() == "$ref":
        return AttributeRule(type="reference", case_exact=True)
    return AttributeRule()


_S = AttributeRule()
_EXACT = AttributeRule(case_exact=True)
_BOOL = AttributeRule(type="boolean")
_TYPED = {"value": _S, "display": _S, "type": _S, "primary": _BOOL}


def _complex(subs: dict[str, AttributeRule] | None = None, *, multi: bool = False) -> AttributeRule:
    return AttributeRule(type="complex", multi_valued=multi, sub=subs or {})


def _multi(**overrides: AttributeRule) -> AttributeRule:
    return _complex({**_TYPED, **overrides}, multi=True)


_NAME_SUBS = ("formatted", "familyName", "givenName", "middleName", "honorificPrefix", "honorificSuffix")
_ADDRESS_SUBS = ("formatted", "streetAddress", "locality", "region", "postalCode", "country", "type")

RFC7643_RULES: dict[str, dict[str, AttributeRule]] = {
    CORE_USER: {
        **{name: _S for name in ("userName", "displayName", "nickName", "title", "userType",
                                 "preferredLanguage", "locale", "timezone")},
        "name": _complex(dict.fromkeys(_NAME_SUBS, _S)),
        "profileUrl": AttributeRule(type="reference", case_exact=True),
        "active": _BOOL,
        "password": _EXACT,
        "emails": _multi(), "phoneNumbers": _multi(), "ims": _multi(), "roles": _multi(),
        "entitlements": _multi(), "photos": _multi(value=AttributeRule(type="reference", case_exact=True)),
        "x509Certificates": _multi(value=AttributeRule(type="binary", case_exact=True)),
        "addresses": _complex({**dict.fromkeys(_ADDRESS_SUBS, _S), "primary": _BOOL}, multi=True),
        "groups": _multi(value=_EXACT),
    },
    CORE_GROUP: {
        "displayName": _S,
        "members": _multi(value=_EXACT),
    },
    ENTERPRISE_USER: {
        **{name: _S for name in ("employeeNumber", "costCenter", "organization", "division", "department")},
        "manager": _complex({"value": _EXACT, "displayName": _S}),
    },
}
COMMON_RULES = {"id": _EXACT, "externalId": _EXACT}


def _ci_get(mapping: Mapping[str, Any] | None, name: str) -> Any:
    """SCIM attribute names are case-insensitive (RFC 7643 section 2.1)."""
    if not isinstance(mapping, Mapping):
        return None
    if name in mapping:
        return mapping[name]
    lowered = name.lower()
    for key, value in mapping.items():
        if key.lower() == lowered:
            return value
    return None


def _parse_rule(definition: Mapping[str, Any]) -> AttributeRule:
    subs = definition.get("subAttributes") or []
    return AttributeRule(
        type=str(definition.get("type") or "string").lower(),
        case_exact=definition.get("caseExact") is True,
        multi_valued=definition.get("multiValued") is True,
        sub={s["name"]: _parse_rule(s) for s in subs if isinstance(s, Mapping) and isinstance(s.get("name"), str)},
    )


@dataclass(frozen=True)
class SchemaIndex:
    """Attribute rules per schema URN: RFC 7643's, overridden by what the server's /Schemas declares."""

    rules: Mapping[str, Mapping[str, AttributeRule]]

    @classmethod
    def rfc_defaults(cls) -> SchemaIndex:
        return cls(RFC7643_RULES)

    @classmethod
    def from_schemas(cls, schemas: Iterable[Mapping[str, Any]]) -> SchemaIndex:
        """Build from /Schemas documents (as ``Capabilities.schemas`` holds them), over the RFC defaults."""
        rules = {urn: dict(attrs) for urn, attrs in RFC7643_RULES.items()}
        for schema in schemas:
            urn = schema.get("id")
            if not isinstance(urn, str):
                continue
            target = rules.setdefault(urn, {})
            for definition in schema.get("attributes") or []:
                if isinstance(definition, Mapping) and isinstance(definition.get("name"), str):
                    target[definition["name"]] = _parse_rule(definition)
        return cls(rules)

    def rule(self, schema: str, attribute: str, sample: Any = None) -> AttributeRule:
        """The rule of ``attribute`` in ``schema``; unknown attributes get RFC defaults shaped like ``sample``."""
        found = _ci_get(COMMON_RULES, attribute) or _ci_get(self.rules.get(schema), attribute)
        if found is not None:
            return found
        if isinstance(sample, bool):
            return _BOOL
        if isinstance(sample, list):
            return _multi()
        if isinstance(sample, Mapping):
            return _complex()
        return _S


@dataclass(frozen=True)
class Change:
    """One PATCH operation with, for display, the attribute's ``old`` (live) and ``new`` (desired) values."""

    op: str
    path: str
    value: Any
    old: Any = None
    new: Any = None

    def operation(self) -> dict[str, Any]:
        """The RFC 7644 operation (lowercase ``op``)."""
        operation: dict[str, Any] = {"op": self.op, "path": self.path}
        if self.op != "remove":
            operation["value"] = self.value
        return operation


def coerce(value: Any, rule: AttributeRule) -> Any:
    """A desired value as it should be sent: booleans given as strings become booleans."""
    if rule.type == "boolean" and isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return value


def comparable(value: Any, rule: AttributeRule) -> Any:
    """A value reduced to what matters for equality under ``rule``."""
    value = coerce(value, rule)
    if isinstance(value, str) and not rule.case_exact:
        return value.casefold()
    return value


def equal(desired: Any, live: Any, rule: AttributeRule) -> bool:
    return comparable(desired, rule) == comparable(live, rule)


def _clean_element(element: Mapping[str, Any], rule: AttributeRule) -> dict[str, Any]:
    return {key: coerce(value, rule.child(key)) for key, value in element.items() if value is not None}


def core_schema(resource: Mapping[str, Any]) -> str:
    schemas = resource.get("schemas") or []
    return CORE_GROUP if CORE_GROUP in schemas or "members" in resource else CORE_USER


def diff_resource(desired: Mapping[str, Any], live: Mapping[str, Any],
                  schemas: SchemaIndex | None = None) -> list[Change]:
    """The PATCH operations that make ``live`` agree with ``desired`` (empty when converged)."""
    index = schemas or SchemaIndex.rfc_defaults()
    core = core_schema(desired)
    changes: list[Change] = []
    for key, value in desired.items():
        if key in IGNORED_TOP or value is None:
            continue
        if key.lower().startswith("urn:") and isinstance(value, Mapping):
            live_extension = _ci_get(live, key)
            for name, sub_value in value.items():
                if sub_value is None:
                    continue
                rule = index.rule(key, name, sub_value)
                _diff_attribute(changes, f"{key}:{name}", name, rule, sub_value, _ci_get(live_extension, name))
            continue
        rule = index.rule(core, key, value)
        _diff_attribute(changes, key, key, rule, value, _ci_get(live, key))
    return changes


def patch_operations(changes: Iterable[Change]) -> list[dict[str, Any]]:
    return [change.operation() for change in changes]


def _diff_attribute(changes: list[Change], path: str, name: str, rule: AttributeRule, desired: Any,
                    live: Any) -> None:
    if rule.multi_valued or isinstance(desired, list):
        _diff_multi(changes, path, rule, desired if isinstance(desired, list) else [desired], live)
    elif isinstance(desired, Mapping):
        subs = {k: v for k, v in desired.items() if v is not None}
        if not subs:
            return
        if not isinstance(live, Mapping):
            value = _clean_element(subs, rule)
            changes.append(Change("add", path, value, old=live, new=value))
            return
        for sub, value in subs.items():
            sub_rule = rule.child(sub)
            old = _ci_get(live, sub)
            if not equal(value, old, sub_rule):
                new = coerce(value, sub_rule)
                changes.append(Change("add" if old is None else "replace", f"{path}.{sub}", new, old, new))
    elif not equal(desired, live, rule):
        new = coerce(desired, rule)
        changes.append(Change("add" if live is None else "replace", path, new, live, new))


def _diff_multi(changes: list[Change], path: str, rule: AttributeRule, desired: list[Any], live: Any) -> None:
    live_items = live if isinstance(live, list) else []
    elements = [e for e in desired if e is not None]
    if path.lower() in VALUE_SETS:
        _diff_value_set(changes, path, rule, [e for e in elements if isinstance(e, Mapping)], live_items)
    elif not elements:
        return  # an empty list of anything but members is read as "nothing declared"
    elif all(isinstance(e, Mapping) and _ci_get(e, "type") is not None for e in elements):
        _diff_typed(changes, path, rule, elements, live_items)
    elif all(isinstance(e, Mapping) for e in elements):
        _diff_value_set(changes, path, rule, elements, live_items)
    else:
        value_rule = rule.child("value") if rule.type == "complex" else rule
        if sorted(map(repr, (comparable(e, value_rule) for e in elements))) != sorted(
                map(repr, (comparable(e, value_rule) for e in live_items))):
            new = [coerce(e, value_rule) for e in elements]
            changes.append(Change("replace", path, new, live, new))


def _diff_typed(changes: list[Change], path: str, rule: AttributeRule, desired: list[Mapping[str, Any]],
                live: list[Any]) -> None:
    type_rule = rule.child("type")
    for element in desired:
        kind = _ci_get(element, "type")
        match = next((item for item in live if isinstance(item, Mapping)
                      and equal(kind, _ci_get(item, "type"), type_rule)), None)
        if match is None:
            value = _clean_element(element, rule)
            if len(value) > 1:  # more than the type alone
                changes.append(Change("add", path, [value], old=None, new=value))
            continue
        for sub, value in element.items():
            if value is None or sub.lower() == "type" or sub.lower() in IGNORED_SUB:
                continue
            sub_rule = rule.child(sub)
            old = _ci_get(match, sub)
            if not equal(value, old, sub_rule):
                target = TargetPath(attribute=path, sub_attribute=sub, filter=("type", str(kind)))
                new = coerce(value, sub_rule)
                changes.append(Change("replace", str(target), new, old, new))


def _diff_value_set(changes: list[Change], path: str, rule: AttributeRule,
                    desired: list[Mapping[str, Any]], live: list[Any]) -> None:
    value_rule = rule.child("value")

    def values(items: Iterable[Any]) -> dict[str, Any]:
        """``{comparable key: value as given}`` in first-seen order."""
        found: dict[str, Any] = {}
        for item in items:
            value = _ci_get(item, "value") if isinstance(item, Mapping) else None
            if value is not None:
                found.setdefault(repr(comparable(value, value_rule)), value)
        return found

    wanted, present = values(desired), values(live)
    missing = [value for key, value in wanted.items() if key not in present]
    if missing:
        changes.append(Change("add", path, [{"value": v} for v in missing], old=None, new=missing))
    for key, old in present.items():
        if key not in wanted:
            target = TargetPath(attribute=path, filter=("value", str(old)))
            changes.append(Change("remove", str(target), None, old=old, new=None))


def creation_body(desired: Mapping[str, Any], schemas: SchemaIndex | None = None) -> dict[str, Any]:
    """The POST body for a desired resource: nulls dropped (never sent), booleans given as strings made booleans,
    typed elements with nothing but a ``type`` left out."""
    index = schemas or SchemaIndex.rfc_defaults()
    core = core_schema(desired)
    body: dict[str, Any] = {}
    for key, value in desired.items():
        if value is None:
            continue
        if key.lower().startswith("urn:") and isinstance(value, Mapping):
            extension = {name: coerce(v, index.rule(key, name, v)) for name, v in value.items() if v is not None}
            if extension:
                body[key] = extension
            continue
        rule = index.rule(core, key, value)
        if isinstance(value, list):
            elements = [_clean_element(e, rule) if isinstance(e, Mapping) else e for e in value if e is not None]
            elements = [e for e in elements if not (isinstance(e, dict) and set(e) <= {"type", "primary"})]
            if elements or key.lower() in VALUE_SETS:
                body[key] = elements
        elif isinstance(value, Mapping):
            cleaned = _clean_element(value, rule)
            if cleaned:
                body[key] = cleaned
        else:
            body[key] = coerce(value, rule)
    return body
