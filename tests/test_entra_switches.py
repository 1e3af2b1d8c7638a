"""Entra's switches, against the embedded target: provisioning.actions, skipOutOfScopeDeletions, unresolved
manager references, and the note for objects whose mapping failed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from reconciler.errors import ManifestError
from reconciler.plan import Action
from tests.reconcile_helpers import atea, by_username, converge, directory, group, listing, plan, post, user

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
WITH_MANAGER = {"      - {target: nickName, source: mailNickname}":
                "      - {target: nickName, source: mailNickname}\n"
                f"      - {{target: '{ENTERPRISE}:manager', source: manager}}"}


def actions(*names: str) -> dict[str, str]:
    return {"deprovision: disable": f"deprovision: disable\n  actions: [{', '.join(names)}]"}


def steps(planned: Any) -> list[tuple[str, str]]:
    return sorted((str(s.action), s.display) for s in planned.steps)


@pytest.mark.parametrize(("value", "message"), [
    ("[]", "provisioning.actions needs at least one of create, update, delete"),
    ("[create, update, create]", "provisioning.actions lists create more than once"),
    ("[create, remove]", "actions"),
])
def test_actions_must_be_a_non_empty_list_without_repeats(value: str, message: str) -> None:
    with pytest.raises(ManifestError) as caught:
        atea(**{"deprovision: disable": f"deprovision: disable\n  actions: {value}"})
    assert message in str(caught.value)


def test_without_create_new_users_are_skipped_and_the_rest_still_happens(url: str, tmp_path: Path,
                                                                        monkeypatch: Any) -> None:
    converge(atea(), url, directory(tmp_path), monkeypatch)

    def change(data: dict[str, Any]) -> None:
        group(data, "Atea Users")["members"].append(user(data, "miriam.graham@contoso.com")["id"])  # a joiner
        group(data, "Atea Users")["members"].remove(user(data, "alex.wilber@contoso.com")["id"])    # a leaver
        user(data, "megan.bowen@contoso.com")["surname"] = "Bowen-Smith"                            # a mover

    snapshot = directory(tmp_path, change, "change.json")
    manifest = atea(**actions("update", "delete"))
    planned = plan(manifest, url, snapshot, monkeypatch)
    assert steps(planned) == [("disable", "alex.wilber@contoso.com"), ("update", "megan.bowen@contoso.com")]
    assert "skipped user miriam.graham@contoso.com: provisioning.actions has no create" in planned.notes
    result = converge(manifest, url, snapshot, monkeypatch)
    assert result.converged
    users = by_username(url)
    assert "miriam.graham@contoso.com" not in users
    assert users["alex.wilber@contoso.com"]["active"] is False
    assert users["megan.bowen@contoso.com"]["name"]["familyName"] == "Bowen-Smith"


def test_without_update_nothing_is_updated_or_adopted(url: str, tmp_path: Path, monkeypatch: Any) -> None:
    converge(atea(), url, directory(tmp_path), monkeypatch)
    unclaimed = post(url, "Users", {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                                    "userName": "miriam.graham@contoso.com", "active": True})

    def change(data: dict[str, Any]) -> None:
        group(data, "Atea Users")["members"].append(user(data, "miriam.graham@contoso.com")["id"])  # adoptable
        group(data, "Atea Users")["members"].append(user(data, "lynne.robbins@contoso.com")["id"])  # new
        group(data, "Atea Users")["members"].remove(user(data, "alex.wilber@contoso.com")["id"])
        user(data, "megan.bowen@contoso.com")["surname"] = "Bowen-Smith"

    snapshot = directory(tmp_path, change, "change.json")
    manifest = atea(**actions("create", "delete"))
    planned = plan(manifest, url, snapshot, monkeypatch)
    assert steps(planned) == [("create", "lynne.robbins@contoso.com"), ("disable", "alex.wilber@contoso.com")]
    assert "1 adopt step(s) left out: provisioning.actions has no update" in planned.notes
    assert "1 update step(s) left out: provisioning.actions has no update" in planned.notes
    assert converge(manifest, url, snapshot, monkeypatch).converged
    users = by_username(url)
    assert users["megan.bowen@contoso.com"]["name"]["familyName"] == "Bowen"
    assert "externalId" not in users["miriam.graham@contoso.com"]  # not adopted: adopting writes externalId
    assert users["miriam.graham@contoso.com"]["meta"]["version"] == unclaimed["meta"]["version"]
    assert users["lynne.robbins@contoso.com"]["active"] is True


@pytest.mark.parametrize("mode", ["disable", "delete"])
def test_without_delete_nobody_is_disabled_or_deleted(url: str, tmp_path: Path, monkeypatch: Any,
                                                      mode: str) -> None:
    converge(atea(), url, directory(tmp_path), monkeypatch)

    def leave(data: dict[str, Any]) -> None:
        group(data, "Atea Users")["members"].remove(user(data, "alex.wilber@contoso.com")["id"])
        user(data, "joni.sherman@contoso.com")["accountEnabled"] = False

    snapshot = directory(tmp_path, leave, "leave.json")
    manifest = atea(**{"deprovision: disable": f"deprovision: {mode}\n  actions: [create, update]"})
    planned = plan(manifest, url, snapshot, monkeypatch)
    assert planned.empty and planned.destructive == 0
    assert f"2 {mode} step(s) left out: provisioning.actions has no delete" in planned.notes
    assert converge(manifest, url, snapshot, monkeypatch).converged
    users = by_username(url)
    assert users["alex.wilber@contoso.com"]["active"] is True and users["joni.sherman@contoso.com"]["active"] is True


def test_skip_out_of_scope_deletions_keeps_leavers_of_scope_but_disables_disabled_and_deleted_accounts(
        url: str, tmp_path: Path, monkeypatch: Any) -> None:
    converge(atea(), url, directory(tmp_path), monkeypatch)

    def leave(data: dict[str, Any]) -> None:
        members = group(data, "Atea Users")["members"]
        members.remove(user(data, "alex.wilber@contoso.com")["id"])                 # unassigned: kept
        user(data, "diego.siciliani@contoso.com")["department"] = "Contractors"     # filtered out: kept
        user(data, "joni.sherman@contoso.com")["accountEnabled"] = False            # disabled: disabled
        henrietta = user(data, "henrietta.mueller@contoso.com")                     # unassigned AND disabled
        members.remove(henrietta["id"])
        henrietta["accountEnabled"] = False
        lidia = user(data, "lidia.holloway@contoso.com")                            # soft-deleted: disabled
        data["users"].remove(lidia)
        for each in data["groups"]:
            each["members"] = [m for m in each["members"] if m != lidia["id"]]
        data["deletedUsers"] = [lidia]

    snapshot = directory(tmp_path, leave, "leave.json")
    manifest = atea(**{"deprovision: disable": "deprovision: disable\n  skipOutOfScopeDeletions: true"})
    planned = plan(manifest, url, snapshot, monkeypatch)
    assert sorted((s.action, s.display, s.reason) for s in planned.steps) == [
        (Action.DISABLE, "henrietta.mueller@contoso.com", "disabled"),
        (Action.DISABLE, "joni.sherman@contoso.com", "disabled"),
        (Action.DISABLE, "lidia.holloway@contoso.com", "deleted"),
    ]
    assert any(n.startswith("2 target object(s) of directory objects that left scope") and
               "skipOutOfScopeDeletions" in n for n in planned.notes)
    assert converge(manifest, url, snapshot, monkeypatch).converged
    users = by_username(url)
    assert users["alex.wilber@contoso.com"]["active"] is True
    assert users["diego.siciliani@contoso.com"]["active"] is True
    assert {u for u, r in users.items() if r["active"] is False} == {
        "joni.sherman@contoso.com", "henrietta.mueller@contoso.com", "lidia.holloway@contoso.com"}
    # Without the flag the same leavers of scope are disabled.
    assert {(s.display, s.reason) for s in plan(atea(), url, snapshot, monkeypatch).steps} == {
        ("alex.wilber@contoso.com", "unassigned"), ("diego.siciliani@contoso.com", "out of scope")}


def _manager_of(report: str, manager: str) -> Any:
    def edit(data: dict[str, Any]) -> None:
        user(data, report)["manager"] = user(data, manager)["id"]
    return edit


def test_a_manager_created_this_run_is_set_next_round(url: str, tmp_path: Path, monkeypatch: Any) -> None:
    manifest = atea(**WITH_MANAGER)
    snapshot = directory(tmp_path, _manager_of("alex.wilber@contoso.com", "megan.bowen@contoso.com"))
    first = plan(manifest, url, snapshot, monkeypatch)
    assert ("unresolved reference: manager megan.bowen@contoso.com of user alex.wilber@contoso.com is created "
            "this run; it is set next round") in first.notes
    result = converge(manifest, url, snapshot, monkeypatch)
    assert result.converged and len(result.rounds) == 2  # the second round sets the manager
    users = by_username(url)
    assert users["alex.wilber@contoso.com"][ENTERPRISE]["manager"]["value"] == users["megan.bowen@contoso.com"]["id"]
    assert not any("unresolved reference" in n for n in plan(manifest, url, snapshot, monkeypatch).notes)


def test_a_manager_who_is_never_provisioned_is_named_and_does_not_hold_the_run(url: str, tmp_path: Path,
                                                                              monkeypatch: Any) -> None:
    manifest = atea(**WITH_MANAGER)
    snapshot = directory(tmp_path, _manager_of("alex.wilber@contoso.com", "pradeep.gupta@contoso.com"))
    expected = ("unresolved reference: manager pradeep.gupta@contoso.com of user alex.wilber@contoso.com will "
                "not be provisioned (out of scope); left unset")
    assert expected in plan(manifest, url, snapshot, monkeypatch).notes
    result = converge(manifest, url, snapshot, monkeypatch)
    assert result.converged and len(result.rounds) == 1
    assert expected in result.final.notes
    assert "manager" not in by_username(url)["alex.wilber@contoso.com"].get(ENTERPRISE, {})


def test_a_failed_mapping_is_not_reported_as_an_orphan(url: str, tmp_path: Path, monkeypatch: Any) -> None:
    manifest = atea(**{"      - {target: nickName, source: mailNickname}":
                       "      - {target: nickName, source: mailNickname}\n"
                       "      - {target: title, expression: 'FormatDateTime([employeeId], , \"yyyyMMdd\", "
                       "\"yyyy-MM-dd\")'}"})

    def dated(data: dict[str, Any]) -> None:
        for each in data["users"]:
            each["employeeId"] = "20240131"

    converge(manifest, url, directory(tmp_path, dated), monkeypatch)
    jose = by_username(url)["jose.muller@contoso.com"]
    assert jose["title"] == "2024-01-31"

    def garble(data: dict[str, Any]) -> None:
        dated(data)
        user(data, "jose.muller@contoso.com")["employeeId"] = "not a date"

    planned = plan(manifest, url, directory(tmp_path, garble, "garbled.json"), monkeypatch)
    assert planned.empty
    assert f"target user {jose['id']} (jose.muller@contoso.com) left alone: its mapping failed" in planned.notes
    assert any(n.startswith("failed user jose.muller@contoso.com: mapping to 'title'") for n in planned.notes)
    assert not any("names no object in the directory" in n for n in planned.notes)
    assert len(listing(url)) == 10
