"""Targets that name their endpoints oddly, and targets without filters, against the reconciler over loopback HTTP.

The servers are :class:`tests.interop_server.InteropTarget` with one quirk each: /ResourceTypes endpoints that
repeat the mount path (``/scim/v2/Users`` under ``.../scim/v2``), absolute ones, one that answers 404, and a
ServiceProviderConfig with ``filter.supported: false`` whose pages hold 50 users.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.cli import main
from reconciler.lock import STATE_DIR_ENV
from reconciler.scim.client import ScimClient
from reconciler.scim.discovery import relative_endpoint
from tests.hostile import Reply, Request, scim_list, serving
from tests.interop_server import InteropTarget, interop_target
from tests.reconcile_helpers import ROOT, SAMPLE, TOKEN, atea, converge, directory, plan, user

ATEA = str(ROOT / "manifests" / "atea.yaml")
MOUNT = "/scim/v2"
JOSE = "jose.muller@contoso.com"
MEGAN = "megan.bowen@contoso.com"
FOREIGN = 120


@pytest.fixture(autouse=True)
def environment(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("ATEA_SCIM_TOKEN", TOKEN)
    monkeypatch.setenv(STATE_DIR_ENV, str(tmp_path / "state"))  # the target lock's folder


def cli(capsys: Any, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def routes(target: InteropTarget, method: str | None = None) -> list[str]:
    return [r.route for r in target.requests if method is None or r.method == method]


def user_names(target: InteropTarget) -> list[str]:
    return sorted(str(u["userName"]).lower() for u in target.users.values())


# -- endpoints ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("endpoint", "expected"), [
    ("/Users", "/Users"),
    ("Users", "/Users"),
    ("/scim/v2/Users", "/Users"),
    ("/scim/v2/Users/", "/Users"),
    ("https://scim.example.com/scim/v2/Users", "/Users"),
    ("https://SCIM.example.com:443/scim/v2/Users", "/Users"),
    ("/scim/v2x/Users", "/scim/v2x/Users"),                 # not the mount path: a path of its own
    ("https://other.example.net/scim/v2/Users", None),      # another host: never sent the token
    ("http://scim.example.com/scim/v2/Users", None),         # another scheme
    ("https://scim.example.com:8443/scim/v2/Users", None),   # another port
    ("//other.example.net/Users", None),                    # a network-path reference is another host too
    ("https://scim.example.com/elsewhere/Users", None),     # outside the base URL's path
    ("/", None),
])
def test_an_endpoint_is_made_relative_to_the_base_url(endpoint: str, expected: str | None) -> None:
    assert relative_endpoint(endpoint, "https://scim.example.com/scim/v2") == expected


def test_endpoints_that_repeat_the_mount_path_plan_and_apply_converge(tmp_path: Path, capsys: Any) -> None:
    snapshot = directory(tmp_path)
    with interop_target(mount=MOUNT, html_404=True,
                        endpoints={"User": "{mount}/Users", "Group": "{mount}/Groups"}) as target:
        code, out, err = cli(capsys, "plan", ATEA, "--directory", snapshot, "--target", target.url)
        assert code == 0, err
        assert "10 to create" in out
        code, out, err = cli(capsys, "apply", ATEA, "--directory", snapshot, "--target", target.url)
        assert code == 0, err
        assert "converged" in out
        code, out, err = cli(capsys, "plan", ATEA, "--directory", snapshot, "--target", target.url,
                             "--detailed-exitcode")
        assert code == 0 and "No changes" in out, (out, err)
        assert len(user_names(target)) == 10
        assert not [r for r in routes(target) if r.startswith(f"{MOUNT}{MOUNT}")]
        assert routes(target, "POST") == [f"{MOUNT}/Users"] * 10


def test_an_absolute_endpoint_on_the_target_itself_is_used_as_a_path(tmp_path: Path, monkeypatch: Any) -> None:
    with interop_target(mount=MOUNT, html_404=True, endpoints={"User": "{origin}{mount}/Users"}) as target:
        result = converge(atea(), target.url, directory(tmp_path), monkeypatch)
        assert result.converged
        assert len(user_names(target)) == 10
        discovery = {f"{MOUNT}/ServiceProviderConfig", f"{MOUNT}/ResourceTypes", f"{MOUNT}/Schemas"}
        assert all(r in discovery or r == f"{MOUNT}/Users" or r.startswith(f"{MOUNT}/Users/")
                   for r in routes(target)), routes(target)


def test_an_absolute_endpoint_on_another_host_is_ignored(tmp_path: Path, monkeypatch: Any) -> None:
    def elsewhere(request: Request) -> Reply:
        return Reply(200, scim_list([]))

    with serving(elsewhere) as other, interop_target(
            mount=MOUNT, endpoints={"User": f"{other.url}{MOUNT}/Users"}) as target:
        result = converge(atea(), target.url, directory(tmp_path), monkeypatch)
        assert result.converged
        assert other.requests == []  # neither a request nor the token went there
        assert len(user_names(target)) == 10
        assert routes(target, "POST") == [f"{MOUNT}/Users"] * 10


def test_a_discovered_endpoint_that_answers_404_falls_back_to_users_for_the_run(tmp_path: Path,
                                                                                monkeypatch: Any) -> None:
    snapshot = directory(tmp_path)
    with interop_target(mount=MOUNT, html_404=True, endpoints={"User": "/Accounts"}) as target:
        planned = plan(atea(), target.url, snapshot, monkeypatch)
        assert len([s for s in planned.steps if s.action == "create"]) == 10
        assert any("/Accounts for User, which answers 404; /Users is used instead" in n for n in planned.notes)
        result = converge(atea(), target.url, snapshot, monkeypatch)
        assert result.converged
        assert len(user_names(target)) == 10
        # one 404 per run (plan, then apply): the fallback is kept for the rest of the run
        assert routes(target).count(f"{MOUNT}/Accounts") == 2
        assert routes(target, "POST") == [f"{MOUNT}/Users"] * 10


# -- no filter -----------------------------------------------------------------------------------------------------


@pytest.fixture(params=[("ignored", True), ("refused", True), ("refused", False)],
                ids=["ignores-filter", "refuses-filter", "refuses-filter-undiscovered"])
def unfiltered(request: Any) -> Iterator[InteropTarget]:
    """A target without filters (it says so in its ServiceProviderConfig, or, undiscovered, answers a filter with
    400 invalidFilter), 50 users a page, already holding 120 users of its own."""
    filters, discovery = request.param
    with interop_target(filters=filters, discovery=discovery, page_cap=50) as target:
        for n in range(FOREIGN):
            body: dict[str, Any] = {"userName": f"someone{n:03d}@fabrikam.example", "displayName": f"Someone {n}"}
            if n % 2:
                body["externalId"] = f"fabrikam-{n}"
            target.add("User", body)
        yield target


def filtered_lists(target: InteropTarget) -> list[str]:
    """List reads that asked the server to filter (a server that says it cannot gets none, beyond one probe)."""
    return [r.path for r in target.requests if r.method == "GET" and "filter" in r.query]


def test_a_lost_create_on_a_server_without_filters_is_found_by_a_paged_read(unfiltered: InteropTarget,
                                                                           tmp_path: Path, monkeypatch: Any) -> None:
    unfiltered.lost_answers.add(JOSE)
    result = converge(atea(), unfiltered.url, directory(tmp_path), monkeypatch)
    assert result.converged, result.failures
    assert result.rounds[0].done.get("create") == 10 and result.rounds[0].failures == []
    names = user_names(unfiltered)
    assert len(names) == FOREIGN + 10 and names.count(JOSE) == 1
    assert unfiltered.by("User", "userName", JOSE)["externalId"] == user(SAMPLE, JOSE)["id"]
    posts = [body for method, _, body in unfiltered.writes() if method == "POST"]
    assert [b["userName"] for b in posts].count(JOSE) == 1  # never sent twice
    assert len(filtered_lists(unfiltered)) <= (0 if unfiltered.quirks.discovery else 1)
    # the lookup read every page (130 users, 50 a page) after the read that planned the creates
    assert len([r for r in unfiltered.requests if r.method == "GET" and r.route == "/Users"]) >= 6


def test_a_409_on_a_server_without_filters_adopts_the_unclaimed_user(unfiltered: InteropTarget, tmp_path: Path,
                                                                      monkeypatch: Any) -> None:
    unfiltered.late_arrivals[MEGAN] = {"userName": MEGAN.upper(), "displayName": "made by hand"}
    result = converge(atea(), unfiltered.url, directory(tmp_path), monkeypatch)
    assert result.converged, result.failures
    assert result.rounds[0].failures == []
    assert user_names(unfiltered).count(MEGAN) == 1
    megan = unfiltered.by("User", "userName", MEGAN)
    assert megan["externalId"] == user(SAMPLE, MEGAN)["id"]  # adopted: the one made by hand, now ours
    assert megan["name"]["familyName"] == "Bowen"
    assert ("PATCH", f"/Users/{megan['id']}") in [(m, p) for m, p, _ in unfiltered.writes()]
    assert len(filtered_lists(unfiltered)) <= (0 if unfiltered.quirks.discovery else 1)


def test_a_409_with_a_claimed_user_on_a_server_without_filters_is_not_adopted(unfiltered: InteropTarget,
                                                                              tmp_path: Path,
                                                                              monkeypatch: Any) -> None:
    unfiltered.late_arrivals[MEGAN] = {"userName": MEGAN, "externalId": "hr-system-7"}
    result = converge(atea(), unfiltered.url, directory(tmp_path), monkeypatch)
    [failure] = result.rounds[0].failures
    assert failure.step.display == MEGAN
    assert "carries externalId 'hr-system-7'" in failure.reason and "not adopting it" in failure.reason
    megan = unfiltered.by("User", "userName", MEGAN)
    assert megan["externalId"] == "hr-system-7"
    assert not [p for m, p, _ in unfiltered.writes() if m == "PATCH" and p == f"/Users/{megan['id']}"]
    assert user_names(unfiltered).count(MEGAN) == 1


def test_provision_on_demand_on_a_server_without_filters(unfiltered: InteropTarget, tmp_path: Path,
                                                         capsys: Any) -> None:
    unfiltered.add("User", {"userName": JOSE.upper(), "displayName": "made by hand"})
    code, out, err = cli(capsys, "apply", ATEA, "--directory", directory(tmp_path), "--target", unfiltered.url,
                         "--only", JOSE)
    assert code == 0, err
    assert "every named object ended as expected" in out
    assert user_names(unfiltered).count(JOSE) == 1
    jose = unfiltered.by("User", "userName", JOSE)
    assert jose["externalId"] == user(SAMPLE, JOSE)["id"]
    assert len(user_names(unfiltered)) == FOREIGN + 1  # that user alone
    assert len(filtered_lists(unfiltered)) <= (0 if unfiltered.quirks.discovery else 1)


def test_a_local_lookup_compares_as_the_schema_says(unfiltered: InteropTarget) -> None:
    async def go() -> tuple[list[str], list[str], list[str]]:
        async with ScimClient(unfiltered.url, TOKEN) as client:
            await client.discover()
            by_name = await client.find("User", "userName", "SOMEONE101@fabrikam.example")
            exact = await client.find("User", "externalId", "fabrikam-101")
            other_case = await client.find("User", "externalId", "FABRIKAM-101")
            return [u["userName"] for u in by_name], [u["userName"] for u in exact], other_case

    by_name, exact, other_case = asyncio.run(go())
    assert by_name == exact == ["someone101@fabrikam.example"]  # on page 3
    assert other_case == []  # externalId is caseExact
