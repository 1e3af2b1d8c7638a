"""No account takeover: a lookup or a match adopts only the right account, and only when provisioning.adopt allows.

Two kinds of real loopback targets: a hostile SCIM server (tests/hostile.py) that ignores ``filter`` and answers
every search with every user, and the embedded target with accounts made by hand.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from reconciler.match import adoption_refusal
from reconciler.run import RunResult
from tests.hostile import Reply, Request, scim_list, serving
from tests.reconcile_helpers import atea, by_username, converge, directory, group, listing, plan, post

CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
ADELE = "adele.vance@contoso.com"
ADELE_ID = "0ed4a108-0445-5d0d-ba00-94de39090ba3"  # her directory object id (examples/directory.json)
FOREIGN = "adelevance"  # what Entra's own job writes to externalId (mailNickname)
WRITES = ("PATCH", "PUT", "DELETE")


def account(rid: str, user_name: str, **extra: Any) -> dict[str, Any]:
    return {"schemas": [CORE_USER], "id": rid, "userName": user_name, "active": True, **extra}


class FilterIgnoringTarget:
    """A SCIM server that ignores ``filter``: every search of /Users answers with every account it holds.

    ``hidden`` accounts are left out of unfiltered reads (the pitfall that makes a plan say create for an account
    that exists). ``post`` is how a POST is answered: ``409`` (uniqueness) or ``drop`` (the request is read, then
    the connection is closed without an answer).
    """

    def __init__(self, accounts: list[dict[str, Any]], *, post: str, hidden: tuple[str, ...] = ()) -> None:
        self.accounts = {a["id"]: a for a in accounts}
        self.post = post
        self.hidden = set(hidden)

    def __call__(self, request: Request) -> Reply | None:
        route, method = request.route.rstrip("/"), request.method
        if route == "/Users" and method == "GET":
            filtered = "filter" in request.query
            return Reply(200, scim_list([a for a in self.accounts.values() if filtered or a["id"] not in self.hidden]))
        if route == "/Users" and method == "POST":
            if self.post == "drop":
                return None
            return Reply(409, {"schemas": [ERROR], "status": "409", "scimType": "uniqueness",
                               "detail": "userName is already taken"})
        rid = route.removeprefix("/Users/")
        if route.startswith("/Users/") and rid in self.accounts and method in ("GET", "PATCH"):
            return Reply(200, self.accounts[rid])
        return Reply(404, {"schemas": [ERROR], "status": "404", "detail": f"{route} not found"})


def only_adele(tmp_path: Path) -> str:
    """The sample directory with Atea's groups emptied: Adele (assigned directly) is the one desired user."""

    def edit(data: dict[str, Any]) -> None:
        for name in ("Atea Users", "Atea Admins"):
            group(data, name)["members"] = []

    return directory(tmp_path, edit)


def run_against(target: FilterIgnoringTarget, tmp_path: Path, monkeypatch: Any, **changes: str
                ) -> tuple[RunResult, list[Request]]:
    with serving(target) as server:
        result = converge(atea(**changes), server.url, only_adele(tmp_path), monkeypatch, max_rounds=1)
        return result, list(server.requests)


def writes_to(requests: list[Request], rid: str) -> list[str]:
    return [f"{r.method} {r.path}" for r in requests if r.method in WRITES and r.route.rstrip("/").endswith(rid)]


def only_failure(result: RunResult) -> str:
    [failure] = result.rounds[0].failures
    assert failure.step.display == ADELE and "\n" not in failure.reason
    return failure.reason


@pytest.mark.parametrize("post", ["409", "drop"])
@pytest.mark.parametrize("strangers", [1, 37])
def test_a_server_that_ignores_filter_never_hands_over_a_strangers_account(
        tmp_path: Path, monkeypatch: Any, post: str, strangers: int) -> None:
    # Hand-made accounts without externalId: the old lookup adopted (and PATCHed) the only one it was given.
    accounts = [account(f"s{i}", f"stranger{i}@contoso.com") for i in range(strangers)]
    result, requests = run_against(FilterIgnoringTarget(accounts, post=post), tmp_path, monkeypatch)
    assert [r.method for r in requests if r.method in WRITES] == []
    assert not result.converged
    assert only_failure(result) == (
        f"User {ADELE!r}: the target answered the lookup userName eq \"{ADELE}\" with {strangers} object(s), none "
        f"of which has userName {ADELE!r}; the server seems to ignore filter; not adopting any")
    assert [r.method for r in requests if r.method == "POST"] == ["POST"]  # looked up, never sent blindly again


@pytest.mark.parametrize("post", ["409", "drop"])
def test_the_one_equal_account_among_everybody_is_adopted_when_unclaimed(
        tmp_path: Path, monkeypatch: Any, post: str) -> None:
    # userName compared as RFC 7643 says (caseExact false): ADELE.VANCE@ is her account.
    accounts = [account(f"s{i}", f"stranger{i}@contoso.com") for i in range(5)]
    accounts.append(account("a1", ADELE.upper()))
    result, requests = run_against(FilterIgnoringTarget(accounts, post=post, hidden=("a1",)), tmp_path, monkeypatch)
    assert result.rounds[0].failures == [] and result.rounds[0].created == {ADELE_ID: "a1"}
    assert writes_to(requests, "a1") == ["PATCH /Users/a1"]
    assert [r for r in requests if r.method in WRITES and not r.route.endswith("/a1")] == []
    [patch] = [r.json() for r in requests if r.method == "PATCH"]
    assert {"op": "add", "path": "externalId", "value": ADELE_ID} in patch["Operations"]


@pytest.mark.parametrize("post", ["409", "drop"])
def test_a_lookup_never_adopts_an_account_another_system_claims(tmp_path: Path, monkeypatch: Any, post: str) -> None:
    accounts = [account("s0", "stranger0@contoso.com"), account("a1", ADELE, externalId=FOREIGN)]
    result, requests = run_against(FilterIgnoringTarget(accounts, post=post, hidden=("a1",)), tmp_path, monkeypatch)
    assert [r.method for r in requests if r.method in WRITES] == []
    reason = only_failure(result)
    assert reason.startswith(f"User {ADELE!r}: target object a1 matches but carries externalId {FOREIGN!r}")
    assert "provisioning.adopt: any" in reason and reason.endswith("not adopting it")


def test_several_equal_accounts_in_an_unfiltered_answer_are_a_conflict(tmp_path: Path, monkeypatch: Any) -> None:
    accounts = [account("s0", "stranger0@contoso.com"), account("a1", ADELE), account("a2", ADELE.upper())]
    target = FilterIgnoringTarget(accounts, post="409", hidden=("a1", "a2"))
    result, requests = run_against(target, tmp_path, monkeypatch)
    assert [r.method for r in requests if r.method in WRITES] == []
    assert only_failure(result) == (
        f"User {ADELE!r}: the target answered the lookup userName eq \"{ADELE}\" with 3 object(s), 2 of which have "
        f"userName {ADELE!r}; the server seems to ignore filter; not adopting any")


def test_adopt_none_refuses_even_an_unclaimed_account_after_a_409(tmp_path: Path, monkeypatch: Any) -> None:
    target = FilterIgnoringTarget([account("a1", ADELE)], post="409", hidden=("a1",))
    result, requests = run_against(target, tmp_path, monkeypatch,
                                   **{"deprovision: disable": "deprovision: disable\n  adopt: none"})
    assert [r.method for r in requests if r.method in WRITES] == []
    assert "provisioning.adopt is none" in only_failure(result)


# -- plan time, against the embedded target ---------------------------------------------------------------------

def hand_made_adele(url: str, **extra: Any) -> dict[str, Any]:
    return post(url, "Users", {"schemas": [CORE_USER], "userName": ADELE.upper(), "displayName": "by hand",
                               **extra})


def with_adopt(policy: str) -> dict[str, str]:
    return {"deprovision: disable": f"deprovision: disable\n  adopt: {policy}"}


def test_a_foreign_external_id_is_a_conflict_by_default_and_nothing_is_written(
        url: str, tmp_path: Path, monkeypatch: Any) -> None:
    before = hand_made_adele(url, externalId=FOREIGN)
    snapshot = directory(tmp_path)
    planned = plan(atea(), url, snapshot, monkeypatch)
    [conflict] = [s for s in planned.steps if s.display == ADELE]
    assert conflict.action == "conflict" and not conflict.writes
    assert f"carries externalId {FOREIGN!r}" in conflict.reason and "provisioning.adopt: any" in conflict.reason
    result = converge(atea(), url, snapshot, monkeypatch)
    assert not result.converged and [s.action for s in result.final.steps] == ["conflict"]
    after = next(u for u in listing(url) if u["id"] == before["id"])
    assert after["externalId"] == FOREIGN and after["meta"]["version"] == before["meta"]["version"]
    assert len(by_username(url)) == 10  # everybody else was provisioned; no duplicate Adele


def test_adopt_any_takes_over_a_foreign_account(url: str, tmp_path: Path, monkeypatch: Any) -> None:
    before = hand_made_adele(url, externalId=FOREIGN)
    snapshot = directory(tmp_path)
    [step] = [s for s in plan(atea(**with_adopt("any")), url, snapshot, monkeypatch).steps if s.display == ADELE]
    assert (step.action, step.target_id) == ("adopt", before["id"])
    assert {"op": "replace", "path": "externalId", "value": ADELE_ID} in step.operations
    assert converge(atea(**with_adopt("any")), url, snapshot, monkeypatch).converged
    adele = by_username(url)[ADELE]
    assert adele["id"] == before["id"] and adele["externalId"] == ADELE_ID
    assert plan(atea(), url, snapshot, monkeypatch).empty  # now owned: the default policy is enough


def test_adopt_none_makes_even_an_unclaimed_account_a_conflict(url: str, tmp_path: Path, monkeypatch: Any) -> None:
    before = hand_made_adele(url)
    snapshot = directory(tmp_path)
    [step] = [s for s in plan(atea(**with_adopt("none")), url, snapshot, monkeypatch).steps if s.display == ADELE]
    assert step.action == "conflict" and "provisioning.adopt is none" in step.reason
    result = converge(atea(**with_adopt("none")), url, snapshot, monkeypatch)
    assert not result.converged
    assert next(u for u in listing(url) if u["id"] == before["id"])["meta"]["version"] == before["meta"]["version"]


def test_the_default_adopts_an_unclaimed_account(url: str, tmp_path: Path, monkeypatch: Any) -> None:
    before = hand_made_adele(url)
    snapshot = directory(tmp_path)
    [step] = [s for s in plan(atea(), url, snapshot, monkeypatch).steps if s.display == ADELE]
    assert (step.action, step.target_id) == ("adopt", before["id"])
    assert converge(atea(), url, snapshot, monkeypatch).converged
    assert by_username(url)[ADELE]["externalId"] == ADELE_ID


@pytest.mark.parametrize(("external", "policy", "adoptable"), [
    (None, "unclaimed", True), ("", "unclaimed", True), ("absent", "unclaimed", True),
    (FOREIGN, "unclaimed", False), (FOREIGN, "any", True), (None, "none", False), (ADELE_ID, "none", True),
])
def test_the_adopt_policy(external: str | None, policy: str, adoptable: bool) -> None:
    live = account("t1", ADELE) if external == "absent" else account("t1", ADELE, externalId=external)
    assert (adoption_refusal(live, ADELE_ID, policy) is None) is adoptable
