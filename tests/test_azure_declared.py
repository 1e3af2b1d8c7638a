"""Declared resources as data: the offline listing that PR previews diff, and the program's entry points."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pulumi
import pytest

from reconciler.azure.declared import OFFLINE_TOKEN, declared, declared_paths, use_mocks
from reconciler.azure.listing import MASK, _mask_tokens, compare
from reconciler.azure.program import load, main
from reconciler.policy import rules
from tests.azure_helpers import ENTRA, ROOT, Tenant, atea, atea_with


def test_listing_is_identical_across_runs() -> None:
    first = declared_paths([ROOT / "manifests"]).to_json()
    second = declared_paths([ROOT / "manifests"]).to_json()
    assert first == second
    names = [(r["type"], r["name"]) for r in json.loads(first)["resources"]]
    assert names == sorted(names)
    assert ("azuread:index/application:Application", "wiki-app") in names


def test_listing_of_the_examples_has_no_violations() -> None:
    assert declared_paths([ROOT / "manifests"]).violations == []


def test_role_ids_do_not_move_when_roles_are_reordered_or_the_run_is_repeated() -> None:
    def role_ids(loaded: object) -> dict[str, str]:
        listing = declared([loaded])  # type: ignore[list-item]
        app = next(r for r in listing.resources if r.type.endswith("application:Application"))
        return {role["value"]: role["id"] for role in app.inputs["appRoles"]}

    reordered = atea_with(
        "  - {value: User,  displayName: User,          description: Standard access}\n"
        "  - {value: Admin, displayName: Administrator, description: Full access}\n",
        "  - {value: Admin, displayName: Administrator, description: Full access}\n"
        "  - {value: User,  displayName: User,          description: Standard access}\n")
    assert role_ids(atea()) == role_ids(reordered) == role_ids(atea())


def test_references_and_lookups_are_readable_placeholders() -> None:
    listing = declared([atea()])
    by_name = {r.name: r for r in listing.resources}
    assert by_name["atea-sp"].inputs["clientId"] == "${atea-app.clientId}"
    assert by_name["atea-user-adele-vance-contoso-com-admin"].inputs["principalObjectId"] == \
        "${user adele.vance@contoso.com}"
    assert by_name["atea-group-atea-users-user"].inputs["resourceObjectId"] == "${atea-sp.objectId}"


def test_secrets_are_masked_in_the_listing() -> None:
    listing = declared([atea_with(*ENTRA)])
    secret = next(r for r in listing.resources if r.type.endswith("SynchronizationSecret"))
    assert secret.inputs["credentials"] == MASK
    assert secret.secret_outputs == ("credentials",)
    text = listing.to_json()
    assert OFFLINE_TOKEN not in text and OFFLINE_TOKEN not in repr(listing)
    assert listing.violations == []  # the secret was marked, the threshold set


def test_an_unmarked_secret_token_is_still_masked() -> None:
    credentials = [{"key": "BaseAddress", "value": "https://x.example"}, {"key": "SecretToken", "value": "leak"}]
    assert _mask_tokens({"credentials": credentials}) == {
        "credentials": [{"key": "BaseAddress", "value": "https://x.example"}, {"key": "SecretToken", "value": MASK}]}


def test_listing_reports_policy_violations() -> None:
    listing = declared([atea_with("owners: [platform-team@contoso.com]\n", "owners: []\n")])
    found = {(v.rule, v.resource.split()[-1]) for v in listing.violations}
    assert found == {(rules.OWNERS, "atea-app"), (rules.OWNERS, "atea-sp")}


def test_the_program_stops_on_an_invalid_manifest_with_file_line_col(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text((ROOT / "manifests" / "atea.yaml").read_text().replace("deletionThreshold: 50",
                                                                        "deletionThreshold: many"))
    with pytest.raises(pulumi.RunError) as caught:
        load(str(tmp_path))
    line = next(n for n, text in enumerate(bad.read_text().splitlines(), 1) if "deletionThreshold" in text)
    assert f"{bad}:{line}:22: provisioning.deletionThreshold: expected an integer" in str(caught.value)


def test_main_reads_the_manifests_folder_from_stack_config(tmp_path: Path) -> None:
    (tmp_path / "atea.yaml").write_text((ROOT / "manifests" / "atea.yaml").read_text())
    mocks = Tenant()
    use_mocks(mocks, stack="dev")  # pulumi.runtime.set_mocks, with a fresh root stack and a live event loop
    pulumi.runtime.set_all_config({"reconciler:manifests": str(tmp_path)}, [])
    try:
        pulumi.runtime.test(main)()
    finally:
        pulumi.runtime.set_all_config({}, [])
    components = [r.name for r in mocks.registrations if r.type == "reconciler:azure:EnterpriseApp"]
    assert components == ["atea"]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "reconciler", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def test_cli_declared_json() -> None:
    result = _cli("declared", "manifests/atea.yaml", "--format", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert {r["name"] for r in data["resources"]} == {
        "atea", "atea-app", "atea-sp", "atea-group-atea-users-user", "atea-group-atea-admins-admin",
        "atea-user-adele-vance-contoso-com-admin"}
    assert data["violations"] == []


def test_cli_declared_reports_invalid_manifests_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text((ROOT / "manifests" / "atea.yaml").read_text().replace("owners:", "ownres:"))
    result = _cli("declared", str(bad))
    assert result.returncode == 1
    assert f"{bad}:" in result.stderr and "Traceback" not in result.stderr


def test_compare_two_revisions() -> None:
    before = declared([atea()])
    after = declared([atea_with(
        "  - {group: Atea Admins, role: Admin}\n", "",
        "notificationEmail: iam-alerts@contoso.com", "notificationEmail: atea-ops@contoso.com",
        "  - {value: Admin, displayName: Administrator, description: Full access}\n",
        "  - {value: Admin, displayName: Administrator, description: Full access}\n"
        "  - {value: Auditor, displayName: Auditor, description: Read-only}\n",
        "  - {user: adele.vance@contoso.com, role: Admin}\n",
        "  - {user: adele.vance@contoso.com, role: Admin}\n  - {group: Atea Users, role: Auditor}\n")])
    assert [(c.action, c.name, c.keys) for c in compare(before, after)] == [
        ("delete", "atea-group-atea-admins-admin", ()),
        ("create", "atea-group-atea-users-auditor", ()),
        ("update", "atea-app", ("appRoles",)),
        ("update", "atea-sp", ("notificationEmailAddresses",)),
    ]
    assert compare(before, declared([atea()])) == []
