"""Incremental cycles from a snapshot source, on the embedded target behind a counting proxy: a cycle with no
directory change sends nothing to the target, a change costs about one write per changed object, and the target
ends as a full cycle would leave it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.cli import main
from reconciler.state.store import load, open_backend
from reconciler.target.faults import FaultProxy
from reconciler.target.serve import serving_target
from tests.reconcile_helpers import GROUPS, ROOT, SAMPLE, TOKEN, listing


@pytest.fixture
def proxied(monkeypatch: Any) -> Iterator[tuple[str, FaultProxy]]:
    """The embedded target, and a proxy in front of it that logs every request."""
    monkeypatch.setenv("ATEA_SCIM_TOKEN", TOKEN)
    with serving_target(token=TOKEN) as server, FaultProxy(server.url) as proxy:
        yield server.url, proxy


def workspace(tmp_path: Path, edit: Any = None, *, groups: bool = True) -> tuple[str, Path]:
    """The Atea manifest (groups provisioned) reading ``dir.json`` beside it; the snapshot written."""
    text = (ROOT / "manifests" / "atea.yaml").read_text().replace("../examples/directory.json", "dir.json")
    path = tmp_path / "atea.yaml"
    path.write_text(text.rstrip("\n") + "\n" + (GROUPS if groups else ""))
    snapshot = tmp_path / "dir.json"
    write(snapshot, edit)
    return str(path), snapshot


def write(snapshot: Path, edit: Any = None) -> None:
    data = json.loads(json.dumps(SAMPLE))
    if edit is not None:
        edit(data)
    snapshot.write_text(json.dumps(data))


def user(data: dict[str, Any], upn: str) -> dict[str, Any]:
    return next(u for u in data["users"] if u["userPrincipalName"] == upn)


def changes(data: dict[str, Any]) -> None:
    """A renamed user, a disabled one, a purged one and a new hire (with a group membership)."""
    user(data, "megan.bowen@contoso.com")["surname"] = "Bowen-Hughes"
    user(data, "lidia.holloway@contoso.com")["accountEnabled"] = False
    gone = user(data, "diego.siciliani@contoso.com")["id"]
    data["users"] = [u for u in data["users"] if u["id"] != gone]
    for group in data["groups"]:
        group["members"] = [m for m in group["members"] if m != gone]
    new = "7f1c9a52-3d0e-4c55-9e61-5b2f4e8d0a17"
    data["users"].append({"id": new, "userPrincipalName": "nora.lindqvist@contoso.com", "givenName": "Nora",
                          "surname": "Lindqvist", "accountEnabled": True, "department": "Engineering",
                          "mail": "nora.lindqvist@contoso.com"})
    next(g for g in data["groups"] if g["displayName"] == "Atea Users")["members"].append(new)


def plan_json(capsys: Any, *args: str) -> dict[str, Any]:
    capsys.readouterr()
    assert main(["plan", *args, "--format", "json"]) in (0, 2)
    return json.loads(capsys.readouterr().out)["apps"][0]


def test_a_cycle_without_directory_changes_sends_nothing_to_the_target(proxied: tuple[str, FaultProxy],
                                                                       tmp_path: Path, capsys: Any) -> None:
    _, proxy = proxied
    manifest, _ = workspace(tmp_path)
    assert main(["apply", manifest, "--target", proxy.url]) == 0
    state, _ = load(open_backend(None), "atea", proxy.url)
    assert state.watermark and state.watermark["source"] == "snapshot"
    before = len(proxy.log)

    plan = plan_json(capsys, manifest, "--target", proxy.url, "--incremental")
    assert plan["mode"] == "incremental" and plan["steps"] == []
    capsys.readouterr()
    assert main(["apply", manifest, "--target", proxy.url, "--incremental"]) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert len(proxy.log) == before  # neither the plan nor the apply sent a request


def test_directory_changes_are_applied_incrementally_and_match_a_full_cycle(proxied: tuple[str, FaultProxy],
                                                                            tmp_path: Path, capsys: Any) -> None:
    upstream, proxy = proxied
    manifest, snapshot = workspace(tmp_path)
    assert main(["apply", manifest, "--target", proxy.url]) == 0
    write(snapshot, changes)
    before = len(proxy.log)

    plan = plan_json(capsys, manifest, "--target", proxy.url, "--incremental")
    assert plan["mode"] == "incremental"
    actions = sorted((s["action"], s["display"]) for s in plan["steps"])
    assert ("create", "nora.lindqvist@contoso.com") in actions
    assert ("disable", "diego.siciliani@contoso.com") in actions  # purged: the ledger still names him
    assert ("disable", "lidia.holloway@contoso.com") in actions
    assert ("update", "megan.bowen@contoso.com") in actions
    planned = len(proxy.log) - before

    capsys.readouterr()
    assert main(["apply", manifest, "--target", proxy.url, "--incremental"]) == 0
    out = capsys.readouterr().out
    assert "converged" in out
    writes = [entry for entry in proxy.log[before + planned:] if entry[0] in ("POST", "PATCH", "PUT", "DELETE")]
    reads = [entry for entry in proxy.log[before + planned:] if entry[0] == "GET"]
    assert len(writes) <= 6  # 4 users, and the group memberships in one PATCH each
    assert all("ServiceProviderConfig" in p or "Schemas" in p or "ResourceTypes" in p for _, p, _ in reads)

    users = {u["userName"]: u for u in listing(upstream)}
    assert users["diego.siciliani@contoso.com"]["active"] is False
    assert users["lidia.holloway@contoso.com"]["active"] is False
    assert users["megan.bowen@contoso.com"]["name"]["familyName"] == "Bowen-Hughes"
    members = {str(m["value"]) for g in listing(upstream, "Groups") for m in g.get("members") or []}
    assert users["nora.lindqvist@contoso.com"]["id"] in members
    assert users["diego.siciliani@contoso.com"]["id"] not in members
    # a full plan, which reads the target, finds nothing left to do
    full = plan_json(capsys, manifest, "--target", proxy.url)
    assert full["mode"] == "full" and full["steps"] == [], full["steps"]


def test_without_a_watermark_incremental_runs_a_full_cycle_and_says_so(proxied: tuple[str, FaultProxy],
                                                                       tmp_path: Path, capsys: Any) -> None:
    _, proxy = proxied
    manifest, _ = workspace(tmp_path)
    plan = plan_json(capsys, manifest, "--target", proxy.url, "--incremental")
    assert plan["mode"] == "full" and len(plan["steps"]) > 0
    capsys.readouterr()
    assert main(["apply", manifest, "--target", proxy.url, "--incremental"]) == 0
    assert "a full cycle: no watermark yet" in capsys.readouterr().err
    assert main(["state", "reset", "atea", "--target", proxy.url]) == 0
    plan = plan_json(capsys, manifest, "--target", proxy.url, "--incremental")
    assert plan["mode"] == "full"  # a reset clears the watermark: Entra's "Restart provisioning"


def test_a_changed_mapping_clears_the_watermark(proxied: tuple[str, FaultProxy], tmp_path: Path,
                                                capsys: Any) -> None:
    _, proxy = proxied
    manifest, _ = workspace(tmp_path)
    assert main(["apply", manifest, "--target", proxy.url]) == 0
    path = Path(manifest)
    path.write_text(path.read_text().replace("- {target: nickName, source: mailNickname}\n", ""))
    plan = plan_json(capsys, manifest, "--target", proxy.url, "--incremental")
    assert plan["mode"] == "full"


def test_the_loop_runs_incremental_cycles_between_full_ones(proxied: tuple[str, FaultProxy], tmp_path: Path,
                                                           monkeypatch: Any) -> None:
    import threading

    from reconciler.loop import LoopOptions, ReconcileLoop
    from reconciler.manifest import load_manifest
    from reconciler.run import RunOptions

    upstream, proxy = proxied
    manifest, snapshot = workspace(tmp_path)
    now = [0.0]
    lines: list[str] = []

    def sleep(seconds: float) -> None:  # between cycles: the directory changes, time passes
        now[0] += seconds
        if len(lines) == 1:
            write(snapshot, changes)

    options = LoopOptions(interval=600, jitter=0, max_cycles=4, full_every=1500,
                          run=RunOptions(target=proxy.url))
    loop = ReconcileLoop([load_manifest(manifest)], options, stop=threading.Event(), emit=lines.append,
                         clock=lambda: now[0], sleep=sleep)
    assert loop.run() == 0
    first, second, third, fourth = lines
    assert "atea: 12 create" in first and "incremental" not in first  # full first: 10 users, 2 groups
    assert "atea: incremental: " in second and "1 create" in second and "converged" in second
    assert "atea: incremental: no changes" in third
    assert "atea: no changes" in fourth and "incremental" not in fourth  # 1800 s after the full one: full again
    users = {u["userName"]: u for u in listing(upstream)}
    assert users["lidia.holloway@contoso.com"]["active"] is False


def test_a_damaged_directory_cache_costs_one_full_cycle(proxied: tuple[str, FaultProxy], tmp_path: Path,
                                                        private_state: Path, capsys: Any) -> None:
    _, proxy = proxied
    manifest, _ = workspace(tmp_path)
    assert main(["apply", manifest, "--target", proxy.url]) == 0
    [cache] = private_state.glob("*.cache")
    assert cache.stat().st_mode & 0o777 == 0o600
    cache.write_bytes(b"{not json")
    capsys.readouterr()
    assert main(["apply", manifest, "--target", proxy.url, "--incremental"]) == 0
    err = capsys.readouterr().err
    assert "a full cycle: " in err and "the directory cache is not valid JSON" in err and err.count("\n") == 1
    assert plan_json(capsys, manifest, "--target", proxy.url, "--incremental")["mode"] == "incremental"
