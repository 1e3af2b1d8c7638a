"""The Microsoft Graph reader, against recorded Graph-shaped responses.

Graph is unreachable from the test machines, so these tests serve responses shaped like Graph v1.0's (paging with
``@odata.nextLink``, members through the typed casts, 429 with ``Retry-After``, Graph's error body) through
``httpx.MockTransport``; the token comes from a stand-in for azure-identity's credential.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from reconciler.cli import main
from reconciler.directory.graph import GRAPH_SCOPE, GraphReader
from reconciler.directory.snapshot import load_snapshot
from reconciler.errors import DirectoryError

BASE = "https://graph.microsoft.com/v1.0"
ATEA = Path(__file__).resolve().parent.parent / "manifests" / "atea.yaml"
USERS_OF_G1 = "/v1.0/groups/g1/members/microsoft.graph.user"
ADELE = {"id": "u1", "userPrincipalName": "adele@contoso.com", "displayName": "Adele Vance", "mobilePhone": "+1 555",
         "accountEnabled": True}
ALEX = {"id": "u2", "userPrincipalName": "alex@contoso.com", "displayName": "Alex Wilber", "mobilePhone": None,
        "accountEnabled": False}


class Credential:
    def __init__(self) -> None:
        self.scopes: list[tuple[str, ...]] = []

    async def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        self.scopes.append(scopes)
        return SimpleNamespace(token="secret-token", expires_on=0)


class FailingCredential:
    async def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        raise RuntimeError("DefaultAzureCredential failed to retrieve a token from the included credentials.\nmore")


class Recorded:
    """Answers like Graph: two pages of users, one of groups, members by type (two pages of users), one 429."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.throttled = False

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        assert request.headers["Authorization"] == "Bearer secret-token"
        path = request.url.path
        if path == "/v1.0/users" and "skiptoken" not in str(request.url):
            return httpx.Response(200, json={"@odata.context": "x", "value": [dict(ADELE, **{"@odata.etag": "e"})],
                                             "@odata.nextLink": f"{BASE}/users?$skiptoken=page2"})
        if path == "/v1.0/users":
            if not self.throttled:
                self.throttled = True
                return httpx.Response(429, headers={"Retry-After": "3"},
                                      json={"error": {"code": "TooManyRequests", "message": "slow down"}})
            return httpx.Response(200, json={"value": [ALEX]})
        if path == "/v1.0/groups":
            return httpx.Response(200, json={"value": [{"id": "g1", "displayName": "Atea Users"},
                                                       {"id": "g2", "displayName": "Other"}]})
        if path == USERS_OF_G1 and "skiptoken" not in str(request.url):
            return httpx.Response(200, json={"value": [{"@odata.type": "#microsoft.graph.user", "id": "u1"}],
                                             "@odata.nextLink": f"{BASE}/groups/g1/members/microsoft.graph.user"
                                                                "?$skiptoken=m2"})
        if path == USERS_OF_G1:
            return httpx.Response(200, json={"value": [{"@odata.type": "#microsoft.graph.user", "id": "u2"}]})
        if path == "/v1.0/groups/g1/members/microsoft.graph.group":
            return httpx.Response(200, json={"value": [{"@odata.type": "#microsoft.graph.group", "id": "g2"}]})
        if path.startswith("/v1.0/groups/g2/members/"):
            return httpx.Response(200, json={"value": []})
        if path == "/v1.0/directory/deletedItems/microsoft.graph.user":  # Graph prefixes a deleted user's UPN
            return httpx.Response(200, json={"value": [{"id": "u9", "userPrincipalName": "u9megan@contoso.com"}]})
        return httpx.Response(404, json={"error": {"code": "Request_ResourceNotFound", "message": path}})


def _read(handler: Any, credential: Any = None, **kwargs: Any) -> tuple[Any, list[float]]:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    reader = GraphReader(credential=credential or Credential(), transport=httpx.MockTransport(handler), sleep=sleep)
    return asyncio.run(reader.read(**kwargs)), waits


def test_pages_select_members_and_retry_after() -> None:
    recorded = Recorded()
    credential = Credential()
    directory, waits = _read(recorded, credential, user_attributes={"mobile", "userPrincipalName"},
                             group_attributes={"displayName"}, member_groups=["atea users"])
    assert credential.scopes == [(GRAPH_SCOPE,)]
    assert [u.id for u in directory.users] == ["u1", "u2"]
    assert directory.users[0].get("mobile") == "+1 555" and "@odata.etag" not in directory.users[0].data
    assert directory.groups_by_id["g1"].members == ("u1", "u2", "g2")  # users, then groups
    assert directory.groups_by_id["g2"].members == ()  # not asked for: no member requests
    assert waits == [3.0]  # Retry-After honoured once
    assert [u.id for u in directory.deleted_users] == ["u9"]  # soft-deleted users, for deprovisioning
    first = recorded.requests[0]
    assert first.url.params["$select"] == "id,userPrincipalName,displayName,accountEnabled,mobilePhone"
    assert first.url.params["$top"] == "999"
    assert not any(r.url.path.startswith("/v1.0/groups/g2/") for r in recorded.requests)


def test_every_group_and_attribute_when_exporting() -> None:
    recorded = Recorded()
    directory, _ = _read(recorded)
    assert {r.url.path for r in recorded.requests} >= {f"/v1.0/groups/{g}/members/microsoft.graph.{t}"
                                                       for g in ("g1", "g2") for t in ("user", "group")}
    selected = recorded.requests[0].url.params["$select"].split(",")
    assert {"mobilePhone", "businessPhones", "onPremisesExtensionAttributes", "officeLocation"} <= set(selected)
    assert recorded.requests[0].url.params["$expand"] == "manager($select=id)"
    assert len(directory.groups) == 2


def test_permission_errors_are_one_line_without_the_token() -> None:
    def forbidden(request: httpx.Request) -> httpx.Response:
        return httpx.Response(403, json={"error": {"code": "Authorization_RequestDenied",
                                                   "message": "Insufficient privileges to complete the operation."}})
    with pytest.raises(DirectoryError) as caught:
        _read(forbidden)
    message = str(caught.value)
    assert message == ("Microsoft Graph: GET /v1.0/users answered 403: Authorization_RequestDenied: Insufficient "
                       "privileges to complete the operation. (the identity needs User.Read.All and "
                       "GroupMember.Read.All)")
    assert "secret-token" not in message


def test_throttling_gives_up_after_bounded_retries() -> None:
    calls = []

    def always_429(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(429, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})
    with pytest.raises(DirectoryError, match="still answering 429 after 6 retries"):
        _read(always_429)
    assert len(calls) == 7


def test_no_token_and_no_network_are_one_line() -> None:
    with pytest.raises(DirectoryError, match=r"^Microsoft Graph: no token from the Azure credential chain: "
                                             "DefaultAzureCredential failed to retrieve a token"):
        _read(Recorded(), FailingCredential())

    def unreachable(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("Name or service not known")
    with pytest.raises(DirectoryError, match=r"^Microsoft Graph: GET /v1\.0/users: cannot connect"):
        _read(unreachable)


def test_export_directory_writes_a_snapshot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    import reconciler.directory.graph as graph

    class Reader(GraphReader):
        def __init__(self) -> None:
            super().__init__(credential=Credential(), transport=httpx.MockTransport(Recorded()),
                             sleep=lambda s: asyncio.sleep(0))

    monkeypatch.setattr(graph, "GraphReader", Reader)
    out = tmp_path / "tenant.json"
    assert main(["export-directory", "--out", str(out)]) == 0
    assert "wrote 2 users and 2 groups" in capsys.readouterr().err
    snapshot = json.loads(out.read_text())
    assert snapshot["groups"][0] == {"id": "g1", "displayName": "Atea Users", "members": ["u1", "u2", "g2"]}
    assert load_snapshot(out).find_user("alex@contoso.com") is not None


def test_a_manifest_reads_only_what_it_maps() -> None:
    from reconciler.directory_source import read_graph
    from reconciler.manifest import load_manifest

    recorded = Recorded()
    reader = GraphReader(credential=Credential(), transport=httpx.MockTransport(recorded),
                         sleep=lambda s: asyncio.sleep(0))
    directory = asyncio.run(read_graph(load_manifest(ATEA), reader))
    selected = recorded.requests[0].url.params["$select"].split(",")
    assert selected[:4] == ["id", "userPrincipalName", "displayName", "accountEnabled"]
    assert set(selected[4:]) == {"department", "givenName", "mail", "mailNickname", "mobilePhone",
                                 "preferredLanguage", "surname"}
    assert "$expand" not in recorded.requests[0].url.params
    member_reads = {r.url.path for r in recorded.requests if "/members/" in r.url.path}
    assert member_reads == {USERS_OF_G1, "/v1.0/groups/g1/members/microsoft.graph.group"}  # "Other" is unassigned
    assert directory.source == "Microsoft Graph"
