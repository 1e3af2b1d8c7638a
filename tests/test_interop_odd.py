"""Odd but legal answers, each against :class:`tests.interop_server.InteropTarget` with one quirk on: a 409 without
``scimType``, a uniqueness clash on PATCH answered 500, ``attributes=`` ignored, ids that repeat across resource
types. Each converges (or ends with the one named failure), and the server sees no wrong write."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from reconciler.cli import main
from reconciler.lock import STATE_DIR_ENV
from reconciler.manifest import LoadedManifest
from reconciler.scim.paths import ENTERPRISE_USER
from tests.hostile import Request
from tests.interop_server import InteropTarget, Refused, interop_target
from tests.reconcile_helpers import ROOT, SAMPLE, TOKEN, atea, converge, directory, plan, user, wiki

ATEA = str(ROOT / "manifests" / "atea.yaml")
ADELE = "adele.vance@contoso.com"
MEGAN = "megan.bowen@contoso.com"
OUTSIDER = "outsider@fabrikam.example"


@pytest.fixture(autouse=True)
def environment(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("ATEA_SCIM_TOKEN", TOKEN)
    monkeypatch.setenv("WIKI_SCIM_TOKEN", TOKEN)
    monkeypatch.setenv(STATE_DIR_ENV, str(tmp_path / "state"))  # the target lock's folder


def writes_to(target: InteropTarget, path: str, method: str | None = None) -> list[Any]:
    return [body for m, p, body in target.writes() if p == path and (method is None or m == method)]


def directory_id(upn: str) -> str:
    return str(user(SAMPLE, upn)["id"])


# -- 409 without scimType ----------------------------------------------------------------------------------------


def test_a_409_without_scim_type_is_looked_up_and_adopted(tmp_path: Path, monkeypatch: Any) -> None:
    with interop_target(conflict_scim_type=None) as target:
        target.late_arrivals[MEGAN] = {"userName": MEGAN.upper(), "displayName": "made by hand"}
        result = converge(atea(), target.url, directory(tmp_path), monkeypatch)
        assert result.converged, result.failures
        assert result.rounds[0].failures == []
        megan = target.by("User", "userName", MEGAN)
        assert megan["externalId"] == directory_id(MEGAN) and megan["name"]["familyName"] == "Bowen"
        assert [b["userName"] for b in writes_to(target, "/Users", "POST")].count(MEGAN) == 1
        assert len(writes_to(target, f"/Users/{megan['id']}", "PATCH")) == 1
        assert len(target.users) == 10


def test_a_409_without_scim_type_that_matches_nothing_names_the_servers_behaviour(tmp_path: Path,
                                                                                  monkeypatch: Any) -> None:
    # The server keeps work emails unique too; another system's account holds Adele's, under another userName.
    with interop_target(conflict_scim_type=None, unique_user=("userName", "emails")) as target:
        other = target.add("User", {"userName": "a.vance@fabrikam.example", "externalId": "fabrikam-7",
                                    "emails": [{"type": "work", "value": ADELE}]})
        result = converge(atea(), target.url, directory(tmp_path), monkeypatch)
        assert not result.converged
        [failure] = result.failures
        assert failure.step.display == ADELE
        assert failure.reason == (f"User '{ADELE}': POST /Users answered 409 without scimType: emails '{ADELE}' is "
                                  f"taken, but no target object has userName '{ADELE}'; the server may keep another "
                                  "attribute unique, or mean another conflict; nothing adopted")
        assert writes_to(target, f"/Users/{other['id']}") == []  # the other account is never written
        assert target.users[other["id"]]["externalId"] == "fabrikam-7"
        posts = [b["userName"] for b in writes_to(target, "/Users", "POST")]
        assert posts.count(ADELE) == len(result.rounds)  # one POST a round, each refused: never a duplicate
        assert len(target.users) == 10  # nine created, and the other account


# -- a uniqueness clash on PATCH answered 500 ---------------------------------------------------------------------


def test_a_patch_answered_500_every_round_is_not_resent_and_is_named(tmp_path: Path, monkeypatch: Any,
                                                                     capsys: Any) -> None:
    with interop_target(patch_clash_status=500, unique_user=("userName", "emails")) as target:
        assert converge(atea(), target.url, directory(tmp_path), monkeypatch).converged
        other = target.add("User", {"userName": "someone@fabrikam.example", "externalId": "fabrikam-1",
                                    "emails": [{"type": "work", "value": "shared@fabrikam.example"}]})
        adele = target.by("User", "userName", ADELE)
        megan = target.by("User", "userName", MEGAN)

        def edit(data: dict[str, Any]) -> None:
            user(data, ADELE)["mail"] = "shared@fabrikam.example"  # the server refuses it, with a 500
            user(data, MEGAN)["surname"] = "Bowen-Smith"          # the server takes it

        before = len(target.writes())
        code = main(["apply", ATEA, "--directory", directory(tmp_path, edit, "edited.json"), "--target",
                     target.url])
        out, err = capsys.readouterr()
        assert code == 1
        assert "2 round(s); NOT converged" in out
        message = (f"PATCH /Users/{adele['id']} answered 500 every round: the server may refuse the value "
                   "(a uniqueness clash?)")
        assert f"atea: failed: update User {ADELE}: {message}" in err, err
        assert f"atea: pending: update User {ADELE}" in err
        sent = target.writes()[before:]  # Adele's PATCH twice (round 1, and round 2 after the read), Megan's once
        assert sorted((m, p) for m, p, _ in sent) == sorted([("PATCH", f"/Users/{adele['id']}")] * 2
                                                            + [("PATCH", f"/Users/{megan['id']}")])
        assert target.by("User", "userName", ADELE)["emails"] == adele["emails"]  # nothing applied
        assert target.by("User", "userName", MEGAN)["name"]["familyName"] == "Bowen-Smith"
        assert target.users[other["id"]] == other


def test_a_patch_answered_500_once_then_applied_converges(tmp_path: Path, monkeypatch: Any) -> None:
    with interop_target() as target:
        assert converge(atea(), target.url, directory(tmp_path), monkeypatch).converged
        adele = target.by("User", "userName", ADELE)
        failed: list[str] = []

        def first_patch_fails(request: Request) -> None:
            if request.method == "PATCH" and not failed:
                failed.append(request.route)
                raise Refused(500, "internal error")

        def edit(data: dict[str, Any]) -> None:
            user(data, ADELE)["surname"] = "Vance-Lee"

        target.before = first_patch_fails
        result = converge(atea(), target.url, directory(tmp_path, edit, "edited.json"), monkeypatch)
        assert result.converged, result.failures
        assert len(result.rounds) == 2
        assert "answered 500 every round" not in result.rounds[0].failures[0].reason
        assert target.users[adele["id"]]["name"]["familyName"] == "Vance-Lee"
        assert len(writes_to(target, f"/Users/{adele['id']}", "PATCH")) == 2


# -- attributes= ignored -------------------------------------------------------------------------------------------


UNMAPPED = {"title": "Set by hand", "userType": "Employee", "profileUrl": "https://example.com/p",
            "roles": [{"value": "Auditor"}], "x509Certificates": [{"value": "MIIB"}],
            "addresses": [{"type": "home", "locality": "Oslo"}],
            "phoneNumbers": [{"type": "work", "value": "+47 1234"}],
            ENTERPRISE_USER: {"costCenter": "42", "manager": {"value": "nobody"}},
            "urn:example:params:scim:schemas:extension:custom:2.0:User": {"badge": "7"}}


@pytest.mark.parametrize("manifest", [atea, wiki], ids=["atea", "wiki"])
def test_full_objects_when_attributes_are_ignored_are_no_drift(manifest: Any, tmp_path: Path,
                                                               monkeypatch: Any) -> None:
    loaded: LoadedManifest = manifest()
    snapshot = directory(tmp_path)
    with interop_target(ignore_attributes=True) as target:
        assert converge(loaded, target.url, snapshot, monkeypatch).converged
        for resource in target.users.values():  # what other systems set, and this manifest does not map
            for key, value in UNMAPPED.items():
                if isinstance(value, dict) and isinstance(resource.get(key), dict):
                    resource[key] = {**value, **resource[key]}
                else:
                    resource.setdefault(key, json.loads(json.dumps(value)))
            resource["emails"] = [*resource.get("emails", []), {"type": "home", "value": "home@example.net"}]
        for resource in target.groups.values():
            resource["description"] = "set by hand"
        before = len(target.writes())
        planned = plan(loaded, target.url, snapshot, monkeypatch)
        assert planned.empty, [(s.action, s.display, s.changes) for s in planned.steps]
        again = converge(loaded, target.url, snapshot, monkeypatch)
        assert again.converged and again.writes == 0
        assert target.writes()[before:] == []
        asked = [r for r in target.requests if r.method == "GET" and r.route == "/Users"]
        assert asked and all("attributes" in r.query for r in asked)  # asked for, and ignored


# -- ids that repeat across resource types -------------------------------------------------------------------------


def group_members(target: InteropTarget, rid: str) -> set[str]:
    return {str(m["value"]) for m in target.groups[rid].get("members", [])}


def expected_members(target: InteropTarget, name: str) -> set[str]:
    """The user ids of a directory group's members that the target holds, by externalId."""
    by_source = {u.get("externalId"): rid for rid, u in target.users.items()}
    group = next(g for g in SAMPLE["groups"] if g["displayName"] == name)
    return {by_source[m] for m in group["members"] if m in by_source}


def test_shared_ids_converge_and_every_write_goes_to_its_own_kind(tmp_path: Path, monkeypatch: Any) -> None:
    snapshot = directory(tmp_path)
    with interop_target(shared_ids=True) as target:
        result = converge(wiki(), target.url, snapshot, monkeypatch)
        assert result.converged and len(result.rounds) == 1, result.final.steps
        assert set(target.users) & set(target.groups) == set(target.groups) == {"1", "2"}
        for rid, resource in target.groups.items():
            assert group_members(target, rid) == expected_members(target, resource["displayName"])
        # the writes' answers (full resources: nothing is read back) were kept per kind
        answers = result.rounds[0].answers
        assert {("User", "1"), ("Group", "1"), ("User", "2"), ("Group", "2")} <= set(answers)
        assert all(("userName" if kind == "User" else "displayName") in (answer.resource or {})
                   for (kind, _), answer in answers.items())
        planned = plan(wiki(), target.url, snapshot, monkeypatch)
        assert planned.empty
        for source_id, target_id in planned.targets.items():
            store = target.groups if any(g["id"] == source_id for g in SAMPLE["groups"]) else target.users
            assert store[target_id]["externalId"] == source_id


def test_a_hand_added_user_is_not_taken_for_the_group_that_shares_its_id(tmp_path: Path, monkeypatch: Any) -> None:
    snapshot = directory(tmp_path)
    with interop_target(shared_ids=True) as target:
        outsider = target.add("User", {"userName": OUTSIDER, "externalId": "fabrikam-1"})
        assert outsider["id"] == "1"
        assert converge(wiki(), target.url, snapshot, monkeypatch).converged
        engineering = target.by("Group", "displayName", "Engineering")
        sales = target.by("Group", "displayName", "Sales")
        assert {engineering["id"], sales["id"]} == {"1", "2"}
        # someone adds the outsider (user "1") to both groups by hand
        for group in (engineering, sales):
            target.groups[group["id"]]["members"].append({"value": "1"})
        before = len(target.writes())
        planned = plan(wiki(), target.url, snapshot, monkeypatch)
        assert planned.empty, [(s.display, s.members_add, s.members_remove) for s in planned.steps]
        again = converge(wiki(), target.url, snapshot, monkeypatch)
        assert again.converged and again.writes == 0
        assert target.writes()[before:] == []
        assert "1" in group_members(target, "1") and "1" in group_members(target, "2")


def test_user_1_moves_between_groups_1_and_2(tmp_path: Path, monkeypatch: Any) -> None:
    with interop_target(shared_ids=True) as target:
        assert converge(wiki(), target.url, directory(tmp_path), monkeypatch).converged
        mover = target.users["1"]
        [left] = [rid for rid in target.groups if "1" in group_members(target, rid)]
        [joined] = [rid for rid in target.groups if rid != left]
        names = {rid: target.groups[rid]["displayName"] for rid in target.groups}

        def edit(data: dict[str, Any]) -> None:
            for group in data["groups"]:
                if group["displayName"] == names[left]:
                    group["members"].remove(mover["externalId"])
                if group["displayName"] == names[joined]:
                    group["members"].append(mover["externalId"])

        before = len(target.writes())
        result = converge(wiki(), target.url, directory(tmp_path, edit, "edited.json"), monkeypatch)
        assert result.converged, result.failures
        assert "1" not in group_members(target, left) and "1" in group_members(target, joined)
        assert "1" in target.users
        assert sorted(p for _, p, _ in target.writes()[before:]) == sorted([f"/Groups/{left}", f"/Groups/{joined}"])


def test_the_provisioning_log_keeps_users_and_groups_apart(tmp_path: Path, monkeypatch: Any) -> None:
    snapshot = directory(tmp_path)
    with interop_target(shared_ids=True) as target:
        hand_made = target.add("Group", {"displayName": "Made by hand"})
        assert hand_made["id"] == "1"
        first = tmp_path / "first.jsonl"
        assert converge(wiki(), target.url, snapshot, monkeypatch, log_path=str(first)).converged
        assert "1" in target.users and target.users["1"]["externalId"]  # user "1" is ours, group "1" is not
        assert writes_to(target, "/Groups/1") == []
        created = [json.loads(line) for line in first.read_text().splitlines()]
        assert {(r["targetIdentity"]["identityType"], r["targetIdentity"]["id"]) for r in created
                if r["action"] == "Create" and r["status"] == "Success"} >= {("User", "1"), ("Group", "2")}
        second = tmp_path / "second.jsonl"  # in sync: every object logged, user "1" managed, group "1" not
        assert converge(wiki(), target.url, snapshot, monkeypatch, log_path=str(second)).writes == 0
        records = [json.loads(line) for line in second.read_text().splitlines()]
        unmanaged = [r for r in records if r["statusInfo"].get("errorCode") == "EntrySynchronizationSkipped"]
        assert [(r["targetIdentity"]["identityType"], r["targetIdentity"]["id"]) for r in unmanaged] == [("Group", "1")]
        in_sync = {(r["targetIdentity"]["identityType"], r["targetIdentity"]["id"]) for r in records
                   if r["statusInfo"]["reason"] == "in sync"}
        assert len(in_sync) == 12 and ("User", "1") in in_sync and ("Group", "1") not in in_sync
        planned = plan(wiki(), target.url, snapshot, monkeypatch)
        assert planned.empty and planned.unmanaged == {"User": 0, "Group": 1}
