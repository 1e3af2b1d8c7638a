"""The reconciler against a real SCIM server (scim2-server, embedded, over loopback HTTP): no mocked transport."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from reconciler.apply import DeletionGuardTripped
from tests.reconcile_helpers import (
    SAMPLE,
    atea,
    by_username,
    converge,
    directory,
    group,
    listing,
    plan,
    post,
    user,
    wiki,
)

ATEA_USERS = {"adele.vance@contoso.com", "alex.wilber@contoso.com", "diego.siciliani@contoso.com",
              "henrietta.mueller@contoso.com", "isaiah.langer@contoso.com", "johanna.lorenz@contoso.com",
              "joni.sherman@contoso.com", "jose.muller@contoso.com", "lidia.holloway@contoso.com",
              "megan.bowen@contoso.com"}


def test_first_apply_creates_the_assigned_in_scope_users(url: str, tmp_path: Path, monkeypatch: Any) -> None:
    snapshot = directory(tmp_path)
    result = converge(atea(), url, snapshot, monkeypatch)
    assert result.converged and result.rounds[0].done == {"create": 10}
    users = by_username(url)
    assert set(users) == ATEA_USERS  # nested-group member, contractor and disabled user are not provisioned
    jose = users["jose.muller@contoso.com"]
    assert jose["name"] == {"givenName": "José", "familyName": "Müller", "formatted": "José Müller"}
    assert jose["emails"][0]["value"] == "jose.muller@contoso.com" and jose["emails"][0]["type"] == "work"
    assert jose["externalId"] == user(SAMPLE, "jose.muller@contoso.com")["id"]
    assert jose["active"] is True


def test_second_apply_sends_no_writes(url: str, tmp_path: Path, monkeypatch: Any) -> None:
    snapshot = directory(tmp_path)
    converge(atea(), url, snapshot, monkeypatch)
    again = plan(atea(), url, snapshot, monkeypatch)
    assert again.empty, again.steps
    result = converge(atea(), url, snapshot, monkeypatch)
    assert result.converged and result.writes == 0 and result.rounds == []


def test_attribute_drift_is_corrected_with_exact_operations(url: str, tmp_path: Path, monkeypatch: Any) -> None:
    converge(atea(), url, directory(tmp_path), monkeypatch)

    def rename(data: dict[str, Any]) -> None:
        user(data, "megan.bowen@contoso.com")["surname"] = "Bowen-Smith"
        user(data, "megan.bowen@contoso.com")["mobilePhone"] = "+1 412 555 0000"

    snapshot = directory(tmp_path, rename, "renamed.json")
    changed = plan(atea(), url, snapshot, monkeypatch)
    [step] = changed.steps
    assert step.action == "update" and step.display == "megan.bowen@contoso.com"
    assert sorted(c.path for c in step.changes) == [
        "name.familyName", "name.formatted", 'phoneNumbers[type eq "mobile"].value']
    result = converge(atea(), url, snapshot, monkeypatch)
    assert result.converged and result.writes == 1
    megan = by_username(url)["megan.bowen@contoso.com"]
    assert megan["name"]["familyName"] == "Bowen-Smith"
    assert megan["phoneNumbers"][0]["value"] == "+1 412 555 0000"


def test_existing_user_is_adopted_not_duplicated(url: str, tmp_path: Path, monkeypatch: Any) -> None:
    post(url, "Users", {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                        "userName": "ADELE.VANCE@contoso.com", "displayName": "set by hand"})
    snapshot = directory(tmp_path)
    planned = plan(atea(), url, snapshot, monkeypatch)
    adopt = [s for s in planned.steps if s.action == "adopt"]
    assert [s.display for s in adopt] == ["adele.vance@contoso.com"]
    assert "userName eq" in adopt[0].reason
    result = converge(atea(), url, snapshot, monkeypatch)
    assert result.converged
    users = by_username(url)
    assert len(users) == 10
    adele = users["adele.vance@contoso.com"]
    assert adele["externalId"] and adele["displayName"] == "set by hand"  # unmapped attributes are left alone


def test_unmanaged_objects_are_never_touched(url: str, tmp_path: Path, monkeypatch: Any) -> None:
    foreign = post(url, "Users", {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                                  "userName": "svc-backup@contoso.com", "active": True,
                                  "externalId": "9be6c9d1-0000-0000-0000-000000000000"})
    # A directory user who is not assigned to Atea, with an account someone created by hand: matched by
    # userName, but never provisioned by this app, so never deleted by it.
    by_hand = post(url, "Users", {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                                  "userName": "grady.archie@contoso.com", "active": True})
    result = converge(atea(**{"deprovision: disable": "deprovision: delete"}), url, directory(tmp_path), monkeypatch)
    assert result.converged
    users = by_username(url)
    kept = users["svc-backup@contoso.com"]
    assert kept["active"] is True and kept["meta"]["version"] == foreign["meta"]["version"]
    assert users["grady.archie@contoso.com"]["meta"]["version"] == by_hand["meta"]["version"]
    assert result.final.unmanaged["User"] == 2


@pytest.mark.parametrize("mode", ["disable", "delete"])
def test_every_deprovision_path(url: str, tmp_path: Path, monkeypatch: Any, mode: str) -> None:
    manifest = atea(**{"deprovision: disable": f"deprovision: {mode}"})
    converge(manifest, url, directory(tmp_path), monkeypatch)

    def leave(data: dict[str, Any]) -> None:
        users_group = group(data, "Atea Users")
        users_group["members"].remove(user(data, "alex.wilber@contoso.com")["id"])  # unassigned
        user(data, "diego.siciliani@contoso.com")["department"] = "Contractors"     # out of scope
        user(data, "joni.sherman@contoso.com")["accountEnabled"] = False            # disabled

    snapshot = directory(tmp_path, leave, "leave.json")
    planned = plan(manifest, url, snapshot, monkeypatch)
    expected_action = "disable" if mode == "disable" else "delete"
    assert sorted((s.action, s.display, s.reason) for s in planned.steps) == [
        (expected_action, "alex.wilber@contoso.com", "unassigned"),
        (expected_action, "diego.siciliani@contoso.com", "out of scope"),
        (expected_action, "joni.sherman@contoso.com", "disabled"),
    ]
    result = converge(manifest, url, snapshot, monkeypatch)
    assert result.converged
    users = by_username(url)
    gone = {"alex.wilber@contoso.com", "diego.siciliani@contoso.com", "joni.sherman@contoso.com"}
    if mode == "disable":
        assert set(users) == ATEA_USERS
        assert {u for u, r in users.items() if r["active"] is False} == gone
    else:
        assert set(users) == ATEA_USERS - gone


def test_reassigned_user_is_enabled_again(url: str, tmp_path: Path, monkeypatch: Any) -> None:
    def disable(data: dict[str, Any]) -> None:
        user(data, "joni.sherman@contoso.com")["accountEnabled"] = False

    converge(atea(), url, directory(tmp_path), monkeypatch)
    converge(atea(), url, directory(tmp_path, disable, "off.json"), monkeypatch)
    assert by_username(url)["joni.sherman@contoso.com"]["active"] is False
    result = converge(atea(), url, directory(tmp_path), monkeypatch)
    assert result.converged and result.rounds[0].done == {"update": 1}
    assert by_username(url)["joni.sherman@contoso.com"]["active"] is True


def test_deletion_guard_stops_before_any_write(url: str, tmp_path: Path, monkeypatch: Any) -> None:
    manifest = atea(**{"deletionThreshold: 50": "deletionThreshold: 2"})
    converge(manifest, url, directory(tmp_path), monkeypatch)
    before = listing(url)

    def empty_groups(data: dict[str, Any]) -> None:
        group(data, "Atea Users")["members"] = []

    snapshot = directory(tmp_path, empty_groups, "empty.json")
    guarded = plan(manifest, url, snapshot, monkeypatch)
    assert guarded.guarded and guarded.destructive == 8
    with pytest.raises(DeletionGuardTripped, match="8 disables/deletes exceed deletionThreshold 2"):
        converge(manifest, url, snapshot, monkeypatch)
    assert listing(url) == before
    allowed = converge(manifest, url, snapshot, monkeypatch, allow_deletes=True)
    assert allowed.converged and allowed.rounds[0].done == {"disable": 8}


def test_groups_and_membership(url: str, tmp_path: Path, monkeypatch: Any) -> None:
    result = converge(wiki(), url, directory(tmp_path), monkeypatch)
    assert result.converged
    users = {u["id"]: u["userName"] for u in listing(url)}
    groups = {g["displayName"]: sorted(users[m["value"]] for m in g.get("members", [])) for g in listing(url, "Groups")}
    assert groups["Engineering"] == sorted(["grady.archie@contoso.com", "henrietta.mueller@contoso.com",
                                            "johanna.lorenz@contoso.com", "lee.gu@contoso.com",
                                            "lidia.holloway@contoso.com", "jose.muller@contoso.com"])
    assert len(groups["Sales"]) == 4

    def reshuffle(data: dict[str, Any]) -> None:
        engineering = group(data, "Engineering")
        engineering["members"].remove(user(data, "lee.gu@contoso.com")["id"])
        group(data, "Sales")["members"].append(user(data, "lee.gu@contoso.com")["id"])

    snapshot = directory(tmp_path, reshuffle, "reshuffle.json")
    planned = plan(wiki(), url, snapshot, monkeypatch)
    assert sorted((s.display, len(s.members_add), len(s.members_remove)) for s in planned.steps) == [
        ("Engineering", 0, 1), ("Sales", 1, 0)]
    result = converge(wiki(), url, snapshot, monkeypatch)
    assert result.converged and result.writes == 2
    groups = {g["displayName"]: {users[m["value"]] for m in g.get("members", [])} for g in listing(url, "Groups")}
    assert "lee.gu@contoso.com" in groups["Sales"] and "lee.gu@contoso.com" not in groups["Engineering"]


def test_a_soft_deleted_user_is_deprovisioned(url: str, tmp_path: Path, monkeypatch: Any) -> None:
    converge(atea(), url, directory(tmp_path), monkeypatch)

    def delete_lidia(data: dict[str, Any]) -> None:
        lidia = user(data, "lidia.holloway@contoso.com")
        data["users"].remove(lidia)
        for item in data["groups"]:
            if lidia["id"] in item["members"]:
                item["members"].remove(lidia["id"])
        # As Graph's deletedItems shows a deleted user: the UPN prefixed with the object id.
        data["deletedUsers"] = [{"id": lidia["id"], "userPrincipalName": lidia["id"].replace("-", "") +
                                 "lidia.holloway@contoso.com"}]

    snapshot = directory(tmp_path, delete_lidia, "deleted.json")
    planned = plan(atea(), url, snapshot, monkeypatch)
    assert [(s.action, s.reason) for s in planned.steps] == [("disable", "deleted")]
    assert converge(atea(), url, snapshot, monkeypatch).converged
    assert by_username(url)["lidia.holloway@contoso.com"]["active"] is False
