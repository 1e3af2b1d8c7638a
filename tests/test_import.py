"""``reconciler import``: saved Graph responses (and the loopback fake Graph) to a manifest that validates, with a
report of what it cannot express, never the SecretToken, and a managed schema part that round-trips."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.cli import main
from reconciler.entra.imported import GraphApp, ImportFailure, ImportOptions, import_app, stack_imports
from reconciler.entra.managed import comparable, managed_part
from reconciler.entra.schema import compile_schema
from reconciler.manifest import load_manifest
from tests.fake_graph import FakeGraph, fake_graph

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "tests" / "data" / "import" / "atea"
FAKE_SECRET_TOKEN = "FAKE-ATEA-SECRET-TOKEN-9f8e7d6c5b4a39281706"
GRAPH_TOKEN_ENV = "IMPORT_TEST_GRAPH_TOKEN"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "reconciler", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def sample(name: str) -> Any:
    return json.loads((SAMPLE / name).read_text())


def saved_app(**changes: Any) -> GraphApp:
    parts = {
        "application": sample("application.json"),
        "service_principal": sample("servicePrincipal.json"),
        "assignments": sample("appRoleAssignedTo.json")["value"],
        "jobs": sample("synchronizationJobs.json")["value"],
        "schema": sample("schema.json"),
        "secrets": sample("secrets.json")["value"],
        "owners": sample("owners.json")["value"],
    }
    parts.update(changes)
    return GraphApp(**parts)


def user_mapping(schema: dict[str, Any]) -> dict[str, Any]:
    return next(m for m in schema["synchronizationRules"][0]["objectMappings"] if m["sourceObjectName"] == "User")


def copy_sample(folder: Path, **files: Any) -> Path:
    """The sample folder copied to ``folder``, with some files replaced (a value of None removes the file)."""
    folder.mkdir(parents=True, exist_ok=True)
    for path in SAMPLE.iterdir():
        if path.name in files:
            continue
        (folder / path.name).write_text(path.read_text())
    for name, content in files.items():
        if content is not None:
            (folder / name).write_text(content if isinstance(content, str) else json.dumps(content))
    return folder


def expressible_schema() -> dict[str, Any]:
    """The sample schema without what a manifest cannot express (input filters, the Contact mapping, a flow type)."""
    schema = sample("schema.json")
    rule = schema["synchronizationRules"][0]
    rule["objectMappings"] = [m for m in rule["objectMappings"] if m["sourceObjectName"] != "Contact"]
    user = user_mapping(schema)
    user["scope"]["inputFilterGroups"] = []
    for mapping in user["attributeMappings"]:
        if mapping["flowType"] not in ("Always", "ObjectAddOnly"):
            mapping["flowType"] = "Always"
    return schema


# -- the command, from saved responses ------------------------------------------------------------------------------


def test_import_from_the_sample_writes_a_manifest_validate_accepts(tmp_path: Path) -> None:
    out = tmp_path / "atea.yaml"
    result = cli("import", "--from", str(SAMPLE), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    text = out.read_text()
    assert text.startswith("# yaml-language-server: $schema=")
    validated = cli("validate", str(out))
    assert validated.returncode == 0, validated.stderr
    assert "error" not in validated.stderr

    manifest = load_manifest(out).manifest
    assert manifest.name == "atea" and manifest.display_name == "Atea"
    assert manifest.notification_email == "iam-alerts@contoso.com"
    assert manifest.owners == ["platform-team@contoso.com", "0d8e6f4a-9b1c-4d3e-f5a7-8b9c0d1e2f3a"]
    assert [r.value for r in manifest.roles] == ["User", "Admin"]
    assert [(a.principal_type, a.principal, a.role) for a in manifest.assignments] == [
        ("group", "3c1d9e7f-2a4b-4c6d-8e0f-1a2b3c4d5e6f", "User"),
        ("group", "4d2e0f8a-3b5c-4d7e-9f1a-2b3c4d5e6f7a", "Admin"),
        ("user", "6f4a2b0c-5d7e-4f9a-b1c3-4d5e6f7a8b9c", "Admin"),
    ]
    assert "# Adele Vance" in text and "# Atea Users" in text  # display names as end-of-line comments
    provisioning = manifest.provisioning
    assert provisioning.engine == "entra" and provisioning.job_template_id is None
    assert provisioning.target.url == "https://scim.atea.example/scim/v2"
    assert provisioning.target.token_env == "ATEA_SCIM_TOKEN"
    assert provisioning.scope == "assigned" and provisioning.deprovision == "disable"
    assert provisioning.deletion_threshold == 50
    assert [[(c.attribute, c.operator, c.value) for c in group] for group in provisioning.scoping_filters] == [
        [("department", "NOT EQUALS", "Contractors"), ("accountEnabled", "IS TRUE", None)]]
    by_target = {m.target: m for m in provisioning.users.mappings}
    assert by_target["userName"].matching == 1
    assert by_target["active"].expression == 'Switch([IsSoftDeleted], , "False", "True", "True", "False")'
    assert by_target["locale"].default == "nb-NO"
    assert by_target["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber"].apply == "onCreate"
    assert by_target["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:organization"].constant == "Contoso"
    assert by_target["title"].source == "jobTitle" and by_target["title"].apply == "always"  # kept, and reported
    assert provisioning.groups.enabled and [m.target for m in provisioning.groups.mappings] == [
        "displayName", "externalId", "members"]


def test_the_report_names_what_the_manifest_cannot_express(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "import", "--from", str(SAMPLE))
    assert code == 0, err
    report = [line for line in err.splitlines() if line.startswith("not expressed: ")]
    assert any("Megan Bowen" in line and "Default Access" in line for line in report)
    assert any("ServicePrincipal Atea Reporting Service" in line for line in report)
    assert any("inputFilterGroups" in line for line in report)
    assert any("Contact" in line and "object mapping" in line for line in report)
    assert any("title" in line and "AttributeAddOnly" in line for line in report)
    assert any("msiam_access" in line and "no value" in line for line in report)
    assert len(report) == 6, report
    assert out.startswith("# yaml-language-server: $schema=../manifest.schema.json\n")


def test_the_secret_token_appears_nowhere(tmp_path: Path) -> None:
    imported = import_app(saved_app(), ImportOptions())
    assert FAKE_SECRET_TOKEN not in repr(imported)  # before any output boundary could mask it
    out = tmp_path / "atea.yaml"
    for args in (("--out", str(out)), ()):
        result = cli("import", "--from", str(SAMPLE), *args)
        assert result.returncode == 0, result.stderr
        assert FAKE_SECRET_TOKEN not in result.stdout and FAKE_SECRET_TOKEN not in result.stderr
        assert "[secret]" not in result.stdout + result.stderr  # nothing had to be masked either
    assert FAKE_SECRET_TOKEN not in out.read_text()


def test_round_trip_the_compiled_schema_equals_the_imported_one(tmp_path: Path) -> None:
    schema = expressible_schema()
    folder = copy_sample(tmp_path / "saved", **{"schema.json": schema})
    out = tmp_path / "atea.yaml"
    result = cli("import", "--from", str(folder), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "inputFilterGroups" not in result.stderr and "AttributeAddOnly" not in result.stderr
    manifest = load_manifest(out).manifest
    assert comparable(compile_schema(manifest)) == comparable(managed_part(schema))


def test_round_trip_holds_for_a_disabled_group_mapping_and_fewer_actions() -> None:
    schema = expressible_schema()
    rule = schema["synchronizationRules"][0]
    for mapping in rule["objectMappings"]:
        mapping["flowTypes"] = "Add, Update"
    rule["objectMappings"][1]["enabled"] = False
    imported = import_app(saved_app(schema=schema), ImportOptions())
    provisioning = imported.manifest["provisioning"]
    assert provisioning["actions"] == ["create", "update"]
    assert provisioning["groups"]["enabled"] is False
    from reconciler.manifest.model import Manifest

    manifest = Manifest.model_validate(imported.manifest)
    assert comparable(compile_schema(manifest)) == comparable(managed_part(schema))


def test_an_existing_out_file_is_kept_unless_forced(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "atea.yaml"
    out.write_text("keep me\n")
    code, _, err = run(capsys, "import", "--from", str(SAMPLE), "--out", str(out))
    assert code == 1 and err.strip() == f"{out}: already exists; pass --force to overwrite it"
    assert out.read_text() == "keep me\n"
    code, _, err = run(capsys, "import", "--from", str(SAMPLE), "--out", str(out), "--force")
    assert code == 0, err
    assert out.read_text().startswith("# yaml-language-server:")


def test_the_modeline_points_at_the_nearest_schema(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "manifest.schema.json").write_text("{}")
    out = tmp_path / "apps" / "prod" / "atea.yaml"
    out.parent.mkdir(parents=True)
    code, _, err = run(capsys, "import", "--from", str(SAMPLE), "--out", str(out))
    assert code == 0, err
    assert out.read_text().splitlines()[0] == "# yaml-language-server: $schema=../../manifest.schema.json"


# -- bad input: one line, exit 1 -----------------------------------------------------------------------------------


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert result.stdout == ""
    return lines[0]


def test_a_missing_folder_is_one_line(tmp_path: Path) -> None:
    line = one_line_error(cli("import", "--from", str(tmp_path / "nowhere")))
    assert line == f"{tmp_path / 'nowhere'}: not a directory of saved Graph responses"


def test_a_missing_required_file_is_one_line(tmp_path: Path) -> None:
    folder = copy_sample(tmp_path / "saved", **{"schema.json": None})
    line = one_line_error(cli("import", "--from", str(folder)))
    assert line.startswith(f"{folder / 'schema.json'}: missing")


def test_bad_json_is_one_line_naming_the_file(tmp_path: Path) -> None:
    folder = copy_sample(tmp_path / "saved", **{"servicePrincipal.json": '{"id": "x",'})
    line = one_line_error(cli("import", "--from", str(folder)))
    assert line.startswith(f"{folder / 'servicePrincipal.json'}: not JSON: ")


def test_a_wrong_shape_is_one_line_naming_the_file(tmp_path: Path) -> None:
    folder = copy_sample(tmp_path / "saved", **{"appRoleAssignedTo.json": "[]"})
    line = one_line_error(cli("import", "--from", str(folder)))
    assert line == f"{folder / 'appRoleAssignedTo.json'}: expected a JSON object (the Graph response as returned)"
    folder = copy_sample(tmp_path / "other", **{"schema.json": {"synchronizationRules": {"no": "list"}}})
    line = one_line_error(cli("import", "--from", str(folder)))
    assert line == f"{folder / 'schema.json'}: synchronizationRules is not a list of objects"


def test_a_missing_base_address_needs_target_url(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    secrets = sample("secrets.json")
    secrets["value"] = [s for s in secrets["value"] if s["key"] != "BaseAddress"]
    folder = copy_sample(tmp_path / "saved", **{"secrets.json": secrets})
    line = one_line_error(cli("import", "--from", str(folder)))
    assert line.startswith(f"{folder / 'secrets.json'}: no BaseAddress") and line.endswith("pass --target-url")
    code, out, err = run(capsys, "import", "--from", str(folder), "--target-url", "https://scim.example/v2")
    assert code == 0, err
    assert "url: 'https://scim.example/v2'" in out


def test_a_plain_http_base_address_is_not_usable(tmp_path: Path) -> None:
    secrets = sample("secrets.json")
    for pair in secrets["value"]:
        if pair["key"] == "BaseAddress":
            pair["value"] = "http://scim.atea.example/scim/v2"
    folder = copy_sample(tmp_path / "saved", **{"secrets.json": secrets})
    line = one_line_error(cli("import", "--from", str(folder)))
    assert "is not usable" in line and line.endswith("pass --target-url")


def test_no_owner_is_one_line_unless_given(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = copy_sample(tmp_path / "saved", **{"owners.json": None})
    line = one_line_error(cli("import", "--from", str(folder)))
    assert "pass --owner" in line
    code, out, err = run(capsys, "import", "--from", str(folder), "--owner", "alex@contoso.com")
    assert code == 0, err
    assert "owners: [alex@contoso.com]" in out


# -- the conversion rules ------------------------------------------------------------------------------------------


def test_an_unknown_operator_drops_its_whole_filter_group() -> None:
    schema = sample("schema.json")
    scope = user_mapping(schema)["scope"]
    scope["groups"].append({"name": "Odd", "clauses": [
        {"operatorName": "EQUALS", "sourceOperandName": "department", "targetOperand": {"values": ["Sales"]}},
        {"operatorName": "IS MEMBER OF", "sourceOperandName": "department", "targetOperand": {"values": ["x"]}}]})
    imported = import_app(saved_app(schema=schema), ImportOptions())
    filters = imported.manifest["provisioning"]["scopingFilters"]
    assert filters == [[{"attribute": "department", "operator": "NOT EQUALS", "value": "Contractors"},
                        {"attribute": "accountEnabled", "operator": "IS TRUE"}]]
    assert any("filter group Odd is left out whole" in line and "IS MEMBER OF" in line for line in imported.report)


def test_when_no_filter_group_survives_the_report_says_the_scope_is_wider() -> None:
    schema = sample("schema.json")
    user_mapping(schema)["scope"]["groups"][0]["clauses"][0]["operatorName"] = "SOUNDS LIKE"
    imported = import_app(saved_app(schema=schema), ImportOptions())
    assert "scopingFilters" not in imported.manifest["provisioning"]
    assert any("WIDER scope" in line for line in imported.report)


def test_an_expression_the_parser_rejects_is_reported_and_left_out() -> None:
    schema = sample("schema.json")
    user_mapping(schema)["attributeMappings"].append({
        "defaultValue": None, "exportMissingReferences": False, "flowBehavior": "FlowWhenChanged",
        "flowType": "Always", "matchingPriority": 0, "targetAttributeName": "displayName",
        "source": {"expression": "Trim([displayName]", "name": "Trim", "parameters": [], "type": "Function"}})
    imported = import_app(saved_app(schema=schema), ImportOptions())
    targets = [m["target"] for m in imported.manifest["provisioning"]["users"]["mappings"]]
    assert "displayName" not in targets
    assert any(line.startswith("users: displayName: expression 'Trim([displayName]'") for line in imported.report)


def test_scope_all_deprovision_delete_and_the_default_threshold() -> None:
    secrets = [s for s in sample("secrets.json")["value"] if s["key"] != "SyncNotificationSettings"]
    secrets = [{"key": "SyncAll", "value": "True"} if s["key"] == "SyncAll" else s for s in secrets]
    schema = sample("schema.json")
    user = user_mapping(schema)
    user["attributeMappings"] = [m for m in user["attributeMappings"] if m["targetAttributeName"] != "active"]
    imported = import_app(saved_app(secrets=secrets, schema=schema), ImportOptions())
    provisioning = imported.manifest["provisioning"]
    assert provisioning["scope"] == "all" and provisioning["deprovision"] == "delete"
    assert provisioning["deletionThreshold"] == 500
    assert any("requires assignment" in line for line in imported.report)  # SyncAll and assignment required
    assert any("Entra's default" in line and "500" in line for line in imported.report)


def test_gallery_template_job_template_and_flags() -> None:
    service_principal = sample("servicePrincipal.json")
    service_principal["applicationTemplateId"] = "1a2b3c4d-0000-4000-8000-000000000001"
    service_principal["notificationEmailAddresses"] = []
    jobs = sample("synchronizationJobs.json")["value"]
    jobs[0]["templateId"] = "ateaOutDelta"
    jobs[0]["schedule"]["state"] = "Paused"
    secrets = [s for s in sample("secrets.json")["value"] if s["key"] != "SyncNotificationSettings"]
    imported = import_app(saved_app(service_principal=service_principal, jobs=jobs, secrets=secrets),
                          ImportOptions(name="atea-prod", token_env="ATEA_TOKEN",
                                        notification_email="ops@contoso.com"))
    manifest = imported.manifest
    assert manifest["name"] == "atea-prod" and manifest["notificationEmail"] == "ops@contoso.com"
    assert manifest["galleryTemplateId"] == "1a2b3c4d-0000-4000-8000-000000000001"
    assert manifest["provisioning"]["jobTemplateId"] == "ateaOutDelta"
    assert manifest["provisioning"]["target"]["tokenEnv"] == "ATEA_TOKEN"
    assert any("is Paused" in line for line in imported.report)


def test_no_notification_email_anywhere_is_a_failure() -> None:
    service_principal = sample("servicePrincipal.json")
    service_principal["notificationEmailAddresses"] = []
    secrets = [s for s in sample("secrets.json")["value"] if s["key"] != "SyncNotificationSettings"]
    with pytest.raises(ImportFailure, match="pass --notification-email"):
        import_app(saved_app(service_principal=service_principal, secrets=secrets), ImportOptions())


def test_a_matching_attribute_the_target_may_not_filter_on_is_added_to_filterable_attributes() -> None:
    schema = sample("schema.json")
    for mapping in user_mapping(schema)["attributeMappings"]:
        if mapping["targetAttributeName"] == "userName":
            mapping["matchingPriority"] = 0
        if mapping["targetAttributeName"] == 'emails[type eq "work"].value':
            mapping["matchingPriority"] = 1
    imported = import_app(saved_app(schema=schema), ImportOptions())
    assert imported.manifest["provisioning"]["filterableAttributes"] == [
        "userName", "externalId", "displayName", 'emails[type eq "work"].value']


# -- from Microsoft Graph (the loopback fake) ----------------------------------------------------------------------


@pytest.fixture
def graph() -> Iterator[FakeGraph]:
    with fake_graph() as fake:
        yield fake


def seed(graph: FakeGraph) -> str:
    """The sample app in the fake Graph; returns its service principal's id."""
    def bare(record: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in record.items() if not k.startswith("@odata.context")}

    app_id, sp_id = graph.add_application(bare(sample("application.json")), bare(sample("servicePrincipal.json")))
    for owner in sample("owners.json")["value"]:
        graph.add_owner(app_id, owner)
    for assignment in sample("appRoleAssignedTo.json")["value"]:
        graph.add_assignment(sp_id, assignment)
    for job in sample("synchronizationJobs.json")["value"]:
        graph.add_job(sp_id, job, copy.deepcopy(sample("schema.json")))
    graph.set_secrets(sp_id, sample("secrets.json")["value"])
    return sp_id


def test_import_from_graph_gives_the_same_manifest_as_from_saved_responses(
        graph: FakeGraph, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    sp_id = seed(graph)
    monkeypatch.setenv(GRAPH_TOKEN_ENV, graph.token)
    code, from_graph, err = run(capsys, "import", "--service-principal", sp_id, "--graph-endpoint", graph.endpoint,
                                "--graph-token-env", GRAPH_TOKEN_ENV)
    assert code == 0, err
    graph_report = [line for line in err.splitlines() if line.startswith("not expressed: ")]
    code, from_folder, err = run(capsys, "import", "--from", str(SAMPLE))
    assert code == 0, err
    assert from_graph == from_folder
    assert graph_report == [line for line in err.splitlines() if line.startswith("not expressed: ")]
    assert all(method == "GET" for method, _ in graph.calls)  # import only reads


def test_a_graph_error_is_one_line(graph: FakeGraph, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    sp_id = seed(graph)
    graph.fail("GET", f"/v1.0/servicePrincipals/{sp_id}/synchronization/secrets", 403,
               {"error": {"code": "Authorization_RequestDenied", "message": "Insufficient privileges"}})
    monkeypatch.setenv(GRAPH_TOKEN_ENV, graph.token)
    code, out, err = run(capsys, "import", "--service-principal", sp_id, "--graph-endpoint", graph.endpoint,
                         "--graph-token-env", GRAPH_TOKEN_ENV)
    assert code == 1 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "synchronization/secrets" in lines[0] and "Traceback" not in err


def test_an_unknown_service_principal_is_one_line(graph: FakeGraph, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(GRAPH_TOKEN_ENV, graph.token)
    code, _, err = run(capsys, "import", "--service-principal", "00000000-1111-2222-3333-444444444444",
                       "--graph-endpoint", graph.endpoint, "--graph-token-env", GRAPH_TOKEN_ENV)
    assert code == 1 and len(err.strip().splitlines()) == 1 and "servicePrincipals/" in err


def test_role_functions_with_sync_all_and_unstable_matching_are_reported() -> None:
    secrets = [{"key": "SyncAll", "value": "true"} if s["key"] == "SyncAll" else s
               for s in sample("secrets.json")["value"]]
    schema = sample("schema.json")
    mappings = user_mapping(schema)["attributeMappings"]
    mappings.append({"targetAttributeName": "roles", "flowType": "Always", "matchingPriority": 0, "source": {
        "expression": "AppRoleAssignmentsComplex([appRoleAssignments])", "name": "AppRoleAssignmentsComplex",
        "parameters": [], "type": "Function"}})
    mappings.append({"targetAttributeName": "displayName", "flowType": "Always", "matchingPriority": 2, "source": {
        "expression": "Guid()", "name": "Guid", "parameters": [], "type": "Function"}})
    imported = import_app(saved_app(secrets=secrets, schema=schema), ImportOptions())
    written = {m["target"]: m for m in imported.manifest["provisioning"]["users"]["mappings"]}
    assert "roles" not in written and "matching" not in written["displayName"]
    assert any(line.startswith("users: roles: app role functions need scope: assigned") for line in imported.report)
    assert any(line.startswith("users: displayName: a matching attribute's value") for line in imported.report)


# -- --stack-imports: the existing objects the first pulumi up adopts ------------------------------------------------

SP_ID = "5b2f8c1e-3d4a-4e6f-9a0b-1c2d3e4f5a6b"
JOB_ID = f"scim.1f2e3d4c5b6a47988796a5b4c3d2e1f0.{SP_ID}"
EXPECTED_IMPORTS = {
    "atea-app": "/applications/9e8d7c6b-5a49-4837-a261-50f4e3d2c1b0",
    "atea-sp": SP_ID,
    "atea-group-3c1d9e7f-2a4b-4c6d-8e0f-1a2b3c4d5e6f-user":
        f"/servicePrincipals/{SP_ID}/appRoleAssignedTo/Lq3aS7yJ0EWd1x9a2b3c4d5e6f7g8h9i0j1k2l3m4n5",
    "atea-group-4d2e0f8a-3b5c-4d7e-9f1a-2b3c4d5e6f7a-admin":
        f"/servicePrincipals/{SP_ID}/appRoleAssignedTo/Mr4bT8zK1FXe2y0b3c4d5e6f7g8h9i0j1k2l3m4n5o6",
    "atea-user-6f4a2b0c-5d7e-4f9a-b1c3-4d5e6f7a8b9c-admin":
        f"/servicePrincipals/{SP_ID}/appRoleAssignedTo/Ns5cU9aL2GYf3z1c4d5e6f7g8h9i0j1k2l3m4n5o6p7",
    "atea-sync-job": f"/servicePrincipals/{SP_ID}/synchronization/jobs/{JOB_ID}",
}


def run_script(script: Path, tmp_path: Path) -> list[list[str]]:
    """Run the script with sh and a stand-in ``pulumi`` on PATH; the arguments of each call it made."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    log = tmp_path / "calls.log"
    stub = bin_dir / "pulumi"
    stub.write_text('#!/bin/sh\nfor arg in "$@"; do printf \'%s\\037\' "$arg"; done >> "$CALLS"\necho >> "$CALLS"\n')
    stub.chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "CALLS": str(log)}
    result = subprocess.run(["sh", str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return [line.split("\x1f")[:-1] for line in log.read_text().splitlines()]


def config_sets(calls: list[list[str]], app: str = "atea") -> dict[str, str]:
    sets: dict[str, str] = {}
    for call in calls:
        assert call[:3] == ["config", "set", "--path"] and len(call) == 5, call
        prefix, _, logical = call[3].rpartition(".")
        assert prefix == f"imports.{app}", call
        sets[logical] = call[4]
    return sets


def test_stack_imports_name_each_object_found_by_the_program_logical_name(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from reconciler.azure.declared import declared_paths  # imports Pulumi

    out, script = tmp_path / "atea.yaml", tmp_path / "imports.sh"
    code, _, err = run(capsys, "import", "--from", str(SAMPLE), "--out", str(out), "--stack-imports", str(script))
    assert code == 0, err
    assert err.splitlines()[-1] == (f"note: the stack imports are in {script}; run it with sh before the first "
                                    "pulumi up")
    text = script.read_text()
    assert text.startswith("#!/bin/sh\n# ")
    calls = run_script(script, tmp_path)
    sets = config_sets(calls)
    assert sets == EXPECTED_IMPORTS   # Megan Bowen (Default Access) and the service principal were not written
    declared = {r.name: r.type for r in declared_paths([out]).resources}
    assert set(sets) <= set(declared)
    assert declared["atea-app"] == "azuread:index/application:Application"
    assert declared["atea-sync-job"] == "azuread:index/synchronizationJob:SynchronizationJob"
    assignments = {name for name, kind in declared.items() if kind.endswith("AppRoleAssignment")}
    assert assignments == {name for name in sets if name.startswith(("atea-group-", "atea-user-"))}


def test_stack_import_ids_reach_pulumi_unchanged_whatever_graph_returned(tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    odd = "scim.$(touch pwned).`touch pwned2`;'x' \"y\"\\z"
    jobs = sample("synchronizationJobs.json")
    jobs["value"][0]["id"] = odd
    folder = copy_sample(tmp_path / "saved", **{"synchronizationJobs.json": jobs})
    script = tmp_path / "imports.sh"
    code, _, err = run(capsys, "import", "--from", str(folder), "--stack-imports", str(script))
    assert code == 0, err
    sets = config_sets(run_script(script, tmp_path))
    assert sets["atea-sync-job"] == f"/servicePrincipals/{SP_ID}/synchronization/jobs/{odd}"
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "pwned2").exists()


def test_an_existing_stack_imports_file_is_kept_unless_forced(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    out, script = tmp_path / "atea.yaml", tmp_path / "imports.sh"
    script.write_text("keep me\n")
    code, _, err = run(capsys, "import", "--from", str(SAMPLE), "--out", str(out), "--stack-imports", str(script))
    assert code == 1 and err.strip() == f"{script}: already exists; pass --force to overwrite it"
    assert script.read_text() == "keep me\n" and not out.exists()   # refused before anything is written
    code, _, err = run(capsys, "import", "--from", str(SAMPLE), "--out", str(out), "--stack-imports", str(script),
                       "--force")
    assert code == 0, err
    assert "pulumi config set --path imports.atea.atea-app " in script.read_text()


def test_stack_imports_leave_out_an_assignment_without_an_id_and_need_the_object_ids() -> None:
    assignments = sample("appRoleAssignedTo.json")["value"]
    del assignments[1]["id"]
    app = saved_app(assignments=assignments)
    imported = import_app(app, ImportOptions())
    names = ["first", "second", "third"]
    ids = stack_imports(imported, app, names)
    assert "first" in ids and "second" not in ids and "third" in ids
    bare = saved_app(service_principal={k: v for k, v in sample("servicePrincipal.json").items() if k != "id"})
    with pytest.raises(ImportFailure, match="servicePrincipal: no id, which the stack imports need"):
        stack_imports(import_app(bare, ImportOptions()), bare, names)
