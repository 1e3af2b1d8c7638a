"""A manifest as the managed part of Graph's ``synchronizationSchema``: what ``engine: entra`` hands to Entra's job.

The managed part is ``{"synchronizationRules": [{"objectMappings": [USER, GROUP]}]}``, each object mapping with
Graph's own property names (``attributeMappings``, ``enabled``, ``flowTypes``, ``scope``, ``sourceObjectName``,
``targetObjectName``), in Graph's key order. Everything else of a job's schema (directories, metadata, rule ids,
mapping names) is the template's and is kept as the job has it (:mod:`reconciler.entra.managed`).

- One attributeMapping per manifest mapping, in manifest order: ``targetAttributeName`` the target path as written,
  ``source`` from :mod:`reconciler.entra.sources`, ``matchingPriority`` the matching precedence (0: not matched
  on), ``flowType`` ``Always`` or ``ObjectAddOnly`` (``apply: onCreate``), ``flowBehavior`` ``FlowWhenChanged``,
  ``defaultValue`` the default as text or null, ``exportMissingReferences`` false (Graph's value for every example).
- ``scope``: the scoping filters, one filter group per filter (OR), one clause per condition (AND).
- ``flowTypes``: ``Add, Update, Delete`` minus the target object actions the manifest leaves out.
- A disabled group mapping carries only ``enabled``, ``flowTypes`` and the object names: its attribute mappings and
  scope stay as the job has them (:func:`managed_keys`).

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from reconciler.entra.operators import GRAPH_OPERATORS
from reconciler.entra.sources import attribute_source, constant_source, expression_source, literal_text
from reconciler.expressions.parse import Attribute, parse, walk
from reconciler.manifest.model import Manifest, Mapping, ScopingClause

USER_SOURCE = "User"
GROUP_SOURCE = "Group"
USER_TARGET = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
GROUP_TARGET = "urn:ietf:params:scim:schemas:core:2.0:Group"

# manifest target object action -> Graph objectMapping flow type, in Graph's order
FLOW_TYPES = (("create", "Add"), ("update", "Update"), ("delete", "Delete"))
ENABLED_KEYS = ("attributeMappings", "enabled", "flowTypes", "scope", "sourceObjectName", "targetObjectName")
DISABLED_KEYS = ("enabled", "flowTypes", "sourceObjectName", "targetObjectName")
ALWAYS = "Always"
ON_CREATE = "ObjectAddOnly"
FLOW_BEHAVIOR = "FlowWhenChanged"


def managed_keys(enabled: bool) -> tuple[str, ...]:
    """The objectMapping keys the manifest decides: all of them when the mapping is enabled, else only the switch,
    the flow types and the object names (a disabled mapping's attributes and scope are left as they are)."""
    return ENABLED_KEYS if enabled else DISABLED_KEYS


def compile_schema(manifest: Manifest) -> dict[str, Any]:
    """The managed part of the job's synchronizationSchema for ``manifest`` (deterministic: manifest order)."""
    provisioning = manifest.provisioning
    flow_types = flow_types_of(provisioning.actions)
    user = _object_mapping(USER_SOURCE, USER_TARGET, True, flow_types, provisioning.users.mappings,
                           provisioning.scoping_filters)
    group = _object_mapping(GROUP_SOURCE, GROUP_TARGET, provisioning.groups.enabled, flow_types,
                            provisioning.groups.mappings, [])
    return {"synchronizationRules": [{"objectMappings": [user, group]}]}


def flow_types_of(actions: Sequence[str]) -> str:
    return ", ".join(flow for action, flow in FLOW_TYPES if action in actions)


def attribute_mapping(mapping: Mapping) -> dict[str, Any]:
    if mapping.source is not None:
        source = attribute_source(mapping.source)
    elif mapping.constant is not None:
        source = constant_source(mapping.constant)
    else:
        source = expression_source(mapping.expression or "")
    return {
        "defaultValue": None if mapping.default is None else literal_text(mapping.default),
        "exportMissingReferences": False,
        "flowBehavior": FLOW_BEHAVIOR,
        "flowType": ON_CREATE if mapping.apply == "onCreate" else ALWAYS,
        "matchingPriority": mapping.matching or 0,
        "source": source,
        "targetAttributeName": mapping.target,
    }


def scope_filter(filters: list[list[ScopingClause]]) -> dict[str, Any]:
    groups = [{"clauses": [_clause(c) for c in clauses], "name": f"Scoping filter {number}"}
              for number, clauses in enumerate(filters, start=1)]
    return {"categoryFilterGroups": [], "groups": groups, "inputFilterGroups": []}


def compile_warnings(manifest: Manifest) -> list[str]:
    """Where Entra's job will do something other than what the manifest's words say the reconciler does."""
    provisioning = manifest.provisioning
    soft_delete = any(m.target == "active" and _reads_soft_delete(m) for m in provisioning.users.mappings)
    deletes = "delete" in provisioning.actions
    warnings = []
    if provisioning.deprovision == "delete" and soft_delete and deletes:
        warnings.append("deprovision: delete, but 'active' is mapped from IsSoftDeleted: Entra's job disables "
                        "users that leave scope and DELETEs only users purged from the directory")
    elif provisioning.deprovision == "disable" and deletes:
        if soft_delete:
            warnings.append("deprovision: disable, but Entra's job DELETEs users purged (hard-deleted) from the "
                            "directory")
        else:
            warnings.append("deprovision: disable, but no 'active' mapping reads IsSoftDeleted: Entra's job "
                            "disables no one, and DELETEs users purged from the directory")
    if provisioning.adopt == "none":
        warnings.append("adopt: none has no Entra setting: Entra's job takes over every account it matches")
    return warnings


def _object_mapping(source: str, target: str, enabled: bool, flow_types: str, mappings: list[Mapping],
                    filters: list[list[ScopingClause]]) -> dict[str, Any]:
    full = {
        "attributeMappings": [attribute_mapping(m) for m in mappings],
        "enabled": enabled,
        "flowTypes": flow_types,
        "scope": scope_filter(filters),
        "sourceObjectName": source,
        "targetObjectName": target,
    }
    return {key: full[key] for key in managed_keys(enabled)}


def _clause(clause: ScopingClause) -> dict[str, Any]:
    values = [] if clause.value is None else [literal_text(clause.value)]
    return {"operatorName": GRAPH_OPERATORS[clause.operator], "sourceOperandName": clause.attribute,
            "targetOperand": {"values": values}}


def _reads_soft_delete(mapping: Mapping) -> bool:
    if mapping.source is not None:
        return mapping.source == "IsSoftDeleted"
    if mapping.expression is None:
        return False
    return any(isinstance(n, Attribute) and n.name == "IsSoftDeleted" for n in walk(parse(mapping.expression)))
