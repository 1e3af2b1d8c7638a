"""Uniqueness conflicts seen at plan time, against the embedded target: nothing the target would refuse is sent.

A write whose userName (a group's displayName) another live object holds, and directory objects that map to one
value, are conflict steps: the plan names the other object and the value in every format, apply never sends
them (no 409, no retry rounds), and the run ends NOT converged with the conflict listed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from reconciler.cli import main
from reconciler.desired import DesiredObject
from reconciler.manifest import LoadedManifest, load_text
from reconciler.plan import Action, Plan, Step
from tests.hostile import Reply, Request, serving
from tests.reconcile_helpers import (
    ROOT,
    atea,
    by_username,
    converge,
    directory,
    group,
    listing,
    plan,
    post,
    user,
)
from tests.test_plan import ID_A, ID_B, desired, live, plan_for

ATEA = str(ROOT / "manifests" / "atea.yaml")
CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
MEGAN = "megan.bowen@contoso.com"
ISAIAH = "isaiah.langer@contoso.com"
SALES_ID = "2d4fe782-c7f0-5731-97cb-1eca2fecca05"
ENGINEERING_ID = "8db13604-440a-5c48-a283-884f4a1a5088"


class RecordingProxy:
    """Forwards every request to the embedded target and keeps (method, path, status): the request log."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self.log: list[tuple[str, str, int]] = []

    def __call__(self, request: Request) -> Reply:
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("authorization", "content-type")}
        answer = httpx.request(request.method, self.origin + request.path, headers=headers, content=request.body)
        self.log.append((request.method, request.route, answer.status_code))
        return Reply(answer.status_code, answer.content,
                     content_type=answer.headers.get("content-type", "application/scim+json"))


def cli(capsys: Any, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def manifest_file(tmp_path: Path, source: Path, **changes: str) -> tuple[LoadedManifest, str]:
    """``source`` with text replacements, loaded and written to ``tmp_path`` (the command line reads files)."""
    text = source.read_text().replace("  directory:\n    snapshot: ../examples/directory.json\n", "")
    for old, new in changes.items():
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / source.name
    path.write_text(text)
    return load_text(text, file=str(path)), str(path)


def flat(text: str) -> str:
    """Text without whitespace: the text table folds long cells onto several lines."""
    return "".join(text.split())


def conflicts(planned: Plan) -> dict[str, Step]:
    return {s.display: s for s in planned.steps if s.action == Action.CONFLICT}


def all_formats(manifest: str, snapshot: str, url: str, capsys: Any) -> dict[str, str]:
    shown = {}
    for form in ("text", "markdown", "json"):
        code, out, _ = cli(capsys, "plan", manifest, "--directory", snapshot, "--target", url, "--format", form)
        assert code == 0, out
        shown[form] = out
    return shown


def test_a_rename_to_a_user_name_another_account_holds_is_a_conflict_never_a_409(
        url: str, tmp_path: Path, monkeypatch: Any, capsys: Any) -> None:
    converge(atea(), url, directory(tmp_path), monkeypatch)
    other = post(url, "Users", {"schemas": [CORE_USER], "userName": "taken@contoso.com"})
    megan_id = by_username(url)[MEGAN]["id"]

    def edit(data: dict[str, Any]) -> None:
        user(data, MEGAN)["userPrincipalName"] = "TAKEN@contoso.com"  # userName compares case-insensitively
        user(data, ISAIAH)["givenName"] = "Ike"  # a write that does go through, so that apply runs a round

    snapshot = directory(tmp_path, edit, "renamed.json")
    planned = plan(atea(), url, snapshot, monkeypatch)
    step = conflicts(planned)["TAKEN@contoso.com"]
    assert step.target_id == megan_id and not step.operations and not step.writes
    assert step.reason == (f"userName 'TAKEN@contoso.com' is already held by another target object ({other['id']}); "
                           "not sent, the target would refuse a duplicate")
    assert [s.display for s in planned.steps if s.writes] == [ISAIAH]

    shown = all_formats(ATEA, snapshot, url, capsys)
    assert flat(f"CONFLICT User TAKEN@contoso.com (reason) {step.reason}") in flat(shown["text"])
    assert f"| CONFLICT | User | TAKEN&#64;contoso.com | (reason) |   | userName 'TAKEN&#64;contoso.com' is already " \
           f"held by another target object ({other['id']}); not sent" in shown["markdown"]
    [app] = json.loads(shown["json"])["apps"]
    assert [s["reason"] for s in app["steps"] if s["action"] == "conflict"] == [step.reason]

    proxy = RecordingProxy(url)
    with serving(proxy) as server:
        code, out, err = cli(capsys, "apply", ATEA, "--directory", snapshot, "--target", f"{server.url}/v2")
    assert code == 1
    assert "1 write request(s) in 1 round(s); NOT converged" in out
    assert f"pending: conflict User TAKEN@contoso.com ({step.reason})" in err
    writes = [(method, path, status) for method, path, status in proxy.log if method != "GET"]
    assert [status for _, _, status in proxy.log if status >= 400] == []  # no 409, no retries
    assert [path for _, path, _ in writes] == [f"/v2/Users/{by_username(url)[ISAIAH]['id']}"]
    assert by_username(url)[MEGAN]["id"] == megan_id  # still her old name


def test_a_create_or_adopt_whose_user_name_is_held_elsewhere_is_a_conflict(
        url: str, tmp_path: Path, monkeypatch: Any) -> None:
    # Matching on the work email, not on userName: the userName clash is found by the uniqueness check alone.
    loaded = atea(**{"{target: userName, source: userPrincipalName, matching: 1}":
                     "{target: userName, source: userPrincipalName}",
                     "{target: 'emails[type eq \"work\"].value', source: mail}":
                     "{target: 'emails[type eq \"work\"].value', source: mail, matching: 1}",
                     "  deprovision: disable": "  filterableAttributes: [userName, externalId, 'emails[type eq "
                                               "\"work\"].value']\n  deprovision: disable"})
    holder = post(url, "Users", {"schemas": [CORE_USER], "userName": MEGAN.upper()})
    isaiah_holder = post(url, "Users", {"schemas": [CORE_USER], "userName": ISAIAH})
    unclaimed = post(url, "Users", {"schemas": [CORE_USER], "userName": "isaiah.old@contoso.com",
                                    "emails": [{"type": "work", "value": ISAIAH}]})
    planned = plan(loaded, url, directory(tmp_path), monkeypatch)
    found = conflicts(planned)
    assert set(found) == {MEGAN, ISAIAH}
    assert found[MEGAN].target_id is None and holder["id"] in found[MEGAN].reason  # would have been a create
    assert found[ISAIAH].target_id == unclaimed["id"]  # would have been an adopt of the unclaimed account
    assert f"userName {ISAIAH!r} is already held by another target object ({isaiah_holder['id']})" in (
        found[ISAIAH].reason)
    assert found[ISAIAH].source_id not in planned.targets  # not adopted

    result = converge(loaded, url, directory(tmp_path), monkeypatch)
    assert len(result.rounds) == 1 and not result.converged
    assert result.rounds[0].failures == []
    assert set(conflicts(result.final)) == {MEGAN, ISAIAH}
    assert "externalId" not in next(u for u in listing(url) if u["id"] == unclaimed["id"])


def test_two_directory_users_with_one_user_name_are_both_conflicts(
        url: str, tmp_path: Path, monkeypatch: Any, capsys: Any) -> None:
    loaded, path = manifest_file(tmp_path, ROOT / "manifests" / "atea.yaml", **{
        "{target: userName, source: userPrincipalName, matching: 1}": "{target: userName, source: mailNickname, "
                                                                      "matching: 1}"})

    def edit(data: dict[str, Any]) -> None:
        user(data, ISAIAH)["mailNickname"] = "MeganBowen"  # megan's is "meganbowen"

    snapshot = directory(tmp_path, edit)
    planned = plan(loaded, url, snapshot, monkeypatch)
    found = conflicts(planned)
    assert set(found) == {MEGAN, ISAIAH}
    megan_id, isaiah_id = found[MEGAN].source_id, found[ISAIAH].source_id
    assert found[MEGAN].reason == (f"userName 'meganbowen' is wanted by directory object(s) {ISAIAH} ({isaiah_id}) "
                                   "too; none of them is written until each has its own")
    assert f"{MEGAN} ({megan_id})" in found[ISAIAH].reason and "'MeganBowen'" in found[ISAIAH].reason
    assert planned.summary()["create"] == 8

    shown = all_formats(path, snapshot, url, capsys)
    assert all(flat(found[MEGAN].reason) in flat(shown[f].replace("&#64;", "@")) for f in ("text", "markdown", "json"))

    result = converge(loaded, url, snapshot, monkeypatch)
    assert len(result.rounds) == 1 and not result.converged and result.rounds[0].failures == []
    names = {u["userName"].lower() for u in listing(url)}
    assert len(names) == 8 and "meganbowen" not in names


def test_a_rename_into_a_name_another_rename_frees_follows_next_round(
        url: str, tmp_path: Path, monkeypatch: Any) -> None:
    converge(atea(), url, directory(tmp_path), monkeypatch)

    def edit(data: dict[str, Any]) -> None:  # Isaiah takes Megan's old name, Megan moves on
        user(data, MEGAN)["userPrincipalName"] = "megan.new@contoso.com"
        user(data, ISAIAH)["userPrincipalName"] = MEGAN

    snapshot = directory(tmp_path, edit, "chain.json")
    first = plan(atea(), url, snapshot, monkeypatch)
    assert list(conflicts(first)) == [MEGAN]  # Isaiah's step, shown under his new name
    result = converge(atea(), url, snapshot, monkeypatch)
    assert result.converged and len(result.rounds) == 2
    assert {MEGAN, "megan.new@contoso.com"} <= set(by_username(url))


def wiki_by_ids(tmp_path: Path, **changes: str) -> LoadedManifest:
    """The wiki manifest with its groups assigned by object id (so that two may share a name), and ``changes``."""
    loaded, _ = manifest_file(tmp_path, ROOT / "manifests" / "wiki.yaml", **{
        "{group: Engineering, role: Editor}": f"{{group: {ENGINEERING_ID}, role: Editor}}",
        "{group: Sales, role: Reader}": f"{{group: {SALES_ID}, role: Reader}}", **changes})
    return loaded


def test_two_directory_groups_with_one_display_name_are_both_conflicts(
        url: str, tmp_path: Path, monkeypatch: Any) -> None:
    loaded = wiki_by_ids(tmp_path)

    def edit(data: dict[str, Any]) -> None:
        group(data, "Sales")["displayName"] = "ENGINEERING"

    snapshot = directory(tmp_path, edit)
    planned = plan(loaded, url, snapshot, monkeypatch)
    found = conflicts(planned)
    assert set(found) == {"Engineering", "ENGINEERING"}
    assert found["Engineering"].reason == (f"displayName 'Engineering' is wanted by directory object(s) ENGINEERING "
                                           f"({SALES_ID}) too; none of them is written until each has its own")
    assert f"Engineering ({ENGINEERING_ID})" in found["ENGINEERING"].reason
    assert not [s for s in planned.steps if s.kind == "Group" and s.writes]

    result = converge(loaded, url, snapshot, monkeypatch)
    assert len(result.rounds) == 1 and not result.converged and result.rounds[0].failures == []
    assert listing(url, "Groups") == [] and len(listing(url)) == 10


def test_members_in_a_conflict_are_not_asked_for_round_after_round(
        url: str, tmp_path: Path, monkeypatch: Any) -> None:
    loaded = wiki_by_ids(tmp_path, **{"{target: userName, source: userPrincipalName, matching: 1}":
                                      "{target: userName, source: mailNickname, matching: 1}"})

    def edit(data: dict[str, Any]) -> None:
        user(data, "lee.gu@contoso.com")["mailNickname"] = "GradyArchie"  # both are in Engineering

    snapshot = directory(tmp_path, edit)
    planned = plan(loaded, url, snapshot, monkeypatch)
    assert set(conflicts(planned)) == {"grady.archie@contoso.com", "lee.gu@contoso.com"}
    [engineering] = [s for s in planned.steps if s.display == "Engineering"]
    assert engineering.action == Action.CREATE and len(engineering.members_add) == 4

    result = converge(loaded, url, snapshot, monkeypatch)
    assert len(result.rounds) == 1 and not result.converged and result.rounds[0].failures == []
    assert set(conflicts(result.final)) == {"grady.archie@contoso.com", "lee.gu@contoso.com"}
    assert [s for s in result.final.steps if s.writes] == []
    [made] = [g for g in listing(url, "Groups") if g["displayName"] == "Engineering"]
    assert len(made["members"]) == 4


def test_a_group_renamed_to_a_name_a_hand_made_group_holds_is_a_conflict(
        url: str, tmp_path: Path, monkeypatch: Any) -> None:
    loaded = wiki_by_ids(tmp_path)  # groups renamed in the directory stay assigned
    converge(loaded, url, directory(tmp_path), monkeypatch)
    made = post(url, "Groups", {"schemas": [CORE_GROUP], "displayName": "Platform"})

    def edit(data: dict[str, Any]) -> None:
        group(data, "Sales")["displayName"] = "platform"
        group(data, "Engineering")["displayName"] = "Engineering Team"

    planned = plan(loaded, url, directory(tmp_path, edit, "renamed.json"), monkeypatch)
    found = conflicts(planned)
    assert list(found) == ["platform"]
    assert found["platform"].reason.startswith(f"displayName 'platform' is already held by another target object "
                                               f"({made['id']})")
    assert [s.display for s in planned.steps if s.writes and s.kind == "Group"] == ["Engineering Team"]


def test_a_user_name_held_by_the_object_itself_is_no_conflict_and_a_redacted_one_stays_hidden() -> None:
    # The planner alone: a target holding the value twice (one of them ours) sends nothing for it, so no conflict.
    state = live({"id": "t1", "userName": "a@contoso.com", "externalId": ID_A, "active": True},
                 {"id": "t2", "userName": "A@contoso.com", "active": True})
    assert plan_for((desired(ID_A, "a@contoso.com"),), state).empty
    hidden = DesiredObject("User", ID_B, "b", (("externalId", ID_B),),
                           {"schemas": [CORE_USER], "userName": "A@contoso.com", "externalId": ID_B}, {},
                           redacted=("userName",))
    [step] = plan_for((hidden,), state).steps
    assert step.action == Action.CONFLICT
    assert step.reason == ("userName [Redact] is already held by another target object (t1, t2); not sent, the "
                           "target would refuse a duplicate")
