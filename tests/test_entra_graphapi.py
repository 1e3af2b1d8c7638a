"""The synchronous Microsoft Graph client (reconciler.entra.graphapi) against the loopback fake Graph
(tests/fake_graph.py): answers, retries, size cap, tokens and the one-line errors."""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from reconciler.entra.graphapi import GraphApiError, GraphClient
from reconciler.secrets import REGISTRY
from tests.fake_graph import NON_GALLERY_TEMPLATE_ID, TOKEN, FakeGraph, fake_graph

VARIABLE = "RECONCILER_TEST_GRAPH_TOKEN"


@pytest.fixture
def graph(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGraph]:
    monkeypatch.setenv(VARIABLE, TOKEN)
    with fake_graph() as fake:
        yield fake


def client(graph: FakeGraph, **options: Any) -> tuple[GraphClient, list[float]]:
    waits: list[float] = []
    options.setdefault("token_env", VARIABLE)
    return GraphClient(graph.endpoint, sleep=waits.append, **options), waits


def seeded(graph: FakeGraph) -> tuple[str, str]:
    return graph.add_application({"displayName": "Atea"}, {"displayName": "Atea"})


def test_get_put_post_delete_and_the_token_registered(graph: FakeGraph) -> None:
    app_id, sp_id = seeded(graph)
    api, _ = client(graph)
    with api:
        assert api.get(f"/applications/{app_id}")["displayName"] == "Atea"
        made = api.post(f"/servicePrincipals/{sp_id}/synchronization/jobs", {"templateId": "scim"})
        assert made is not None and made["templateId"] == "scim"
        jobs = f"/servicePrincipals/{sp_id}/synchronization/jobs"
        schema = api.get(f"{jobs}/{made['id']}/schema")
        assert api.put(f"{jobs}/{made['id']}/schema", schema) is None   # 204
        assert api.post(f"{jobs}/{made['id']}/start") is None
        api.delete(f"{jobs}/{made['id']}")
    assert graph.jobs(sp_id) == []
    assert graph.calls[("PUT", f"/v1.0{jobs}/{made['id']}/schema")] == 1
    assert TOKEN in REGISTRY.known()


def test_instantiate_the_non_gallery_template(graph: FakeGraph) -> None:
    with client(graph)[0] as api:
        made = api.post(f"/applicationTemplates/{NON_GALLERY_TEMPLATE_ID}/instantiate", {"displayName": "Atea"})
        assert made is not None
        sp_id = made["servicePrincipal"]["id"]
        templates = api.get_all(f"/servicePrincipals/{sp_id}/synchronization/templates")
    assert made["application"]["appId"] == made["servicePrincipal"]["appId"]
    assert [t["id"] for t in templates] == ["scim"]


def test_429_waits_for_retry_after_then_succeeds(graph: FakeGraph) -> None:
    app_id, _ = seeded(graph)
    graph.throttle(2, retry_after="7")
    api, waits = client(graph)
    with api:
        assert api.get(f"/applications/{app_id}")["id"] == app_id
    assert waits == [7.0, 7.0]


def test_retry_after_is_capped_and_the_total_wait_bounded(graph: FakeGraph) -> None:
    app_id, _ = seeded(graph)
    graph.throttle(1, retry_after="86400")
    api, waits = client(graph, max_delay=5.0)
    with api:
        api.get(f"/applications/{app_id}")
    assert waits == [5.0]
    graph.throttle(10, retry_after="4")
    api, waits = client(graph, max_total_wait=10.0)
    with api, pytest.raises(GraphApiError, match=r"still answering HTTP 429 after 2 retries"):
        api.get(f"/applications/{app_id}")
    assert waits == [4.0, 4.0]


def test_a_post_throttled_is_sent_again(graph: FakeGraph) -> None:
    _, sp_id = seeded(graph)
    path = f"/v1.0/servicePrincipals/{sp_id}/synchronization/jobs"
    graph.fail("POST", path, 429, headers={"Retry-After": "1"})
    with client(graph)[0] as api:
        assert api.post(path.removeprefix("/v1.0"), {"templateId": "scim"}) is not None
    assert graph.calls[("POST", path)] == 2 and len(graph.jobs(sp_id)) == 1


def test_500_is_retried_for_get_and_put_but_a_post_is_sent_once(graph: FakeGraph) -> None:
    app_id, sp_id = seeded(graph)
    path = f"/v1.0/applications/{app_id}"
    graph.fail("GET", path, 500, times=2)
    api, waits = client(graph)
    with api:
        assert api.get(f"/applications/{app_id}")["id"] == app_id
        assert len(waits) == 2
        jobs = f"/v1.0/servicePrincipals/{sp_id}/synchronization/jobs"
        graph.fail("POST", jobs, 500)
        with pytest.raises(GraphApiError) as raised:
            api.post(jobs.removeprefix("/v1.0"), {"templateId": "scim"})
    assert graph.calls[("GET", path)] == 3 and graph.calls[("POST", jobs)] == 1
    assert raised.value.status == 500
    assert str(raised.value) == f"Microsoft Graph: POST {jobs}: HTTP 500 BadRequest: Injected failure 500"


def test_500_retries_are_bounded(graph: FakeGraph) -> None:
    app_id, _ = seeded(graph)
    path = f"/v1.0/applications/{app_id}"
    graph.fail("GET", path, 503, times=100)
    api, waits = client(graph, max_retries=3)
    with api, pytest.raises(GraphApiError, match=r"still answering HTTP 503 after 3 retries"):
        api.get(f"/applications/{app_id}")
    assert graph.calls[("GET", path)] == 4 and len(waits) == 3


def test_a_graph_error_is_one_line_with_its_code(graph: FakeGraph) -> None:
    _, sp_id = seeded(graph)
    job = graph.add_job(sp_id, {"templateId": "scim"}, {"synchronizationRules": []})
    path = f"/v1.0/servicePrincipals/{sp_id}/synchronization/jobs/{job}/schema"
    graph.fail("PUT", path, 400, {"error": {"code": "InvalidSchema", "message": "The attribute\n'x' is\tunknown."}})
    with client(graph)[0] as api, pytest.raises(GraphApiError) as raised:
        api.put(path.removeprefix("/v1.0"), {"synchronizationRules": []})
    assert str(raised.value) == f"Microsoft Graph: PUT {path}: HTTP 400 InvalidSchema: The attribute 'x' is unknown."
    assert raised.value.status == 400 and raised.value.code == "InvalidSchema"
    assert graph.calls[("PUT", path)] == 1   # a refusal is not retried


def test_unknown_path_is_a_404(graph: FakeGraph) -> None:
    with client(graph)[0] as api, pytest.raises(GraphApiError, match=r"HTTP 404 Request_ResourceNotFound") as raised:
        api.get("/servicePrincipals/nobody")
    assert raised.value.status == 404


def test_an_oversized_answer_stops_reading(graph: FakeGraph) -> None:
    app_id, _ = graph.add_application({"displayName": "Atea", "notes": "x" * 200_000}, {})
    with client(graph, max_response_bytes=50_000)[0] as api, \
            pytest.raises(GraphApiError, match=r"^Microsoft Graph: GET /v1.0/applications/.*: answered more than "
                                               r"50000 bytes; stopped$"):
        api.get(f"/applications/{app_id}")


def test_an_answer_that_is_not_json(graph: FakeGraph) -> None:
    app_id, _ = seeded(graph)
    graph.fail("GET", f"/v1.0/applications/{app_id}", 200, b"<html>gateway</html>")
    with client(graph)[0] as api, pytest.raises(GraphApiError) as raised:
        api.get(f"/applications/{app_id}")
    assert str(raised.value) == f"Microsoft Graph: GET /v1.0/applications/{app_id}: HTTP 200 with an answer that " \
        "is not JSON"


def test_json_that_is_not_an_object(graph: FakeGraph) -> None:
    app_id, _ = seeded(graph)
    graph.fail("GET", f"/v1.0/applications/{app_id}", 200, b"[1, 2]", headers={"Content-Type": "application/json"})
    with client(graph)[0] as api, pytest.raises(GraphApiError, match="JSON that is not an object"):
        api.get(f"/applications/{app_id}")


class Credential:
    """A token credential that hands out ``tokens`` in turn."""

    def __init__(self, *tokens: str) -> None:
        self.tokens = list(tokens)
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        self.scopes.append(scopes)
        return SimpleNamespace(token=self.tokens.pop(0), expires_on=0)


def test_a_401_gets_one_fresh_token(graph: FakeGraph) -> None:
    app_id, _ = seeded(graph)
    credential = Credential("stale-token-31f0a2", TOKEN)
    with GraphClient(graph.endpoint, credential=credential) as api:
        assert api.get(f"/applications/{app_id}")["id"] == app_id
    assert credential.scopes == [(f"{graph.endpoint}/.default",)] * 2
    assert graph.counts[f"/v1.0/applications/{app_id}"] == 2


def test_a_second_401_is_an_error_without_the_token(graph: FakeGraph) -> None:
    app_id, _ = seeded(graph)
    wrong = "wrong-token-5b9e1c7d44aa"
    credential = Credential(wrong, wrong + "x")
    with GraphClient(graph.endpoint, credential=credential) as api, pytest.raises(GraphApiError) as raised:
        api.get(f"/applications/{app_id}")
    text = str(raised.value)
    assert text.startswith(f"Microsoft Graph: GET /v1.0/applications/{app_id}: HTTP 401 again with a fresh token "
                           "InvalidAuthenticationToken")
    assert "Synchronization.ReadWrite.All" in text and "\n" not in text
    assert wrong not in text and raised.value.status == 401
    assert graph.counts[f"/v1.0/applications/{app_id}"] == 2


def test_the_token_never_reaches_the_error_text_even_when_echoed(graph: FakeGraph) -> None:
    app_id, _ = seeded(graph)
    graph.fail("GET", f"/v1.0/applications/{app_id}", 400,
               {"error": {"code": "BadRequest", "message": f"token {TOKEN} refused"}})
    with client(graph)[0] as api, pytest.raises(GraphApiError) as raised:
        api.get(f"/applications/{app_id}")
    assert TOKEN not in str(raised.value) and "[secret]" in str(raised.value)


def test_a_missing_or_empty_token_variable(graph: FakeGraph, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(VARIABLE)
    with client(graph)[0] as api, pytest.raises(GraphApiError) as raised:
        api.get("/applications/x")
    assert str(raised.value) == (f"Microsoft Graph: environment variable {VARIABLE} is not set; it must hold a "
                                 "Microsoft Graph access token")
    monkeypatch.setenv(VARIABLE, "  ")
    with client(graph)[0] as api, pytest.raises(GraphApiError, match=VARIABLE):
        api.get("/applications/x")
    assert sum(graph.counts.values()) == 0


def test_a_credential_chain_failure_is_one_line(graph: FakeGraph) -> None:
    class Failing:
        def get_token(self, *scopes: str, **kwargs: Any) -> Any:
            raise RuntimeError("DefaultAzureCredential failed to retrieve a token.\nAttempted credentials: ...")

    with GraphClient(graph.endpoint, credential=Failing()) as api, pytest.raises(GraphApiError) as raised:
        api.get("/applications/x")
    assert str(raised.value).startswith("Microsoft Graph: no token from the Azure credential chain: "
                                        "DefaultAzureCredential failed to retrieve a token. (sign in")


def test_get_all_follows_next_links_on_the_origin_only(graph: FakeGraph) -> None:
    _, sp_id = seeded(graph)
    for number in range(5):
        graph.add_assignment(sp_id, {"principalId": f"p{number}", "principalType": "Group"})
    graph.page_size = 2
    with client(graph)[0] as api:
        items = api.get_all(f"/servicePrincipals/{sp_id}/appRoleAssignedTo")
        assert [i["principalId"] for i in items] == [f"p{n}" for n in range(5)]
        graph.link_origin = "http://evil.example:8080"
        with pytest.raises(GraphApiError, match=r"points to http://evil.example:8080, not to .*; not followed"):
            api.get_all(f"/servicePrincipals/{sp_id}/appRoleAssignedTo")
        graph.link_origin = None
        with pytest.raises(GraphApiError, match=r"more than 1 pages"):
            GraphClient(graph.endpoint, token_env=VARIABLE, max_pages=1).get_all(
                f"/servicePrincipals/{sp_id}/appRoleAssignedTo")
    assert graph.counts[f"/v1.0/servicePrincipals/{sp_id}/appRoleAssignedTo"] == 3 + 1 + 1


def test_an_unreachable_endpoint_is_one_line_after_bounded_retries() -> None:
    waits: list[float] = []
    with fake_graph() as fake:
        endpoint = fake.endpoint
    api = GraphClient(endpoint, credential=Credential(*["t0k3n-unreachable"] * 3), max_retries=2, sleep=waits.append)
    with api, pytest.raises(GraphApiError) as raised:
        api.get("/applications/x")
    assert str(raised.value).startswith("Microsoft Graph: GET /v1.0/applications/x: cannot connect")
    assert str(raised.value).endswith("after 2 retries") and len(waits) == 2


def test_paths_are_relative_to_the_endpoint(graph: FakeGraph) -> None:
    api, _ = client(graph)
    for path in ("https://elsewhere.example/v1.0/applications", "//elsewhere.example/v1.0/applications"):
        with pytest.raises(ValueError):
            api.get(path)
    assert sum(graph.counts.values()) == 0


def test_a_closed_client_holds_no_token(graph: FakeGraph) -> None:
    api, _ = client(graph)
    with api:
        api.get_all(f"/servicePrincipals/{seeded(graph)[1]}/synchronization/jobs")
    assert TOKEN.encode() not in pickle.dumps(vars(api))


def test_a_server_that_never_answers_is_given_up_on_after_two_deadlines(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    monkeypatch.setenv(VARIABLE, TOKEN)
    with socket.create_server(("127.0.0.1", 0), backlog=16) as listener:  # accepts (the kernel does), never answers
        endpoint = f"http://127.0.0.1:{listener.getsockname()[1]}"
        api = GraphClient(endpoint, token_env=VARIABLE, timeout=0.3, sleep=lambda _delay: None)
        with api, pytest.raises(GraphApiError) as caught:
            api.get("/servicePrincipals/x")
    assert api.requests == 2
    assert "twice; stopped" in str(caught.value) and "\n" not in str(caught.value)
