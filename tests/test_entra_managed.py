"""The managed part of a live synchronizationSchema: extracted, compared, put back and described."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from reconciler.entra.managed import SchemaError, comparable, managed_part, merged, schema_changes
from reconciler.entra.schema import compile_schema
from reconciler.errors import ReconcilerError
from tests import graph_schemas as docs
from tests.test_entra_schema import atea

SOFT_DELETE = '      - {target: active, expression: \'Switch([IsSoftDeleted], , "False", "True", "True", "False")\'}\n'


def mappings_of(part: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["sourceObjectName"]: m for rule in part["synchronizationRules"] for m in rule["objectMappings"]}


def user_of(part: dict[str, Any]) -> dict[str, Any]:
    return mappings_of(part)["User"]


@pytest.mark.parametrize("groups", [True, False], ids=["groups-enabled", "groups-disabled"])
def test_managed_part_of_the_merged_schema_is_the_compiled_one(groups: bool) -> None:
    compiled = compile_schema(atea(groups=groups))
    body = merged(docs.live_schema(), compiled)
    assert managed_part(body) == compiled


def test_merge_keeps_everything_the_manifest_does_not_decide() -> None:
    live = docs.live_schema()
    body = merged(live, compile_schema(atea(groups=True)))
    assert live == docs.live_schema()  # not modified in place
    assert body["directories"] == live["directories"] and body["version"] == live["version"]
    rule, live_rule = body["synchronizationRules"][0], live["synchronizationRules"][0]
    assert {k: v for k, v in rule.items() if k != "objectMappings"} == \
        {k: v for k, v in live_rule.items() if k != "objectMappings"}
    group, user, contact = rule["objectMappings"]  # in the live order
    assert [group["name"], user["name"]] == ["Provision Azure Active Directory Groups",
                                             "Provision Azure Active Directory Users"]
    assert group["metadata"] == user["metadata"] == docs.METADATA
    assert contact == live_rule["objectMappings"][2]  # not a user or group mapping: untouched
    assert [a["targetAttributeName"] for a in user["attributeMappings"]][:3] == ["userName", "externalId", "active"]
    # the manifest's attribute mappings replace the template's
    assert "title" not in [a["targetAttributeName"] for a in user["attributeMappings"]]
    assert list(user) == list(live_rule["objectMappings"][1])  # keys stay where they were


def test_a_gallery_templates_own_target_object_names_are_kept_and_not_drift() -> None:
    live = docs.live_schema()
    for mapping in live["synchronizationRules"][0]["objectMappings"]:
        mapping["targetObjectName"] = f"Gallery{mapping['sourceObjectName']}"
    compiled = compile_schema(atea(groups=True))
    body = merged(live, compiled)
    names = {m["sourceObjectName"]: m["targetObjectName"] for m in body["synchronizationRules"][0]["objectMappings"]}
    assert names["User"] == "GalleryUser" and names["Group"] == "GalleryGroup"
    assert comparable(managed_part(body)) == comparable(compiled)
    assert schema_changes(compiled, managed_part(body)) == []


def test_a_disabled_group_mapping_keeps_the_jobs_attributes_and_scope() -> None:
    live = docs.live_schema()
    body = merged(live, compile_schema(atea()))
    group = body["synchronizationRules"][0]["objectMappings"][0]
    live_group = live["synchronizationRules"][0]["objectMappings"][0]
    assert group["enabled"] is False
    assert group["attributeMappings"] == live_group["attributeMappings"] and group["scope"] is None


def test_a_mapping_missing_from_the_template_is_one_line() -> None:
    live = docs.live_schema()
    live["synchronizationRules"][0]["objectMappings"].pop(0)  # no Group mapping
    with pytest.raises(SchemaError) as caught:
        merged(live, compile_schema(atea(groups=True)))
    assert isinstance(caught.value, ReconcilerError)
    assert caught.value.lines() == [
        "the job's synchronization schema has no object mapping for Group (sourceObjectName); its template must "
        "have one"]


def test_managed_part_picks_users_and_groups_users_first_with_graph_defaults() -> None:
    live = docs.live_schema()
    del live["synchronizationRules"][0]["objectMappings"][1]["attributeMappings"][2]["flowBehavior"]
    part = managed_part(live)
    assert [m["sourceObjectName"] for m in part["synchronizationRules"][0]["objectMappings"]] == ["User", "Group"]
    user = user_of(part)
    assert user["attributeMappings"][2]["flowBehavior"] == "FlowWhenChanged"
    assert mappings_of(part)["Group"]["scope"] == {"categoryFilterGroups": [], "groups": [], "inputFilterGroups": []}
    assert "metadata" not in user and "name" not in user
    assert managed_part({}) == {"synchronizationRules": []}


def test_managed_part_of_the_documented_example_keeps_its_sources() -> None:
    schema = {"synchronizationRules": [{"objectMappings": [docs.OBJECT_MAPPING_EXAMPLE]}]}
    user = user_of(managed_part(schema))
    assert [a["source"] for a in user["attributeMappings"]] == \
        [a["source"] for a in docs.OBJECT_MAPPING_EXAMPLE["attributeMappings"]]


# --- comparison ---

def test_comparable_ignores_what_entra_ignores() -> None:
    compiled = compile_schema(atea(groups=True))
    other = copy.deepcopy(compiled)
    user = user_of(other)
    user["flowTypes"] = "Delete,Add, Update"
    user["attributeMappings"].reverse()
    active = next(a for a in user["attributeMappings"] if a["targetAttributeName"] == "active")
    active["source"] = {"expression": 'Switch( [IsSoftDeleted] ,, "False","True",\n "True", "False" )',
                        "name": "Switch", "parameters": [], "type": "Function"}
    user["scope"]["groups"][0]["clauses"].reverse()
    user["scope"]["groups"][0]["name"] = "Contractors out"
    other["synchronizationRules"][0]["objectMappings"].reverse()
    assert comparable(other) == comparable(compiled)
    assert schema_changes(compiled, other) == []


def test_comparable_reads_numbers_and_quoted_numbers_alike() -> None:
    def part(source: dict[str, Any]) -> dict[str, Any]:
        return comparable({"synchronizationRules": [{"objectMappings": [{
            "sourceObjectName": "User", "enabled": True, "flowTypes": "Add",
            "attributeMappings": [{"targetAttributeName": "alias", "source": source}]}]}]})
    written = {"expression": "Mid([userPrincipalName], 1, 8)", "type": "Function", "name": "Mid"}
    quoted = {"expression": 'Mid([userPrincipalName], "1", "8")', "type": "Function", "name": "Mid"}
    tree_only = {k: v for k, v in docs.MID_SAMPLE.items() if k != "expression"}
    assert part(written) == part(quoted) == part(tree_only) == part(docs.MID_SAMPLE)
    assert part(written) != part({"expression": "Mid([userPrincipalName], 1, 9)"})


def test_null_scope_is_the_empty_filter() -> None:
    compiled = compile_schema(atea())
    user_of(compiled)["scope"]["groups"] = []
    live = copy.deepcopy(compiled)
    user_of(live)["scope"] = None
    assert comparable(live) == comparable(compiled)


def test_differences_that_matter_are_seen() -> None:
    compiled = compile_schema(atea())
    for change in (
        lambda u: u.update(flowTypes="Add, Update"),
        lambda u: u["attributeMappings"][0].update(matchingPriority=2),
        lambda u: u["attributeMappings"][1].update(flowType="ObjectAddOnly"),
        lambda u: u["attributeMappings"][1].update(defaultValue="x"),
        lambda u: u["attributeMappings"][1]["source"].update(expression="[mail]"),
        lambda u: u["scope"]["groups"][0]["clauses"][0]["targetOperand"].update(values=["Vendors"]),
        lambda u: u["scope"]["inputFilterGroups"].append({"name": "x", "clauses": []}),
        lambda u: u["attributeMappings"].pop(),
    ):
        other = copy.deepcopy(compiled)
        change(user_of(other))
        assert comparable(other) != comparable(compiled)
        assert schema_changes(compiled, other)


# --- change lines ---

def test_schema_changes_say_what_changed_in_short_lines() -> None:
    old = compile_schema(atea("  deprovision: disable\n", "  deprovision: disable\n  actions: [create, update]\n",
                              "    - - {attribute: department, operator: NOT EQUALS, value: Contractors}\n",
                              "    - - {attribute: jobTitle, operator: IS NOT NULL}\n",
                              "      - {target: nickName, source: mailNickname}\n", "",
                              SOFT_DELETE, SOFT_DELETE.replace(', "True", "False")', ")")))
    new = compile_schema(atea(groups=True))
    assert schema_changes(old, new) == [
        "User: flowTypes Add, Update -> Add, Update, Delete",
        'User: ~ active: Switch([IsSoftDeleted], , "False", "True") -> '
        'Switch([IsSoftDeleted], , "False", "True", "True", "False")',
        "User: + nickName <- [mailNickname]",
        "User: scope: - jobTitle IS NOT NULL",
        "User: scope: + department NOT EQUALS Contractors",
        "Group: enabled false -> true",
        "Group: flowTypes Add, Update -> Add, Update, Delete",
    ]
    assert schema_changes(new, new) == []


def test_schema_changes_of_mapping_properties_and_filters() -> None:
    old = compile_schema(atea())
    new = copy.deepcopy(old)
    user = user_of(new)
    user["attributeMappings"][0]["matchingPriority"] = 2
    user["attributeMappings"][1]["defaultValue"] = "none"
    user["attributeMappings"].pop(9)
    user["scope"]["groups"].append({"name": "Scoping filter 2", "clauses": [
        {"operatorName": "EQUALS", "sourceOperandName": "country", "targetOperand": {"values": ["NO"]}},
        {"operatorName": "IS TRUE", "sourceOperandName": "accountEnabled", "targetOperand": {"values": []}}]})
    assert schema_changes(old, new) == [
        "User: - nickName",
        "User: ~ userName: matchingPriority 1 -> 2",
        "User: ~ externalId: defaultValue null -> none",
        "User: scope: + filter accountEnabled IS TRUE AND country EQUALS NO",
    ]
    gone = {"synchronizationRules": [{"objectMappings": [user_of(old)]}]}
    assert schema_changes(old, gone) == ["Group: - object mapping"]
