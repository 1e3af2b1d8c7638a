"""The ledger between runs, on the embedded target: purged users lose access, drift shows as drift, ownership
follows the ledger, and a run without state says so."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from reconciler.cli import main
from reconciler.state.store import load, open_backend
from tests.reconcile_helpers import GROUPS, ROOT, SAMPLE, TOKEN, directory, listing

ATEA = str(ROOT / "manifests" / "atea.yaml")
PURGED = ("alex.wilber@contoso.com", "diego.siciliani@contoso.com")


def purge(data: dict[str, Any]) -> None:
    """Remove two provisioned users from the directory altogether: not even among the deleted items."""
    gone = {u["id"] for u in data["users"] if u["userPrincipalName"] in PURGED}
    data["users"] = [u for u in data["users"] if u["id"] not in gone]
    for group in data["groups"]:
        group["members"] = [m for m in group["members"] if m not in gone]


def manifest(tmp_path: Path, *replacements: tuple[str, str], groups: bool = False) -> str:
    """The Atea manifest reading ``dir.json`` beside it, with groups provisioned when asked."""
    text = (ROOT / "manifests" / "atea.yaml").read_text().replace("../examples/directory.json", "dir.json")
    for old, new in replacements:
        assert old in text
        text = text.replace(old, new)
    text = text.rstrip("\n") + "\n" + (GROUPS if groups else "")
    path = tmp_path / "atea.yaml"
    path.write_text(text)
    return str(path)


def apply(path: str, snapshot: str, url: str, *extra: str) -> int:
    return main(["apply", path, "--directory", snapshot, "--target", url, *extra])


def members_of_groups(url: str) -> set[str]:
    return {str(m["value"]) for g in listing(url, "Groups") for m in g.get("members") or []}


def patch(url: str, user_id: str, operations: list[dict[str, Any]]) -> None:
    answer = httpx.patch(f"{url}/Users/{user_id}", json={
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": operations},
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/scim+json"})
    answer.raise_for_status()


def test_purged_users_are_disabled_and_leave_their_groups(url: str, tmp_path: Path, capsys: Any) -> None:
    path = manifest(tmp_path, groups=True)
    assert apply(path, directory(tmp_path), url) == 0
    before = {u["userName"]: u for u in listing(url)}
    purged_ids = {before[upn]["id"] for upn in PURGED}
    assert purged_ids <= members_of_groups(url)
    capsys.readouterr()

    assert apply(path, directory(tmp_path, purge, name="purged.json"), url) == 0
    out = capsys.readouterr().out
    assert out.count("disable") >= 2 and "purged from the directory" in out
    after = {u["userName"]: u for u in listing(url)}
    assert len(after) == len(before)  # disabled, never deleted
    assert all(after[upn]["active"] is False for upn in PURGED)
    assert all(u["active"] is True for name, u in after.items() if name not in PURGED)
    assert not purged_ids & members_of_groups(url)

    state, fresh = load(open_backend(None), "atea", url)
    assert not fresh
    disabled = {e.display for e in state.entries("User") if e.disabled}
    assert disabled == set(PURGED)
    # a third run has nothing left to do for them
    capsys.readouterr()
    assert apply(path, directory(tmp_path, purge, name="purged.json"), url) == 0
    assert "nothing to do" in capsys.readouterr().out


def test_with_deprovision_delete_purged_users_are_deleted(url: str, tmp_path: Path) -> None:
    path = manifest(tmp_path, ("deprovision: disable", "deprovision: delete"), groups=True)
    assert apply(path, directory(tmp_path), url) == 0
    count = len(listing(url))
    assert apply(path, directory(tmp_path, purge, name="purged.json"), url) == 0
    names = {u["userName"] for u in listing(url)}
    assert len(names) == count - 2 and not names & set(PURGED)
    assert len(members_of_groups(url)) > 0
    state, _ = load(open_backend(None), "atea", url)
    assert {e.display for e in state.entries("User")}.isdisjoint(PURGED)  # deleted objects leave the ledger


def test_without_state_purged_users_stay_and_the_run_says_why(url: str, tmp_path: Path, capsys: Any) -> None:
    path = manifest(tmp_path)
    first = tmp_path / "first-state"
    assert apply(path, directory(tmp_path), url, "--state", str(first)) == 0
    assert "no provisioning state for this app and target yet" in capsys.readouterr().err
    assert apply(path, directory(tmp_path, purge, name="purged.json"), url, "--state",
                 str(tmp_path / "lost-state")) == 0
    captured = capsys.readouterr()
    assert captured.err.count("no provisioning state") == 1
    assert all(u["active"] is True for u in listing(url))  # nothing to recognise them by: left alone


def test_purges_count_against_the_deletion_guard(url: str, tmp_path: Path, capsys: Any) -> None:
    path = manifest(tmp_path, ("deletionThreshold: 50", "deletionThreshold: 1"))
    assert apply(path, directory(tmp_path), url) == 0
    capsys.readouterr()
    assert apply(path, directory(tmp_path, purge, name="purged.json"), url) == 1
    assert "deletion guard: 2 disables/deletes exceed deletionThreshold 1" in capsys.readouterr().err
    assert all(u["active"] is True for u in listing(url))
    state, _ = load(open_backend(None), "atea", url)
    assert state.quarantine.reason == "TooManyDeletes" and state.last_cycle is not None
    assert state.last_cycle.outcome == "failed"


def test_a_change_made_on_the_target_shows_as_drift(url: str, tmp_path: Path, capsys: Any) -> None:
    path = manifest(tmp_path)
    assert apply(path, directory(tmp_path), url) == 0
    alex = next(u for u in listing(url) if u["userName"] == "alex.wilber@contoso.com")
    patch(url, alex["id"], [{"op": "replace", "path": "nickName", "value": "hand-edited"}])

    def renamed(data: dict[str, Any]) -> None:
        next(u for u in data["users"] if u["userPrincipalName"] == "alex.wilber@contoso.com")["surname"] = "Wilbur"

    capsys.readouterr()
    assert main(["plan", path, "--directory", directory(tmp_path, renamed, name="renamed.json"), "--target", url,
                 "--format", "json"]) == 0
    plan = json.loads(capsys.readouterr().out)["apps"][0]
    step = next(s for s in plan["steps"] if s["display"] == "alex.wilber@contoso.com")
    origins = {c["path"]: c["origin"] for c in step["changes"]}
    assert origins["nickName"] == "target"
    assert origins["name.familyName"] == "directory"
    assert any("changed outside the reconciler" in n for n in plan["notes"])

    assert main(["plan", path, "--directory", directory(tmp_path, renamed, name="renamed.json"), "--target",
                 url]) == 0
    text = capsys.readouterr().out
    line = next(x for x in text.splitlines() if "nickName" in x)
    assert "changed outside the reconciler" in line
    assert "changed outside" not in next(x for x in text.splitlines() if "familyName" in x)


def test_the_ledger_keeps_an_object_whose_external_id_was_changed(url: str, tmp_path: Path, capsys: Any) -> None:
    path = manifest(tmp_path)
    assert apply(path, directory(tmp_path), url) == 0
    alex = next(u for u in listing(url) if u["userName"] == "alex.wilber@contoso.com")
    patch(url, alex["id"], [{"op": "replace", "path": "externalId", "value": "someone-else"}])
    capsys.readouterr()
    assert apply(path, directory(tmp_path), url) == 0
    again = next(u for u in listing(url) if u["userName"] == "alex.wilber@contoso.com")
    source = next(u["id"] for u in SAMPLE["users"] if u["userPrincipalName"] == "alex.wilber@contoso.com")
    assert again["id"] == alex["id"] and again["externalId"] == source
    assert len(listing(url)) == 10


def test_plan_never_writes_state(url: str, tmp_path: Path, private_state: Path) -> None:
    path = manifest(tmp_path)
    assert main(["plan", path, "--directory", directory(tmp_path), "--target", url]) == 0
    assert not any(p.suffix in (".json", ".journal") for p in private_state.iterdir())
    assert apply(path, directory(tmp_path), url) == 0
    files = [p for p in private_state.iterdir() if p.suffix == ".json"]
    assert len(files) == 1 and files[0].stat().st_mode & 0o777 == 0o600
    assert private_state.stat().st_mode & 0o777 == 0o700
    assert TOKEN not in files[0].read_text()
