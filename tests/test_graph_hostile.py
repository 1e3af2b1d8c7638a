"""The Microsoft Graph reader against a fake Graph on loopback that misbehaves: foreign paging links, broken
``Retry-After``, 5xx, timeouts, dropped connections, expired tokens, member lists without ``@odata.type``.

The fake serves Graph v1.0's shapes over real HTTP (tests/hostile.py); the token comes from a stand-in for
azure-identity's credential, or from the variable a manifest's ``provisioning.directory.graph.tokenEnv`` names.
Backoff and timeouts are configured small so that the whole file waits well under a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from reconciler.directory.graph import GraphReader
from reconciler.directory_source import read_directory
from reconciler.errors import DirectoryError
from reconciler.manifest import load_manifest
from reconciler.secrets import known_secrets
from tests.hostile import Reply, Request, serving
from tests.manifest_samples import insert_after

TOKEN = "graph-token-one-5b1e7c"
FRESH = "graph-token-two-9d4a2f"
Fault = Reply | Callable[[Request], "Reply | None"]


def _header(request: Request, name: str) -> str | None:
    return next((v for k, v in request.headers.items() if k.lower() == name.lower()), None)


class FakeGraph:
    """Two users, two groups (g1 "Demo Users" has u1, u2 and g2 as members), one soft-deleted user.

    ``faults[route]`` is a queue of one-shot answers served before the normal one; ``accepted`` the tokens that
    pass (anything else gets Graph's 401). A plain ``/members`` read answers with a device, which must never be
    asked for."""

    def __init__(self) -> None:
        self.url = ""
        self.server: Any = None
        self.accepted = {TOKEN}
        self.faults: dict[str, list[Fault]] = {}
        self.pages: dict[str, list[dict[str, Any]]] = {
            "/v1.0/users": [{"id": "u1", "userPrincipalName": "adele@contoso.com", "accountEnabled": True},
                            {"id": "u2", "userPrincipalName": "alex@contoso.com", "accountEnabled": True}],
            "/v1.0/groups": [{"id": "g1", "displayName": "Demo Users"}, {"id": "g2", "displayName": "Other"}],
            # typed casts: entries without @odata.type, u1 twice (Graph may repeat across pages)
            "/v1.0/groups/g1/members/microsoft.graph.user": [{"id": "u1"}, {"id": "u2"}, {"id": "u1"}],
            "/v1.0/groups/g1/members/microsoft.graph.group": [{"id": "g2"}],
            "/v1.0/groups/g2/members/microsoft.graph.user": [],
            "/v1.0/groups/g2/members/microsoft.graph.group": [],
            "/v1.0/groups/g1/members": [{"@odata.type": "#microsoft.graph.device", "id": "d1"}],
            "/v1.0/directory/deletedItems/microsoft.graph.user": [{"id": "u9", "userPrincipalName": "u9x@contoso.com"}],
        }

    def __call__(self, request: Request) -> None:
        reply = self.answer(request)
        if reply is not None:
            send_at_once(request, reply)

    def answer(self, request: Request) -> Reply | None:
        queue = self.faults.get(request.route)
        if queue:
            fault = queue.pop(0)
            return fault if isinstance(fault, Reply) else fault(request)
        if _header(request, "Authorization") not in {f"Bearer {t}" for t in self.accepted}:
            return graph_error(401, "InvalidAuthenticationToken", "Access token has expired or is not yet valid.")
        items = self.pages.get(request.route)
        if items is None:
            return graph_error(404, "Request_ResourceNotFound", request.route)
        # two items a page, so that every collection of more than two is paged through @odata.nextLink
        start = int(request.query.get("$skiptoken", "0"))
        body: dict[str, Any] = {"value": items[start:start + 2]}
        if start + 2 < len(items):
            body["@odata.nextLink"] = f"{self.url}{request.route}?$skiptoken={start + 2}"
        return Reply(200, body, content_type="application/json")

    def routes(self) -> list[str]:
        return [r.route for r in self.server.requests]


def send_at_once(request: Request, reply: Reply) -> None:
    """The whole answer in one write (head and body apart would wait on delayed ACKs), then close."""
    body = reply.encoded()
    head = [f"HTTP/1.1 {reply.status} X", f"Content-Length: {len(body)}", f"Content-Type: {reply.content_type}",
            "Connection: close", *(f"{k}: {v}" for k, v in reply.headers.items())]
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        request.handler.wfile.write("\r\n".join(head).encode() + b"\r\n\r\n" + body)


def graph_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, {"error": {"code": code, "message": message}}, headers or {}, "application/json")


@pytest.fixture
def graph() -> Iterator[FakeGraph]:
    fake = FakeGraph()
    with serving(fake) as server:
        fake.url = server.url
        fake.server = server
        yield fake


class Credential:
    """Stands in for azure-identity: hands out ``tokens`` in turn (the last one again when they run out)."""

    def __init__(self, *tokens: str) -> None:
        self.tokens = list(tokens or (TOKEN,))
        self.scopes: list[tuple[str, ...]] = []

    async def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        self.scopes.append(scopes)
        token = self.tokens.pop(0) if len(self.tokens) > 1 else self.tokens[0]
        return SimpleNamespace(token=token, expires_on=0)


def read(graph: FakeGraph, credential: Credential | None = None, waits: list[float] | None = None,
         **options: Any) -> Any:
    """The whole directory through a reader with small bounds; ``waits`` collects its backoff pauses."""
    recorded = [] if waits is None else waits

    async def sleep(seconds: float) -> None:
        recorded.append(seconds)
        await asyncio.sleep(seconds)

    settings: dict[str, Any] = {"timeout": 1.0, "deadline": 2.0, "base_delay": 0.001, "max_delay": 0.004,
                                "max_retries": 4, "sleep": sleep, **options}
    reader = GraphReader(credential=credential or Credential(), endpoint=graph.url, **settings)
    return asyncio.run(reader.read(member_groups=["demo users"]))


def assert_complete(directory: Any) -> None:
    assert [u.id for u in directory.users] == ["u1", "u2"]
    assert directory.groups_by_id["g1"].members == ("u1", "u2", "g2")
    assert [u.id for u in directory.deleted_users] == ["u9"]


# 1. paging links stay on the endpoint's origin

@pytest.mark.parametrize("where", ["other port", "other host", "other scheme"])
def test_a_foreign_next_link_is_not_followed(graph: FakeGraph, where: str) -> None:
    with serving(lambda request: Reply(200, {"value": []}, content_type="application/json")) as foreign:
        port = graph.url.rsplit(":", 1)[1]
        link = {"other port": f"{foreign.url}/v1.0/users?$skiptoken=2",
                "other host": f"http://localhost:{port}/v1.0/users?$skiptoken=2",   # the same server, by name
                "other scheme": f"https://127.0.0.1:{port}/v1.0/users?$skiptoken=2"}[where]
        graph.faults["/v1.0/users"] = [Reply(200, {"value": [{"id": "u1"}], "@odata.nextLink": link},
                                             content_type="application/json")]
        with pytest.raises(DirectoryError) as caught:
            read(graph)
        assert foreign.requests == []
    shown = link.split("/v1.0")[0]
    assert str(caught.value) == (f"Microsoft Graph: GET /v1.0/users: the next page link points to {shown}, not to "
                                 f"{graph.url}; not followed (the token is sent to the Graph endpoint only)")
    assert graph.routes() == ["/v1.0/users"]  # nothing after the first page, not even to the same server by name


def test_a_next_link_with_credentials_is_not_followed(graph: FakeGraph) -> None:
    link = graph.url.replace("http://", "http://user:pass@") + "/v1.0/users?$skiptoken=2"
    graph.faults["/v1.0/users"] = [Reply(200, {"value": [], "@odata.nextLink": link},
                                         content_type="application/json")]
    with pytest.raises(DirectoryError, match=r"^Microsoft Graph: GET /v1\.0/users: the next page link carries "
                                             "credentials; not followed$"):
        read(graph)
    assert graph.routes() == ["/v1.0/users"]


def test_a_next_link_that_loops_stops(graph: FakeGraph) -> None:
    graph.faults["/v1.0/users"] = [Reply(200, {"value": [], "@odata.nextLink": f"{graph.url}/v1.0/users?a=1"},
                                         content_type="application/json")] * 3
    with pytest.raises(DirectoryError, match=r"^Microsoft Graph: GET /v1\.0/users: the next page link repeats a "
                                             "page already read; stopped$"):
        read(graph)


# 2. Retry-After that is no number of seconds nor a date

@pytest.mark.parametrize("header", ["soon", "-5", "1e999", "Wed, 32 Foo 2015 99:99:99 GMT", "", "3.5", "٣"])
def test_a_malformed_retry_after_falls_back_to_bounded_backoff(graph: FakeGraph, header: str) -> None:
    graph.faults["/v1.0/users"] = [graph_error(429, "TooManyRequests", "slow down", {"Retry-After": header})]
    waits: list[float] = []
    assert_complete(read(graph, waits=waits))
    assert len(waits) == 1 and 0 <= waits[0] <= 0.001  # the first backoff step, jittered
    assert graph.routes()[:2] == ["/v1.0/users", "/v1.0/users"]


@pytest.mark.parametrize("header", ["99999999999999999999", "Fri, 31 Dec 9999 23:59:59 GMT", "30"])
def test_a_long_retry_after_is_capped(graph: FakeGraph, header: str) -> None:
    graph.faults["/v1.0/users"] = [graph_error(503, "ServiceUnavailable", "busy", {"Retry-After": header})]
    waits: list[float] = []
    assert_complete(read(graph, waits=waits))
    assert waits == [0.004]  # max_delay


def test_retry_after_beyond_the_total_wait_gives_up(graph: FakeGraph) -> None:
    graph.faults["/v1.0/users"] = [graph_error(429, "TooManyRequests", "slow down", {"Retry-After": "1"})] * 5
    waits: list[float] = []
    with pytest.raises(DirectoryError, match=r"^Microsoft Graph: GET /v1\.0/users: still answering 429 after 2 "
                                             "retries$"):
        read(graph, waits=waits, max_total_wait=0.01)
    assert waits == [0.004, 0.004]


# 3. server errors, timeouts and dropped connections

def test_server_errors_are_retried_with_backoff(graph: FakeGraph) -> None:
    graph.faults["/v1.0/groups"] = [graph_error(status, "ServiceError", "try again") for status in (500, 502, 504)]
    waits: list[float] = []
    assert_complete(read(graph, waits=waits))
    assert len(waits) == 3
    assert all(0 <= wait <= 0.001 * 2 ** i for i, wait in enumerate(waits))  # exponential ceiling, jittered
    assert graph.routes().count("/v1.0/groups") == 4


def test_persistent_server_errors_stop_after_bounded_retries(graph: FakeGraph) -> None:
    graph.faults["/v1.0/users"] = [graph_error(500, "ServiceError", "broken")] * 10
    with pytest.raises(DirectoryError, match=r"^Microsoft Graph: GET /v1\.0/users: still answering 500 after 2 "
                                             "retries$"):
        read(graph, max_retries=2)
    assert graph.routes() == ["/v1.0/users"] * 3


def test_other_errors_are_not_retried(graph: FakeGraph) -> None:
    graph.faults["/v1.0/users"] = [graph_error(400, "BadRequest", "Invalid $select\nproperty")]
    with pytest.raises(DirectoryError) as caught:
        read(graph)
    assert str(caught.value) == "Microsoft Graph: GET /v1.0/users answered 400: BadRequest: Invalid $select property"
    assert graph.routes() == ["/v1.0/users"]


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """Set at the end of a test, so that a server thread holding an answer back ends with it."""
    event = threading.Event()
    yield event
    event.set()


def test_a_timeout_then_success(graph: FakeGraph, release: threading.Event) -> None:
    def stall(request: Request) -> Reply:
        release.wait(5)
        return Reply(200, {"value": []}, content_type="application/json")

    graph.faults["/v1.0/users"] = [stall]
    waits: list[float] = []
    assert_complete(read(graph, waits=waits, timeout=0.1))
    assert len(waits) >= 1
    assert graph.routes()[:2] == ["/v1.0/users", "/v1.0/users"]


def test_a_dropped_connection_then_success(graph: FakeGraph) -> None:
    graph.faults["/v1.0/users"] = [lambda request: None]  # closes the connection without an answer
    assert_complete(read(graph))


def test_timeouts_stop_after_bounded_retries(graph: FakeGraph, release: threading.Event) -> None:
    def stall(request: Request) -> Reply:
        release.wait(5)
        return Reply(200, {"value": []}, content_type="application/json")

    graph.faults["/v1.0/users"] = [stall, stall]
    with pytest.raises(DirectoryError, match=r"^Microsoft Graph: GET /v1\.0/users: no answer within 0\.02s "
                                             r"\(ReadTimeout\) after 1 retries$"):
        read(graph, timeout=0.02, max_retries=1)


def test_a_trickling_answer_meets_the_deadline(graph: FakeGraph, release: threading.Event) -> None:
    def trickle(request: Request) -> None:
        out = request.handler.wfile
        out.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n")
        try:
            while not release.wait(0.005):
                out.write(b" ")
                out.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass

    graph.faults["/v1.0/users"] = [trickle]
    with pytest.raises(DirectoryError, match=r"^Microsoft Graph: GET /v1\.0/users: no complete answer within "
                                             r"0\.05s after 0 retries$"):
        read(graph, deadline=0.05, max_retries=0)


def test_an_oversized_answer_stops(graph: FakeGraph) -> None:
    graph.faults["/v1.0/users"] = [Reply(200, {"value": [{"id": f"u{i}"} for i in range(200)]},
                                         content_type="application/json")]
    with pytest.raises(DirectoryError, match=r"^Microsoft Graph: GET /v1\.0/users answered more than 1000 bytes; "
                                             "stopped$"):
        read(graph, max_response_bytes=1000)


def test_a_body_that_does_not_decode_is_one_line(graph: FakeGraph) -> None:
    graph.faults["/v1.0/users"] = [Reply(200, b"not gzip at all", {"Content-Encoding": "gzip"}, "application/json")]
    with pytest.raises(DirectoryError, match=r"^Microsoft Graph: GET /v1\.0/users: unreadable answer "
                                             r"\(DecodingError: "):
        read(graph)


# 4. an expired token mid-read

def test_a_401_mid_read_gets_one_fresh_token(graph: FakeGraph) -> None:
    def expire(request: Request) -> Reply:
        graph.accepted = {FRESH}
        return graph_error(401, "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired.")

    graph.faults["/v1.0/groups"] = [expire]
    credential = Credential(TOKEN, FRESH)
    assert_complete(read(graph, credential))
    assert credential.scopes == [(f"{graph.url}/.default",)] * 2
    sent = [_header(r, "Authorization") for r in graph.server.requests if r.route == "/v1.0/groups"]
    assert sent == [f"Bearer {TOKEN}", f"Bearer {FRESH}"]
    assert {TOKEN, FRESH} <= known_secrets()  # the scrubber knows both


def test_a_second_401_is_one_line(graph: FakeGraph) -> None:
    graph.accepted = set()
    credential = Credential(TOKEN, FRESH)
    with pytest.raises(DirectoryError) as caught:
        read(graph, credential)
    assert str(caught.value) == ("Microsoft Graph: GET /v1.0/users answered 401 again with a fresh token: "
                                 "InvalidAuthenticationToken: Access token has expired or is not yet valid. (the "
                                 "identity needs User.Read.All and GroupMember.Read.All)")
    assert len(credential.scopes) == 2 and graph.routes() == ["/v1.0/users"] * 2


# 5. members through the typed casts

def test_members_are_read_through_the_typed_casts(graph: FakeGraph) -> None:
    directory = read(graph)
    assert directory.groups_by_id["g1"].members == ("u1", "u2", "g2")  # no @odata.type needed; u1 once
    assert directory.groups_by_id["g2"].members == ()  # not assigned: not read
    member_routes = [r for r in graph.routes() if "/members" in r]
    assert sorted(member_routes) == ["/v1.0/groups/g1/members/microsoft.graph.group",
                                     "/v1.0/groups/g1/members/microsoft.graph.user",
                                     "/v1.0/groups/g1/members/microsoft.graph.user"]  # two pages of users


# 6. endpoint and tokenEnv from the manifest

def _manifest(tmp_path: Path, endpoint: str) -> Path:
    path = tmp_path / "demo.yaml"
    graph = f"{{endpoint: '{endpoint}/', tokenEnv: DEMO_GRAPH_TOKEN}}"
    path.write_text(insert_after(14, f"  directory:\n    graph: {graph}"))
    return path


def test_the_manifest_names_endpoint_and_token_variable(graph: FakeGraph, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEMO_GRAPH_TOKEN", TOKEN)
    directory = asyncio.run(read_directory(load_manifest(_manifest(tmp_path, graph.url)), None))
    assert_complete(directory)
    assert {_header(r, "Authorization") for r in graph.server.requests} == {f"Bearer {TOKEN}"}
    assert TOKEN in known_secrets()


def test_a_missing_token_variable_is_one_line(graph: FakeGraph, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEMO_GRAPH_TOKEN", "")
    path = _manifest(tmp_path, graph.url)
    with pytest.raises(DirectoryError) as caught:
        asyncio.run(read_directory(load_manifest(path), None))
    assert str(caught.value) == (f"{path}: environment variable DEMO_GRAPH_TOKEN is not set; it must hold a "
                                 "Microsoft Graph access token (provisioning.directory.graph.tokenEnv)")
    assert graph.routes() == []
