"""A preview sends a token only where the base revision already sends it: never to a URL a pull request adds.

The pull request's new URL is a loopback server that records every request; the base revision's URL is the
embedded target (or that recorder, when the pull request changes only the token variable).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.preview.scim_side import AFTER_MERGE
from reconciler.report.escape import escape_markdown
from tests.hostile import HostileServer, Reply, serving
from tests.reconcile_helpers import TOKEN, directory
from tests.test_preview import commit, edit, make_repo, preview, summary_row

URL_LINE = "url: https://scim.atea.example/scim/v2"
TOKEN_LINE = "tokenEnv: ATEA_SCIM_TOKEN"
SNAPSHOT_LINE = "    snapshot: ../examples/directory.json\n"


@pytest.fixture
def trap() -> Iterator[HostileServer]:
    """The pull request's new target: it answers every request with 404 and records it."""
    with serving(lambda request: Reply(404, {"detail": "not here"})) as server:
        yield server


def repo_at(tmp_path: Path, monkeypatch: Any, base_url: str) -> Path:
    """The example repository whose base revision (``main``) targets ``base_url``."""
    repo = make_repo(tmp_path)
    edit(repo / "manifests" / "atea.yaml", URL_LINE, f"url: {base_url}")
    commit(repo, "target")
    monkeypatch.chdir(repo)
    return repo


def reason(comment: str, app: str = "atea") -> str:
    [line] = [x for x in comment.splitlines() if x.startswith(f"- `{app}`: SCIM side not evaluated:")]
    return line


def assert_untouched(server: HostileServer) -> None:
    assert not [r for r in server.requests if any(k.lower() == "authorization" for k in r.headers)]
    assert server.requests == []


def test_a_changed_target_url_is_never_sent_the_token(url: str, trap: HostileServer, tmp_path: Path,
                                                      capsys: Any, monkeypatch: Any) -> None:
    repo = repo_at(tmp_path, monkeypatch, url)
    edit(repo / "manifests" / "atea.yaml", f"url: {url}", f"url: {trap.url}")
    code, out, _ = preview(capsys, "--base", "main", "--directory", directory(tmp_path))
    assert code == 0
    assert_untouched(trap)
    assert summary_row(out)[4:] == ["-", "-", "-", "-", "SCIM not evaluated"]
    expected = f"the pull request changes provisioning.target.url; {AFTER_MERGE}"
    assert reason(out).endswith(escape_markdown(expected))
    assert AFTER_MERGE == ("the SCIM side is planned after merge, so the token is never sent to an unreviewed "
                           "URL")
    assert TOKEN not in out


def test_a_changed_token_variable_is_not_planned(trap: HostileServer, tmp_path: Path, capsys: Any,
                                                 monkeypatch: Any) -> None:
    monkeypatch.setenv("ATEA_SCIM_TOKEN", TOKEN)
    monkeypatch.setenv("OTHER_SCIM_TOKEN", "another-token-0123456789")
    repo = repo_at(tmp_path, monkeypatch, trap.url)  # the base already targets it: only the variable changes
    edit(repo / "manifests" / "atea.yaml", TOKEN_LINE, "tokenEnv: OTHER_SCIM_TOKEN")
    out = preview(capsys, "--base", "main")[1]
    assert_untouched(trap)
    assert "changes provisioning.target.tokenEnv;" in reason(out)
    assert "another-token" not in out


def test_a_new_app_waits_for_the_merge_and_the_others_are_planned(url: str, trap: HostileServer, tmp_path: Path,
                                                                  capsys: Any, monkeypatch: Any) -> None:
    repo = repo_at(tmp_path, monkeypatch, url)
    text = (repo / "manifests" / "atea.yaml").read_text()
    (repo / "manifests" / "atea2.yaml").write_text(text.replace("name: atea\n", "name: atea2\n")
                                                   .replace(f"url: {url}", f"url: {trap.url}"))
    out = preview(capsys, "--base", "main")[1]
    assert_untouched(trap)
    assert "the app is new in the pull request (the base revision has no target URL for it)" in reason(out, "atea2")
    assert summary_row(out, "atea")[4:] == ["10", "0", "0", "0", ""]  # planned against the embedded target


def test_an_unchanged_target_is_planned_against_the_base_url(url: str, tmp_path: Path, capsys: Any,
                                                             monkeypatch: Any) -> None:
    repo = repo_at(tmp_path, monkeypatch, url)
    edit(repo / "manifests" / "atea.yaml", "deletionThreshold: 50", "deletionThreshold: 40")
    out = preview(capsys, "--base", "main", "--directory", directory(tmp_path))[1]
    assert summary_row(out)[4:] == ["10", "0", "0", "0", ""]
    assert f"SCIM side ({escape_markdown(url)})" in out
    assert "SCIM side not evaluated" not in out


def test_an_explicit_target_is_the_users_choice(url: str, trap: HostileServer, tmp_path: Path, capsys: Any,
                                                monkeypatch: Any) -> None:
    repo = repo_at(tmp_path, monkeypatch, url)
    edit(repo / "manifests" / "atea.yaml", f"url: {url}", f"url: {trap.url}")
    out = preview(capsys, "--base", "main", "--target", url)[1]
    assert_untouched(trap)
    assert summary_row(out)[4:] == ["10", "0", "0", "0", ""]
    out = preview(capsys, "--base", "main", "--target", trap.url)[1]  # asked for by name: it is sent the token
    assert trap.requests and trap.requests[0].headers.get("Authorization") == f"Bearer {TOKEN}"
    assert "SCIM side not evaluated" in out and TOKEN not in out


def test_a_changed_graph_endpoint_is_not_sent_the_directory_token(url: str, trap: HostileServer, tmp_path: Path,
                                                                  capsys: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("GRAPH_TOKEN", "graph-token-0123456789")
    repo = repo_at(tmp_path, monkeypatch, url)
    edit(repo / "manifests" / "atea.yaml", SNAPSHOT_LINE,
         f"    graph: {{endpoint: '{trap.url}', tokenEnv: GRAPH_TOKEN}}\n")
    out = preview(capsys, "--base", "main")[1]
    assert_untouched(trap)
    assert "changes provisioning.directory.graph.endpoint and provisioning.directory.graph.tokenEnv;" in reason(out)


def test_without_the_base_revision_nothing_is_sent(trap: HostileServer, tmp_path: Path, capsys: Any,
                                                   monkeypatch: Any) -> None:
    monkeypatch.setenv("ATEA_SCIM_TOKEN", TOKEN)
    repo_at(tmp_path, monkeypatch, trap.url)
    out = preview(capsys, "--base", "not-fetched")[1]
    assert_untouched(trap)
    assert "the base revision's manifests could not be read, so its target URL is not known" in reason(out)
