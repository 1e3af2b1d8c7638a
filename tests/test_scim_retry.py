"""Retries and the no-duplicates rule, through a fault-injecting proxy in front of a real scim2-server."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from reconciler.scim.client import BulkOperation, BulkOutcomeUnknown
from reconciler.scim.errors import OutcomeUnknown, TargetStatusError, TargetUnreachable
from reconciler.scim.retry import RetryPolicy, parse_retry_after
from reconciler.target.faults import Fault, FaultProxy
from reconciler.target.serve import TargetServer
from tests import scim_helpers
from tests.scim_helpers import SleepRecorder, make_client, run, user

token = scim_helpers.token
target = scim_helpers.target


@pytest.fixture
def proxy(target: TargetServer):
    with FaultProxy(target.url) as proxy:
        yield proxy


def usernames(target: TargetServer) -> list[str]:
    return sorted(r.user_name for r in target.storage.resources if hasattr(r, "user_name"))


def test_retry_after_parsing() -> None:
    now = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now=now) == 30.0
    assert parse_retry_after(format_datetime(now - timedelta(seconds=30), usegmt=True), now=now) == 0.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


@pytest.mark.parametrize("header", ["soon", "-5", "1e999", "3.5", "", "\u0663", "Wed, 32 Foo 2015 99:99:99 GMT"])
def test_a_malformed_retry_after_is_none(header: str) -> None:
    assert parse_retry_after(header) is None  # the caller backs off on its own


def test_a_huge_retry_after_is_left_for_the_caller_to_cap() -> None:
    assert parse_retry_after("99999999999999999999") == float("inf")
    assert parse_retry_after("999999999") == 999999999.0


def test_429_on_create_honours_retry_after_then_succeeds_once(target: TargetServer, proxy: FaultProxy,
                                                              token: str) -> None:
    proxy.add(Fault("status", method="POST", path="/Users$", status=429, retry_after="3", times=2))
    sleep = SleepRecorder()

    async def go() -> None:
        async with make_client(proxy.url, token, sleep=sleep) as client:
            created = await client.create("User", user("rate-limited"))
            assert created["userName"] == "rate-limited"

    run(go())
    assert sleep.waits == [3.0, 3.0]
    assert proxy.actions("POST") == ["status", "status", "forward"]
    assert usernames(target) == ["rate-limited"]


def test_503_with_http_date_retry_after_on_reads(proxy: FaultProxy, token: str) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=20), usegmt=True)
    proxy.add(Fault("status", method="GET", status=503, retry_after=when, times=1))
    sleep = SleepRecorder()

    async def go() -> None:
        async with make_client(proxy.url, token, sleep=sleep) as client:
            assert await client.list_all("User") == []

    run(go())
    assert len(sleep.waits) == 1 and 15 <= sleep.waits[0] <= 20


def test_502_and_dropped_reads_back_off_with_jitter(proxy: FaultProxy, token: str) -> None:
    proxy.add(Fault("status", method="GET", status=502, times=1))
    proxy.add(Fault("drop", method="GET", times=1))
    sleep = SleepRecorder()

    async def go() -> None:
        async with make_client(proxy.url, token, sleep=sleep) as client:
            assert await client.list_all("User") == []

    run(go())
    assert proxy.actions("GET") == ["status", "drop", "forward"]
    assert len(sleep.waits) == 2 and all(0 <= w <= 0.05 for w in sleep.waits)


def test_retries_are_bounded_by_attempts_and_total_wait(proxy: FaultProxy, token: str) -> None:
    proxy.add(Fault("status", method="GET", status=429, retry_after="1", times=None))
    sleep = SleepRecorder()

    async def go() -> None:
        async with make_client(proxy.url, token, sleep=sleep) as client:
            with pytest.raises(TargetStatusError) as limited:
                await client.list_all("User")
            assert limited.value.status == 429 and limited.value.retry_after == 1.0
        budget = RetryPolicy(max_attempts=10, max_total_wait=2.5)
        async with make_client(proxy.url, token, sleep=sleep, retry=budget) as client:
            with pytest.raises(TargetStatusError):
                await client.list_all("User")

    run(go())
    assert sleep.waits == [1.0] * (3 + 2)  # 4 attempts, then 3 attempts within 2.5 s
    assert proxy.actions("GET") == ["status"] * (4 + 3)


def test_lost_create_response_is_outcome_unknown_and_never_resent(target: TargetServer, proxy: FaultProxy,
                                                                  token: str) -> None:
    proxy.add(Fault("lose_response", method="POST", path="/Users$"))
    sleep = SleepRecorder()

    async def go() -> None:
        async with make_client(proxy.url, token, sleep=sleep) as client:
            with pytest.raises(OutcomeUnknown) as lost:
                await client.create("User", user("lost@contoso.com"))
            assert lost.value.method == "POST" and lost.value.path == "/Users"
            assert token not in str(lost.value)
            # the caller's duty: look it up by the matching attribute before any retry
            found = await client.find("User", "userName", "lost@contoso.com")
            assert [u["userName"] for u in found] == ["lost@contoso.com"]

    run(go())
    assert proxy.actions("POST") == ["lose_response"]
    assert sleep.waits == []
    assert usernames(target) == ["lost@contoso.com"]


def test_create_timing_out_after_send_is_outcome_unknown(target: TargetServer, proxy: FaultProxy,
                                                         token: str) -> None:
    proxy.add(Fault("stall", method="POST", delay=5))

    async def go() -> None:
        async with make_client(proxy.url, token, timeout=0.5) as client:
            with pytest.raises(OutcomeUnknown, match="ReadTimeout"):
                await client.create("User", user("slow"))

    run(go())
    assert proxy.actions("POST") == ["stall"]
    assert usernames(target) == ["slow"]


def test_create_dropped_before_forwarding_is_also_outcome_unknown(target: TargetServer, proxy: FaultProxy,
                                                                   token: str) -> None:
    # The client cannot tell "dropped before" from "lost after": both are unknown; the lookup finds nothing.
    proxy.add(Fault("drop", method="POST"))

    async def go() -> None:
        async with make_client(proxy.url, token) as client:
            with pytest.raises(OutcomeUnknown):
                await client.create("User", user("never"))
            assert await client.find("User", "userName", "never") == []

    run(go())
    assert usernames(target) == []


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_create_answered_5xx_is_outcome_unknown(proxy: FaultProxy, token: str, status: int) -> None:
    proxy.add(Fault("status", method="POST", status=status))

    async def go() -> None:
        async with make_client(proxy.url, token) as client:
            with pytest.raises(OutcomeUnknown) as unknown:
                await client.create("User", user("x"))
            assert unknown.value.status == status

    run(go())
    assert proxy.actions("POST") == ["status"]


def test_lost_patch_response_is_outcome_unknown(target: TargetServer, proxy: FaultProxy, token: str) -> None:
    async def go() -> None:
        async with make_client(proxy.url, token) as client:
            uid = (await client.create("User", user("p")))["id"]
            proxy.add(Fault("lose_response", method="PATCH"))
            with pytest.raises(OutcomeUnknown):
                await client.patch("User", uid, [{"op": "add", "path": "emails",
                                                  "value": [{"type": "work", "value": "p@x"}]}])
            assert (await client.get("User", uid))["emails"] == [{"value": "p@x", "type": "work"}]

    run(go())
    assert proxy.actions("PATCH") == ["lose_response"]


def test_lost_delete_response_is_retried_and_counts_as_done(proxy: FaultProxy, token: str) -> None:
    async def go() -> None:
        async with make_client(proxy.url, token) as client:
            uid = (await client.create("User", user("d")))["id"]
            proxy.add(Fault("lose_response", method="DELETE"))
            await client.delete("User", uid)
            assert await client.list_all("User") == []

    run(go())
    assert proxy.actions("DELETE") == ["lose_response", "forward"]


def test_connection_refused_is_retried_then_unreachable(token: str) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sleep = SleepRecorder()

    async def go() -> None:
        async with make_client(f"http://127.0.0.1:{port}/v2", token, sleep=sleep) as client:
            with pytest.raises(TargetUnreachable) as unreachable:
                await client.create("User", user("x"))
            assert str(unreachable.value).startswith("POST /Users: ConnectError")
            assert token not in str(unreachable.value)

    run(go())
    assert len(sleep.waits) == 3


def test_lost_bulk_answer_is_never_resent(target: TargetServer, proxy: FaultProxy, token: str) -> None:
    async def go() -> None:
        async with make_client(proxy.url, token) as client:
            await client.discover()
            proxy.add(Fault("lose_response", method="POST", path="/Bulk$"))
            ops = [BulkOperation("POST", "/Users", f"b{i}", user(f"bulk{i}")) for i in range(3)]
            with pytest.raises(BulkOutcomeUnknown) as lost:
                await client.bulk(ops)
            assert lost.value.bulk_ids == ("b0", "b1", "b2") and lost.value.completed == []

    run(go())
    assert proxy.actions("POST") == ["lose_response"]
    assert usernames(target) == ["bulk0", "bulk1", "bulk2"]
