"""Provision on demand (``apply --only``) against the embedded target over loopback HTTP, through the CLI.

Requests are watched through the fault-injecting proxy: a ``rewrite`` rule that changes nothing records the
query of every ``GET /Users`` and ``GET /Groups``, so a test can tell filtered lookups from a paged read.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.cli import main
from reconciler.lock import STATE_DIR_ENV
from reconciler.target.faults import Fault, FaultProxy, Query
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
)

ATEA = str(ROOT / "manifests" / "atea.yaml")
WIKI = str(ROOT / "manifests" / "wiki.yaml")
JOSE = "jose.muller@contoso.com"
SALES = {"isaiah.langer@contoso.com", "lynne.robbins@contoso.com", "megan.bowen@contoso.com",
         "miriam.graham@contoso.com"}


@pytest.fixture(autouse=True)
def state(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv(STATE_DIR_ENV, str(tmp_path / "state"))  # the target lock's folder
    monkeypatch.setenv("WIKI_SCIM_TOKEN", TOKEN)


class Watched:
    """A proxy in front of the target that records the query of every list request, by resource type."""

    def __init__(self, proxy: FaultProxy) -> None:
        self.proxy = proxy
        self.queries: dict[str, list[Query]] = {"Users": [], "Groups": []}
        for kind in self.queries:
            proxy.add(Fault("rewrite", method="GET", path=rf"/{kind}$", times=None, query=self._recorder(kind)))

    def _recorder(self, kind: str) -> Any:
        def record(query: Query) -> Query:
            self.queries[kind].append(dict(query))
            return query
        return record

    @property
    def url(self) -> str:
        return self.proxy.url

    def page_reads(self) -> list[Query]:
        """List requests without a filter: reads of the whole collection."""
        return [q for queries in self.queries.values() for q in queries if "filter" not in q]


@pytest.fixture
def watched(url: str) -> Iterator[Watched]:
    with FaultProxy(url) as proxy:
        yield Watched(proxy)


def only(capsys: Any, manifest: str, snapshot: str, target: str, *names: str, extra: tuple[str, ...] = ()
         ) -> tuple[int, str, str]:
    argv = ["apply", manifest, "--directory", snapshot, "--target", target, *extra]
    for name in names:
        argv += ["--only", name]
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_create_on_demand_writes_that_user_alone_by_lookups_only(url: str, watched: Watched, tmp_path: Path,
                                                                capsys: Any) -> None:
    log = tmp_path / "log.jsonl"
    code, out, err = only(capsys, ATEA, directory(tmp_path), watched.url, JOSE, extra=("--log", str(log)))
    assert code == 0, err
    assert [u["userName"] for u in listing(url)] == [JOSE]
    jose = listing(url)[0]
    assert jose["externalId"] == user(SAMPLE, JOSE)["id"] and jose["name"]["familyName"] == "Müller"
    assert watched.page_reads() == []
    assert {q["filter"] for q in watched.queries["Users"]} >= {
        f'externalId eq "{jose["externalId"]}"', f'userName eq "{JOSE}"'}
    assert watched.queries["Groups"] == []
    lines = out.splitlines()
    assert lines[0] == f"atea: user {JOSE} ({jose['externalId']})"
    assert "  1. Import user: found in the directory" in lines
    assert '       surname: "Müller"' in lines
    assert ("  2. Determine if user is in scope: in scope: assigned through group Atea Users (role User); "
            "scoping filters passed") in lines
    assert any(line.startswith("  3. Match user between source and target system: no match (asked: externalId eq")
               for line in lines)
    assert f"  4. Perform action: Create: Success (target id {jose['id']})" in lines
    assert '       name.familyName: "Müller"' in lines
    assert lines[-1] == ("atea: on demand: 1 create; 1 write request(s) in 1 round(s); every named object ended "
                         "as expected")
    [record] = [json.loads(line) for line in log.read_text().splitlines()]
    assert (record["action"], record["status"], record["targetIdentity"]["id"]) == ("Create", "Success", jose["id"])


def test_update_on_demand_changes_the_named_user_and_nobody_else(url: str, watched: Watched, tmp_path: Path,
                                                                  capsys: Any, monkeypatch: Any) -> None:
    converge(atea(), url, directory(tmp_path), monkeypatch)

    def rename(data: dict[str, Any]) -> None:
        user(data, "megan.bowen@contoso.com")["surname"] = "Bowen-Smith"
        user(data, JOSE)["surname"] = "Muller"

    code, out, err = only(capsys, ATEA, directory(tmp_path, rename, "renamed.json"), watched.url,
                          "megan.bowen@contoso.com")
    assert code == 0, err
    users = by_username(url)
    assert users["megan.bowen@contoso.com"]["name"]["familyName"] == "Bowen-Smith"
    assert users[JOSE]["name"]["familyName"] == "Müller"  # drifted too, but not named
    assert watched.page_reads() == []
    megan = users["megan.bowen@contoso.com"]
    assert (f"  3. Match user between source and target system: owned: target user {megan['id']} carries "
            f"externalId {megan['externalId']}") in out
    assert "  4. Perform action: Update: Success" in out
    assert '       name.familyName: "Bowen" -> "Bowen-Smith"' in out


def test_deprovision_on_demand_disables_a_user_removed_from_the_group(url: str, watched: Watched, tmp_path: Path,
                                                                       capsys: Any, monkeypatch: Any) -> None:
    converge(atea(), url, directory(tmp_path), monkeypatch)

    def leave(data: dict[str, Any]) -> None:
        members = group(data, "Atea Users")["members"]
        members.remove(user(data, "alex.wilber@contoso.com")["id"])
        members.remove(user(data, "diego.siciliani@contoso.com")["id"])

    code, out, err = only(capsys, ATEA, directory(tmp_path, leave, "left.json"), watched.url,
                          "alex.wilber@contoso.com")
    assert code == 0, err
    users = by_username(url)
    assert users["alex.wilber@contoso.com"]["active"] is False
    assert users["diego.siciliani@contoso.com"]["active"] is True  # left too, but not named
    assert len(users) == 10 and watched.page_reads() == []
    assert ("  2. Determine if user is in scope: not in scope: not assigned to the app (neither directly nor as a "
            "direct member of an assigned group)") in out
    assert "  4. Perform action: Disable: Success" in out
    assert "       active: true -> false" in out


def test_a_group_on_demand_brings_its_members(url: str, watched: Watched, tmp_path: Path, capsys: Any) -> None:
    code, out, err = only(capsys, WIKI, directory(tmp_path), watched.url, "Sales")
    assert code == 0, err
    users = by_username(url)
    assert set(users) == SALES
    [sales] = listing(url, "Groups")
    assert sales["displayName"] == "Sales" and sales["externalId"] == group(SAMPLE, "Sales")["id"]
    assert {m["value"] for m in sales["members"]} == {u["id"] for u in users.values()}
    assert watched.page_reads() == []
    assert "wiki: group Sales (" in out and "  4. Perform action: Create: Success" in out
    assert out.count(", member of group Sales)") == 4
    assert "members added: isaiah.langer@contoso.com, lynne.robbins@contoso.com" in out


def test_a_large_group_brings_only_the_members_named_too(url: str, tmp_path: Path, capsys: Any) -> None:
    code, out, err = only(capsys, WIKI, directory(tmp_path), url, "Engineering", "grady.archie@contoso.com")
    assert code == 0, err
    [grady] = listing(url)
    [engineering] = listing(url, "Groups")
    assert [m["value"] for m in engineering["members"]] == [grady["id"]]
    assert "6 in-scope members, more than the 5 that provision on demand brings along" in out


def test_a_name_that_matches_nothing_is_one_line_and_the_others_still_go(url: str, tmp_path: Path,
                                                                          capsys: Any) -> None:
    code, out, err = only(capsys, ATEA, directory(tmp_path), url, "nobody@contoso.com", JOSE)
    assert code == 1
    assert err.splitlines() == [
        "atea: --only 'nobody@contoso.com': no user (userPrincipalName or object id) or group (displayName or "
        f"object id) of that name in snapshot {directory(tmp_path)}"]
    assert [u["userName"] for u in listing(url)] == [JOSE]
    assert out.splitlines()[-1] == ("atea: on demand: 1 create; 1 write request(s) in 1 round(s); 1 name(s) found "
                                    "nothing")


def test_a_foreign_account_with_the_same_username_is_a_conflict_and_nothing_is_written(
        url: str, tmp_path: Path, capsys: Any) -> None:
    foreign = post(url, "Users", {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": JOSE,
                                  "externalId": "hr-system-0042", "displayName": "set by another system"})
    code, out, err = only(capsys, ATEA, directory(tmp_path), url, JOSE)
    assert code == 1 and err == ""
    [after] = listing(url)
    assert {k: v for k, v in after.items() if k != "meta"} == {k: v for k, v in foreign.items() if k != "meta"}
    assert (f"  3. Match user between source and target system: conflict: target object {foreign['id']} "
            f"(userName eq '{JOSE}') carries externalId 'hr-system-0042'") in out
    assert "  4. Perform action: Skip: conflict: nothing written" in out
    assert "0 write request(s)" in out


def test_a_server_that_ignores_filter_gets_nothing_written(url: str, watched: Watched, tmp_path: Path,
                                                            capsys: Any) -> None:
    post(url, "Users", {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "someone@else.com"})

    def ignore_filter(query: Query) -> Query:
        return {k: v for k, v in query.items() if k != "filter"}

    watched.proxy.faults.clear()
    watched.proxy.add(Fault("rewrite", method="GET", path="/Users$", times=None, query=ignore_filter))
    code, out, err = only(capsys, ATEA, directory(tmp_path), watched.url, JOSE)
    assert code == 1 and err == ""
    assert [u["userName"] for u in listing(url)] == ["someone@else.com"]
    assert ("the server seems to ignore filter; nothing written for this object" in out
            and "  4. Perform action: Skip: nothing written (the lookup failed)" in out)


def test_only_with_a_saved_plan_is_refused(url: str, tmp_path: Path, capsys: Any) -> None:
    code, out, err = only(capsys, ATEA, directory(tmp_path), url, JOSE, extra=("--plan", str(tmp_path / "p.json")))
    assert code == 1 and out == ""
    assert err.splitlines() == ["--only provisions the named objects now and --plan applies a reviewed plan: use "
                                "one or the other"]
    assert listing(url) == []


def test_an_account_of_another_directory_object_is_never_adopted_even_under_adopt_any(url: str, tmp_path: Path,
                                                                                      capsys: Any) -> None:
    text = (ROOT / "manifests" / "atea.yaml").read_text()
    text = text.replace("  directory:\n    snapshot: ../examples/directory.json\n", "")
    text = text.replace("  deprovision: disable\n", "  deprovision: disable\n  adopt: any\n")
    manifest = tmp_path / "atea.yaml"
    manifest.write_text(text)
    megan = user(SAMPLE, "megan.bowen@contoso.com")["id"]  # in the directory, but not named
    theirs = post(url, "Users", {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": JOSE,
                                 "externalId": megan})
    code, out, err = only(capsys, str(manifest), directory(tmp_path), url, JOSE)
    assert code == 1 and err == ""
    [after] = listing(url)
    assert after["externalId"] == megan and "name" not in after
    assert f"conflict: target object {theirs['id']} (userName eq '{JOSE}') belongs to directory object {megan}" in out
