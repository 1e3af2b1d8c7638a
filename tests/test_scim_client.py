"""The SCIM client against a real scim2-server over loopback HTTP: discovery, CRUD, PATCH, errors, Bulk."""

from __future__ import annotations

import pytest

from reconciler.errors import TargetError
from reconciler.scim.client import BulkOperation, ScimClient, eq_filter
from reconciler.scim.errors import TargetStatusError
from reconciler.scim.paths import ENTERPRISE_USER
from reconciler.target.faults import Fault, FaultProxy
from reconciler.target.serve import TargetServer
from tests import scim_helpers
from tests.scim_helpers import full_user, group, make_client, run, user

token = scim_helpers.token
target = scim_helpers.target


def test_discovery_reads_the_servers_features(target: TargetServer, token: str) -> None:
    async def go() -> None:
        async with make_client(target.url, token) as client:
            caps = await client.discover()
            assert caps.discovered and caps.patch and caps.etag
            assert caps.bulk and caps.bulk_max_operations == 1000 and caps.bulk_max_payload_size == 1048576
            assert caps.filter and caps.max_results == 1000
            assert caps.endpoint("User") == "/Users" and caps.endpoint("Group") == "/Groups"
            assert {s["id"] for s in caps.schemas} >= {ENTERPRISE_USER}

    run(go())


def test_discovery_falls_back_to_safe_defaults_when_endpoints_are_missing(target: TargetServer, token: str) -> None:
    async def go(proxy: FaultProxy) -> None:
        async with make_client(proxy.url, token) as client:
            caps = await client.discover()
            assert not caps.discovered
            assert caps.patch and caps.filter and not caps.bulk and not caps.etag and caps.max_results is None
            assert caps.endpoint("User") == "/Users"
            assert (await client.create("User", user("still-works")))["userName"] == "still-works"

    with FaultProxy(target.url) as proxy:
        proxy.add(Fault("status", method="GET", path="/(ServiceProviderConfig|ResourceTypes|Schemas)$",
                        status=404, times=None))
        run(go(proxy))


def test_discovery_tolerates_odd_documents(target: TargetServer, token: str) -> None:
    def odd(query: dict, body: object, refetch: object) -> object:
        return {"patch": {"supported": "true"}, "bulk": {"supported": "false", "maxOperations": "-3"},
                "filter": {"supported": True, "maxResults": "200"}}

    async def go(proxy: FaultProxy) -> None:
        async with make_client(proxy.url, token) as client:
            caps = await client.discover()
            assert caps.discovered and caps.patch and not caps.bulk and caps.bulk_max_operations is None
            assert caps.max_results == 200

    with FaultProxy(target.url) as proxy:
        proxy.add(Fault("rewrite", path="ServiceProviderConfig", response=odd))
        run(go(proxy))


def test_create_get_patch_delete_user_with_extension_and_filtered_paths(target: TargetServer, token: str) -> None:
    async def go() -> None:
        async with make_client(target.url, token) as client:
            await client.discover()
            created = await client.create("User", full_user("adele@contoso.com"))
            uid = created["id"]
            assert created["userName"] == "adele@contoso.com"
            assert created[ENTERPRISE_USER] == {"employeeNumber": "1001"}
            fetched = await client.get("User", uid)
            assert fetched["emails"] == [{"value": "adele@contoso.com", "type": "work"}]
            await client.patch("User", uid, [
                {"op": "replace", "path": 'emails[type eq "work"].value', "value": "adele.v@contoso.com"},
                {"op": "replace", "path": f"{ENTERPRISE_USER}:employeeNumber", "value": "2002"},
                {"op": "add", "path": "phoneNumbers", "value": [{"type": "mobile", "value": "+1 555"}]},
                {"op": "replace", "path": "active", "value": False},
            ])
            after = await client.get("User", uid)
            assert after["emails"][0]["value"] == "adele.v@contoso.com"
            assert after[ENTERPRISE_USER]["employeeNumber"] == "2002"
            assert after["phoneNumbers"] == [{"value": "+1 555", "type": "mobile"}]
            assert after["active"] is False
            await client.delete("User", uid)
            with pytest.raises(TargetStatusError) as missing:
                await client.get("User", uid)
            assert missing.value.status == 404
            assert f"GET /Users/{uid}" in str(missing.value)

    run(go())


def test_filtered_path_to_a_missing_element_is_refused_by_the_server(target: TargetServer, token: str) -> None:
    # Why the normalizer writes whole elements: the server answers 400 noTarget, and the error says so.
    async def go() -> None:
        async with make_client(target.url, token) as client:
            uid = (await client.create("User", user("nophone")))["id"]
            with pytest.raises(TargetStatusError) as refused:
                await client.patch("User", uid, [
                    {"op": "add", "path": 'phoneNumbers[type eq "mobile"].value', "value": "1"}])
            assert refused.value.status == 400 and refused.value.scim_type == "noTarget"
            assert f"PATCH /Users/{uid}: HTTP 400 (noTarget)" in str(refused.value)

    run(go())


def test_filter_values_are_json_quoted(target: TargetServer, token: str) -> None:
    assert eq_filter("userName", 'a"b\\c') == 'userName eq "a\\"b\\\\c"'
    with pytest.raises(ValueError):
        eq_filter("userName) or (userName", "x")

    async def go() -> None:
        async with make_client(target.url, token) as client:
            tricky = 'o"brien\\x'
            await client.create("User", user(tricky))
            await client.create("User", user("other"))
            found = await client.find("User", "userName", tricky)
            assert [u["userName"] for u in found] == [tricky]
            # an injection attempt is just a value that matches nobody
            assert await client.find("User", "userName", '" or userName pr or userName eq "') == []

    run(go())


def test_groups_and_membership_add_remove(target: TargetServer, token: str) -> None:
    async def go() -> None:
        async with make_client(target.url, token) as client:
            a = (await client.create("User", user("a")))["id"]
            b = (await client.create("User", user("b")))["id"]
            gid = (await client.create("Group", group("Atea Users")))["id"]
            await client.patch("Group", gid, [{"op": "add", "path": "members", "value": [{"value": a}, {"value": b}]}])
            assert {m["value"] for m in (await client.get("Group", gid))["members"]} == {a, b}
            await client.patch("Group", gid, [{"op": "remove", "path": f'members[value eq "{a}"]'}])
            assert [m["value"] for m in (await client.get("Group", gid))["members"]] == [b]
            await client.patch("Group", gid, [{"op": "replace", "path": "displayName", "value": "Atea All"}])
            assert (await client.find("Group", "displayName", "atea all"))[0]["id"] == gid
            await client.delete("Group", gid)
            assert await client.list_all("Group") == []

    run(go())


def test_duplicate_create_is_a_409_uniqueness_error(target: TargetServer, token: str) -> None:
    async def go() -> None:
        async with make_client(target.url, token) as client:
            await client.create("User", user("dup"))
            with pytest.raises(TargetStatusError) as conflict:
                await client.create("User", user("DUP"))
            assert (conflict.value.status, conflict.value.scim_type) == (409, "uniqueness")
            assert "already in use" in (conflict.value.detail or "")

    run(go())


def test_missing_or_wrong_token_is_401_and_the_token_never_shows(target: TargetServer, token: str) -> None:
    async def go() -> None:
        for credential in (None, "wrong-" + token):
            async with make_client(target.url, credential) as client:
                with pytest.raises(TargetStatusError) as denied:
                    await client.list_all("User")
                assert denied.value.status == 401
                assert token not in str(denied.value) and token not in repr(denied.value)
        async with make_client(target.url, token) as client:
            assert token not in repr(client) and token not in repr(vars(client))
            with pytest.raises(TargetStatusError) as missing:
                await client.get("User", "nope")
            assert token not in str(missing.value)

    run(go())


def test_plain_http_is_refused_except_to_loopback() -> None:
    with pytest.raises(TargetError, match="plain http"):
        ScimClient("http://scim.example.com/v2", "t")
    with pytest.raises(TargetError, match="not an http"):
        ScimClient("ftp://127.0.0.1/v2", "t")
    for url in ("http://127.0.0.1:1/v2", "http://localhost:1/v2", "http://[::1]:1/v2", "https://scim.example.com"):
        ScimClient(url, "t")


def test_bulk_maps_results_back_by_bulk_id(target: TargetServer, token: str) -> None:
    async def go() -> None:
        async with make_client(target.url, token) as client:
            await client.discover()
            await client.create("User", user("taken"))
            ops = [BulkOperation("POST", "/Users", f"u{i}", user(f"bulk{i}")) for i in range(5)]
            ops.append(BulkOperation("POST", "/Users", "dup", user("taken")))
            results = {r.bulk_id: r for r in await client.bulk(ops)}
            assert set(results) == {op.bulk_id for op in ops}
            assert all(results[f"u{i}"].status == 201 and results[f"u{i}"].id for i in range(5))
            assert (results["dup"].status, results["dup"].scim_type) == (409, "uniqueness")
            fetched = await client.get("User", results["u3"].id or "")
            assert fetched["userName"] == "bulk3"

    run(go())


def test_bulk_batches_respect_max_operations_and_payload() -> None:
    from reconciler.scim.client import bulk_batches

    ops = [BulkOperation("POST", "/Users", f"b{i}", user("x" * 50)) for i in range(10)]
    assert [len(b) for b in bulk_batches(ops, 4, None)] == [4, 4, 2]
    batches = bulk_batches(ops, None, 400)
    assert sum(len(b) for b in batches) == 10 and all(len(b) <= 3 for b in batches)
    with pytest.raises(TargetError, match="maxPayloadSize"):
        bulk_batches(ops, None, 100)


def test_a_query_on_the_base_url_is_kept_on_every_request(target: TargetServer, token: str) -> None:
    async def go(proxy: FaultProxy) -> None:
        async with make_client(f"{proxy.url}?aadOptscim062020", token) as client:
            assert client.base_url == proxy.url
            created = await client.create("User", user("flagged"))
            assert (await client.get("User", created["id"]))["userName"] == "flagged"

    seen: list[dict] = []

    def record(query: dict) -> dict:
        seen.append(dict(query))
        return query

    with FaultProxy(target.url) as proxy:
        proxy.add(Fault("rewrite", query=record, times=None))
        run(go(proxy))
    assert len(seen) == 2 and all("aadOptscim062020" in q for q in seen)
