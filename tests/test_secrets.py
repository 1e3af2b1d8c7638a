"""A secret canary: the target token (and other secret-named variables) never appear in any output or file of
plan, apply, preview or reconcile, even when the target echoes the token back in its errors."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest

from reconciler.cli import main
from reconciler.lock import STATE_DIR_ENV
from reconciler.target.serve import serving_target
from tests.reconcile_helpers import directory
from tests.test_preview import edit, make_repo

CANARY = "canary-7f3a9c1e5b2d4068"
OTHER = "other-secret-5e8d2b7a9c"


@pytest.fixture
def world(tmp_path: Path, monkeypatch: Any) -> Iterator[dict[str, Any]]:
    repo = make_repo(tmp_path)
    monkeypatch.chdir(repo)
    monkeypatch.setenv("ATEA_SCIM_TOKEN", CANARY)
    monkeypatch.setenv("ARM_CLIENT_SECRET", OTHER)
    monkeypatch.setenv(STATE_DIR_ENV, str(tmp_path / "state"))
    with serving_target(token=CANARY) as server:
        yield {"repo": repo, "url": server.url, "dir": directory(tmp_path), "tmp": tmp_path}


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def echoing_target() -> Iterator[str]:
    """A broken target that answers every request with an error quoting the request's Authorization header."""

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        leaked = environ.get("HTTP_AUTHORIZATION", "")
        body = json.dumps({"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": "400",
                           "detail": f"bad credentials {leaked}"}).encode()
        start_response("400 Bad Request", [("Content-Type", "application/scim+json"),
                                           ("X-Debug", leaked)])
        return [body]

    server = make_server("127.0.0.1", 0, app, handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v2"
    finally:
        server.shutdown()
        server.server_close()


def run(capsys: Any, *args: str) -> tuple[int, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out + err


def files_text(folder: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in folder.rglob("*") if p.is_file() and ".git" not in p.parts)


def assert_clean(text: str) -> None:
    assert CANARY not in text
    assert OTHER not in text


def test_no_command_output_or_file_holds_the_token(world: dict[str, Any], capsys: Any) -> None:
    url, snapshot, tmp = world["url"], world["dir"], world["tmp"]
    outputs = []
    target = ["manifests", "--directory", snapshot, "--target", url]
    for fmt in ("text", "json", "markdown"):
        outputs.append(run(capsys, "plan", *target, "--format", fmt, "--out", str(tmp / f"plan-{fmt}.json")))
    outputs.append(run(capsys, "apply", *target, "--log", str(tmp / "apply.jsonl")))
    edit(world["repo"] / "manifests" / "atea.yaml", "deletionThreshold: 50", "deletionThreshold: 1")
    pulumi = tmp / "pulumi.txt"
    pulumi.write_text(f"SecretToken: {CANARY}\nARM_CLIENT_SECRET={OTHER}\n")
    outputs.append(run(capsys, "preview", *target, "--base", "main", "--pulumi-output", str(pulumi),
                       "--out", str(tmp / "comment.md")))
    pulumi.unlink()  # the test's own input, not an output
    outputs.append(run(capsys, "preview", *target, "--base", "main", "--mask-pii"))
    outputs.append(run(capsys, "reconcile", *target, "--interval", "1m", "--once", "--log",
                       str(tmp / "loop.jsonl")))
    outputs.append(run(capsys, "declared", "manifests", "--format", "json"))
    assert [code for code, _ in outputs] == [0, 0, 0, 0, 0, 0, 0, 0]
    for _, text in outputs:
        assert_clean(text)
    comment = (tmp / "comment.md").read_text()
    assert "SecretToken: [secret]" in comment and "ARM&#95;CLIENT&#95;SECRET=[secret]" not in comment
    assert "=[secret]" in comment
    written = files_text(tmp)
    assert "cycleId" in written and "<!-- reconciler-preview -->" in written
    assert_clean(written)


def test_a_target_that_echoes_the_token_does_not_leak_it(world: dict[str, Any], echoing_target: str,
                                                         capsys: Any) -> None:
    target = ["manifests", "--directory", world["dir"], "--target", echoing_target]
    outputs = [
        run(capsys, "plan", *target),
        run(capsys, "apply", *target, "--log", str(world["tmp"] / "apply.jsonl")),
        run(capsys, "preview", *target, "--base", "main"),
        run(capsys, "reconcile", *target, "--interval", "1m", "--once"),
    ]
    assert [code for code, _ in outputs] == [1, 1, 0, 1]
    for _, text in outputs:
        assert_clean(text)
    assert "SCIM side not evaluated" in outputs[2][1]
    assert_clean(files_text(world["tmp"]))


def test_a_wrong_token_is_not_quoted(world: dict[str, Any], capsys: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("ATEA_SCIM_TOKEN", CANARY + "-wrong")
    code, text = run(capsys, "plan", "manifests", "--directory", world["dir"], "--target", world["url"])
    assert code == 1 and "401" in text
    assert CANARY not in text
