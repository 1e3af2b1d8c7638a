"""A manifest compiled to Graph's synchronizationSchema (managed part), checked against the Graph API reference's
own shapes and examples (tests/graph_schemas.py), and ``reconciler entra-schema`` as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings

from reconciler.entra.operators import GRAPH_OPERATORS, MANIFEST_OPERATORS
from reconciler.entra.schema import (
    GROUP_SOURCE,
    GROUP_TARGET,
    USER_SOURCE,
    USER_TARGET,
    compile_schema,
    compile_warnings,
)
from reconciler.entra.sources import (
    PARAMETER_NAMES,
    expression_source,
    render,
    source_text,
    to_source,
)
from reconciler.expressions import FUNCTIONS
from reconciler.expressions.parse import Attribute, Call, Compare, Literal, Node, parse
from reconciler.manifest import Manifest, load_text
from reconciler.manifest.model import SCOPING_OPERATORS
from tests import azure_helpers
from tests import graph_schemas as docs
from tests.azure_helpers import ENTRA
from tests.reconcile_helpers import GROUPS
from tests.test_expressions_parse import _expressions
from tests.test_functions import CASES

ROOT = Path(__file__).resolve().parent.parent
ATEA_TARGETS = ["userName", "externalId", "active", 'emails[type eq "work"].value', "name.givenName",
                "name.familyName", "name.formatted", 'phoneNumbers[type eq "mobile"].value', "locale", "nickName"]


def atea_text(*pairs: str, groups: bool = False) -> str:
    """manifests/atea.yaml with ``engine: entra`` inserted and exact pieces replaced (``old, new, ...``); with
    ``groups``, group provisioning added (the guide's Atea provisions users only)."""
    return azure_helpers.atea_text(*ENTRA, *pairs) + (GROUPS if groups else "")


def atea(*pairs: str, groups: bool = False) -> Manifest:
    return load_text(atea_text(*pairs, groups=groups), "atea.yaml").manifest


def object_mappings(manifest: Manifest) -> dict[str, dict[str, Any]]:
    rules = compile_schema(manifest)["synchronizationRules"]
    assert len(rules) == 1
    return {m["sourceObjectName"]: m for m in rules[0]["objectMappings"]}


def reconciler(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "reconciler", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


# --- the Done-when check ---

def test_atea_user_mapping_has_the_ten_attributes_matching_and_the_contractors_filter() -> None:
    user = object_mappings(atea())[USER_SOURCE]
    assert user["sourceObjectName"] == "User" and user["targetObjectName"] == USER_TARGET
    assert user["enabled"] is True and user["flowTypes"] == "Add, Update, Delete"
    by_target = {a["targetAttributeName"]: a for a in user["attributeMappings"]}
    assert [a["targetAttributeName"] for a in user["attributeMappings"]] == ATEA_TARGETS
    assert by_target["userName"]["matchingPriority"] == 1
    assert by_target["userName"]["source"] == {"expression": "[userPrincipalName]", "name": "userPrincipalName",
                                               "parameters": [], "type": "Attribute"}
    assert all(a["matchingPriority"] == 0 for t, a in by_target.items() if t != "userName")
    active = by_target["active"]["source"]
    assert active["type"] == "Function" and active["name"] == "Switch"
    assert active["expression"] == 'Switch([IsSoftDeleted], , "False", "True", "True", "False")'
    assert active["parameters"][0] == {"key": "source", "value": {
        "expression": "[IsSoftDeleted]", "name": "IsSoftDeleted", "parameters": [], "type": "Attribute"}}
    assert [(p["key"], p["value"]["name"]) for p in active["parameters"][1:]] == [
        ("switchValue", "False"), ("switchValue", "True"), ("switchValue", "True"), ("switchValue", "False")]
    assert user["scope"] == {"categoryFilterGroups": [], "inputFilterGroups": [], "groups": [{
        "name": "Scoping filter 1",
        "clauses": [
            {"operatorName": "NOT EQUALS", "sourceOperandName": "department",
             "targetOperand": {"values": ["Contractors"]}},
            {"operatorName": "IS TRUE", "sourceOperandName": "accountEnabled", "targetOperand": {"values": []}},
        ]}]}


def test_entra_schema_command_prints_the_atea_schema(tmp_path: Path) -> None:
    (tmp_path / "atea.yaml").write_text(atea_text())
    result = reconciler("entra-schema", str(tmp_path / "atea.yaml"))
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert [app["name"] for app in printed["apps"]] == ["atea"]
    assert printed["apps"][0]["schema"] == compile_schema(atea())
    user = printed["apps"][0]["schema"]["synchronizationRules"][0]["objectMappings"][0]
    assert len(user["attributeMappings"]) == 10
    assert {"operatorName": "NOT EQUALS", "sourceOperandName": "department",
            "targetOperand": {"values": ["Contractors"]}} in user["scope"]["groups"][0]["clauses"]
    assert result.stderr.splitlines() == [
        "atea: warning: deprovision: disable, but Entra's job DELETEs users purged (hard-deleted) from the directory"]


# --- shapes against the Graph reference ---

def _type_of(documented: Any) -> type:
    """The Python type a documented placeholder stands for."""
    if isinstance(documented, str):
        return {"String": str, "Boolean": bool, "Integer": int}.get(documented, str)
    if isinstance(documented, dict):
        return dict
    if isinstance(documented, list):
        return list
    return type(documented)


def assert_shape(ours: dict[str, Any], documented: dict[str, Any], *, nullable: tuple[str, ...] = (),
                 absent: tuple[str, ...] = ()) -> None:
    """Same keys as the documented representation (less ``@odata.type`` and the ``absent`` ones), same types."""
    keys = [k for k in documented if k != "@odata.type" and k not in absent]
    assert list(ours) == keys  # Graph's key order too
    for key in keys:
        if ours[key] is None and key in nullable:
            continue
        expected = _type_of(documented[key])
        assert isinstance(ours[key], expected), (key, ours[key], expected)
        assert not (expected is int and isinstance(ours[key], bool)), key


def test_mid_sample_compiles_to_exactly_the_documented_tree() -> None:
    assert expression_source("Mid([userPrincipalName], 1, 8)") == docs.MID_SAMPLE
    assert to_source(parse("Mid([userPrincipalName], 1, 8)")) == docs.MID_SAMPLE


def test_object_mapping_example_sources_compile_to_the_documented_trees() -> None:
    """Not, Mid, Replace (Graph's keys Find and Replacement; omitted arguments left out) and SingleAppRoleAssignment,
    as the objectMapping example writes them."""
    for mapping in docs.OBJECT_MAPPING_EXAMPLE["attributeMappings"]:
        documented = mapping["source"]
        if documented is None:
            continue
        assert expression_source(documented["expression"]) == documented, mapping["targetAttributeName"]
        assert _text_form(parse(render(documented))) == _text_form(parse(documented["expression"]))


def test_replace_sample_renders_back_from_its_tree_alone() -> None:
    locale = next(m for m in docs.OBJECT_MAPPING_EXAMPLE["attributeMappings"]
                  if m["targetAttributeName"] == "LocaleSidKey")
    assert render(locale["source"]) == 'Replace([preferredLanguage], "-", , , "_", , )'


def test_attribute_mappings_have_the_documented_keys_and_types() -> None:
    user = object_mappings(atea("  - {target: locale, source: preferredLanguage}\n",
                                "  - {target: locale, source: preferredLanguage, default: en-US}\n"))[USER_SOURCE]
    for mapping in user["attributeMappings"]:
        assert_shape(mapping, docs.ATTRIBUTE_MAPPING, nullable=("defaultValue",))
        assert_shape(mapping["source"], docs.ATTRIBUTE_MAPPING_SOURCE)
        example = docs.OBJECT_MAPPING_EXAMPLE["attributeMappings"][0]
        assert list(mapping) == list(example)
    assert user["attributeMappings"][8]["defaultValue"] == "en-US"


def test_scope_has_the_documented_filter_group_and_clause_shapes() -> None:
    scope = object_mappings(atea())[USER_SOURCE]["scope"]
    assert_shape(scope, docs.FILTER)
    for group in scope["groups"]:
        assert_shape(group, docs.FILTER_GROUP)
        for clause in group["clauses"]:
            assert_shape(clause, docs.FILTER_CLAUSE)
            assert list(clause["targetOperand"]) == ["values"]
            assert all(isinstance(v, str) for v in clause["targetOperand"]["values"])


def test_object_mappings_have_the_documented_keys_less_the_templates() -> None:
    """``metadata`` and ``name`` are the template's (kept from the live schema), not the manifest's."""
    mappings = object_mappings(atea(groups=True))
    for mapping in mappings.values():
        assert_shape(mapping, docs.OBJECT_MAPPING, absent=("metadata", "name"))
        assert [k for k in docs.OBJECT_MAPPING_EXAMPLE if k in mapping] == list(mapping)
    assert mappings[GROUP_SOURCE]["targetObjectName"] == GROUP_TARGET


def test_flow_types_use_graphs_comma_space_form() -> None:
    example = docs.OBJECT_MAPPING_EXAMPLE["flowTypes"]
    assert object_mappings(atea())[USER_SOURCE]["flowTypes"] == example


# --- tables ---

def test_parameter_names_cover_every_function() -> None:
    assert set(PARAMETER_NAMES) == set(FUNCTIONS)
    for name, function in FUNCTIONS.items():
        keys = PARAMETER_NAMES[name]
        assert len(keys) == len(set(keys)), name
        if function.max_args is not None:
            assert len(keys) == function.max_args, name


def test_one_graph_operator_per_scoping_operator() -> None:
    assert set(GRAPH_OPERATORS) == set(SCOPING_OPERATORS)
    assert {MANIFEST_OPERATORS[graph] for graph in GRAPH_OPERATORS.values()} == set(SCOPING_OPERATORS)


# --- sources ---

def _text_form(node: Node | None) -> Node | None:
    """A tree without offsets, numbers as the text Entra reads them as, and FormatDateTime's omitted
    dateTimeStyles dropped: what survives a source tree without its expressions."""
    if node is None:
        return None
    if isinstance(node, Literal):
        value = node.value if isinstance(node.value, str) else render(to_source(node))[1:-1]
        return Literal(0, value)
    if isinstance(node, Attribute):
        return Attribute(0, node.name)
    if isinstance(node, Compare):
        return Compare(0, node.op, _text_form(node.left), _text_form(node.right))  # type: ignore[arg-type]
    assert isinstance(node, Call)
    args = node.args
    if node.name == "FormatDateTime" and len(args) == 4 and args[1] is None:
        args = (args[0], args[2], args[3])
    return Call(0, node.name, tuple(_text_form(a) for a in args))


def _no_offsets(node: Node | None) -> Node | None:
    if node is None:
        return None
    if isinstance(node, Literal):
        return Literal(0, node.value)
    if isinstance(node, Attribute):
        return Attribute(0, node.name)
    if isinstance(node, Compare):
        return Compare(0, node.op, _no_offsets(node.left), _no_offsets(node.right))  # type: ignore[arg-type]
    assert isinstance(node, Call)
    return Call(0, node.name, tuple(_no_offsets(a) for a in node.args))


EXPRESSIONS = sorted({case[0] for cases in CASES.values() for case in cases} | {
    'Join(" ", [givenName], ToUpper([surname]))',
    r'"Company name: \"Contoso\""',
    r'"a\\b"',
    'Switch([IsSoftDeleted], , "False", "True")',
    "Replace([a], , , , , , )",
    'IIF([country]="USA", 1, -2)',
    "&HF7",
    'InStr([a], "b", 1, vbTextCompare)',
    'Join(",", , [a], , [b])',
    'Coalesce([a], , "x")',
    'FormatDateTime([x], , "yyyyMMdd", "yyyy")',
    "Left([a], 1.5)",
    'IIF([a] <> "b", [a], IIF([n] >= 3, "big", "small"))',
})


@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_sources_round_trip_to_the_same_tree(expression: str) -> None:
    tree = parse(expression)
    source = to_source(tree)
    if isinstance(tree, Literal):  # a bare constant is a Constant source: text, as Graph writes constants
        assert _text_form(parse(source_text(source))) == _text_form(tree)
    else:
        assert _no_offsets(parse(source_text(source))) == _no_offsets(tree)
    assert _no_offsets(parse(source_text(expression_source(expression)))) == _no_offsets(tree)
    # from the tree alone (a source without expressions): the same, as Entra reads constants
    assert _text_form(parse(render(source))) == _text_form(tree)


@settings(max_examples=200, deadline=None)
@given(_expressions())
def test_generated_expressions_round_trip(expression: str) -> None:
    tree = parse(expression)
    source = to_source(tree)
    assert _text_form(parse(source_text(source))) == _text_form(tree)
    if not isinstance(tree, Literal):
        assert _no_offsets(parse(source_text(source))) == _no_offsets(tree)
    assert _text_form(parse(render(source))) == _text_form(tree)


def test_repeated_parameters_share_one_key_and_omitted_ones_keep_their_place() -> None:
    join = to_source(parse('Join(",", , [a])'))
    assert [(p["key"], p["value"] and p["value"]["name"]) for p in join["parameters"]] == [
        ("separator", ","), ("source", None), ("source", "a")]
    replace = to_source(parse('Replace([mail], "@contoso.com", , ,"", ,)'))
    assert [p["key"] for p in replace["parameters"]] == ["source", "Find", "Replacement"]
    short = to_source(parse('FormatDateTime([d], "yyyyMMdd", "yyyy")'))
    assert [p["key"] for p in short["parameters"]] == ["source", "inputFormat", "outputFormat"]
    long = to_source(parse('FormatDateTime([d], "AdjustToUniversal", "yyyyMMdd", "yyyy")'))
    assert [p["key"] for p in long["parameters"]] == ["source", "dateTimeStyles", "inputFormat", "outputFormat"]


def test_comparisons_are_functions_named_by_their_operator() -> None:
    iif = to_source(parse('IIF([country]="USA",[country],[department])'))
    condition = iif["parameters"][0]
    assert condition["key"] == "condition"
    assert condition["value"] == {
        "expression": '[country]="USA"', "name": "=", "type": "Function", "parameters": [
            {"key": "left", "value": {"expression": "[country]", "name": "country", "parameters": [],
                                      "type": "Attribute"}},
            {"key": "right", "value": {"expression": '"USA"', "name": "USA", "parameters": [], "type": "Constant"}}]}
    assert iif["expression"] == 'IIF([country]="USA", [country], [department])'


def test_expression_text_is_kept_as_written_and_constants_escape_as_parse_reads_them() -> None:
    source = expression_source('  Join(" ",\n  [givenName], [surname])  ')
    assert source["expression"] == 'Join(" ",\n  [givenName], [surname])'
    constant = to_source(parse(r'"say \"hi\" \\ bye"'))
    assert constant["name"] == 'say "hi" \\ bye'
    assert constant["expression"] == r'"say \"hi\" \\ bye"'
    assert parse(render({"name": 'a"b\\c', "type": "Constant"})) == Literal(0, 'a"b\\c')
    assert source_text({"name": "mail"}) == "[mail]"  # Graph's default type is Attribute


# --- mapping details ---

def test_apply_default_and_constant_mappings() -> None:
    user = object_mappings(atea(
        "  - {target: nickName, source: mailNickname}\n",
        "  - {target: nickName, source: mailNickname, apply: onCreate, default: 7}\n"
        "      - {target: title, constant: true}\n"))[USER_SOURCE]
    nick, title = user["attributeMappings"][-2:]
    assert nick["flowType"] == "ObjectAddOnly" and nick["defaultValue"] == "7"
    assert title["source"] == {"expression": '"True"', "name": "True", "parameters": [], "type": "Constant"}
    assert title["flowType"] == "Always" and title["flowBehavior"] == "FlowWhenChanged"


def test_actions_left_out_leave_their_flow_types_out() -> None:
    manifest = atea("  deprovision: disable\n", "  deprovision: disable\n  actions: [update, create]\n")
    mappings = object_mappings(manifest)
    assert mappings[USER_SOURCE]["flowTypes"] == "Add, Update"
    manifest = atea("  deprovision: disable\n", "  deprovision: disable\n  actions: [update, create]\n", groups=True)
    mappings = object_mappings(manifest)
    assert mappings[GROUP_SOURCE]["flowTypes"] == "Add, Update"


def test_filters_are_or_groups_of_and_clauses() -> None:
    manifest = atea("      - {attribute: accountEnabled, operator: IS TRUE}\n",
                    "      - {attribute: accountEnabled, operator: IS TRUE}\n"
                    "    - - {attribute: jobTitle, operator: REGEX MATCH, value: '^Eng'}\n"
                    "      - {attribute: employeeId, operator: Greater_Than, value: 100}\n"
                    "      - {attribute: mail, operator: IS NOT NULL}\n")
    groups = object_mappings(manifest)[USER_SOURCE]["scope"]["groups"]
    assert [g["name"] for g in groups] == ["Scoping filter 1", "Scoping filter 2"]
    assert groups[1]["clauses"] == [
        {"operatorName": "REGEX MATCH", "sourceOperandName": "jobTitle", "targetOperand": {"values": ["^Eng"]}},
        {"operatorName": "Greater_Than", "sourceOperandName": "employeeId", "targetOperand": {"values": ["100"]}},
        {"operatorName": "IS NOT NULL", "sourceOperandName": "mail", "targetOperand": {"values": []}}]


def test_group_mapping_members_and_disabled_groups() -> None:
    group = object_mappings(atea(groups=True))[GROUP_SOURCE]
    assert group["enabled"] is True
    members = group["attributeMappings"][-1]
    assert members["targetAttributeName"] == "members"
    assert members["source"] == {"expression": "[members]", "name": "members", "parameters": [], "type": "Attribute"}
    assert group["scope"] == {"categoryFilterGroups": [], "groups": [], "inputFilterGroups": []}
    disabled = object_mappings(atea())[GROUP_SOURCE]
    assert disabled == {"enabled": False, "flowTypes": "Add, Update, Delete", "sourceObjectName": "Group",
                        "targetObjectName": GROUP_TARGET}


def test_compiling_is_deterministic() -> None:
    assert json.dumps(compile_schema(atea())) == json.dumps(compile_schema(atea()))


# --- warnings ---

def test_warnings_say_where_entras_job_differs() -> None:
    assert compile_warnings(atea()) == [
        "deprovision: disable, but Entra's job DELETEs users purged (hard-deleted) from the directory"]
    assert compile_warnings(atea("  deprovision: disable\n", "  deprovision: delete\n")) == [
        "deprovision: delete, but 'active' is mapped from IsSoftDeleted: Entra's job disables users that leave "
        "scope and DELETEs only users purged from the directory"]
    no_active = atea('      - {target: active, expression: \'Switch([IsSoftDeleted], , "False", "True", "True", '
                     '"False")\'}\n', "")
    assert compile_warnings(no_active) == [
        "deprovision: disable, but no 'active' mapping reads IsSoftDeleted: Entra's job disables no one, and "
        "DELETEs users purged from the directory"]
    assert compile_warnings(atea("  deprovision: disable\n", "  deprovision: disable\n  adopt: none\n"))[1:] == [
        "adopt: none has no Entra setting: Entra's job takes over every account it matches"]


def test_no_warning_for_what_lives_in_secrets_or_matches() -> None:
    quiet = atea("  deprovision: disable\n",
                 "  deprovision: disable\n  actions: [create, update]\n  skipOutOfScopeDeletions: true\n"
                 "  adopt: any\n",
                 "  scope: assigned\n", "  scope: all\n")
    assert compile_warnings(quiet) == []


# --- the command ---

def test_reconciler_engine_manifests_are_skipped_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "atea.yaml").write_text(atea_text())
    (tmp_path / "wiki.yaml").write_text((ROOT / "manifests" / "wiki.yaml").read_text())
    result = reconciler("entra-schema", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert [app["name"] for app in json.loads(result.stdout)["apps"]] == ["atea"]
    skipped = [line for line in result.stderr.splitlines() if line.startswith("wiki:")]
    assert skipped == [f"wiki: skipped: provisioning.engine is reconciler, not entra ({tmp_path / 'wiki.yaml'})"]


def test_default_folder_with_no_entra_app_prints_no_apps() -> None:
    result = reconciler("entra-schema")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"apps": []}
    assert len(result.stderr.splitlines()) == 2  # atea and wiki, one line each


def test_invalid_manifest_is_one_positioned_line_and_exit_1(tmp_path: Path) -> None:
    (tmp_path / "atea.yaml").write_text(atea_text("  deletionThreshold: 50\n", "  deletionThreshold: many\n"))
    result = reconciler("entra-schema", str(tmp_path))
    assert result.returncode == 1
    assert result.stdout == "" and "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{tmp_path / 'atea.yaml'}:")
    assert "deletionThreshold" in lines[0]


def test_two_runs_print_the_same_bytes(tmp_path: Path) -> None:
    (tmp_path / "atea.yaml").write_text(atea_text())
    (tmp_path / "second.yaml").write_text(atea_text("name: atea\n", "name: second\n"))
    first = reconciler("entra-schema", str(tmp_path))
    second = reconciler("entra-schema", str(tmp_path))
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout and first.stderr == second.stderr
    assert [app["name"] for app in json.loads(first.stdout)["apps"]] == ["atea", "second"]
    assert first.stdout.startswith('{\n  "apps": [\n')
