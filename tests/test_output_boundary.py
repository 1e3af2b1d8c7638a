"""The output boundary: secrets (whole or any 12-character fragment) and control characters never reach stderr,
stdout, the provisioning log or a saved file, whatever a hostile server echoes; files are created 0600."""

from __future__ import annotations

import io
import json
import os
import stat
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.cli import main
from reconciler.errors import ReconcilerError
from reconciler.outputs import SafeStream, open_private, strip_controls, terminal_text, write_private
from reconciler.secrets import MASK, SecretRegistry
from tests.hostile import Reply, Request, scim_list, serving
from tests.reconcile_helpers import ROOT, directory

TOKEN = "tok-3f9a1c7e5b2d4a6f8e0c9b7a5d3f1e2c"
MANIFEST = str(ROOT / "manifests" / "atea.yaml")
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"


def fragments(secret: str, size: int = 12) -> list[str]:
    return [secret[i:i + size] for i in range(len(secret) - size + 1)]


def assert_no_fragment(text: str, secret: str = TOKEN) -> None:
    leaked = [f for f in fragments(secret) if f in text]
    assert not leaked, f"leaked {leaked[:3]}"


# -- the scrubber ----------------------------------------------------------------------------------------------


def test_whole_secrets_and_long_fragments_are_masked_short_ones_stay() -> None:
    registry = SecretRegistry()
    registry.register(TOKEN)
    text = f"a {TOKEN} b {TOKEN[:14]} c {TOKEN[9:30]}d e {TOKEN[:11]} f"
    scrubbed = registry.scrub(text)
    assert_no_fragment(scrubbed)
    assert scrubbed.count(MASK) == 3
    assert f"e {TOKEN[:11]} f" in scrubbed  # below the fragment length: ordinary text must not be mangled


def test_fragments_of_several_secrets_and_adjacent_fragments() -> None:
    other = "zq8w7e6r5t4y3u2i1o0pzq8w7e6r"
    registry = SecretRegistry()
    registry.register(TOKEN)
    registry.register(other)
    scrubbed = registry.scrub(TOKEN[3:20] + other[2:18] + "|" + other + TOKEN[::-1])
    assert_no_fragment(scrubbed)
    assert_no_fragment(scrubbed, other)
    assert TOKEN[::-1] in scrubbed  # a reversed token shares no 12-character run with the token


def test_values_too_short_to_be_secrets_are_not_registered() -> None:
    registry = SecretRegistry()
    registry.register("abc")
    registry.register_environment(["SHORT_VAR"], {"SHORT_VAR": "abcdef", "MY_TOKEN": "x" * 7, "API_KEY": "k" * 20})
    assert registry.known() == frozenset({"abcdef", "k" * 20})
    assert registry.scrub("abcdef kkkkkkkkkkkkkkkkkkkk 'xxxxxxx'") == f"{MASK} {MASK} 'xxxxxxx'"


def test_of_a_connection_string_only_its_keys_are_secret() -> None:
    key = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
    connection = (f"DefaultEndpointsProtocol=https;AccountName=contosostate;AccountKey={key};"
                  "EndpointSuffix=core.windows.net")
    registry = SecretRegistry()
    registry.register_environment([], {"AZURE_STORAGE_CONNECTION_STRING": connection})
    assert registry.known() == {key}
    text = f"https://contosostate.blob.core.windows.net/state (key {key[:20]})"
    assert registry.scrub(text) == f"https://contosostate.blob.core.windows.net/state (key {MASK})"


def test_a_secret_split_across_writes_is_still_scrubbed(monkeypatch: Any) -> None:
    registry = SecretRegistry()
    registry.register(TOKEN)
    monkeypatch.setattr("reconciler.outputs.scrub", registry.scrub)
    sink = io.StringIO()
    stream = SafeStream(sink, terminal=False)
    stream.write("error: " + TOKEN[:20])
    stream.write(TOKEN[20:] + " end\nnext ")
    stream.write("\x1b]0;owned\x07line\x1b[31m\n")
    stream.flush()
    assert sink.getvalue() == f"error: {MASK} end\nnext line\n"


def test_terminal_keeps_colour_but_not_other_escapes() -> None:
    hostile = "a\x1b]52;c;cGF3bmVk\x07b\x1bPq#0\x1b\\c\x1b[1;31mred\x1b[0m\x07\x00\x9b\r\n"
    assert terminal_text(hostile) == "abc\x1b[1;31mred\x1b[0m\r\n"
    assert strip_controls(hostile) == "abcred\n"


def test_private_files_are_0600_and_never_follow_a_symlink(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    write_private(path, "{}\n")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with open_private(tmp_path / "log.jsonl", append=True) as log:
        log.write("one\n")
    with open_private(tmp_path / "log.jsonl", append=True) as log:
        log.write("two\n")
    assert (tmp_path / "log.jsonl").read_text() == "one\ntwo\n"
    victim = tmp_path / "victim"
    victim.write_text("keep")
    (tmp_path / "link").symlink_to(victim)
    with pytest.raises(ReconcilerError, match="symbolic link"):
        write_private(tmp_path / "link", "overwrite")
    assert victim.read_text() == "keep"


# -- hostile servers through the command line ------------------------------------------------------------------


def echoing(request: Request) -> Reply:
    """Discovery unsupported, no users; every write refused with the Authorization header echoed back."""
    authorization = request.headers.get("Authorization", "")
    if request.method == "GET" and request.route.endswith("/Users"):
        return Reply(200, scim_list([]))
    if request.method == "GET":
        return Reply(404, {"schemas": [ERROR], "status": "404", "detail": f"no such thing ({authorization})"})
    if "text" in request.query:
        return Reply(400, "x" * 180 + authorization + " trailing words", content_type="text/plain")
    # servers truncate what they echo: a fragment of the token is no longer the token
    return Reply(400, {"schemas": [ERROR], "status": "400", "scimType": authorization,
                       "detail": f"invalid request; you sent {authorization[:30]}..."},
                 headers={"WWW-Authenticate": authorization})


def test_a_401_echoing_the_authorization_header_leaks_nothing(capsys: Any, monkeypatch: Any,
                                                              tmp_path: Path) -> None:
    monkeypatch.setenv("ATEA_SCIM_TOKEN", TOKEN)

    def refuse(request: Request) -> Reply:
        echoed = request.headers.get("Authorization", "")
        return Reply(401, {"schemas": [ERROR], "status": "401", "scimType": echoed,
                           "detail": f"bad token {echoed[7:27]}... (expired)"})

    with serving(refuse) as server:
        code = main(["plan", MANIFEST, "--directory", directory(tmp_path), "--target", f"{server.url}/v2"])
    out, err = capsys.readouterr()
    assert code == 1
    assert "401" in err and err.count("\n") == 1
    assert_no_fragment(out + err)


@pytest.mark.parametrize("query", ["", "?text=1"])
def test_write_errors_echoing_the_token_reach_neither_stderr_nor_the_log(query: str, capsys: Any, monkeypatch: Any,
                                                                          tmp_path: Path) -> None:
    monkeypatch.setenv("ATEA_SCIM_TOKEN", TOKEN)
    log = tmp_path / "provisioning.jsonl"
    with serving(echoing) as server:
        code = main(["apply", MANIFEST, "--directory", directory(tmp_path), "--target", f"{server.url}/v2{query}",
                     "--log", str(log), "--no-bulk"])
    out, err = capsys.readouterr()
    assert code == 1
    assert "failed: create User" in err
    records = [json.loads(line) for line in log.read_text().splitlines()]
    writes = [r for r in records if r["actionDetail"] == "create"]
    assert writes and all(r["status"] == "Failure" for r in writes)
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    for text in (out, err, log.read_text()):
        assert_no_fragment(text)


def test_a_token_the_server_copies_into_data_reaches_no_plan_or_log(url: str, capsys: Any, monkeypatch: Any,
                                                                   tmp_path: Path) -> None:
    from tests.reconcile_helpers import TOKEN as TARGET_TOKEN

    snapshot = directory(tmp_path)
    target = [MANIFEST, "--directory", snapshot, "--target", url]
    assert main(["apply", *target]) == 0
    users = httpx.get(f"{url}/Users", headers={"Authorization": f"Bearer {TARGET_TOKEN}"}).json()["Resources"]
    hostile = f"copied {TARGET_TOKEN} and \x1b]0;pwned\x07\x1b[2J"
    httpx.patch(f"{url}/Users/{users[0]['id']}", headers={"Authorization": f"Bearer {TARGET_TOKEN}"},
                json={"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                      "Operations": [{"op": "replace", "path": "nickName", "value": hostile}]}).raise_for_status()
    capsys.readouterr()
    texts = []
    for fmt in ("text", "markdown", "json"):
        out_file = tmp_path / f"plan-{fmt}.json"
        assert main(["plan", *target, "--format", fmt, "--out", str(out_file)]) == 0
        out, err = capsys.readouterr()
        texts += [out, err, out_file.read_text()]
        assert stat.S_IMODE(out_file.stat().st_mode) == 0o600
    assert any("copied" in t for t in texts)  # the value is shown, only the secret in it is masked
    log = tmp_path / "apply.jsonl"
    assert main(["apply", *target, "--log", str(log)]) == 0
    texts += [*capsys.readouterr(), log.read_text()]
    for text in texts:
        assert_no_fragment(text, TARGET_TOKEN)
        assert "\x1b]" not in text and "\x1b[2J" not in text and "\x07" not in text


def test_the_secret_scanner_handles_large_outputs() -> None:
    registry = SecretRegistry()
    registry.register(TOKEN)
    line = "update User someone@contoso.com nickName 0f8fad5b-d9cb-469f-a165-70867728950e -> x\n"
    text = line * 20_000 + TOKEN[5:25] + "\n"
    scrubbed = registry.scrub(text)
    assert scrubbed.endswith(MASK + "\n") and scrubbed.count(line) == 20_000


def test_secret_named_environment_variables_are_known_from_the_start(capsys: Any, monkeypatch: Any,
                                                                     tmp_path: Path) -> None:
    secret = "client-secret-9d8c7b6a5f4e3d2c1b0a"
    monkeypatch.setenv("ARM_CLIENT_SECRET", secret)
    broken = tmp_path / "broken.yaml"
    broken.write_text(f"apiVersion: reconciler/v1\nkind: EnterpriseApp\nname: {secret}\n")
    assert main(["validate", str(broken)]) == 1
    _, err = capsys.readouterr()
    assert_no_fragment(err, secret)
    assert os.environ["ARM_CLIENT_SECRET"] == secret


def test_lone_surrogates_and_escapes_in_server_data_are_printed_safely(capsys: Any, monkeypatch: Any,
                                                                      tmp_path: Path) -> None:
    monkeypatch.setenv("ATEA_SCIM_TOKEN", TOKEN)
    snapshot = directory(tmp_path)
    someone = json.loads(Path(snapshot).read_text())["users"][0]

    def odd_data(request: Request) -> Reply:
        if request.method == "GET" and request.route.endswith("/Users"):
            # json.dumps escapes the surrogates as \ud800: valid JSON that decodes to text UTF-8 cannot encode
            return Reply(200, json.dumps(scim_list([{
                "id": "u1", "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": someone["userPrincipalName"], "externalId": someone["id"], "active": True,
                "nickName": "odd\ud800\udc80 \x1b]0;title\x07\x1b[2J"}])))
        return Reply(404, {"schemas": [ERROR], "status": "404", "detail": "none \ud800"})

    with serving(odd_data) as server:
        for fmt in ("text", "json", "markdown"):
            out_file = tmp_path / f"plan.{fmt}"
            code = main(["plan", MANIFEST, "--directory", snapshot, "--target", f"{server.url}/v2", "--format", fmt,
                         "--out", str(out_file)])
            out, err = capsys.readouterr()
            assert code == 0, err
            for text in (out, err, out_file.read_text()):
                assert "\x1b" not in text and "\x07" not in text
            assert "odd" in out and "internal error" not in err
