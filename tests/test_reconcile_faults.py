"""No duplicates, ever: the reconciler through a fault-injecting proxy, and killed in the middle of an apply."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.target.faults import Fault, FaultProxy
from reconciler.target.process import TargetProcess
from reconciler.target.serve import serving_target
from tests.reconcile_helpers import ROOT, TOKEN, atea, by_username, converge, directory, listing

ATEA_COUNT = 10


@pytest.fixture
def proxied() -> Iterator[tuple[str, FaultProxy]]:
    with serving_target(token=TOKEN) as server, FaultProxy(server.url) as proxy:
        yield server.url, proxy


def test_rate_limits_and_unavailability_are_waited_out(proxied: tuple[str, FaultProxy], tmp_path: Path,
                                                        monkeypatch: Any) -> None:
    url, proxy = proxied
    proxy.add(Fault("status", method="POST", path="/Users", status=429, retry_after="1", times=2))
    proxy.add(Fault("status", method="GET", path="/Users", status=503, retry_after="0", times=1))
    result = converge(atea(), proxy.url, directory(tmp_path), monkeypatch)
    assert result.converged
    assert proxy.actions("POST").count("status") == 2
    assert len(by_username(url)) == ATEA_COUNT


def test_lost_create_responses_never_make_duplicates(proxied: tuple[str, FaultProxy], tmp_path: Path,
                                                     monkeypatch: Any) -> None:
    url, proxy = proxied
    proxy.add(Fault("lose_response", method="POST", path="/Users", times=4))
    proxy.add(Fault("drop", method="POST", path="/Users", times=2))
    proxy.add(Fault("status", method="POST", path="/Users", status=502, times=1))
    result = converge(atea(), proxy.url, directory(tmp_path), monkeypatch)
    assert result.converged, [f.reason for f in result.failures]
    assert proxy.actions("POST").count("lose_response") == 4
    users = by_username(url)  # asserts there are no two users with one userName
    assert len(users) == ATEA_COUNT
    assert all(u["externalId"] for u in users.values())


def test_a_lost_patch_is_not_resent_blindly_and_converges_next_round(proxied: tuple[str, FaultProxy],
                                                                      tmp_path: Path, monkeypatch: Any) -> None:
    url, proxy = proxied
    converge(atea(), proxy.url, directory(tmp_path), monkeypatch)

    def rename(data: dict[str, Any]) -> None:
        for item in data["users"]:
            item["jobTitle"] = "x"  # unmapped: no change
            if item["userPrincipalName"] == "lidia.holloway@contoso.com":
                item["givenName"] = "Lydia"

    proxy.add(Fault("lose_response", method="PATCH", path="/Users/", times=1))
    result = converge(atea(), proxy.url, directory(tmp_path, rename, "r.json"), monkeypatch)
    # The PATCH reached the server; the client did not resend it, and the read after the round shows it applied.
    assert result.converged and len(result.rounds) == 1 and result.writes == 1
    assert "answer was lost" in result.rounds[0].failures[0].reason
    assert by_username(url)["lidia.holloway@contoso.com"]["name"]["givenName"] == "Lydia"


def test_a_conflict_answer_adopts_the_existing_object(proxied: tuple[str, FaultProxy], tmp_path: Path,
                                                      monkeypatch: Any) -> None:
    url, proxy = proxied
    # The server hides an existing user from the read (a known pitfall), so the plan says create; the 409
    # that follows must adopt, not loop or duplicate.
    httpx.post(f"{url}/Users", json={"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                                     "userName": "megan.bowen@contoso.com"},
               headers={"Authorization": f"Bearer {TOKEN}"}).raise_for_status()

    def hide_megan(query: dict[str, str], body: Any, refetch: Any) -> Any:
        if isinstance(body, dict) and "filter" not in query:
            body["Resources"] = [r for r in body.get("Resources", []) if r.get("userName") != "megan.bowen@contoso.com"]
            body["totalResults"] = len(body["Resources"])  # a count that contradicts the page is another fault
        return body

    proxy.add(Fault("rewrite", method="GET", path="/Users$", response=hide_megan, times=1))
    result = converge(atea(), proxy.url, directory(tmp_path), monkeypatch)
    assert result.converged
    assert result.rounds[0].done.get("create") == ATEA_COUNT  # megan's 409 was adopted as her create
    assert len(by_username(url)) == ATEA_COUNT


def write_big_directory(path: Path, count: int) -> None:
    users = [{"id": f"00000000-0000-4000-8000-{i:012d}", "userPrincipalName": f"user{i:05d}@contoso.com",
              "givenName": f"Given{i}", "surname": f"Family{i}", "mail": f"user{i:05d}@contoso.com",
              "accountEnabled": True, "department": "Engineering"} for i in range(count)]
    admin = {"id": "20000000-0000-4000-8000-000000000000", "userPrincipalName": "adele.vance@contoso.com",
             "accountEnabled": True}
    groups = [{"id": "10000000-0000-4000-8000-000000000000", "displayName": "Atea Users",
               "members": [u["id"] for u in users]},
              {"id": "10000000-0000-4000-8000-000000000001", "displayName": "Atea Admins", "members": []}]
    path.write_text(json.dumps({"users": [*users, admin], "groups": groups}))


def test_killed_mid_apply_then_rerun_converges_without_duplicates(tmp_path: Path) -> None:
    count = 400
    snapshot = tmp_path / "big.json"
    write_big_directory(snapshot, count)
    env = {**os.environ, "ATEA_SCIM_TOKEN": TOKEN}
    with TargetProcess(token=TOKEN) as target:
        assert target.url
        command = [sys.executable, "-m", "reconciler", "apply", str(ROOT / "manifests" / "atea.yaml"),
                   "--directory", str(snapshot), "--target", target.url, "--concurrency", "4", "--no-bulk"]
        first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        seen = 0
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and first.poll() is None:
            seen = len(listing_ids(target.url))
            if seen >= 50:
                first.send_signal(signal.SIGKILL)
                break
            time.sleep(0.01)
        first.wait(timeout=30)
        assert first.returncode == -signal.SIGKILL, "the apply finished before it could be killed"
        partial = len(listing_ids(target.url))
        assert 50 <= partial < count  # killed part-way: some users created, others not
        second = subprocess.run(command[:-1], env=env, capture_output=True, text=True, timeout=300)  # Bulk on
        assert second.returncode == 0, second.stderr
        assert "converged" in second.stdout
        users = by_username(target.url)
        assert len(users) == count  # the admin has no department: NOT EQUALS on a null value is false


def listing_ids(url: str) -> list[str]:
    ids: list[str] = []
    start = 1
    while True:
        page = httpx.get(f"{url}/Users", params={"startIndex": start, "count": 1000, "attributes": "id"},
                         headers={"Authorization": f"Bearer {TOKEN}"}).json()
        resources = page.get("Resources", [])
        ids += [r["id"] for r in resources]
        start += len(resources)
        if not resources or start > page.get("totalResults", 0):
            return ids


def test_listing_helper_reads_everything(tmp_path: Path) -> None:
    with serving_target(token=TOKEN) as server:
        assert listing(server.url) == [] and listing_ids(server.url) == []


def test_lost_bulk_answer_is_not_resent_and_the_next_round_finishes(tmp_path: Path, monkeypatch: Any) -> None:
    snapshot = tmp_path / "big.json"
    write_big_directory(snapshot, 120)
    with serving_target(token=TOKEN) as server, FaultProxy(server.url) as proxy:
        proxy.add(Fault("lose_response", method="POST", path="/Bulk$", times=1))
        result = converge(atea(), proxy.url, str(snapshot), monkeypatch)
        assert result.converged
        assert proxy.actions("POST") == ["lose_response"]  # one Bulk request, applied, answer lost, never resent
        assert sum(r.done.get("create", 0) for r in result.rounds) == 0
        assert len(result.rounds) == 1 and len(result.rounds[0].failures) == 120
        assert len(by_username(server.url)) == 120


def test_single_posts_when_bulk_is_off(tmp_path: Path, monkeypatch: Any) -> None:
    snapshot = tmp_path / "big.json"
    write_big_directory(snapshot, 30)
    with serving_target(token=TOKEN) as server, FaultProxy(server.url) as proxy:
        result = converge(atea(), proxy.url, str(snapshot), monkeypatch, bulk=False)
        assert result.converged and result.rounds[0].done == {"create": 30}
        assert [m for m, path, _ in proxy.log if m == "POST"] == ["POST"] * 30
        assert len(by_username(server.url)) == 30
