"""Helpers for the reconciler's integration tests: a real target over loopback HTTP, edited directories."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from reconciler.manifest import LoadedManifest, load_manifest, load_text
from reconciler.plan import Plan
from reconciler.run import AppRun, RunOptions, RunResult

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "test-token-0123456789"
SAMPLE = json.loads((ROOT / "examples" / "directory.json").read_text())


# The group provisioning of tests that add groups to the Atea manifest (append it to the manifest's text).
GROUPS = """
  groups:
    enabled: true
    mappings:
      - {target: displayName, source: displayName, matching: 1}
      - {target: externalId, source: objectId}
      - {target: members, source: members}
"""


def atea(**changes: str) -> LoadedManifest:
    """The Atea example, optionally with text replacements (e.g. a lower deletion threshold)."""
    text = (ROOT / "manifests" / "atea.yaml").read_text()
    for old, new in changes.items():
        assert old in text, old
        text = text.replace(old, new)
    return load_text(text, file=str(ROOT / "manifests" / "atea.yaml")) if changes else load_manifest(
        ROOT / "manifests" / "atea.yaml")


def wiki() -> LoadedManifest:
    return load_manifest(ROOT / "manifests" / "wiki.yaml")


def directory(tmp_path: Path, edit: Callable[[dict[str, Any]], None] | None = None, name: str = "dir.json") -> str:
    data = copy.deepcopy(SAMPLE)
    if edit:
        edit(data)
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return str(path)


def many_users(data: dict[str, Any], count: int = 600) -> None:
    """Add ``count`` Sales users to the directory, all members of Atea Users (a run long enough to interrupt)."""
    group = next(g for g in data["groups"] if g["displayName"] == "Atea Users")
    for n in range(count):
        uid = f"00000000-0000-4000-8000-{n:012d}"
        data["users"].append({"id": uid, "userPrincipalName": f"user{n:04d}@contoso.com", "givenName": "G",
                              "surname": f"S{n}", "accountEnabled": True, "department": "Sales"})
        group["members"].append(uid)


def user(data: dict[str, Any], upn: str) -> dict[str, Any]:
    return next(u for u in data["users"] if u["userPrincipalName"] == upn)


def group(data: dict[str, Any], name: str) -> dict[str, Any]:
    return next(g for g in data["groups"] if g["displayName"] == name)


def converge(loaded: LoadedManifest, url: str, snapshot: str, monkeypatch: Any, **options: Any) -> RunResult:
    monkeypatch.setenv(loaded.manifest.provisioning.target.token_env, TOKEN)

    async def go() -> RunResult:
        async with AppRun(loaded, RunOptions(directory=snapshot, target=url, **options)) as app:
            return await app.converge()

    return asyncio.run(go())


def plan(loaded: LoadedManifest, url: str, snapshot: str, monkeypatch: Any, **options: Any) -> Plan:
    monkeypatch.setenv(loaded.manifest.provisioning.target.token_env, TOKEN)

    async def go() -> Plan:
        async with AppRun(loaded, RunOptions(directory=snapshot, target=url, **options)) as app:
            return await app.plan()

    return asyncio.run(go())


def listing(url: str, kind: str = "Users") -> list[dict[str, Any]]:
    """Everything the target holds of one kind, read over HTTP (not through the code under test)."""
    answer = httpx.get(f"{url}/{kind}", params={"count": 1000}, headers={"Authorization": f"Bearer {TOKEN}"})
    answer.raise_for_status()
    return answer.json().get("Resources", [])


def post(url: str, kind: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = httpx.post(f"{url}/{kind}", json=body, headers={"Authorization": f"Bearer {TOKEN}",
                                                             "Content-Type": "application/scim+json"})
    answer.raise_for_status()
    return answer.json()


def by_username(url: str) -> dict[str, dict[str, Any]]:
    users = listing(url)
    names = [u["userName"].lower() for u in users]
    assert len(names) == len(set(names)), f"duplicate users: {sorted(names)}"
    return {u["userName"].lower(): u for u in users}


def stop_service(process: Any) -> str:
    """SIGTERM a ``reconcile`` service started by a test; it must exit 0 after one cycle with no traceback.
    Returns its stdout's rest."""
    import signal

    try:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert out.strip() == "reconcile: stopped after 1 cycle(s)"
    assert "Traceback" not in err
    return str(out)
