"""``validate`` reports expression, source-attribute and scoping-filter problems at the manifest's FILE:LINE:COL,
with the column inside the expression."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.cli import main
from reconciler.validation import validate_paths
from reconciler.validation.mappings import mapping_problems
from tests.engine_helpers import manifest

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = str(ROOT / "examples" / "directory.json")
ATEA = str(ROOT / "manifests" / "atea.yaml")

USERS = """\
users:
  mappings:
    - {target: userName, source: userPrincipalName, matching: 1}
"""


def _problems(extra_mappings: str, filters: str = "", groups: str = "") -> list[str]:
    loaded = manifest(filters + USERS + extra_mappings + groups)
    return [str(p) for p in mapping_problems(loaded)]


def test_syntax_error_column_is_inside_the_expression() -> None:
    # line 16 of the generated manifest: the expression's quote sits at column 43, its 'J' at 44, so the
    # string opened at offset 23 is at column 67.
    problems = _problems("""    - {target: displayName, expression: 'Join(" ", [givenName], "abc)'}\n""")
    assert problems == ["test.yaml:16:67: provisioning.users.mappings[1].expression: unclosed string: a string "
                        "ends with '\"'"]


@pytest.mark.parametrize(("expression", "column", "message"), [
    ('Join(" ", [givenName], [surnam])', 67, "unknown source attribute 'surnam' (did you mean 'surname'?"),
    ("ToLowr([mail])", 44, "unknown function 'ToLowr' (did you mean 'ToLower'?"),
    ('Left([mail])', 44, "Left takes 2 arguments, got 1"),
    ('Switch([mail], "a", "b", "c", "d")', 44, "Switch takes a source, a default, then key/value pairs"),
    ('Join(" ", SelectUniqueValue([mail], [mailNickname]))', 54, "SelectUniqueValue must be the outermost"),
    ('Join(" ", [Mail])', 54, "unknown source attribute 'Mail' (did you mean 'mail'? names are case-sensitive)"),
])
def test_unknown_functions_arities_and_attributes(expression: str, column: int, message: str) -> None:
    problems = _problems(f"    - {{target: displayName, expression: '{expression}'}}\n")
    assert len(problems) == 1
    assert problems[0].startswith(f"test.yaml:16:{column}: provisioning.users.mappings[1].expression: {message}")


def test_source_attribute_names_are_entra_names() -> None:
    problems = _problems("    - {target: displayName, source: mobilePhone}\n"
                         "    - {target: title, source: jobTitle}\n")
    assert problems == ["test.yaml:16:39: provisioning.users.mappings[1].source: unknown source attribute "
                        "'mobilePhone' (did you mean 'mobile'? names are case-sensitive)"]


def test_scoping_filter_attributes_are_checked() -> None:
    filters = ("scopingFilters:\n"
               "  - - {attribute: Department, operator: EQUALS, value: Sales}\n"
               "    - {attribute: proxyAddresses, operator: IS NOT NULL}\n")
    problems = _problems("", filters=filters)
    assert problems[0].startswith("test.yaml:14:21: provisioning.scopingFilters[0][0].attribute: unknown source "
                                  "attribute 'Department' (did you mean 'department'?")
    assert problems[1].startswith("test.yaml:15:21: provisioning.scopingFilters[0][1].attribute: scoping filters "
                                  "cannot test 'proxyAddresses'")


def test_matching_attribute_cannot_be_random_and_roles_need_assigned_scope() -> None:
    loaded = manifest("scope: all\nusers:\n  mappings:\n"
                      "    - {target: userName, expression: 'Join(\"-\", Guid())', matching: 1}\n"
                      "    - {target: roles, expression: 'AppRoleAssignmentsComplex([appRoleAssignments])'}\n")
    messages = [p.message for p in mapping_problems(loaded)]
    assert any("matching attribute cannot use Guid" in m for m in messages)
    assert any("app role functions need 'scope: assigned'" in m for m in messages)


def test_group_members_mapping_rules() -> None:
    groups = ("groups:\n  enabled: true\n  mappings:\n"
              "    - {target: displayName, source: displayName, matching: 1}\n"
              "    - {target: members, source: displayName}\n")
    problems = _problems("", groups=groups)
    assert problems == ["test.yaml:20:18: provisioning.groups.mappings[1].target: a group's members target takes "
                        "'source: members'"]


def test_the_repository_examples_are_valid() -> None:
    loaded, problems = validate_paths([ROOT / "manifests"])
    assert problems == [] and {m.manifest.name for m in loaded} >= {"atea", "wiki"}


def test_validate_command_prints_expression_problems(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = Path(ATEA).read_text().replace('Join(" ", [givenName], [surname])',
                                                           'Join(" ", [givenName], [surname)')
    (tmp_path / "atea.yaml").write_text(text)
    assert main(["validate", str(tmp_path / "atea.yaml")]) == 1
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "[surname)" in t)
    column = text.splitlines()[line - 1].index("[surname)") + 1
    err = capsys.readouterr().err
    assert f"atea.yaml:{line}:{column}: provisioning.users.mappings[6].expression: unclosed '['" in err


def test_eval_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", 'Join(" ", [givenName], [surname])', "--directory", SAMPLE,
                 "--user", "jose.muller@contoso.com"]) == 0
    assert json.loads(capsys.readouterr().out) == "José Müller"
    assert main(["eval", 'Coalesce([mail], "none")']) == 0  # no user: attributes are null
    assert json.loads(capsys.readouterr().out) == "none"
    assert main(["eval", "[mail]"]) == 0
    assert capsys.readouterr().out == "null\n"
    assert main(["eval", "Split(\"a,b\", \",\")"]) == 0
    assert json.loads(capsys.readouterr().out) == ["a", "b"]


def test_eval_computes_roles_and_soft_delete_from_a_manifest(capsys: pytest.CaptureFixture[str]) -> None:
    common = ["--directory", SAMPLE, "--manifest", ATEA]
    assert main(["eval", "SingleAppRoleAssignment([appRoleAssignments])", "--user", "adele.vance@contoso.com",
                 *common]) == 0
    assert json.loads(capsys.readouterr().out) == "Admin"
    assert main(["eval", "CStr([IsSoftDeleted])", "--user", "patti.fernandez@contoso.com", *common]) == 0
    assert json.loads(capsys.readouterr().out) == "True"  # not assigned to Atea


def test_eval_reads_the_manifests_directory_without_directory(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "[department]", "--user", "pradeep.gupta@contoso.com", "--manifest", ATEA]) == 0
    assert json.loads(capsys.readouterr().out) == "Contractors"


def test_multi_line_expressions_report_the_line_inside_the_expression() -> None:
    block = '    - target: displayName\n      expression: |-\n        Join(" ",\n          [givenNam])\n'
    problems = [str(p) for p in mapping_problems(manifest(USERS + block))]
    assert problems == ["test.yaml:17:21: provisioning.users.mappings[1].expression: (expression line 2, column 3) "
                        "unknown source attribute 'givenNam' (did you mean 'givenName'? names are case-sensitive)"]


def test_eval_warns_about_unknown_attributes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", 'Coalesce([Mail], "x")']) == 0
    out, err = capsys.readouterr()
    assert out == '"x"\n'
    assert err == ("warning: expression, column 10: unknown source attribute 'Mail' (did you mean 'mail'? names "
                   "are case-sensitive); it reads as null\n")


@pytest.mark.parametrize(("args", "message"), [
    (["Join(\" \", \"a"], "expression, column 11: unclosed string"),
    (["Foo()"], "expression, column 1: unknown function 'Foo'"),
    (["[mail]", "--user", "x@contoso.com"], "--user and --group need --directory FILE (a directory snapshot) or "
                                            "--manifest"),
    (["[mail]", "--user", "nobody@contoso.com", "--directory", SAMPLE], "no user 'nobody"),
    (["CDate(\"soon\")"], "CDate's expression 'soon' is not a date"),
])
def test_eval_errors_are_one_line(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", *args]) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
