"""Reading live state in pages, against a real scim2-server and proxies imitating less tidy servers."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.scim.client import BulkOperation, ScimClient
from reconciler.scim.errors import TargetResponseError
from reconciler.scim.live import find_groups, find_users, read_live
from reconciler.scim.livestate import read_attributes
from reconciler.scim.paths import ENTERPRISE_USER
from reconciler.target.faults import (
    Fault,
    FaultProxy,
    cap_count,
    first_page_past_end,
    ignore_count,
    ignore_start_index,
)
from reconciler.target.serve import TargetServer
from tests import scim_helpers
from tests.scim_helpers import full_user, group, make_client, run

token = scim_helpers.token
target = scim_helpers.target
USERS = 23


async def seed(client: ScimClient) -> tuple[list[str], str]:
    await client.discover()
    ops = [BulkOperation("POST", "/Users", f"u{i}", full_user(f"user{i:02}@contoso.com", employee=str(i)))
           for i in range(USERS)]
    results = await client.bulk(ops)
    ids = [r.id or "" for r in results]
    assert all(r.status == 201 for r in results)
    gid = (await client.create("Group", group("Atea Users", members=ids[:5])))["id"]
    await client.create("Group", group("Empty"))
    return ids, gid


@pytest.fixture
def seeded(target: TargetServer, token: str) -> tuple[list[str], str]:
    async def go() -> tuple[list[str], str]:
        async with make_client(target.url, token) as client:
            return await seed(client)

    return run(go())


def gets(proxy: FaultProxy, path: str = "/v2/Users") -> int:
    return sum(1 for method, p, _ in proxy.log if method == "GET" and p == path)


def test_read_live_pages_through_everything(target: TargetServer, token: str, seeded: Any) -> None:
    ids, gid = seeded

    async def go(proxy: FaultProxy) -> None:
        async with make_client(proxy.url, token, page_size=10) as client:
            state = await read_live(client)
            assert set(state.users) == set(ids)
            assert state.users[ids[7]][ENTERPRISE_USER] == {"employeeNumber": "7"}
            assert {m["value"] for m in state.groups[gid]["members"]} == set(ids[:5])
            assert len(state.groups) == 2

            assert client.requests == {"GET": 3 + 1}

    with FaultProxy(target.url) as proxy:
        run(go(proxy))
        assert gets(proxy) == 3  # 10 + 10 + 3, stopped by totalResults without an empty extra page


def read_all_through(target: TargetServer, token: str, ids: list[str], fault: Fault) -> FaultProxy:
    """Read every user through a proxy that applies ``fault`` to each list request; all ids must come back."""

    async def go(proxy: FaultProxy) -> None:
        async with make_client(proxy.url, token, page_size=10) as client:
            users = await client.list_all("User")
            assert sorted(u["id"] for u in users) == sorted(ids)

    with FaultProxy(target.url) as proxy:
        proxy.add(fault)
        run(go(proxy))
    return proxy


@pytest.mark.parametrize("rewrite", [cap_count(7), ignore_count(4)], ids=["caps-count", "ignores-count"])
def test_servers_that_cap_or_ignore_count(target: TargetServer, token: str, seeded: Any, rewrite: Any) -> None:
    read_all_through(target, token, seeded[0], Fault("rewrite", method="GET", path="/Users$", query=rewrite,
                                                     times=None))


def test_server_serving_page_one_past_the_end_without_totals(target: TargetServer, token: str,
                                                                seeded: Any) -> None:
    proxy = read_all_through(target, token, seeded[0], Fault("rewrite", method="GET", path="/Users$",
                                                             response=first_page_past_end, times=None))
    assert gets(proxy) == 4  # 3 real pages, then page 1 again: all ids seen, stop


def test_a_server_ignoring_start_index_is_an_error_not_a_partial_read(target: TargetServer, token: str,
                                                                        seeded: Any) -> None:
    async def go(proxy: FaultProxy) -> None:
        async with make_client(proxy.url, token, page_size=10) as client:
            with pytest.raises(TargetResponseError, match="after 10 of 23: the server seems to ignore startIndex"):
                await read_live(client)

    with FaultProxy(target.url) as proxy:
        proxy.add(Fault("rewrite", method="GET", path="/Users$", query=ignore_start_index, times=None))
        run(go(proxy))
        assert gets(proxy) == 2


def test_attributes_limit_the_read(target: TargetServer, token: str, seeded: Any) -> None:
    attrs = read_attributes(["userName", "name.givenName", 'emails[type eq "work"].value',
                             f"{ENTERPRISE_USER}:employeeNumber"])
    assert attrs == ["externalId", "userName", "name", "emails", f"{ENTERPRISE_USER}:employeeNumber"]

    async def go() -> None:
        async with make_client(target.url, token) as client:
            state = await read_live(client, user_attributes=["userName"], groups=False)
            assert state.groups == {}
            some = next(iter(state.users.values()))
            assert set(some) <= {"id", "schemas", "userName", "externalId"} and "emails" not in some

    run(go())


def test_a_server_refusing_attributes_is_read_in_full(target: TargetServer, token: str, seeded: Any) -> None:
    async def go(proxy: FaultProxy) -> None:
        async with make_client(proxy.url, token) as client:
            state = await read_live(client, user_attributes=["userName"], groups=False)
            assert len(state.users) == USERS and "emails" in next(iter(state.users.values()))

    with FaultProxy(target.url) as proxy:
        proxy.add(Fault("status", method="GET", path="/Users$", status=400))
        run(go(proxy))
        assert proxy.actions("GET") == ["status", "forward"]


def test_find_users_and_groups_by_matching_attribute(target: TargetServer, token: str, seeded: Any) -> None:
    ids, gid = seeded

    async def go() -> None:
        async with make_client(target.url, token) as client:
            found = await find_users(client, "userName", "USER03@contoso.com")
            assert [u["id"] for u in found] == [ids[3]]
            assert await find_users(client, "externalId", "EXT-user03@contoso.com") == []  # caseExact
            assert [u["id"] for u in await find_users(client, "externalId", "ext-user03@contoso.com")] == [ids[3]]
            groups = await find_groups(client, "displayName", "atea users")
            assert [g["id"] for g in groups] == [gid] and "members" not in groups[0]

    run(go())
