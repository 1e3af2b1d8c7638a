"""Entra's source attribute names (as mappings and scoping filters write them) and Microsoft Graph's properties.

A snapshot and the Graph reader keep objects exactly as Graph returns them; :func:`user_value` and
:func:`group_value` read one Entra-named attribute from such an object. ``IsSoftDeleted`` and
``appRoleAssignments`` are not directory properties: they depend on the manifest and are computed by the
desired-state engine. Directory extension attributes (``extension_<appId>_<name>``, the appId as 32 lowercase
hex digits without dashes, as Entra writes them) are valid names for users and groups; Graph and snapshots spell
them the same way, so they are read and selected unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

COMPUTED = frozenset({"IsSoftDeleted", "appRoleAssignments"})
# A directory extension: the app's id without dashes (lowercase, as Graph returns it; snapshot keys are
# case-sensitive), then the property name (Graph allows 120 characters).
EXTENSION = re.compile(r"extension_[0-9a-f]{32}_[A-Za-z0-9_]{1,120}")

# Entra name -> Graph property path ("a.b" reads a nested object, "a[0]" the first item of a list).
USER_ATTRIBUTES: dict[str, str] = {
    "objectId": "id",
    "userPrincipalName": "userPrincipalName",
    "mail": "mail",
    "mailNickname": "mailNickname",
    "displayName": "displayName",
    "givenName": "givenName",
    "surname": "surname",
    "jobTitle": "jobTitle",
    "department": "department",
    "companyName": "companyName",
    "employeeId": "employeeId",
    "employeeType": "employeeType",
    "employeeHireDate": "employeeHireDate",
    "employeeLeaveDateTime": "employeeLeaveDateTime",
    "employeeOrgData.costCenter": "employeeOrgData.costCenter",
    "employeeOrgData.division": "employeeOrgData.division",
    "mobile": "mobilePhone",
    "telephoneNumber": "businessPhones[0]",
    "facsimileTelephoneNumber": "faxNumber",
    "physicalDeliveryOfficeName": "officeLocation",
    "streetAddress": "streetAddress",
    "city": "city",
    "state": "state",
    "postalCode": "postalCode",
    "country": "country",
    "usageLocation": "usageLocation",
    "preferredLanguage": "preferredLanguage",
    "userType": "userType",
    "accountEnabled": "accountEnabled",
    "createdDateTime": "createdDateTime",
    "immutableId": "onPremisesImmutableId",
    "onPremisesSamAccountName": "onPremisesSamAccountName",
    "onPremisesDistinguishedName": "onPremisesDistinguishedName",
    "onPremisesSecurityIdentifier": "onPremisesSecurityIdentifier",
    "proxyAddresses": "proxyAddresses",
    "otherMails": "otherMails",
    "manager": "manager.id",
    **{f"extensionAttribute{n}": f"onPremisesExtensionAttributes.extensionAttribute{n}" for n in range(1, 16)},
}

GROUP_ATTRIBUTES: dict[str, str] = {
    "objectId": "id",
    "displayName": "displayName",
    "mailNickname": "mailNickname",
    "mail": "mail",
    "description": "description",
    "securityEnabled": "securityEnabled",
    "mailEnabled": "mailEnabled",
    "proxyAddresses": "proxyAddresses",
    "members": "members",
}



def is_extension(name: str) -> bool:
    """Whether ``name`` is a directory extension attribute (``extension_<32 hex digits>_<name>``)."""
    return EXTENSION.fullmatch(name) is not None


class SourceNames(frozenset[str]):
    """Known source attribute names; ``in`` also accepts every well-formed directory extension attribute.

    Iterating gives the fixed names only (for "did you mean" hints); set operations give a plain frozenset.
    """

    def __contains__(self, name: object) -> bool:
        return super().__contains__(name) or (isinstance(name, str) and is_extension(name))


USER_NAMES = SourceNames(frozenset(USER_ATTRIBUTES) | COMPUTED)
GROUP_NAMES = SourceNames(frozenset(GROUP_ATTRIBUTES) | frozenset({"IsSoftDeleted"}))
# Graph properties every reader selects, whatever the mappings use.
ALWAYS_USER = ("id", "userPrincipalName", "displayName", "accountEnabled")
ALWAYS_GROUP = ("id", "displayName")
MULTI_VALUED = frozenset({"proxyAddresses", "otherMails", "appRoleAssignments", "members"})


@lru_cache(maxsize=512)
def _steps(path: str) -> tuple[tuple[str, int | None], ...]:
    steps = []
    for step in path.split("."):
        name, _, rest = step.partition("[")
        steps.append((name, int(rest[:-1]) if rest else None))
    return tuple(steps)


def read_path(record: Mapping[str, Any], path: str) -> Any:
    """The value at a Graph property path, or None when any step is absent."""
    value: Any = record
    for name, index in _steps(path):
        if not isinstance(value, Mapping):
            return None
        value = value.get(name)
        if index is not None:
            value = value[index] if isinstance(value, list) and len(value) > index else None
    return value


def _path(table: Mapping[str, str], name: str) -> str | None:
    """The Graph property path of an Entra name; an extension attribute is its own (top-level) property."""
    path = table.get(name)
    return name if path is None and is_extension(name) else path


def user_value(record: Mapping[str, Any], name: str) -> Any:
    path = _path(USER_ATTRIBUTES, name)
    if path is None:
        return None
    if name == "manager" and isinstance(record.get("manager"), str):  # a snapshot may hold the id itself
        return record["manager"]
    return read_path(record, path)


def group_value(record: Mapping[str, Any], name: str) -> Any:
    path = _path(GROUP_ATTRIBUTES, name)
    return None if path is None else read_path(record, path)


def graph_select(names: Iterable[str], table: Mapping[str, str], always: Iterable[str]) -> list[str]:
    """The Graph ``$select`` list (top-level properties) needed to read ``names``."""
    selected = dict.fromkeys(always)
    for name in sorted(names):
        path = _path(table, name)
        if path and name != "members":
            top = path.split(".")[0].split("[")[0]
            selected.setdefault(top)
    return list(selected)
