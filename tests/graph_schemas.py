"""Graph synchronization JSON for the schema tests: the Graph API reference's own examples, and a live job schema.

Source of the documented shapes: microsoftgraph/microsoft-graph-docs-contrib, api-reference/v1.0/resources/
synchronization-attributemappingsource.md (the Mid sample), synchronization-attributemapping.md, -filter.md,
-filtergroup.md, -filterclause.md and -objectmapping.md (their "JSON representation" blocks, where a value is the
name of its type, and the objectMapping "JSON Example", of which the mappings used here are kept).
"""

from __future__ import annotations

from typing import Any

# synchronization-attributemappingsource.md: "Expression extracting first eight characters from the source attribute"
MID_SAMPLE: dict[str, Any] = {
    "expression": "Mid([userPrincipalName], 1, 8)",
    "name": "Mid",
    "parameters": [
        {"key": "source", "value": {"expression": "[userPrincipalName]", "name": "userPrincipalName",
                                    "parameters": [], "type": "Attribute"}},
        {"key": "start", "value": {"expression": "\"1\"", "name": "1", "parameters": [], "type": "Constant"}},
        {"key": "length", "value": {"expression": "\"8\"", "name": "8", "parameters": [], "type": "Constant"}},
    ],
    "type": "Function",
}

# the "JSON representation" blocks: a value names its type; {"@odata.type": ...} stands for a nested resource
ATTRIBUTE_MAPPING_SOURCE: dict[str, Any] = {
    "@odata.type": "#microsoft.graph.attributeMappingSource",
    "expression": "String",
    "name": "String",
    "parameters": [{"@odata.type": "microsoft.graph.stringKeyAttributeMappingSourceValuePair"}],
    "type": "String",
}
ATTRIBUTE_MAPPING: dict[str, Any] = {
    "@odata.type": "#microsoft.graph.attributeMapping",
    "defaultValue": "String",
    "exportMissingReferences": "Boolean",
    "flowBehavior": "String",
    "flowType": "String",
    "matchingPriority": "Integer",
    "source": {"@odata.type": "microsoft.graph.attributeMappingSource"},
    "targetAttributeName": "String",
}
FILTER: dict[str, Any] = {
    "categoryFilterGroups": [{"@odata.type": "microsoft.graph.filterGroup"}],
    "groups": [{"@odata.type": "microsoft.graph.filterGroup"}],
    "inputFilterGroups": [{"@odata.type": "microsoft.graph.filterGroup"}],
}
FILTER_GROUP: dict[str, Any] = {
    "clauses": [{"@odata.type": "microsoft.graph.filterClause"}],
    "name": "String",
}
FILTER_CLAUSE: dict[str, Any] = {
    "operatorName": "String",
    "sourceOperandName": "String",
    "targetOperand": {"@odata.type": "microsoft.graph.filterOperand"},
}
OBJECT_MAPPING: dict[str, Any] = {
    "attributeMappings": [{"@odata.type": "microsoft.graph.attributeMapping"}],
    "enabled": True,
    "flowTypes": "String",
    "metadata": [{"@odata.type": "microsoft.graph.metadataEntry"}],
    "name": "String",
    "scope": {"@odata.type": "microsoft.graph.filter"},
    "sourceObjectName": "String",
    "targetObjectName": "String",
}


def _attribute(name: str) -> dict[str, Any]:
    return {"expression": f"[{name}]", "name": name, "parameters": [], "type": "Attribute"}


def _constant(text: str) -> dict[str, Any]:
    return {"expression": f"\"{text}\"", "name": text, "parameters": [], "type": "Constant"}


def _mapping(target: str, source: dict[str, Any] | None, default: str | None = None,
             priority: int = 0) -> dict[str, Any]:
    return {"defaultValue": default, "exportMissingReferences": False, "flowBehavior": "FlowWhenChanged",
            "flowType": "Always", "matchingPriority": priority, "source": source, "targetAttributeName": target}


# synchronization-objectmapping.md, "JSON Example" (Salesforce), with these of its attribute mappings
OBJECT_MAPPING_EXAMPLE: dict[str, Any] = {
    "attributeMappings": [
        _mapping("IsActive", {"expression": "Not([IsSoftDeleted])", "name": "Not",
                              "parameters": [{"key": "source", "value": _attribute("IsSoftDeleted")}],
                              "type": "Function"}, default="True"),
        _mapping("Alias", MID_SAMPLE),
        _mapping("Email", _attribute("mail")),
        _mapping("EmailEncodingKey", None, default="ISO-8859-1"),
        _mapping("LocaleSidKey", {"expression": "Replace([preferredLanguage], \"-\", , , \"_\", , )",
                                  "name": "Replace",
                                  "parameters": [{"key": "source", "value": _attribute("preferredLanguage")},
                                                 {"key": "Find", "value": _constant("-")},
                                                 {"key": "Replacement", "value": _constant("_")}],
                                  "type": "Function"}, default="en_US"),
        _mapping("ProfileName", {"expression": "SingleAppRoleAssignment([appRoleAssignments])",
                                 "name": "SingleAppRoleAssignment",
                                 "parameters": [{"key": "source", "value": _attribute("appRoleAssignments")}],
                                 "type": "Function"}, default="Chatter Free User"),
        _mapping("Username", _attribute("userPrincipalName"), priority=1),
    ],
    "enabled": True,
    "flowTypes": "Add, Update, Delete",
    "metadata": [{"key": "IsCustomerDefined", "value": "false"}, {"key": "Disposition", "value": "\"Normal\""}],
    "name": "Synchronize Azure Active Directory Users to salesforce.com",
    "scope": None,
    "sourceObjectName": "User",
    "targetObjectName": "User",
}

USER_TARGET = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
GROUP_TARGET = "urn:ietf:params:scim:schemas:core:2.0:Group"
RULE_ID = "03f7d90d-bf71-41b1-bda6-aaf0ddbee5d8"
METADATA = [{"key": "IsCustomerDefined", "value": "false"}, {"key": "EscrowBehavior", "value": "\"Default\""}]


def live_schema() -> dict[str, Any]:
    """A job schema shaped like the SCIM template's: two directories, one rule with metadata, the Group mapping
    listed before the User one, and a third object mapping the manifest does not manage."""
    return {
        "directories": [
            {"id": "66e4a8cc-1b7b-435e-95f8-f06cea133828", "name": "Azure Active Directory", "discoverabilities":
             "None", "objects": [{"name": "User", "attributes": [{"name": "userPrincipalName", "type": "String"}]},
                                 {"name": "Group", "attributes": [{"name": "displayName", "type": "String"}]}]},
            {"id": "8ffa6169-f354-4751-9b77-9c00765be92d", "name": "customappsso", "discoverabilities": "None",
             "objects": [{"name": USER_TARGET, "attributes": [{"name": "userName", "type": "String"}]},
                         {"name": GROUP_TARGET, "attributes": [{"name": "displayName", "type": "String"}]}]},
        ],
        "synchronizationRules": [{
            "editable": True,
            "id": RULE_ID,
            "metadata": [{"key": "azureActiveDirectoryTenant", "value": "contoso"}],
            "name": "USER_OUTBOUND_USER",
            "objectMappings": [
                {
                    "attributeMappings": [
                        _mapping("displayName", _attribute("displayName"), priority=1),
                        _mapping("members", _attribute("members")),
                    ],
                    "enabled": True,
                    "flowTypes": "Add, Update, Delete",
                    "metadata": METADATA,
                    "name": "Provision Azure Active Directory Groups",
                    "scope": None,
                    "sourceObjectName": "Group",
                    "targetObjectName": GROUP_TARGET,
                },
                {
                    "attributeMappings": [
                        _mapping("userName", _attribute("userPrincipalName"), priority=1),
                        _mapping("active", {"expression": "Switch([IsSoftDeleted], , \"False\", \"True\", \"True\", "
                                                          "\"False\")", "name": "Switch", "parameters": [],
                                            "type": "Function"}),
                        _mapping("displayName", _attribute("displayName")),
                        _mapping("title", _attribute("jobTitle")),
                    ],
                    "enabled": True,
                    "flowTypes": "Add, Update, Delete",
                    "metadata": METADATA,
                    "name": "Provision Azure Active Directory Users",
                    "scope": {"categoryFilterGroups": [], "groups": [], "inputFilterGroups": []},
                    "sourceObjectName": "User",
                    "targetObjectName": USER_TARGET,
                },
                {
                    "attributeMappings": [_mapping("displayName", _attribute("displayName"))],
                    "enabled": False,
                    "flowTypes": "Add, Update",
                    "metadata": [],
                    "name": "Provision Azure Active Directory Contacts",
                    "scope": None,
                    "sourceObjectName": "Contact",
                    "targetObjectName": "urn:example:Contact",
                },
            ],
            "priority": 1,
            "sourceDirectoryName": "Azure Active Directory",
            "targetDirectoryName": "customappsso",
        }],
        "version": "date:2024-05-02T09:01:26Z~###~exceptions:~###~id:",
    }
