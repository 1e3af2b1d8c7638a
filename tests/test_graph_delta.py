"""Graph's delta query and the directory changes: the reader against a fake Graph over loopback HTTP
(tests/fake_graph.py), and the pure merge, diff and cache of reconciler.directory.changes.

The token comes from the variable a manifest's ``provisioning.directory.graph.tokenEnv`` would name; the reader's
waits are recorded, not slept, so a ``Retry-After`` costs no time.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.directory.changes import (
    NO_CHANGES,
    DeltaLinks,
    DirectoryChanges,
    diff_snapshots,
    directory_from_json,
    directory_to_json,
    merge,
    same_directory,
)
from reconciler.directory.delta import DeltaExpired, latest_links, read_changes
from reconciler.directory.graph import EnvironmentToken, GraphReader
from reconciler.directory.model import Directory, DirectoryGroup, DirectoryUser
from reconciler.errors import DirectoryError
from tests.fake_graph import FakeGraph, fake_graph

VARIABLE = "TEST_GRAPH_DELTA_TOKEN"
USERS_DELTA = "/v1.0/users/delta"
GROUPS_DELTA = "/v1.0/groups/delta"
DELTA_PATHS = (USERS_DELTA, GROUPS_DELTA)


@pytest.fixture
def graph(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGraph]:
    """A small tenant: Adele (manager of Alex), Alex, Megan (soft-deleted), Staff (Adele, Alex) in All (Staff)."""
    with fake_graph() as fake:
        monkeypatch.setenv(VARIABLE, fake.token)
        fake.add_user("u1", userPrincipalName="adele@contoso.com", displayName="Adele Vance", mobilePhone="+1 555")
        fake.add_user("u2", userPrincipalName="alex@contoso.com", displayName="Alex Wilber", manager="u1")
        fake.add_user("u3", userPrincipalName="megan@contoso.com", displayName="Megan Bowen")
        fake.add_group("g1", displayName="Staff", members=["u1", "u2"])
        fake.add_group("g2", displayName="All", members=["g1", "u3"])
        fake.soft_delete_user("u3")
        yield fake


def reader(graph: FakeGraph, waits: list[float] | None = None) -> GraphReader:
    recorded = [] if waits is None else waits

    async def sleep(seconds: float) -> None:
        recorded.append(seconds)

    return GraphReader(credential=EnvironmentToken(VARIABLE, "manifest.yaml"), endpoint=graph.endpoint, sleep=sleep,
                       timeout=5.0, deadline=10.0)


def links_now(graph: FakeGraph, **kwargs: Any) -> DeltaLinks:
    return asyncio.run(latest_links(reader(graph), **kwargs))


def changes_since(graph: FakeGraph, links: DeltaLinks, waits: list[float] | None = None) -> DirectoryChanges:
    return asyncio.run(read_changes(reader(graph, waits), links))


def full_read(graph: FakeGraph) -> Directory:
    return asyncio.run(reader(graph).read())


def live(directory: Directory) -> Directory:
    """Users and groups only: a merged cache keeps a soft-deleted user's last live record, a full read Graph's
    deleted item (its user principal name prefixed)."""
    return replace(directory, deleted_users=())


def deleted_ids(directory: Directory) -> set[str]:
    return {u.id for u in directory.deleted_users}


# -- the fake is faithful to the full reader --------------------------------------------------------------------------

def test_a_full_read_of_the_fake_is_the_fakes_directory(graph: FakeGraph) -> None:
    graph.page_size = 1  # every collection paged
    directory = full_read(graph)
    assert same_directory(directory, graph.directory())
    assert directory.users_by_id["u2"].get("manager") == "u1"
    assert directory.groups_by_id["g2"].members == ("g1",)   # Megan left with her deletion
    assert [u.upn for u in directory.deleted_users] == ["u3megan@contoso.com"]
    assert graph.counts["/v1.0/users"] == 2


def test_the_fake_requires_the_token(graph: FakeGraph, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(VARIABLE, "another-token")
    with pytest.raises(DirectoryError, match=r"^Microsoft Graph: GET /v1\.0/users answered 401 again with a fresh "
                                             "token: InvalidAuthenticationToken: "):
        full_read(graph)


# -- latest links ---------------------------------------------------------------------------------------------------

def test_latest_links_take_two_requests_with_a_full_reads_select(graph: FakeGraph) -> None:
    links = links_now(graph, user_attributes={"mobile", "userPrincipalName", "manager"},
                      group_attributes={"displayName"})
    assert [q for q in graph.queries] == [
        (USERS_DELTA, {"$select": "id,userPrincipalName,displayName,accountEnabled,mobilePhone",
                       "$deltatoken": "latest", "$expand": "manager"}),
        (GROUPS_DELTA, {"$select": "id,displayName,members", "$deltatoken": "latest"})]
    assert links.users.startswith(graph.endpoint + USERS_DELTA + "?$deltatoken=")
    assert links.groups.startswith(graph.endpoint + GROUPS_DELTA + "?$deltatoken=")
    changes = changes_since(graph, links)
    assert changes.empty and changes == replace(NO_CHANGES, links=changes.links, requests=2)
    assert changes.links == links  # nothing happened: the same position in the log


# -- changes seen ---------------------------------------------------------------------------------------------------

def test_user_changes_new_users_deletions_and_purges(graph: FakeGraph) -> None:
    links = links_now(graph, user_attributes={"mobile", "jobTitle", "userPrincipalName"})
    graph.update_user("u1", mobilePhone=None, jobTitle="CEO")
    graph.add_user("u4", userPrincipalName="nora@contoso.com", displayName="Nora")
    graph.soft_delete_user("u2")
    graph.purge_user("u3")
    changes = changes_since(graph, links)
    assert changes.users == (
        {"id": "u1", "userPrincipalName": "adele@contoso.com", "displayName": "Adele Vance", "mobilePhone": None,
         "accountEnabled": True, "jobTitle": "CEO"},
        {"id": "u4", "userPrincipalName": "nora@contoso.com", "displayName": "Nora", "accountEnabled": True})
    assert changes.removed_users == (("u2", "changed"), ("u3", "deleted"))
    assert changes.removed_members == (("g1", "u2", "user"),)  # a deleted user leaves its groups
    assert changes.added_members == () and changes.groups == () and changes.removed_groups == ()
    assert changes.touched_users() == {"u1", "u2", "u3", "u4"}
    assert changes.touched_groups() == {"g1"}
    again = changes_since(graph, changes.links)
    assert again.empty and again.links == changes.links


def test_a_restored_user_comes_back_with_its_memberships(graph: FakeGraph) -> None:
    links = links_now(graph, user_attributes={"userPrincipalName"})
    graph.restore_user("u3")
    changes = changes_since(graph, links)
    assert changes.users == ({"id": "u3", "userPrincipalName": "megan@contoso.com", "displayName": "Megan Bowen",
                              "accountEnabled": True},)
    assert changes.removed_users == ()
    assert changes.added_members == (("g2", "u3", "user"),)


def test_membership_and_group_changes(graph: FakeGraph) -> None:
    links = links_now(graph)
    graph.remove_member("g1", "u1")
    graph.add_group("g3", displayName="Contractors", description="outside staff", members=["u2"])
    graph.add_member("g2", "g3")
    graph.update_group("g1", displayName="Employees")
    graph.delete_group("g3")
    changes = changes_since(graph, links)
    assert changes.groups == ({"id": "g1", "displayName": "Employees"},)
    assert changes.removed_groups == ("g3",)
    assert changes.removed_members == (("g1", "u1", "user"), ("g2", "g3", "group"))
    assert changes.added_members == ()
    assert changes.touched_groups() == {"g1", "g2", "g3"}
    assert changes.touched_users() == {"u1"}


def test_added_members_and_a_new_group(graph: FakeGraph) -> None:
    links = links_now(graph, group_attributes={"displayName", "description"})
    graph.add_group("g3", displayName="Contractors", description="outside staff", members=["u1"])
    graph.add_member("g1", "g3")
    changes = changes_since(graph, links)
    assert changes.groups == ({"id": "g3", "displayName": "Contractors", "description": "outside staff"},)
    assert changes.added_members == (("g3", "u1", "user"), ("g1", "g3", "group"))


def test_a_manager_set_and_cleared(graph: FakeGraph) -> None:
    links = links_now(graph, user_attributes={"manager"})
    cache = full_read(graph)
    assert cache.users_by_id["u2"].get("manager") == "u1"
    graph.update_user("u1", manager="u2")
    graph.update_user("u2", manager=None)
    changes = changes_since(graph, links)
    by_id = {u["id"]: u for u in changes.users}
    assert by_id["u1"]["manager"] == {"@odata.type": "#microsoft.graph.user", "id": "u2"}  # from manager@delta
    assert by_id["u2"]["manager"] is None
    merged = merge(cache, changes)
    assert merged.users_by_id["u1"].get("manager") == "u2" and merged.users_by_id["u2"].get("manager") is None


def test_a_merged_cache_equals_a_fresh_full_read(graph: FakeGraph) -> None:
    """The whole incremental path: links, then the full read the cache starts from, changes, merge."""
    links = links_now(graph)
    cache = full_read(graph)
    graph.update_user("u1", jobTitle="CEO", mobilePhone=None)
    graph.add_user("u4", userPrincipalName="nora@contoso.com", manager="u1")
    graph.add_member("g1", "u4")
    graph.restore_user("u3")
    graph.soft_delete_user("u2")
    graph.add_group("g3", displayName="New")
    graph.add_member("g3", "g1")
    graph.update_group("g2", description="everyone")
    changes = changes_since(graph, links)
    merged = merge(cache, changes)
    fresh = full_read(graph)
    assert same_directory(live(merged), live(fresh))
    assert deleted_ids(merged) == deleted_ids(fresh) == {"u2"}
    assert merged.deleted_users[0].upn == "alex@contoso.com"  # its last live record: it still matches its target
    restored = directory_from_json(directory_to_json(merged), "cache")
    assert same_directory(restored, merged) and restored.source == "Microsoft Graph"


# -- paging, throttling, foreign and expired links ---------------------------------------------------------------------

def test_a_round_over_several_pages(graph: FakeGraph) -> None:
    links = links_now(graph)
    graph.delta_page_size = 2
    graph.delta_members = 2
    for n in range(10, 15):
        graph.add_user(f"u{n}", userPrincipalName=f"user{n}@contoso.com")
        graph.add_member("g1", f"u{n}")
    graph.remove_member("g1", "u1")
    changes = changes_since(graph, links)
    assert [u["id"] for u in changes.users] == [f"u{n}" for n in range(10, 15)]
    assert changes.added_members == tuple(("g1", f"u{n}", "user") for n in range(10, 15))
    assert changes.removed_members == (("g1", "u1", "user"),)
    assert graph.counts[USERS_DELTA] == 1 + 3   # latest, then 5 users in pages of 2
    assert graph.counts[GROUPS_DELTA] == 1 + 2  # latest, then g1 with 6 member changes, 2 an item, 2 items a page
    assert changes.requests == 5


def test_an_initial_round_reads_everything(graph: FakeGraph) -> None:
    """Without a token, a delta round is a full read: every user, every group with its members."""
    graph.delta_page_size = 1
    base = graph.endpoint + "/v1.0"
    changes = changes_since(graph, DeltaLinks(base + "/users/delta?$select=id,userPrincipalName",
                                              base + "/groups/delta?$select=id,displayName,members"))
    assert [u["id"] for u in changes.users] == ["u1", "u2"]
    assert changes.added_members == (("g1", "u1", "user"), ("g1", "u2", "user"), ("g2", "g1", "group"))
    assert graph.counts[USERS_DELTA] == 2 and graph.counts[GROUPS_DELTA] == 2


def test_retry_after_is_honoured(graph: FakeGraph) -> None:
    links = links_now(graph)
    graph.update_user("u1", jobTitle="CEO")
    graph.throttle(2, retry_after="7")
    waits: list[float] = []
    changes = changes_since(graph, links, waits)
    assert waits == [7.0, 7.0]
    assert [u["id"] for u in changes.users] == ["u1"]
    assert graph.counts[USERS_DELTA] == 1 + 3 and changes.requests == 4


@pytest.mark.parametrize("which", ["users", "groups"])
def test_a_stored_link_to_another_origin_is_refused(graph: FakeGraph, which: str) -> None:
    links = links_now(graph)
    port = graph.endpoint.rsplit(":", 1)[1]
    foreign = {"users": replace(links, users=links.users.replace("127.0.0.1", "localhost")),
               "groups": replace(links, groups=links.groups.replace(f":{port}", ":1"))}[which]
    before = sum(graph.counts.values())
    with pytest.raises(DirectoryError) as caught:
        changes_since(graph, foreign)
    assert not isinstance(caught.value, DeltaExpired)
    shown = {"users": f"http://localhost:{port}", "groups": "http://127.0.0.1:1"}[which]
    assert str(caught.value) == (f"Microsoft Graph: GET /v1.0/{which}/delta: the stored delta link points to "
                                 f"{shown}, not to {graph.endpoint}; not followed (the token is sent to the Graph "
                                 "endpoint only)")
    assert sum(graph.counts.values()) == before  # not one request: the token went nowhere


def test_a_foreign_next_link_or_delta_link_in_an_answer_is_refused(graph: FakeGraph) -> None:
    links = links_now(graph)
    graph.delta_page_size = 1
    graph.add_user("u4")
    graph.add_user("u5")
    graph.link_origin = "http://localhost:" + graph.endpoint.rsplit(":", 1)[1]
    with pytest.raises(DirectoryError, match=r"^Microsoft Graph: GET /v1\.0/users/delta: the next page link "
                                             r"points to http://localhost:\d+, not to "):
        changes_since(graph, links)
    assert graph.counts[USERS_DELTA] == 2  # latest, then the first page only
    graph.delta_page_size = 100
    with pytest.raises(DirectoryError, match=r"^Microsoft Graph: GET /v1\.0/users/delta: the delta link points "
                                             r"to http://localhost:\d+"):
        changes_since(graph, links)


def test_an_expired_link_raises_delta_expired(graph: FakeGraph) -> None:
    links = links_now(graph)
    graph.expire_links()
    with pytest.raises(DeltaExpired, match=r"^Microsoft Graph: GET /v1\.0/users/delta: the delta link is no longer "
                                           r"valid \(410 resyncRequired\); a full read starts over$"):
        changes_since(graph, links)
    assert graph.counts[USERS_DELTA] == 2 and graph.counts[GROUPS_DELTA] == 1
    fresh = links_now(graph)
    assert changes_since(graph, fresh).empty


def test_other_errors_stay_directory_errors(graph: FakeGraph) -> None:
    links = links_now(graph)
    broken = replace(links, groups=graph.endpoint + "/v1.0/groups/delta?$deltatoken=not-a-token")
    with pytest.raises(DirectoryError) as caught:
        changes_since(graph, broken)
    assert not isinstance(caught.value, DeltaExpired)
    assert str(caught.value).startswith("Microsoft Graph: GET /v1.0/groups/delta answered 400: Request_BadRequest")


# -- merge, diff and the cache, as pure values ---------------------------------------------------------------------

def _user(user_id: str, **data: Any) -> DirectoryUser:
    return DirectoryUser(user_id, {"id": user_id, **data})


def _group(group_id: str, *members: str, **data: Any) -> DirectoryGroup:
    return DirectoryGroup(group_id, {"id": group_id, **data}, members)


OLD = Directory(
    (_user("u1", userPrincipalName="a@x", mobilePhone="1", department="Sales"), _user("u2", userPrincipalName="b@x"),
     _user("u3", userPrincipalName="c@x")),
    (_group("g1", "u1", "u2", displayName="Staff"), _group("g2", "g1", "u3", displayName="All")),
    "Microsoft Graph", (_user("u9", userPrincipalName="z@x"),))


def test_merge_applies_each_kind_of_change() -> None:
    changes = DirectoryChanges(
        users=({"id": "u1", "mobilePhone": None, "jobTitle": "CEO"}, {"id": "u4", "userPrincipalName": "d@x"},
               {"id": "u9", "displayName": "Zed"}),
        removed_users=(("u2", "changed"), ("u3", "deleted")),
        groups=({"id": "g1", "displayName": "Employees"}, {"id": "g3", "displayName": "New"}),
        removed_groups=("g2",), added_members=(("g1", "u4", "user"), ("g3", "g1", "group")),
        removed_members=(("g1", "u1", "user"),))
    merged = merge(OLD, changes)
    assert merged.source == "Microsoft Graph"
    assert merged.users_by_id["u1"].data == {"id": "u1", "userPrincipalName": "a@x", "mobilePhone": None,
                                             "department": "Sales", "jobTitle": "CEO"}
    assert merged.users_by_id["u9"].data == {"id": "u9", "userPrincipalName": "z@x", "displayName": "Zed"}
    assert [u.id for u in merged.users] == ["u1", "u4", "u9"]
    assert [u.id for u in merged.deleted_users] == ["u2"] and merged.deleted_users[0].upn == "b@x"
    assert merged.groups_by_id["g1"].members == ("u4",)          # u1 removed, u2 soft-deleted, u4 added
    assert merged.groups_by_id["g1"].display_name == "Employees"
    assert merged.groups_by_id["g3"].members == ("g1",)
    assert "g2" not in merged.groups_by_id
    assert OLD.users_by_id["u1"].data["mobilePhone"] == "1"     # the cache itself is unchanged
    assert merge(OLD, NO_CHANGES) is OLD


def test_merge_keeps_unchanged_objects() -> None:
    merged = merge(OLD, DirectoryChanges(users=({"id": "u2", "displayName": "B"},)))
    assert merged.users_by_id["u1"] is OLD.users_by_id["u1"]
    assert merged.groups_by_id["g1"] is OLD.groups_by_id["g1"]


def test_diff_snapshots_round_trip() -> None:
    new = Directory(
        (_user("u1", userPrincipalName="a@x", department="Sales", jobTitle="CEO"), _user("u4", userPrincipalName="d@x"),
         _user("u9", userPrincipalName="z@x")),
        (_group("g1", "u4", "u1", displayName="Employees"), _group("g3", "g1", displayName="New")),
        "snapshot new.json", (_user("u2", userPrincipalName="b@x"),))
    changes = diff_snapshots(OLD, new)
    assert changes.users == ({"id": "u1", "jobTitle": "CEO", "mobilePhone": None},
                             {"id": "u4", "userPrincipalName": "d@x"}, {"id": "u9"})  # u9 restored as it was
    assert changes.removed_users == (("u2", "changed"), ("u3", "deleted"))
    assert changes.groups == ({"id": "g1", "displayName": "Employees"}, {"id": "g3", "displayName": "New"})
    assert changes.removed_groups == ("g2",)
    assert changes.added_members == (("g1", "u4", "user"), ("g3", "g1", "group"))
    assert changes.removed_members == (("g1", "u2", "user"),)
    assert changes.links == DeltaLinks("", "") and changes.requests == 0
    assert same_directory(merge(OLD, changes), new)
    assert diff_snapshots(new, new).empty
    assert diff_snapshots(OLD, OLD) == NO_CHANGES


STATES = st.sampled_from(["absent", "live", "deleted"])
RECORDS = st.fixed_dictionaries({}, optional={"displayName": st.sampled_from(["A", "B", None]),
                                              "department": st.sampled_from(["Sales", "IT"]),
                                              "accountEnabled": st.booleans()})


@st.composite
def directory_pair(draw: st.DrawFn) -> tuple[Directory, Directory]:
    """Two directories over the same few ids; a user soft-deleted since the first keeps its record there, as
    Graph's delta and merge() do."""
    ids = [f"u{n}" for n in range(5)]
    old_states, new_states = ([draw(STATES) for _ in ids] for _ in range(2))
    old_data = {i: {"id": i, **draw(RECORDS)} for i in ids}
    new_data = {i: ({"id": i, **draw(RECORDS)} if not (old_states[n] == "live" and new_states[n] == "deleted")
                    and not (old_states[n] == new_states[n] == "deleted") else old_data[i])
                for n, i in enumerate(ids)}

    def build(states: list[str], data: dict[str, dict[str, Any]]) -> Directory:
        users = tuple(DirectoryUser(i, data[i]) for n, i in enumerate(ids) if states[n] == "live")
        deleted = tuple(DirectoryUser(i, data[i]) for n, i in enumerate(ids) if states[n] == "deleted")
        group_ids = [g for g in ("g1", "g2", "g3") if draw(st.booleans())]
        candidates = [u.id for u in users] + group_ids
        groups = tuple(DirectoryGroup(g, {"id": g, "displayName": draw(st.sampled_from(["X", "Y"]))},
                                      tuple(draw(st.lists(st.sampled_from(candidates), unique=True))
                                            if candidates else ()))
                       for g in group_ids)
        return Directory(users, groups, "snapshot", deleted)

    return build(old_states, old_data), build(new_states, new_data)


@settings(max_examples=300, deadline=None)
@given(directory_pair())
def test_merge_of_a_diff_gives_the_new_snapshot(pair: tuple[Directory, Directory]) -> None:
    old, new = pair
    changes = diff_snapshots(old, new)
    merged = merge(old, changes)
    assert same_directory(live(merged), live(new))
    assert deleted_ids(merged) == deleted_ids(new)
    assert changes.empty == same_directory(old, new)
    assert changes.touched_users() >= {u.id for u in old.users if u.id not in new.users_by_id}


def test_touched_ids() -> None:
    changes = DirectoryChanges(users=({"id": "u1"},), removed_users=(("u2", "deleted"),), groups=({"id": "g1"},),
                               removed_groups=("g2",), added_members=(("g3", "u3", "user"), ("g3", "g4", "group")),
                               removed_members=(("g5", "x1", "unknown"),))
    assert not changes.empty and NO_CHANGES.empty
    assert changes.touched_users() == {"u1", "u2", "u3", "x1"}
    assert changes.touched_groups() == {"g1", "g2", "g3", "g4", "g5", "x1"}
    assert DirectoryChanges(links=DeltaLinks("a", "b"), requests=2).empty


def test_the_cache_round_trips_through_json() -> None:
    odd = replace(OLD, groups=(*OLD.groups, _group("g9", "u-created-meanwhile", displayName="Odd ü")))
    raw = directory_to_json(odd)
    assert json.loads(raw)["@source"] == "Microsoft Graph"
    back = directory_from_json(raw, "state/app.json")
    assert same_directory(back, odd) and back.source == "Microsoft Graph"
    assert back.groups_by_id["g9"].members == ("u-created-meanwhile",)  # a member need not be known in a cache
    assert [u.id for u in back.deleted_users] == ["u9"]


@pytest.mark.parametrize(("raw", "message"), [
    (b"{not json", r"^state/app\.json: the directory cache is not valid JSON \(.+\)$"),
    (b"\xff\xfe", r"^state/app\.json: the directory cache is not UTF-8 \(byte at offset 0\)$"),
    (b'{"users": [{"id": 5}]}', r"^state/app\.json:1:\d+: users\[0\]\.id: every object needs an \"id\""),
    (b"[]", r"^state/app\.json:1:1: a snapshot is a mapping"),
])
def test_a_broken_cache_is_one_line_naming_it(raw: bytes, message: str) -> None:
    with pytest.raises(DirectoryError, match=message) as caught:
        directory_from_json(raw, "state/app.json")
    assert "\n" not in str(caught.value)
