"""``reconciler serve-target`` and its Python API: auth, loopback only, persistence across restarts."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from reconciler.scim.errors import TargetStatusError
from reconciler.target.process import TargetProcess
from reconciler.target.serve import running_target, serving_target
from tests.scim_helpers import group, make_client, run, user

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "serve-target-test-token-5f2c"


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "reconciler", "serve-target", *args], cwd=ROOT, text=True,
                          capture_output=True, timeout=60,
                          env={k: v for k, v in os.environ.items() if k != "RECONCILER_TARGET_TOKEN"} | (env or {}))


def test_running_target_requires_the_token() -> None:
    with running_target(token=TOKEN) as url:
        assert url.startswith("http://127.0.0.1:") and url.endswith("/v2")
        assert httpx.get(f"{url}/Users").status_code == 401
        assert httpx.get(f"{url}/Users", headers={"Authorization": "Bearer nope"}).status_code == 401
        assert httpx.get(f"{url}/Users", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
        answer = httpx.get(f"{url}/ServiceProviderConfig").json()  # discovery needs no auth (RFC 7644)
        assert any(s["type"] == "oauthbearertoken" for s in answer["authenticationSchemes"])


def test_serve_target_refuses_to_start_without_a_token() -> None:
    result = cli("--port", "0")
    assert result.returncode == 1
    assert "RECONCILER_TARGET_TOKEN holds no bearer token" in result.stderr and "--no-auth" in result.stderr
    assert "Traceback" not in result.stderr
    named = cli("--port", "0", "--token-env", "MY_TARGET_TOKEN")
    assert named.returncode == 1 and "MY_TARGET_TOKEN" in named.stderr


def test_serve_target_refuses_non_loopback_hosts() -> None:
    result = cli("--host", "0.0.0.0", "--no-auth")
    assert result.returncode == 1 and "non-loopback" in result.stderr and "--allow-remote" in result.stderr


def test_serve_target_reports_a_broken_data_file(tmp_path: Path) -> None:
    data = tmp_path / "target.json"
    data.write_text('{"resources": [')
    result = cli("--port", "0", "--data", str(data), env={"RECONCILER_TARGET_TOKEN": TOKEN})
    assert result.returncode == 1 and str(data) in result.stderr and "not valid JSON" in result.stderr
    assert "Traceback" not in result.stderr


def test_no_auth_must_be_explicit_and_then_serves(tmp_path: Path) -> None:
    with TargetProcess(token=None) as target:
        assert httpx.get(f"{target.url}/Users").status_code == 200


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_data_persists_across_a_clean_restart(tmp_path: Path, sig: int) -> None:
    data = tmp_path / "target.json"

    async def write(url: str) -> tuple[str, str, str]:
        async with make_client(url, TOKEN) as client:
            uid = (await client.create("User", user("kept@contoso.com", externalId="obj-1")))["id"]
            gid = (await client.create("Group", group("Kept", members=[uid])))["id"]
            version = (await client.get("User", uid))["meta"]["version"]
            return uid, gid, version

    async def read(url: str) -> tuple[dict, dict, str]:
        async with make_client(url, TOKEN) as client:
            users = {u["id"]: u for u in await client.list_all("User")}
            groups = {g["id"]: g for g in await client.list_all("Group")}
            newer = (await client.create("User", user("later")))["meta"]["version"]
            return users, groups, newer

    first = TargetProcess(token=TOKEN, data=data).start()
    try:
        uid, gid, version = run(write(first.url or ""))
    finally:
        assert first.stop(sig=sig) == 0
    saved = json.loads(data.read_text())
    assert {r["id"] for r in saved["resources"]} == {uid, gid}
    assert TOKEN not in data.read_text()

    with TargetProcess(token=TOKEN, data=data) as second:
        users, groups, newer = run(read(second.url or ""))
    assert users[uid]["userName"] == "kept@contoso.com" and users[uid]["externalId"] == "obj-1"
    assert groups[gid]["members"] == [{"value": uid}]
    assert int(newer.strip('W/"')) > int(version.strip('W/"'))  # no ETag reused after a restart


def test_changes_are_saved_without_a_shutdown(tmp_path: Path) -> None:
    data = tmp_path / "target.json"
    target = TargetProcess(token=TOKEN, data=data).start()
    try:
        run(_create(target.url or "", "crash-safe"))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and "crash-safe" not in (data.read_text() if data.exists() else ""):
            time.sleep(0.05)
    finally:
        target.kill()
    with TargetProcess(token=TOKEN, data=data) as again:
        names = run(_names(again.url or ""))
    assert names == ["crash-safe"]


async def _create(url: str, name: str) -> None:
    async with make_client(url, TOKEN) as client:
        await client.create("User", user(name))


async def _names(url: str) -> list[str]:
    async with make_client(url, TOKEN) as client:
        return [u["userName"] for u in await client.list_all("User")]


def test_in_process_target_persists_too(tmp_path: Path) -> None:
    data = tmp_path / "nested" / "target.json"
    with serving_target(token=TOKEN, data=data) as server:
        assert repr(server).startswith("TargetServer('http://127.0.0.1:")
        run(_create(server.url, "inproc"))
    with serving_target(token=TOKEN, data=data) as server:
        assert server.loaded == 1
        assert run(_names(server.url)) == ["inproc"]


def test_many_concurrent_clients_are_all_served() -> None:
    # scim2-server's own CLI server drops connections at ~32 concurrent clients (listen backlog 5).
    async def burst(url: str) -> list[int]:
        async with httpx.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"},
                                     limits=httpx.Limits(max_connections=64), timeout=30) as http:
            answers = await asyncio.gather(*(http.get(f"{url}/Users") for _ in range(64)))
            return [a.status_code for a in answers]

    with running_target(token=TOKEN) as url:
        assert run(burst(url)) == [200] * 64


def test_the_token_is_in_no_output(tmp_path: Path) -> None:
    target = TargetProcess(token=TOKEN, data=tmp_path / "t.json").start()
    assert TOKEN not in repr(target)

    async def fail(url: str) -> None:
        async with make_client(url, TOKEN) as client:
            with pytest.raises(TargetStatusError) as error:
                await client.get("User", "missing")
            assert TOKEN not in str(error.value) and TOKEN not in repr(error.value)

    try:
        run(fail(target.url or ""))
    finally:
        target.stop()
    assert "serving SCIM target on http://127.0.0.1:" in target.output and "stopped" in target.output
    assert TOKEN not in target.output
