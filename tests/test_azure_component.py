"""The Pulumi component under Pulumi's unit-test mocks: the resources one manifest declares, and their inputs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pulumi
import pytest

from reconciler.azure.component import EnterpriseApp
from reconciler.azure.declared import OFFLINE_TOKEN, declared, use_mocks
from reconciler.azure.ids import role_id
from reconciler.azure.program import config_imports, config_token, declare, main
from reconciler.entra.schema import compile_schema
from reconciler.manifest import LoadedManifest
from reconciler.policy.rules import DEFAULT_ACCESS_ROLE_ID
from tests.azure_helpers import ATEA, ENTRA, GROUPS, USERS, Tenant, atea, atea_with

APPLICATION = "application:Application"
SERVICE_PRINCIPAL = "servicePrincipal:ServicePrincipal"
ASSIGNMENT = "appRoleAssignment:AppRoleAssignment"
SECRET = "synchronizationSecret:SynchronizationSecret"
JOB = "synchronizationJob:SynchronizationJob"


@pytest.fixture
def tenant() -> Tenant:
    """Fresh mocks for each test: set_mocks is process-global."""
    mocks = Tenant()
    use_mocks(mocks, stack="dev")  # pulumi.runtime.set_mocks, with a fresh root stack and a live event loop
    pulumi.runtime.set_all_config({}, [])
    return mocks


def declare_one(loaded: LoadedManifest, token: str | None = None) -> dict[str, Any]:
    """Declare one app under the current mocks; returns its resolved outputs."""
    outputs: dict[str, Any] = {}

    @pulumi.runtime.test
    def program() -> pulumi.Output[Any]:
        app = EnterpriseApp(loaded.manifest, scim_token=token)  # plain: the component must make it secret
        outputs["role_ids"] = app.role_ids
        return pulumi.Output.all(app.client_id, app.service_principal_object_id).apply(
            lambda values: outputs.update(client_id=values[0], sp_object_id=values[1]))

    program()
    return outputs


def test_atea_declares_the_application_with_deterministic_role_ids(tenant: Tenant) -> None:
    declare_one(atea())
    app = tenant.one(APPLICATION)
    assert app.name == "atea-app" and app.parent == "atea"
    inputs = app.inputs
    assert inputs["displayName"] == "Atea"
    assert inputs["owners"] == [USERS["platform-team@contoso.com"]]
    assert inputs["featureTags"] == [{"enterprise": True, "gallery": False}]
    assert "templateId" not in inputs
    roles = {r["value"]: r for r in inputs["appRoles"]}
    assert set(roles) == {"User", "Admin"}
    assert roles["Admin"] == {"id": role_id("atea", "Admin"), "value": "Admin", "displayName": "Administrator",
                              "description": "Full access", "allowedMemberTypes": ["User"], "enabled": True}
    # Pinned: a change here would re-key every role of every deployed app.
    assert roles["User"]["id"] == "4cf63f06-496b-53b8-b752-b30e0d72c59c"


def test_atea_service_principal(tenant: Tenant) -> None:
    outputs = declare_one(atea())
    sp = tenant.one(SERVICE_PRINCIPAL)
    assert sp.name == "atea-sp"
    assert sp.inputs["clientId"] == outputs["client_id"] == "${atea-app.clientId}"
    assert sp.inputs["appRoleAssignmentRequired"] is True
    assert sp.inputs["notificationEmailAddresses"] == ["iam-alerts@contoso.com"]
    assert sp.inputs["owners"] == [USERS["platform-team@contoso.com"]]
    assert sp.inputs["featureTags"] == [{"enterprise": True, "gallery": False}]
    assert "useExisting" not in sp.inputs
    assert outputs["sp_object_id"] == "${atea-sp.objectId}"
    assert outputs["role_ids"] == {"User": role_id("atea", "User"), "Admin": role_id("atea", "Admin")}


def test_atea_assignments_resolve_principals_and_never_use_default_access(tenant: Tenant) -> None:
    declare_one(atea())
    assignments = {r.name: r.inputs for r in tenant.of(ASSIGNMENT)}
    assert assignments == {
        "atea-group-atea-users-user": {"appRoleId": role_id("atea", "User"),
                                       "principalObjectId": GROUPS["Atea Users"],
                                       "resourceObjectId": "${atea-sp.objectId}"},
        "atea-group-atea-admins-admin": {"appRoleId": role_id("atea", "Admin"),
                                         "principalObjectId": GROUPS["Atea Admins"],
                                         "resourceObjectId": "${atea-sp.objectId}"},
        "atea-user-adele-vance-contoso-com-admin": {"appRoleId": role_id("atea", "Admin"),
                                                    "principalObjectId": USERS["adele.vance@contoso.com"],
                                                    "resourceObjectId": "${atea-sp.objectId}"},
    }
    assert all(a["appRoleId"] != DEFAULT_ACCESS_ROLE_ID for a in assignments.values())
    lookups = sorted((token.rsplit(":", 1)[-1], json.dumps(args, sort_keys=True)) for token, args in tenant.calls)
    assert lookups == [
        ("getGroup", '{"displayName": "Atea Admins"}'),
        ("getGroup", '{"displayName": "Atea Users"}'),
        ("getUser", '{"userPrincipalName": "adele.vance@contoso.com"}'),
        ("getUser", '{"userPrincipalName": "platform-team@contoso.com"}'),  # once, though owner of app and SP
    ]


def test_reconciler_engine_declares_no_synchronization(tenant: Tenant) -> None:
    declare_one(atea())
    assert tenant.of(SECRET) == [] and tenant.of(JOB) == []
    component = tenant.one("reconciler:azure:EnterpriseApp")
    assert component.parent is None
    assert component.inputs == {"engine": "reconciler", "scope": "assigned", "deprovision": "disable",
                                "deletionThreshold": 50,
                                "filterableAttributes": ["userName", "externalId", "displayName"],
                                "usersMatchingAttributes": ["userName"], "groupsMatchingAttributes": []}


def test_principals_by_object_id_are_looked_up_by_object_id(tenant: Tenant) -> None:
    group_id = GROUPS["Atea Users"]
    loaded = atea_with("{group: Atea Users, role: User}", f"{{group: {group_id}, role: User}}")
    declare_one(loaded)
    assert ("azuread:index/getGroup:getGroup", {"objectId": group_id}) in tenant.calls
    principals = {r.inputs["principalObjectId"] for r in tenant.of(ASSIGNMENT)}
    assert group_id in principals


def test_an_unknown_principal_fails_the_program(tenant: Tenant) -> None:
    loaded = atea_with("{group: Atea Admins, role: Admin}", "{group: Atea Admnis, role: Admin}")
    with pytest.raises(Exception, match="group not found"):
        declare_one(loaded)


def test_scope_all_does_not_require_assignment(tenant: Tenant) -> None:
    declare_one(atea_with("  scope: assigned\n", "  scope: all\n"))
    assert tenant.one(SERVICE_PRINCIPAL).inputs["appRoleAssignmentRequired"] is False


def test_entra_engine_declares_secret_and_job(tenant: Tenant) -> None:
    declare_one(atea_with(*ENTRA), token="tok-123")
    secret = tenant.one(SECRET)
    assert secret.name == "atea-sync-secret" and secret.parent == "atea"
    assert secret.inputs["servicePrincipalId"] == "${atea-sp.id}"
    credentials = {c["key"]: c["value"] for c in secret.inputs["credentials"]}
    assert credentials["BaseAddress"] == "https://scim.atea.example/scim/v2"
    assert credentials["SecretToken"] == "tok-123"
    assert json.loads(credentials["SyncNotificationSettings"]) == {
        "Enabled": True, "Recipients": "iam-alerts@contoso.com", "DeleteThresholdEnabled": True,
        "DeleteThresholdValue": 50}
    assert credentials["SyncAll"] == "false"
    job = tenant.one(JOB)
    assert job.name == "atea-sync-job"
    assert job.inputs == {"servicePrincipalId": "${atea-sp.id}", "templateId": "scim", "enabled": False}


def test_entra_engine_token_is_secret_in_inputs_and_outputs(tenant: Tenant) -> None:
    declare_one(atea_with(*ENTRA), token="tok-123")
    secret = tenant.one(SECRET)
    assert "credentials" in secret.secret_props  # Output.secret reached the engine as a secret
    assert secret.secret_outputs == ("credentials",)  # and the state read back stays encrypted
    assert "tok-123" not in repr(secret)


def test_entra_engine_gallery_template_and_job_template(tenant: Tenant) -> None:
    loaded = atea_with("displayName: Atea\n",
                       "displayName: Atea\ngalleryTemplateId: 9c9818d2-2900-49e8-8ba4-22688be7c675\n",
                       "  scope: assigned\n", "  engine: entra\n  jobTemplateId: dataBricks\n  scope: assigned\n")
    declare_one(loaded, token="tok")
    app = tenant.one(APPLICATION)
    assert app.inputs["templateId"] == "9c9818d2-2900-49e8-8ba4-22688be7c675"
    assert app.inputs["featureTags"] == [{"enterprise": True, "gallery": True}]
    sp = tenant.one(SERVICE_PRINCIPAL)
    assert sp.inputs["useExisting"] is True  # the template instantiation created the service principal
    assert sp.inputs["featureTags"] == [{"enterprise": True, "gallery": True}]
    assert tenant.one(JOB).inputs["templateId"] == "dataBricks"


def test_entra_engine_without_a_token_is_refused(tenant: Tenant) -> None:
    with pytest.raises(ValueError, match="no SCIM token"):
        declare_one(atea_with(*ENTRA))


def test_the_program_reads_the_token_from_secret_config(tenant: Tenant) -> None:
    pulumi.runtime.set_all_config({"reconciler:ATEA_SCIM_TOKEN": "from-config"}, ["reconciler:ATEA_SCIM_TOKEN"])
    loaded = atea_with(*ENTRA)

    @pulumi.runtime.test
    def program() -> None:
        declare([loaded], config_token(pulumi.Config()))

    program()
    secret = tenant.one(SECRET)
    assert "credentials" in secret.secret_props
    assert {c["key"]: c["value"] for c in secret.inputs["credentials"]}["SecretToken"] == "from-config"


def test_the_program_names_the_missing_token_config_key(tenant: Tenant) -> None:
    loaded = atea_with(*ENTRA)

    @pulumi.runtime.test
    def program() -> None:
        declare([loaded], config_token(pulumi.Config()))

    with pytest.raises(Exception, match="ATEA_SCIM_TOKEN"):
        program()


SCHEMA = "dynamic/reconciler:SynchronizationSchema"
START = "dynamic/reconciler:SynchronizationJobStart"


def test_entra_engine_custom_app_is_instantiated_from_the_non_gallery_template(tenant: Tenant) -> None:
    declare_one(atea_with(*ENTRA), token="tok-123")
    app = tenant.one(APPLICATION)
    assert app.inputs["templateId"] == "8adf8e6e-67b2-4cf2-a259-e3dc5476c621"
    assert app.inputs["featureTags"] == [{"enterprise": True, "gallery": False}]
    assert tenant.one(SERVICE_PRINCIPAL).inputs["useExisting"] is True


def test_reconciler_engine_app_stays_a_plain_registration(tenant: Tenant) -> None:
    declare_one(atea())
    assert "templateId" not in tenant.one(APPLICATION).inputs
    assert "useExisting" not in tenant.one(SERVICE_PRINCIPAL).inputs
    assert tenant.of(SCHEMA) == [] and tenant.of(START) == [] and tenant.of(JOB) == []


def test_entra_engine_job_starts_disabled_and_only_after_its_schema(tenant: Tenant) -> None:
    declare_one(atea_with(*ENTRA), token="tok-123")
    job = tenant.one(JOB)
    assert job.inputs["enabled"] is False
    assert job.ignore_changes == ("enabled",)   # the azuread provider must not pause the started job
    assert "atea-sync-secret" in job.dependencies
    schema = tenant.one(SCHEMA)
    assert schema.name == "atea-sync-schema" and schema.parent == "atea"
    assert {"atea-sync-job", "atea-sync-secret"} <= set(schema.dependencies)
    start = tenant.one(START)
    assert start.name == "atea-sync-start" and start.parent == "atea"
    assert "atea-sync-schema" in start.dependencies
    for resource in (schema, start):
        assert resource.inputs["servicePrincipalId"] == "${atea-sp.objectId}"
        assert resource.inputs["jobId"] == "${atea-sync-job.id}"   # the last segment of the job's id
        assert resource.inputs["graphEndpoint"] == "https://graph.microsoft.com"
        assert "__provider" not in resource.inputs and "tokenEnv" not in resource.inputs


def test_entra_engine_schema_is_the_compiled_managed_part(tenant: Tenant) -> None:
    loaded = atea_with(*ENTRA)
    declare_one(loaded, token="tok-123")
    schema = tenant.one(SCHEMA)
    assert json.loads(schema.inputs["managed"]) == compile_schema(loaded.manifest)
    assert schema.inputs["templateId"] == "scim"
    assert "tok-123" not in json.dumps(schema.inputs)


def test_entra_engine_secret_says_whether_to_skip_out_of_scope_deletions(tenant: Tenant) -> None:
    declare_one(atea_with(*ENTRA), token="tok")
    credentials = {c["key"]: c["value"] for c in tenant.one(SECRET).inputs["credentials"]}
    assert credentials["SkipOutOfScopeDeletions"] == "False"


def test_entra_engine_skip_out_of_scope_deletions_true(tenant: Tenant) -> None:
    declare_one(atea_with("  scope: assigned\n", "  engine: entra\n  skipOutOfScopeDeletions: true\n"
                          "  scope: assigned\n"), token="tok")
    credentials = {c["key"]: c["value"] for c in tenant.one(SECRET).inputs["credentials"]}
    assert credentials["SkipOutOfScopeDeletions"] == "True"


def test_entra_engine_listing_masks_the_token_and_omits_the_pickled_provider() -> None:
    listing = declared([atea_with(*ENTRA)])
    text = listing.to_json()
    assert OFFLINE_TOKEN not in text and "__provider" not in text
    types = {r.name: r.type for r in listing.resources}
    assert types["atea-sync-schema"] == "pulumi-python:dynamic/reconciler:SynchronizationSchema"
    assert types["atea-sync-start"] == "pulumi-python:dynamic/reconciler:SynchronizationJobStart"


# -- adopting existing objects: the import_ resource option -------------------------------------------------------

SP_OBJECT_ID = "5b2f8c1e-3d4a-4e6f-9a0b-1c2d3e4f5a6b"
ADOPTED = {
    "atea-app": "/applications/9e8d7c6b-5a49-4837-a261-50f4e3d2c1b0",
    "atea-sp": SP_OBJECT_ID,
    "atea-group-atea-admins-admin": f"/servicePrincipals/{SP_OBJECT_ID}/appRoleAssignedTo/Mr4bT8zK1FXe2y0b3c4",
    "atea-sync-job": f"/servicePrincipals/{SP_OBJECT_ID}/synchronization/jobs/scim.1f2e3d4c.{SP_OBJECT_ID}",
}


def declare_adopting(loaded: LoadedManifest, imports: dict[str, str] | None, token: str | None = None) -> None:
    @pulumi.runtime.test
    def program() -> None:
        EnterpriseApp(loaded.manifest, scim_token=token, imports=imports)

    program()


def test_named_resources_carry_their_import_id_and_no_other_does(tenant: Tenant) -> None:
    declare_adopting(atea_with(*ENTRA), ADOPTED, token="tok")
    imported = {r.name: r.import_id for r in tenant.registrations if r.import_id is not None}
    assert imported == ADOPTED
    not_imported = {r.name for r in tenant.registrations if r.import_id is None}
    assert {"atea-group-atea-users-user", "atea-user-adele-vance-contoso-com-admin", "atea-sync-secret",
            "atea-sync-schema", "atea-sync-start", "atea"} <= not_imported
    job = tenant.one(JOB)   # the import adds to the job's options, it does not replace them
    assert job.ignore_changes == ("enabled",) and "atea-sync-secret" in job.dependencies
    assert tenant.one(APPLICATION).parent == "atea"


def test_without_imports_nothing_is_imported_and_the_inputs_are_the_same(tenant: Tenant) -> None:
    declare_adopting(atea(), None)
    plain = sorted((r.name, r.inputs, r.dependencies, r.ignore_changes) for r in tenant.registrations)
    assert all(r.import_id is None for r in tenant.registrations)
    tenant.registrations.clear()
    use_mocks(tenant, stack="dev")
    declare_adopting(atea(), {"atea-app": ADOPTED["atea-app"]})
    adopted = sorted((r.name, r.inputs, r.dependencies, r.ignore_changes) for r in tenant.registrations)
    assert adopted == plain   # an import changes the options only, never what is declared


@pytest.mark.parametrize("name", ["atea-ap", "atea-sync-secret", "atea-sync-job"])
def test_a_name_the_app_cannot_import_fails_in_one_line(tenant: Tenant, name: str) -> None:
    # atea-sync-job: a reconciler-engine app declares no job; a synchronization secret has no import
    with pytest.raises(pulumi.RunError) as caught:
        declare_adopting(atea(), {name: "/applications/x"})
    message = str(caught.value)
    assert "\n" not in message and f"'{name}'" in message and "imports.atea" in message
    assert tenant.of(APPLICATION) == []   # refused before anything is declared


def test_the_program_reads_imports_from_stack_config(tenant: Tenant, tmp_path: Path) -> None:
    (tmp_path / "atea.yaml").write_text(ATEA.read_text())
    imports = {"atea": {"atea-app": ADOPTED["atea-app"], "atea-sp": SP_OBJECT_ID}}
    pulumi.runtime.set_all_config({"reconciler:manifests": str(tmp_path), "reconciler:imports": json.dumps(imports)},
                                  [])
    try:
        pulumi.runtime.test(main)()
    finally:
        pulumi.runtime.set_all_config({}, [])
    assert tenant.one(APPLICATION).import_id == ADOPTED["atea-app"]
    assert tenant.one(SERVICE_PRINCIPAL).import_id == SP_OBJECT_ID
    assert all(r.import_id is None for r in tenant.of(ASSIGNMENT))


@pytest.mark.parametrize(("imports", "expected"), [
    ({"atae": {"atea-app": "/applications/x"}}, "imports.atae: no manifest is named 'atae'"),
    ({"atea": {"atea-app": 42}}, "stack config imports: expected {APP: {LOGICAL_NAME: IMPORT_ID}}"),
    (["atea-app"], "stack config imports: expected"),
])
def test_stack_config_imports_that_cannot_apply_fail_in_one_line(tenant: Tenant, imports: object,
                                                                  expected: str) -> None:
    pulumi.runtime.set_all_config({"reconciler:imports": json.dumps(imports)}, [])
    try:
        @pulumi.runtime.test
        def program() -> None:
            declare([atea()], config_token(pulumi.Config()), config_imports(pulumi.Config()))

        with pytest.raises(pulumi.RunError) as caught:
            program()
    finally:
        pulumi.runtime.set_all_config({}, [])
    assert expected in str(caught.value) and "\n" not in str(caught.value)
