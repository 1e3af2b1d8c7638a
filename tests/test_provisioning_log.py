"""The provisioning log tells everything: one record per object a cycle considered, with Entra's statuses, actions
and fields (jobId, cycleId, changeId, statusInfo, provisioningSteps ...). Against the embedded target over loopback
HTTP, through the command line or AppRun, as a user runs it."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.cli import main
from reconciler.errors import DeletionGuardTripped
from reconciler.provlog import STATUSES, STEP_TYPES, job_id
from reconciler.scim.paths import CORE_USER
from tests.hostile import Reply, Request, serving
from tests.reconcile_helpers import (
    ROOT,
    SAMPLE,
    TOKEN,
    atea,
    by_username,
    converge,
    directory,
    group,
    listing,
    post,
    user,
    wiki,
)

MANIFEST = str(ROOT / "manifests" / "atea.yaml")
ACTIONS = {"Create", "Update", "Delete", "Disable", "StagedDelete", "Other"}
FIELDS = {"activityDateTime", "jobId", "cycleId", "changeId", "action", "status", "statusInfo", "provisioningSteps",
          "modifiedProperties", "sourceIdentity", "targetIdentity", "durationInMilliseconds"}
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
OUT_OF_SCOPE = {"pradeep.gupta@contoso.com": "out of scope", "nestor.wilke@contoso.com": "disabled",
                **dict.fromkeys(["lynne.robbins@contoso.com", "patti.fernandez@contoso.com", "lee.gu@contoso.com",
                                 "grady.archie@contoso.com", "miriam.graham@contoso.com",
                                 "christie.cline@contoso.com"], "unassigned")}


def records(path: Path) -> list[dict[str, Any]]:
    """Every line of the log, each a JSON object with Entra's fields (json.loads fails on anything else)."""
    found = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    for record in found:
        assert set(record) >= FIELDS, sorted(FIELDS - set(record))
        assert record["status"] in STATUSES and record["action"] in ACTIONS
        assert record["jobId"].startswith("scim.") and record["cycleId"] and record["changeId"]
        assert isinstance(record["statusInfo"]["reason"], str) and record["statusInfo"]["reason"]
        if record["status"] == "Success":
            assert "errorCode" not in record["statusInfo"]
        elif record["status"] in ("Failure", "Warning"):
            assert record["statusInfo"]["errorCode"]
        steps = record["provisioningSteps"]
        assert steps and all(s["provisioningStepType"] in STEP_TYPES and s["status"] in STATUSES for s in steps)
        assert steps[-1]["status"] == record["status"]  # the last step carries the outcome
    assert len({r["changeId"] for r in found}) == len(found)
    return found


def by_name(found: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    named: dict[str, list[dict[str, Any]]] = {}
    for record in found:
        name = record["sourceIdentity"]["displayName"] or record["targetIdentity"]["displayName"]
        named.setdefault(name, []).append(record)
    return named


def step_of(record: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(s for s in record["provisioningSteps"] if s["provisioningStepType"] == kind)


def apply(url: str, snapshot: str, log: Path) -> int:
    return main(["apply", MANIFEST, "--directory", snapshot, "--target", url, "--log", str(log)])


def test_a_first_apply_logs_every_directory_user_once(url: str, tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    assert apply(url, directory(tmp_path), log) == 0
    found = records(log)
    named = by_name(found)
    assert len(named) == len(SAMPLE["users"]) == len(found)  # one record per object, every object
    assert {r["jobId"] for r in found} == {job_id("atea", url)} and len({r["cycleId"] for r in found}) == 1
    created = {n: r for n, [r] in named.items() if r["status"] == "Success"}
    assert len(created) == 10 and {r["action"] for r in created.values()} == {"Create"}
    jose = created["jose.muller@contoso.com"]
    assert jose["targetIdentity"]["id"] == by_username(url)["jose.muller@contoso.com"]["id"]
    assert {"displayName": "name.familyName", "oldValue": None, "newValue": "Müller"} in jose["modifiedProperties"]
    assert [s["provisioningStepType"] for s in jose["provisioningSteps"]] == [
        "Import", "Scoping", "Matching", "Processing", "Export"]
    skipped = {n: r for n, [r] in named.items() if r["status"] == "Skipped"}
    assert set(skipped) == set(OUT_OF_SCOPE)
    for name, why in OUT_OF_SCOPE.items():
        record = skipped[name]
        assert record["action"] == "Create" and record["statusInfo"]["errorCode"] == "NotEffectivelyEntitled"
        assert record["statusInfo"]["reason"].startswith(f"{why} (")
        assert step_of(record, "Scoping")["details"] == {"inScope": False, "reason": why}
        assert record["targetIdentity"]["id"] is None
    assert apply(url, directory(tmp_path), log) == 0  # a second run: the same job, a new cycle, all in sync
    second = records(log)[len(found):]
    assert {r["jobId"] for r in second} == {job_id("atea", url)} and second[0]["cycleId"] != found[0]["cycleId"]
    assert Counter(r["statusInfo"]["reason"] for r in second)["in sync"] == 10 and len(second) == len(found)


def test_updates_and_disables_succeed_and_the_rest_is_in_sync(url: str, tmp_path: Path) -> None:
    assert main(["apply", MANIFEST, "--directory", directory(tmp_path), "--target", url]) == 0

    def drift(data: dict[str, Any]) -> None:
        user(data, "megan.bowen@contoso.com")["surname"] = "Bowen-Hughes"
        members = group(data, "Atea Users")["members"]
        members.remove(user(data, "alex.wilber@contoso.com")["id"])

    log = tmp_path / "log.jsonl"
    assert apply(url, directory(tmp_path, drift, "drift.json"), log) == 0
    named = by_name(records(log))
    assert all(len(rs) == 1 for rs in named.values()) and len(named) == len(SAMPLE["users"])
    [megan] = named["megan.bowen@contoso.com"]
    assert (megan["action"], megan["status"]) == ("Update", "Success")
    assert {"displayName": "name.familyName", "oldValue": "Bowen", "newValue": "Bowen-Hughes"} in \
        megan["modifiedProperties"]
    [alex] = named["alex.wilber@contoso.com"]
    assert (alex["action"], alex["status"]) == ("Disable", "Success")
    assert alex["modifiedProperties"] == [{"displayName": "active", "oldValue": True, "newValue": False}]
    assert step_of(alex, "Scoping")["details"] == {"inScope": False, "reason": "unassigned"}
    assert alex["targetIdentity"]["id"] == by_username(url)["alex.wilber@contoso.com"]["id"]
    in_sync = [n for n, [r] in named.items() if r["statusInfo"]["reason"] == "in sync"]
    assert len(in_sync) == 8 and all(named[n][0]["status"] == "Skipped" for n in in_sync)
    assert all(named[n][0]["targetIdentity"]["id"] for n in in_sync)
    again = tmp_path / "again.jsonl"  # the next run: Alex is already disabled, nothing to do for anybody
    assert apply(url, directory(tmp_path, drift, "drift.json"), again) == 0
    [alex] = by_name(records(again))["alex.wilber@contoso.com"]
    assert (alex["action"], alex["status"], alex["statusInfo"]["errorCode"]) == ("Disable", "Skipped",
                                                                                 "NotEffectivelyEntitled")
    assert alex["statusInfo"]["reason"].endswith("is already disabled")


def refusing_once(target: str, user_name: str) -> Callable[[Request], Reply]:
    """A proxy to ``target`` that refuses the first create of ``user_name`` with 400 invalidValue."""
    refused: list[Request] = []

    def app(request: Request) -> Reply:
        body = request.json() if request.body else None
        if request.method == "POST" and isinstance(body, dict) and body.get("userName") == user_name and not refused:
            refused.append(request)
            return Reply(400, {"schemas": [ERROR], "status": "400", "scimType": "invalidValue",
                               "detail": "nickName is reserved"})
        answer = httpx.request(request.method, f"{target}{request.path}", content=request.body,
                               headers={k: v for k, v in request.headers.items()
                                        if k.lower() in ("authorization", "content-type", "accept")})
        return Reply(answer.status_code, answer.content, content_type=answer.headers.get("content-type", ""))

    return app


def test_a_write_the_target_refuses_fails_and_the_next_round_logs_only_its_retry(url: str, tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    with serving(refusing_once(url.removesuffix("/v2"), "megan.bowen@contoso.com")) as proxy:
        code = main(["apply", MANIFEST, "--directory", directory(tmp_path), "--target", f"{proxy.url}/v2",
                     "--log", str(log)])
    assert code == 0  # the second round created her
    named = by_name(records(log))
    failure, success = named["megan.bowen@contoso.com"]
    assert (failure["action"], failure["status"]) == ("Create", "Failure")
    assert failure["statusInfo"]["errorCode"] == "Http400" and "nickName is reserved" in failure["statusInfo"]["reason"]
    export = step_of(failure, "Export")
    assert export["status"] == "Failure" and export["details"] == {"errorCode": "Http400"}
    assert failure["targetIdentity"]["id"] is None
    assert (success["action"], success["status"]) == ("Create", "Success")
    assert success["cycleId"] == failure["cycleId"] and success["targetIdentity"]["id"]
    # every other object once: the second round logs only what it does
    assert all(len(rs) == 1 for n, rs in named.items() if n != "megan.bowen@contoso.com")
    assert len(named) == len(SAMPLE["users"])


def test_a_conflict_is_a_warning_and_nothing_is_written(url: str, tmp_path: Path) -> None:
    foreign = post(url, "Users", {"schemas": [CORE_USER], "userName": "megan.bowen@contoso.com",
                                  "externalId": "another-system-7"})
    log = tmp_path / "log.jsonl"
    assert apply(url, directory(tmp_path), log) == 1  # not converged: the conflict stays
    named = by_name(records(log))
    conflict = next(r for r in named["megan.bowen@contoso.com"] if r["sourceIdentity"]["id"])
    assert (conflict["action"], conflict["status"], conflict["actionDetail"]) == ("Other", "Warning", "conflict")
    assert conflict["statusInfo"]["errorCode"] == "EntryConflict"
    assert "another-system-7" in conflict["statusInfo"]["reason"] and conflict["modifiedProperties"] == []
    assert step_of(conflict, "Matching")["status"] == "Warning"
    unmanaged = next(r for r in named["megan.bowen@contoso.com"] if not r["sourceIdentity"]["id"])
    assert unmanaged["targetIdentity"]["id"] == foreign["id"] and unmanaged["status"] == "Skipped"
    assert "'another-system-7' names no object of this app's directory" in unmanaged["statusInfo"]["reason"]
    assert by_username(url)["megan.bowen@contoso.com"]["externalId"] == "another-system-7"


def test_a_guarded_run_logs_staged_deletes_and_applies_nothing(url: str, tmp_path: Path, monkeypatch: Any) -> None:
    manifest = atea(**{"deletionThreshold: 50": "deletionThreshold: 1"})
    converge(manifest, url, directory(tmp_path), monkeypatch)
    before = listing(url)

    def leave(data: dict[str, Any]) -> None:
        members = group(data, "Atea Users")["members"]
        for name in ("alex.wilber@contoso.com", "megan.bowen@contoso.com"):
            members.remove(user(data, name)["id"])
        user(data, "jose.muller@contoso.com")["surname"] = "Muller"

    log = tmp_path / "log.jsonl"
    with pytest.raises(DeletionGuardTripped):
        converge(manifest, url, directory(tmp_path, leave, "leave.json"), monkeypatch, log_path=str(log))
    assert listing(url) == before  # nothing applied
    named = by_name(records(log))
    assert all(len(rs) == 1 for rs in named.values()) and len(named) == len(SAMPLE["users"])
    for name in ("alex.wilber@contoso.com", "megan.bowen@contoso.com"):
        [staged] = named[name]
        assert (staged["action"], staged["status"], staged["actionDetail"]) == ("StagedDelete", "Skipped", "disable")
        assert staged["statusInfo"]["errorCode"] == "TooManyDeletes"
        assert "2 disables/deletes exceed deletionThreshold 1" in staged["statusInfo"]["reason"]
        assert staged["modifiedProperties"] == [{"displayName": "active", "oldValue": True, "newValue": False}]
    [jose] = named["jose.muller@contoso.com"]  # the update is held back too
    assert (jose["action"], jose["status"], jose["statusInfo"]["errorCode"]) == ("Update", "Skipped", "TooManyDeletes")
    assert Counter(r["statusInfo"]["reason"] for [r] in named.values())["in sync"] == 7


def test_objects_without_a_matching_value_or_whose_mapping_fails(url: str, tmp_path: Path) -> None:
    def spoil(data: dict[str, Any]) -> None:
        user(data, "jose.muller@contoso.com")["userPrincipalName"] = None
        user(data, "lidia.holloway@contoso.com")["givenName"] = "Lidia\ud800"

    log = tmp_path / "log.jsonl"
    assert apply(url, directory(tmp_path, spoil, "spoiled.json"), log) == 1  # a failed object fails the run
    found = records(log)
    ids = {user(SAMPLE, n)["id"]: n for n in ("jose.muller@contoso.com", "lidia.holloway@contoso.com")}
    mine = {ids[r["sourceIdentity"]["id"]]: r for r in found if r["sourceIdentity"]["id"] in ids}
    jose, lidia = mine["jose.muller@contoso.com"], mine["lidia.holloway@contoso.com"]
    assert (jose["status"], jose["statusInfo"]["errorCode"]) == ("Skipped", "ImportSkipped")
    assert "no matching value" in jose["statusInfo"]["reason"]
    assert (lidia["status"], lidia["statusInfo"]["errorCode"]) == ("Failure", "MappingFailed")
    assert "not valid Unicode" in lidia["statusInfo"]["reason"] and step_of(lidia, "Processing")["status"] == "Failure"


def test_groups_log_membership_and_unmanaged_target_objects(url: str, tmp_path: Path, monkeypatch: Any) -> None:
    post(url, "Groups", {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Hand Made"})
    log = tmp_path / "log.jsonl"
    result = converge(wiki(), url, directory(tmp_path), monkeypatch, log_path=str(log))
    assert result.converged
    found = records(log)
    groups = [r for r in found if r["sourceIdentity"]["identityType"] == "Group"]
    created = {r["sourceIdentity"]["displayName"]: r for r in groups if r["status"] == "Success"}
    live = {g["displayName"]: g for g in listing(url, "Groups")}
    assert set(created) == {"Engineering", "Sales"} and {r["action"] for r in created.values()} == {"Create"}
    for name, record in created.items():
        assert [s["provisioningStepType"] for s in record["provisioningSteps"]] == [
            "Import", "Scoping", "Matching", "Processing", "ReferenceResolution", "Export"]
        members = len(live[name]["members"])
        assert step_of(record, "ReferenceResolution")["details"] == {"add": members, "remove": 0}
        [change] = [m for m in record["modifiedProperties"] if m["displayName"] == "members"]
        assert len(change["newValue"]["add"]) == members
    [hand_made] = [r for r in groups if r["targetIdentity"]["displayName"] == "Hand Made"]
    assert hand_made["status"] == "Skipped" and hand_made["sourceIdentity"]["id"] is None
    plan_unmanaged = sum(1 for r in found if r["sourceIdentity"]["id"] is None)
    assert plan_unmanaged == 1  # only the hand-made group: every user and group the wiki created is its own


def test_the_log_holds_no_secret_that_a_target_or_directory_carries(url: str, tmp_path: Path) -> None:
    post(url, "Users", {"schemas": [CORE_USER], "userName": f"{TOKEN}@echo.example"})

    def leak(data: dict[str, Any]) -> None:
        user(data, "lee.gu@contoso.com")["userPrincipalName"] = f"lee-{TOKEN}@contoso.com"  # skipped: unassigned
        user(data, "jose.muller@contoso.com")["surname"] = TOKEN  # created

    log = tmp_path / "log.jsonl"
    assert apply(url, directory(tmp_path, leak, "leak.json"), log) == 0
    text = log.read_text(encoding="utf-8")
    records(log)
    fragments = [TOKEN[i:i + 12] for i in range(len(TOKEN) - 11)]
    assert not [f for f in fragments if f in text]
    assert "[secret]" in text


def test_the_job_id_names_one_app_and_one_target_however_the_url_is_spelled() -> None:
    assert job_id("atea", "https://SCIM.atea.example:443/scim/v2/") == job_id("atea", "https://scim.atea.example/scim/v2")
    assert job_id("atea", "https://scim.atea.example/scim/v2") != job_id("wiki", "https://scim.atea.example/scim/v2")
    assert job_id("atea", "https://scim.atea.example/scim/v2") != job_id("atea", "https://scim.atea.example/v2")
