"""The CrossGuard pack's policies, called directly with hand-built arguments (a PolicyPack would block on gRPC)."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import tomllib
from typing import Any

import pulumi
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from pulumi_policy import EnforcementLevel, ResourceValidationPolicy, StackValidationPolicy
from pulumi_policy.proxy import UNKNOWN_ARRAY_VALUE, UnknownValueError

from reconciler.azure.component import EnterpriseApp
from reconciler.azure.declared import use_mocks
from reconciler.azure.ids import role_id
from reconciler.policy import rules
from reconciler.policy.crossguard import POLICIES
from reconciler.policy.resources import (
    APP_ROLE_ASSIGNMENT,
    APPLICATION,
    ENTERPRISE_APP,
    SERVICE_PRINCIPAL,
    SYNCHRONIZATION_SECRET,
)
from tests.azure_helpers import (
    ENTRA,
    ROOT,
    Reports,
    Tenant,
    atea,
    atea_with,
    policy_resource,
    resource_args,
    stack_args,
    urn,
)

BY_NAME = {p.name: p for p in POLICIES}
COMPONENT_PROPS = {"engine": "reconciler", "scope": "assigned", "deprovision": "disable", "deletionThreshold": 50,
                   "filterableAttributes": ["userName", "externalId", "displayName"],
                   "usersMatchingAttributes": ["userName"], "groupsMatchingAttributes": []}
SP_PROPS = {"clientId": "c", "appRoleAssignmentRequired": True, "notificationEmailAddresses": ["ops@contoso.com"],
            "owners": ["0f6b1c1e-1111-4111-8111-111111111111"]}
SETTINGS_ON = json.dumps({"Enabled": True, "Recipients": "ops@contoso.com", "DeleteThresholdEnabled": True,
                          "DeleteThresholdValue": 50})


def validate(rule: rules.Rule, type_: str, props: dict[str, Any], **kwargs: Any) -> list[str]:
    policy = BY_NAME[rule.name]
    assert isinstance(policy, ResourceValidationPolicy)
    reports = Reports()
    policy.validate(resource_args(type_, props, **kwargs), reports)
    return [message for message, _ in reports.messages]


def credentials(token: str | None = "t", settings_json: str | None = SETTINGS_ON) -> dict[str, Any]:
    items = [{"key": "BaseAddress", "value": "https://scim.example.com/v2"}]
    if token is not None:
        items.append({"key": "SecretToken", "value": token})
    if settings_json is not None:
        items.append({"key": "SyncNotificationSettings", "value": settings_json})
    return {"servicePrincipalId": "/servicePrincipals/x", "credentials": items}


def test_one_policy_per_rule_with_the_rules_enforcement() -> None:
    assert sorted(BY_NAME) == sorted(r.name for r in rules.RULES)
    for rule in rules.RULES:
        expected = EnforcementLevel.MANDATORY if rule.mandatory else EnforcementLevel.ADVISORY
        assert BY_NAME[rule.name].enforcement_level == expected
        assert BY_NAME[rule.name].description == rule.description


def test_no_default_access_assignment() -> None:
    props = {"appRoleId": role_id("atea", "User"), "principalObjectId": "p", "resourceObjectId": "r"}
    assert validate(rules.NO_DEFAULT_ACCESS, APP_ROLE_ASSIGNMENT, props) == []
    failing = validate(rules.NO_DEFAULT_ACCESS, APP_ROLE_ASSIGNMENT,
                       {**props, "appRoleId": rules.DEFAULT_ACCESS_ROLE_ID})
    assert len(failing) == 1 and "Default Access" in failing[0]
    # other resource types are not this policy's business
    assert validate(rules.NO_DEFAULT_ACCESS, APPLICATION, {"appRoleId": rules.DEFAULT_ACCESS_ROLE_ID}) == []


@pytest.mark.parametrize(("emails", "ok"), [(["ops@contoso.com"], True), ([], False), (None, False),
                                            (["not-an-email"], False)])
def test_notification_email_on_every_service_principal(emails: list[str] | None, ok: bool) -> None:
    props = {k: v for k, v in SP_PROPS.items() if k != "notificationEmailAddresses"}
    if emails is not None:
        props["notificationEmailAddresses"] = emails
    assert (validate(rules.NOTIFICATION_EMAIL, SERVICE_PRINCIPAL, props) == []) is ok


@pytest.mark.parametrize("type_", [APPLICATION, SERVICE_PRINCIPAL])
def test_at_least_one_owner(type_: str) -> None:
    assert validate(rules.OWNERS, type_, {"displayName": "A", "owners": ["u"]}) == []
    assert validate(rules.OWNERS, type_, {"displayName": "A", "owners": []}) != []
    assert validate(rules.OWNERS, type_, {"displayName": "A"}) != []


def test_secret_token_must_be_kept_secret_by_the_engine() -> None:
    assert validate(rules.SECRET_TOKEN, SYNCHRONIZATION_SECRET, credentials(), secret_outputs=["credentials"]) == []
    plain = validate(rules.SECRET_TOKEN, SYNCHRONIZATION_SECRET, credentials())
    assert len(plain) == 1 and "additionalSecretOutputs" in plain[0]
    missing = validate(rules.SECRET_TOKEN, SYNCHRONIZATION_SECRET, credentials(token=None),
                       secret_outputs=["credentials"])
    assert len(missing) == 1 and "no SecretToken" in missing[0]


def test_deletion_threshold_on_the_component_and_on_entra_secret() -> None:
    assert validate(rules.DELETION_THRESHOLD, ENTERPRISE_APP, COMPONENT_PROPS) == []
    without = {k: v for k, v in COMPONENT_PROPS.items() if k != "deletionThreshold"}
    assert validate(rules.DELETION_THRESHOLD, ENTERPRISE_APP, without) != []
    assert validate(rules.DELETION_THRESHOLD, ENTERPRISE_APP, {**COMPONENT_PROPS, "deletionThreshold": -1}) != []
    assert validate(rules.DELETION_THRESHOLD, SYNCHRONIZATION_SECRET, credentials()) == []
    off = json.dumps({"Enabled": False, "DeleteThresholdEnabled": False})
    assert validate(rules.DELETION_THRESHOLD, SYNCHRONIZATION_SECRET, credentials(settings_json=off)) != []
    assert validate(rules.DELETION_THRESHOLD, SYNCHRONIZATION_SECRET, credentials(settings_json=None)) != []
    no_value = json.dumps({"DeleteThresholdEnabled": True})
    assert validate(rules.DELETION_THRESHOLD, SYNCHRONIZATION_SECRET, credentials(settings_json=no_value)) != []


def test_matching_attributes_are_filterable() -> None:
    assert validate(rules.MATCHING_FILTERABLE, ENTERPRISE_APP, COMPONENT_PROPS) == []
    # SCIM attribute names are case-insensitive
    assert validate(rules.MATCHING_FILTERABLE, ENTERPRISE_APP,
                    {**COMPONENT_PROPS, "usersMatchingAttributes": ["USERNAME"]}) == []
    work_email = 'emails[type eq "work"].value'
    failing = validate(rules.MATCHING_FILTERABLE, ENTERPRISE_APP,
                       {**COMPONENT_PROPS, "usersMatchingAttributes": ["userName", work_email]})
    assert len(failing) == 1 and work_email in failing[0] and failing[0].startswith("users:")
    widened = {**COMPONENT_PROPS, "usersMatchingAttributes": [work_email],
               "filterableAttributes": ["userName", work_email]}
    assert validate(rules.MATCHING_FILTERABLE, ENTERPRISE_APP, widened) == []
    groups = validate(rules.MATCHING_FILTERABLE, ENTERPRISE_APP,
                      {**COMPONENT_PROPS, "groupsMatchingAttributes": ["members"]})
    assert len(groups) == 1 and groups[0].startswith("groups:")


def _stack(scope: str, required: bool, assignments: int) -> list[Any]:
    app = policy_resource(ENTERPRISE_APP, {**COMPONENT_PROPS, "scope": scope}, name="demo")
    sp = policy_resource(SERVICE_PRINCIPAL, {**SP_PROPS, "appRoleAssignmentRequired": required}, name="demo-sp",
                         parent=app)
    children = [policy_resource(APP_ROLE_ASSIGNMENT, {"appRoleId": role_id("demo", "User")}, name=f"demo-a{i}",
                                parent=app) for i in range(assignments)]
    return [app, sp, *children]


def run_stack(rule: rules.Rule, resources: list[Any]) -> list[tuple[str, str | None]]:
    policy = BY_NAME[rule.name]
    assert isinstance(policy, StackValidationPolicy)
    reports = Reports()
    policy.validate(stack_args(resources), reports)
    return reports.messages


def test_assignment_required_when_scope_is_assigned() -> None:
    assert run_stack(rules.ASSIGNMENT_REQUIRED, _stack("assigned", True, 1)) == []
    assert run_stack(rules.ASSIGNMENT_REQUIRED, _stack("all", False, 1)) == []
    failing = run_stack(rules.ASSIGNMENT_REQUIRED, _stack("assigned", False, 1))
    assert len(failing) == 1
    message, where = failing[0]
    assert "appRoleAssignmentRequired" in message
    assert where == urn(SERVICE_PRINCIPAL, "demo-sp")  # the violation names the service principal


def test_assigned_scope_without_assignments_is_advisory() -> None:
    assert run_stack(rules.ASSIGNED_SCOPE_HAS_ASSIGNMENTS, _stack("assigned", True, 2)) == []
    assert run_stack(rules.ASSIGNED_SCOPE_HAS_ASSIGNMENTS, _stack("all", False, 0)) == []
    failing = run_stack(rules.ASSIGNED_SCOPE_HAS_ASSIGNMENTS, _stack("assigned", True, 0))
    assert [where for _, where in failing] == [urn(ENTERPRISE_APP, "demo")]
    assert BY_NAME[rules.ASSIGNED_SCOPE_HAS_ASSIGNMENTS.name].enforcement_level == EnforcementLevel.ADVISORY


def test_unknown_values_are_not_mistaken_for_a_pass() -> None:
    # During preview an unknown property raises; the analyzer turns that into "can't run during preview".
    with pytest.raises(UnknownValueError):
        validate(rules.NOTIFICATION_EMAIL, SERVICE_PRINCIPAL,
                 {**SP_PROPS, "notificationEmailAddresses": UNKNOWN_ARRAY_VALUE})


def _program_resources(loaded: Any, token: str | None = None) -> Tenant:
    mocks = Tenant()
    use_mocks(mocks, stack="dev")  # pulumi.runtime.set_mocks, with a fresh root stack and a live event loop

    @pulumi.runtime.test
    def program() -> None:
        EnterpriseApp(loaded.manifest, scim_token=pulumi.Output.secret(token) if token else None)

    program()
    return mocks


def _as_policy_resources(mocks: Tenant, **sp_overrides: Any) -> list[Any]:
    """The registrations as the analyzer hands them to stack policies (children point at their component)."""
    components: dict[str, Any] = {}
    resources = []
    for r in mocks.registrations:
        props = {**r.inputs, **sp_overrides} if r.type == SERVICE_PRINCIPAL else r.inputs
        resource = policy_resource(r.type, props, name=r.name, parent=components.get(r.parent or ""))
        if r.type == ENTERPRISE_APP:
            components[r.name] = resource
        resources.append(resource)
    return resources


@pytest.mark.parametrize("variant", ["reconciler", "entra"])
def test_the_pack_passes_the_programs_own_resources(variant: str) -> None:
    mocks = _program_resources(atea_with(*ENTRA), "tok") if variant == "entra" else _program_resources(atea())
    assert any(r.type == SYNCHRONIZATION_SECRET for r in mocks.registrations) is (variant == "entra")
    for r in mocks.registrations:
        parent = urn(ENTERPRISE_APP, r.parent) if r.parent else None
        for policy in POLICIES:
            if isinstance(policy, ResourceValidationPolicy):
                reports = Reports()
                policy.validate(resource_args(r.type, r.inputs, name=r.name, parent=parent,
                                              secret_outputs=r.secret_outputs), reports)
                assert not reports, (policy.name, r.name, reports.messages)
    for policy in POLICIES:
        if isinstance(policy, StackValidationPolicy):
            reports = Reports()
            policy.validate(stack_args(_as_policy_resources(mocks)), reports)
            assert not reports, (policy.name, reports.messages)
    # and the stack policy does look at the program's service principal:
    reports = Reports()
    BY_NAME[rules.ASSIGNMENT_REQUIRED.name].validate(
        stack_args(_as_policy_resources(mocks, appRoleAssignmentRequired=False)), reports)
    assert [where for _, where in reports.messages] == [urn(SERVICE_PRINCIPAL, "atea-sp")]


def test_the_pack_module_builds_the_pack_from_these_policies() -> None:
    source = (ROOT / "policies" / "__main__.py").read_text()
    tree = ast.parse(source)
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) for alias in node.names}
    assert {"POLICIES", "PolicyPack"} <= imported
    assert "virtualenv: ../.venv" in (ROOT / "policies" / "PulumiPolicy.yaml").read_text()


# --- stack policies on OUTPUTS, as the engine gives them (AnalyzeStack sees each resource's outputs) ---

NO_ASSIGNMENTS = ("assignments:                       # never the Default Access role: such users are not provisioned\n"
                  "  - {group: Atea Users, role: User}\n  - {group: Atea Admins, role: Admin}\n"
                  "  - {user: adele.vance@contoso.com, role: Admin}\n", "assignments: []\n")


class DriftedTenant(Tenant):
    """A tenant whose provider answers the service principal with assignment not required (set in the portal)."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        id_, state = super().new_resource(args)
        if args.typ == SERVICE_PRINCIPAL:
            state["appRoleAssignmentRequired"] = False
        return id_, state


def _program_outputs(loaded: Any, mocks: Tenant) -> Tenant:
    use_mocks(mocks, stack="dev")

    @pulumi.runtime.test
    def program() -> None:
        EnterpriseApp(loaded.manifest)

    program()
    return mocks


def _outputs_as_policy_resources(mocks: Tenant) -> list[Any]:
    """Each registration with its recorded OUTPUTS as props: a component's registered outputs, a custom
    resource's state as the provider (here the mocks) answered it."""
    components: dict[str, Any] = {}
    resources = []
    for r in mocks.registrations:
        resource = policy_resource(r.type, mocks.outputs[(r.type, r.name)], name=r.name,
                                   parent=components.get(r.parent or ""))
        if r.type == ENTERPRISE_APP:
            components[r.name] = resource
        resources.append(resource)
    return resources


def test_the_component_registers_what_the_stack_rules_read_as_outputs() -> None:
    mocks = _program_outputs(atea(), Tenant())
    outputs = mocks.outputs[(ENTERPRISE_APP, "atea")]
    assert outputs["scope"] == "assigned" and outputs["assignments"] == 3
    assert {"clientId", "servicePrincipalObjectId", "roleIds", "engine", "deletionThreshold"} <= outputs.keys()
    assert mocks.outputs[(SERVICE_PRINCIPAL, "atea-sp")]["appRoleAssignmentRequired"] is True
    for policy in POLICIES:
        if isinstance(policy, StackValidationPolicy):
            reports = Reports()
            policy.validate(stack_args(_outputs_as_policy_resources(mocks)), reports)
            assert not reports, (policy.name, reports.messages)


def test_assignment_required_fires_on_outputs() -> None:
    mocks = _program_outputs(atea(), DriftedTenant())
    failing = run_stack(rules.ASSIGNMENT_REQUIRED, _outputs_as_policy_resources(mocks))
    assert [where for _, where in failing] == [urn(SERVICE_PRINCIPAL, "atea-sp")]
    assert "appRoleAssignmentRequired" in failing[0][0]


def test_assigned_scope_without_assignments_fires_on_outputs() -> None:
    mocks = _program_outputs(atea_with(*NO_ASSIGNMENTS), Tenant())
    assert mocks.outputs[(ENTERPRISE_APP, "atea")]["assignments"] == 0
    failing = run_stack(rules.ASSIGNED_SCOPE_HAS_ASSIGNMENTS, _outputs_as_policy_resources(mocks))
    assert [where for _, where in failing] == [urn(ENTERPRISE_APP, "atea")]
    scope_all = _program_outputs(atea_with(*NO_ASSIGNMENTS, "  scope: assigned\n", "  scope: all\n"), Tenant())
    assert run_stack(rules.ASSIGNED_SCOPE_HAS_ASSIGNMENTS, _outputs_as_policy_resources(scope_all)) == []


def test_the_inputs_alone_would_not_have_fired() -> None:
    """Before the component registered them, its outputs held no scope: both rules were blind in a real preview."""
    mocks = _program_outputs(atea_with(*NO_ASSIGNMENTS), DriftedTenant())
    resources = _outputs_as_policy_resources(mocks)
    legacy = {"clientId", "servicePrincipalObjectId", "roleIds"}
    blind = [policy_resource(r.resource_type, {k: v for k, v in dict(r.props).items() if k in legacy}, name=r.name)
             if r.resource_type == ENTERPRISE_APP else r for r in resources]
    blind_app = blind[[r.resource_type for r in blind].index(ENTERPRISE_APP)]
    blind = [policy_resource(r.resource_type, dict(r.props), name=r.name, parent=blind_app)
             if r.parent is not None else r for r in blind]
    for rule in (rules.ASSIGNMENT_REQUIRED, rules.ASSIGNED_SCOPE_HAS_ASSIGNMENTS):
        assert run_stack(rule, blind) == []
        assert len(run_stack(rule, resources)) == 1


@pytest.mark.parametrize("count", [0, 0.0])
def test_the_assignment_count_off_the_wire_is_a_number(count: float) -> None:
    # Protobuf Struct numbers are doubles: the analyzer hands the policy 0.0 where the program registered 0.
    app = policy_resource(ENTERPRISE_APP, {"scope": "assigned", "assignments": count}, name="demo")
    assert [where for _, where in run_stack(rules.ASSIGNED_SCOPE_HAS_ASSIGNMENTS, [app])] == [urn(ENTERPRISE_APP,
                                                                                                  "demo")]
    many = policy_resource(ENTERPRISE_APP, {"scope": "assigned", "assignments": 2.0}, name="demo")
    assert run_stack(rules.ASSIGNED_SCOPE_HAS_ASSIGNMENTS, [many]) == []


def _distribution(line: str) -> str | None:
    line = line.split("#", 1)[0].strip()
    if not line:
        return None
    if line.startswith("-e "):
        target = (ROOT / "policies" / line.removeprefix("-e ").strip()).resolve()
        project = tomllib.loads((target / "pyproject.toml").read_text())
        return str(project["project"]["name"])
    return Requirement(line).name


def test_the_pack_requirements_list_what_the_pack_imports() -> None:
    requirements = (ROOT / "policies" / "requirements.txt").read_text().splitlines()
    listed = {d for d in map(_distribution, requirements) if d}
    tree = ast.parse((ROOT / "policies" / "__main__.py").read_text())
    modules = {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    modules |= {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    distributions = importlib.metadata.packages_distributions()
    needed = {canonicalize_name(distributions[m][0] if m in distributions else m) for m in modules}
    assert needed == {"pulumi-policy", "reconciler"}
    assert needed <= {canonicalize_name(d) for d in listed}
    # the same floor as the project's own dependency on it
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    ours = {Requirement(r).name: str(Requirement(r).specifier) for r in project["project"]["dependencies"]}
    pinned = {Requirement(r).name: str(Requirement(r).specifier) for r in requirements
              if r.strip() and not r.startswith(("#", "-e"))}
    assert pinned["pulumi-policy"] == ours["pulumi-policy"]
