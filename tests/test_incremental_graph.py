"""Incremental cycles from Microsoft Graph (the fake Graph over loopback) to the embedded target: users are
changed, disabled, soft-deleted, purged and added between cycles, and after each incremental cycle the target is
what a full cycle would make it; a cycle with no change asks Graph twice and the target never."""

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
from tests.fake_graph import FakeGraph, fake_graph
from tests.reconcile_helpers import GROUPS, ROOT, SAMPLE, TOKEN, listing


@pytest.fixture
def world(tmp_path: Path, monkeypatch: Any) -> Iterator[tuple[FakeGraph, str, FaultProxy, str]]:
    """The sample tenant in the fake Graph, the embedded target behind a counting proxy, and the Atea manifest
    reading Graph (groups provisioned)."""
    monkeypatch.setenv("ATEA_SCIM_TOKEN", TOKEN)
    with fake_graph() as graph, serving_target(token=TOKEN) as server, FaultProxy(server.url) as proxy:
        monkeypatch.setenv("GRAPH_TOKEN", graph.token)
        for record in SAMPLE["users"]:
            graph.add_user(record["id"], **{k: v for k, v in record.items() if k != "id"})
        for group in SAMPLE["groups"]:  # every group first: a group may be another's member
            graph.add_group(group["id"], **{k: v for k, v in group.items() if k not in ("id", "members")})
        for group in SAMPLE["groups"]:
            for member in group["members"]:
                graph.add_member(group["id"], member)
        text = (ROOT / "manifests" / "atea.yaml").read_text().replace(
            "    snapshot: ../examples/directory.json\n",
            f"    graph: {{endpoint: '{graph.endpoint}', tokenEnv: GRAPH_TOKEN}}\n")
        path = tmp_path / "atea.yaml"
        path.write_text(text.rstrip("\n") + "\n" + GROUPS)
        yield graph, server.url, proxy, str(path)


def uid(upn: str) -> str:
    return next(u["id"] for u in SAMPLE["users"] if u["userPrincipalName"] == upn)


def full_plan_steps(capsys: Any, manifest: str, target: str) -> list[dict[str, Any]]:
    capsys.readouterr()
    assert main(["plan", manifest, "--target", target, "--format", "json"]) in (0, 2)
    return json.loads(capsys.readouterr().out)["apps"][0]["steps"]


def incremental(capsys: Any, manifest: str, target: str) -> str:
    capsys.readouterr()
    assert main(["apply", manifest, "--target", target, "--incremental"]) == 0
    out, err = capsys.readouterr()
    assert "a full cycle" not in err, err
    return out


def test_changes_disables_and_purges_between_incremental_cycles(world: tuple[FakeGraph, str, FaultProxy, str],
                                                                capsys: Any) -> None:
    graph, upstream, proxy, manifest = world
    assert main(["apply", manifest, "--target", proxy.url]) == 0
    state, _ = load(open_backend(None), "atea", proxy.url)
    assert state.watermark is not None and state.watermark["source"] == "graph"

    # no change: two delta requests to Graph, nothing to the target
    graph.counts.clear()
    sent = len(proxy.log)
    assert "nothing to do" in incremental(capsys, manifest, proxy.url)
    assert len(proxy.log) == sent
    assert sum(graph.counts.values()) == 2

    # a changed surname, a disabled account
    graph.update_user(uid("megan.bowen@contoso.com"), surname="Bowen-Hughes")
    graph.update_user(uid("lidia.holloway@contoso.com"), accountEnabled=False)
    incremental(capsys, manifest, proxy.url)
    users = {u["userName"]: u for u in listing(upstream)}
    assert users["megan.bowen@contoso.com"]["name"]["familyName"] == "Bowen-Hughes"
    assert users["lidia.holloway@contoso.com"]["active"] is False
    assert full_plan_steps(capsys, manifest, proxy.url) == []

    # a soft-deleted user, a purged one (gone even from the deleted items), a removed membership
    graph.soft_delete_user(uid("joni.sherman@contoso.com"))
    graph.purge_user(uid("diego.siciliani@contoso.com"))
    incremental(capsys, manifest, proxy.url)
    users = {u["userName"]: u for u in listing(upstream)}
    assert users["joni.sherman@contoso.com"]["active"] is False
    assert users["diego.siciliani@contoso.com"]["active"] is False
    members = {str(m["value"]) for g in listing(upstream, "Groups") for m in g.get("members") or []}
    assert users["diego.siciliani@contoso.com"]["id"] not in members
    assert users["joni.sherman@contoso.com"]["id"] not in members
    assert full_plan_steps(capsys, manifest, proxy.url) == []

    # a new hire, assigned through a group
    new = "7f1c9a52-3d0e-4c55-9e61-5b2f4e8d0a17"
    graph.add_user(new, userPrincipalName="nora.lindqvist@contoso.com", givenName="Nora", surname="Lindqvist",
                   accountEnabled=True, department="Engineering", mail="nora.lindqvist@contoso.com")
    atea_users = next(g["id"] for g in SAMPLE["groups"] if g["displayName"] == "Atea Users")
    graph.add_member(atea_users, new)
    sent = len(proxy.log)
    incremental(capsys, manifest, proxy.url)
    writes = [e for e in proxy.log[sent:] if e[0] in ("POST", "PATCH", "PUT", "DELETE")]
    assert len(writes) == 2  # the user's POST, the group's PATCH
    users = {u["userName"]: u for u in listing(upstream)}
    members = {str(m["value"]) for g in listing(upstream, "Groups") for m in g.get("members") or []}
    assert users["nora.lindqvist@contoso.com"]["id"] in members
    assert full_plan_steps(capsys, manifest, proxy.url) == []


def test_an_expired_delta_token_falls_back_to_a_full_cycle(world: tuple[FakeGraph, str, FaultProxy, str],
                                                           capsys: Any) -> None:
    graph, _, proxy, manifest = world
    assert main(["apply", manifest, "--target", proxy.url]) == 0
    graph.expire_links()
    graph.update_user(uid("megan.bowen@contoso.com"), surname="Bowen-Hughes")
    capsys.readouterr()
    assert main(["apply", manifest, "--target", proxy.url, "--incremental"]) == 0
    assert "a full cycle: the watermark no longer serves" in capsys.readouterr().err
    assert full_plan_steps(capsys, manifest, proxy.url) == []
    # the full cycle left a new watermark: the next cycle is incremental again
    assert "a full cycle" not in (incremental(capsys, manifest, proxy.url))
