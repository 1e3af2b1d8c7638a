"""Schema-aware comparison of a desired SCIM resource with the live one, and the PATCH that closes the gap.

Pure: no I/O. The vocabulary and the safe defaults:

- Only what the desired resource declares is compared; the target may hold more, and nothing the desired
  resource omits (or sets to None) is ever removed (Entra never propagates nulls).
- Strings compare case-insensitively unless the schema says ``caseExact: true`` (the server's /Schemas when
  known, else RFC 7643: ``id``, ``externalId``, ``members.value``, ``manager.value`` ... are case-exact).
- Booleans given as strings (``"True"``, ``"false"``) are booleans.
- Elements of a multi-valued attribute are matched, in any order, by their identity as RFC 7643 gives it:
  ``roles``, ``entitlements``, ``groups``, ``x509Certificates`` (and ``members``) by ``value``; ``emails``,
  ``phoneNumbers``, ``ims``, ``photos``, ``addresses`` by ``type``, an element without a type by its ``value``,
  or, when it is the primary one, as the primary element. Other attributes: by ``type`` when every element has
  one, else by ``value``. Desired elements of equal identity are one element (a role given both by
  ``AppRoleAssignmentsComplex`` and ``roles[primary eq "True"].value``).
- A missing element is written whole (``add`` to ``emails`` with ``[{"type": "work", "value": ...}]``) because
  servers may answer a filtered-path write to a missing element with 400 noTarget; an existing one is updated
  with a filtered path on its identity (``emails[type eq "work"].value``, ``roles[value eq "Admin"].type``).
- Lists identified by ``value`` are the whole attribute: live values the desired list lacks are removed one by
  one (``roles[value eq "User"]``); the planner drops those removals for add-only mappings
  (``AppRoleAssignmentsComplex``). Lists identified by ``type`` never lose an element the desired list omits.
- ``primary``: at most one desired element is primary (the first that says so). It must be primary in the
  target, and any other live element marked primary is set to ``primary: false`` first. A desired
  ``primary: false`` is not enforced (servers may choose their own primary element).
- ``members`` compare by value alone. Server-added values are ignored: ``schemas``, ``id``, ``meta``, and within
  elements ``display`` and ``$ref``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from reconciler.scim.paths import CORE_GROUP, CORE_USER, ENTERPRISE_USER, TargetPath

IGNORED_TOP = frozenset({"schemas", "id", "meta"})
IGNORED_SUB = frozenset({"display", "$ref"})
# Reference lists compared as sets of ids, whatever their elements' ``type`` (User/Group) says.
VALUE_SETS = frozenset({"members"})
# RFC 7643 section 4.1.2: what identifies one element of a multi-valued attribute (lowercased names).
VALUE_KEYED = frozenset({"members", "roles", "entitlements", "groups", "x509certificates"})
TYPE_KEYED = frozenset({"emails", "phonenumbers", "ims", "photos", "addresses"})


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


def values_at(resource: Mapping[str, Any], path: TargetPath) -> list[Any]:
    """The values a resource holds at ``path`` (``emails[type eq "work"].value`` -> the work emails)."""
    container: Any = resource
    if path.schema:
        container = _ci_get(resource, path.schema)
    value = _ci_get(container, path.attribute)
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    if path.filter:
        name, wanted = path.filter
        items = [i for i in items if isinstance(i, Mapping) and str(_ci_get(i, name) or "").lower() == wanted.lower()]
    if path.sub_attribute:
        items = [_ci_get(i, path.sub_attribute) for i in items if isinstance(i, Mapping)]
    return [i for i in items if i is not None and not isinstance(i, Mapping | list)]


def matching_key(path: TargetPath, value: Any, resource: Mapping[str, Any], schemas: SchemaIndex) -> Any:
    """``value``, held at ``path`` by ``resource`` (or searched for in a resource of its schema), reduced to what
    counts when matching: compared as the schema says (case-insensitive unless ``caseExact``)."""
    rule = schemas.rule(path.schema or core_schema(resource), path.attribute, value)
    if path.sub_attribute:
        rule = rule.child(path.sub_attribute)
    return comparable(value, rule)


def holding(resources: Iterable[Mapping[str, Any]], path: TargetPath, value: Any, kind_schema: str,
            schemas: SchemaIndex) -> list[Mapping[str, Any]]:
    """The resources whose ``path`` holds ``value``: the lookup-equality rule of matching, applied to a list."""
    wanted = matching_key(path, value, {"schemas": [kind_schema]}, schemas)
    return [resource for resource in resources
            if any(matching_key(path, held, resource, schemas) == wanted for held in values_at(resource, path))]


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
    elif all(isinstance(e, Mapping) for e in elements):
        _diff_elements(changes, path, rule, elements, live_items)
    else:
        value_rule = rule.child("value") if rule.type == "complex" else rule
        if sorted(map(repr, (comparable(e, value_rule) for e in elements))) != sorted(
                map(repr, (comparable(e, value_rule) for e in live_items))):
            new = [coerce(e, value_rule) for e in elements]
            changes.append(Change("replace", path, new, live, new))


Identity = tuple[str, Any]  # ("value" | "type" | "primary", the comparable value)


def identity_key(attribute: str, elements: Sequence[Any]) -> str:
    """The sub-attribute that identifies elements of ``attribute`` (a name, or ``urn:...:name``)."""
    name = attribute.rsplit(":", 1)[-1].lower()
    if name in VALUE_KEYED:
        return "value"
    if name in TYPE_KEYED:
        return "type"
    typed = all(isinstance(e, Mapping) and _ci_get(e, "type") is not None for e in elements)
    return "type" if typed and elements else "value"


def is_primary(element: Any) -> bool:
    return isinstance(element, Mapping) and coerce(_ci_get(element, "primary"), _BOOL) is True


def element_identity(element: Mapping[str, Any], key: str, rule: AttributeRule) -> Identity | None:
    """What ``element`` is matched on: its ``key``; without one, a primary element is the primary one, and any
    other falls back to its value (or its type); None when it has nothing to be matched on."""
    order = (key, "primary", "value", "type") if key == "type" else (key, "primary", "type")
    for name in order:
        if name == "primary":
            if is_primary(element):
                return ("primary", True)
            continue
        found = _ci_get(element, name)
        if found is not None:
            return (name, repr(comparable(found, rule.child(name))))
    return None


def _holds(item: Any, identity: Identity, rule: AttributeRule) -> bool:
    """Whether the live ``item`` is the element ``identity`` names."""
    name, wanted = identity
    if not isinstance(item, Mapping):
        return False
    if name == "primary":
        return is_primary(item)
    found = _ci_get(item, name)
    return found is not None and repr(comparable(found, rule.child(name))) == wanted


def merged_elements(attribute: str, elements: Sequence[Any], rule: AttributeRule | None = None) -> list[Any]:
    """The elements of one multi-valued attribute with those of equal identity merged into one (later values
    win, primary if any says so), and at most one primary element: the first."""
    items = [e for e in elements if e is not None]
    if not all(isinstance(e, Mapping) for e in items):
        return items
    if len(items) == 1:  # the common case (one work email, one mobile): nothing to merge
        return [dict(items[0])]
    rule = rule or _multi()
    key = identity_key(attribute, items)
    merged: list[dict[str, Any]] = []
    seen: dict[Identity, dict[str, Any]] = {}
    for element in items:
        identity = element_identity(element, key, rule)
        twin = seen.get(identity) if identity is not None else None
        if twin is None:
            twin = dict(element)
            merged.append(twin)
            if identity is not None:
                seen[identity] = twin
            continue
        primary = is_primary(twin) or is_primary(element)
        twin.update({k: v for k, v in element.items() if v is not None})
        if primary:
            _set_primary(twin, True)
    first = next((e for e in merged if is_primary(e)), None)
    for element in merged:
        if element is not first and is_primary(element):
            _set_primary(element, False)
    return merged


def _set_primary(element: dict[str, Any], value: bool) -> None:
    for name in [k for k in element if k.lower() == "primary"]:
        del element[name]
    element["primary"] = value


def tidy(body: Mapping[str, Any]) -> dict[str, Any]:
    """``body`` with the elements of each multi-valued attribute merged by identity (:func:`merged_elements`)."""
    result: dict[str, Any] = {}
    for key, value in body.items():
        if isinstance(value, list):
            result[key] = merged_elements(key, value)
        elif key.lower().startswith("urn:") and isinstance(value, Mapping):
            result[key] = tidy(value)
        else:
            result[key] = value
    return result


def _address(path: str, item: Mapping[str, Any], key: str, identity: Identity | None = None,
             element: Mapping[str, Any] | None = None) -> str:
    """The filtered path that names one live element: by the desired element's identity when it has one (as the
    desired list spells it), else by what the live element holds (its key, type or value, else primary)."""
    if identity is not None and element is not None and identity[0] != "primary":
        return str(TargetPath(attribute=path, filter=(identity[0], str(_ci_get(element, identity[0])))))
    for name in (key, "type", "value"):
        found = _ci_get(item, name)
        if isinstance(found, str):
            return str(TargetPath(attribute=path, filter=(name, found)))
    return f"{path}[primary eq true]"


def _diff_elements(changes: list[Change], path: str, rule: AttributeRule, desired: list[Mapping[str, Any]],
                   live: list[Any]) -> None:
    """Complex elements matched by identity: removals of values the desired list lacks (value-identified lists
    only), then the demotion of other primaries, then updates of matched elements, then additions."""
    key = identity_key(path, desired)
    elements = merged_elements(path, desired, rule)
    primary = next((e for e in elements if is_primary(e)), None)
    updates: list[Change] = []
    additions: list[dict[str, Any]] = []
    kept: Mapping[str, Any] | None = None  # the live element that is (or becomes) the primary one
    for element in elements:
        identity = element_identity(element, key, rule)
        match = next((item for item in live if _holds(item, identity, rule)), None) if identity else None
        if match is None:
            value = _clean_element(element, rule)
            if {k.lower() for k in value} - {"type", "primary"}:  # more than a type alone
                additions.append(value)
            continue
        if element is primary:
            kept = match
        updates.extend(_element_updates(path, rule, key, identity, element, match, element is primary))
    removals = _removals(path, rule, elements, live) if key == "value" else []
    demotions = _demotions(path, key, live, kept, {c.path for c in removals}) if primary is not None else []
    changes.extend(removals + demotions + updates)
    if key == "value" and additions:
        changes.append(Change("add", path, additions, old=None, new=[_ci_get(e, "value") for e in additions]))
    else:
        changes.extend(Change("add", path, [value], old=None, new=value) for value in additions)


def _element_updates(path: str, rule: AttributeRule, key: str, identity: Identity | None,
                     element: Mapping[str, Any], match: Mapping[str, Any], primary: bool) -> list[Change]:
    """The replacements that make one matched live element agree with its desired element."""
    address = _address(path, match, key, identity, element)
    updates = []
    if primary and not is_primary(match):
        updates.append(Change("replace", f"{address}.primary", True, _ci_get(match, "primary"), True))
    for sub, value in element.items():
        low = sub.lower()
        if value is None or low in IGNORED_SUB or low == "primary" or (identity and low == identity[0]):
            continue
        sub_rule = rule.child(sub)
        old = _ci_get(match, sub)
        if not equal(value, old, sub_rule):
            new = coerce(value, sub_rule)
            updates.append(Change("replace", f"{address}.{sub}", new, old, new))
    return updates


def _removals(path: str, rule: AttributeRule, elements: list[Any], live: list[Any]) -> list[Change]:
    """Live elements whose value the desired list (the whole attribute) lacks, removed one by one."""
    value_rule = rule.child("value")
    wanted = {repr(comparable(_ci_get(e, "value"), value_rule)) for e in elements}
    removals = []
    for item in live:
        old = _ci_get(item, "value") if isinstance(item, Mapping) else None
        if old is not None and repr(comparable(old, value_rule)) not in wanted:
            target = TargetPath(attribute=path, filter=("value", str(old)))
            removals.append(Change("remove", str(target), None, old=old, new=None))
    return removals


def _demotions(path: str, key: str, live: list[Any], kept: Mapping[str, Any] | None,
               removed: set[str]) -> list[Change]:
    """``primary: false`` for every live primary element but the one to keep (at most one primary)."""
    spared = removed | ({_address(path, kept, key)} if kept is not None else set())
    demotions = []
    for item in live:
        if item is kept or not is_primary(item):
            continue
        address = _address(path, item, key)
        if address in spared or address.endswith("[primary eq true]"):
            continue  # going anyway, or not addressable apart from the element to keep
        demotions.append(Change("replace", f"{address}.primary", False, True, False))
    return demotions


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
            elements = [_clean_element(e, rule) if isinstance(e, Mapping) else e
                        for e in merged_elements(key, value, rule)]
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
