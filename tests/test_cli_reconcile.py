"""plan and apply as a user runs them: formats, exit codes, saved plans, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from reconciler.cli import main
from tests.reconcile_helpers import ROOT, TOKEN, by_username, directory, post, user

ATEA = str(ROOT / "manifests" / "atea.yaml")


def run(capsys: Any, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_plan_json_has_the_contract_summary(url: str, tmp_path: Path, capsys: Any) -> None:
    code, out, _ = run(capsys, "plan", ATEA, "--directory", directory(tmp_path), "--target", url, "--format", "json")
    assert code == 0
    document = json.loads(out)
    [app] = document["apps"]
    assert app["name"] == "atea"
    assert {k: app["summary"][k] for k in ("create", "update", "disable", "delete")} == {
        "create": 10, "update": 0, "disable": 0, "delete": 0}
    assert TOKEN not in out


def test_detailed_exitcode_and_text_and_markdown(url: str, tmp_path: Path, capsys: Any) -> None:
    snapshot = directory(tmp_path)
    code, out, _ = run(capsys, "plan", ATEA, "--directory", snapshot, "--target", url, "--detailed-exitcode")
    assert code == 2 and "10 to create" in out
    assert run(capsys, "apply", ATEA, "--directory", snapshot, "--target", url)[0] == 0
    code, out, _ = run(capsys, "plan", ATEA, "--directory", snapshot, "--target", url, "--detailed-exitcode")
    assert code == 0 and "No changes" in out

    def rename(data: dict[str, Any]) -> None:
        user(data, "megan.bowen@contoso.com")["givenName"] = "Meg"

    code, out, _ = run(capsys, "plan", ATEA, "--directory", directory(tmp_path, rename, "r.json"), "--target", url,
                       "--format", "markdown")
    assert code == 0
    assert "| update | User | megan.bowen&#64;contoso.com | name.givenName | Megan | Meg |" in out
    assert "\x1b[" not in out


def test_saved_plan_applies_and_is_refused_when_the_target_moved(url: str, tmp_path: Path, capsys: Any) -> None:
    snapshot = directory(tmp_path)
    saved = tmp_path / "plan.json"
    assert run(capsys, "plan", ATEA, "--directory", snapshot, "--target", url, "--out", str(saved))[0] == 0
    post(url, "Users", {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "late@contoso.com"})
    code, _, err = run(capsys, "apply", ATEA, "--directory", snapshot, "--target", url, "--plan", str(saved))
    assert code == 1 and "the target has changed since the plan was made" in err
    assert set(by_username(url)) == {"late@contoso.com"}
    assert run(capsys, "plan", ATEA, "--directory", snapshot, "--target", url, "--out", str(saved))[0] == 0
    code, out, _ = run(capsys, "apply", ATEA, "--directory", snapshot, "--target", url, "--plan", str(saved))
    assert code == 0 and "converged" in out
    assert len(by_username(url)) == 11


def test_errors_are_one_line(url: str, tmp_path: Path, capsys: Any, monkeypatch: Any) -> None:
    code, _, err = run(capsys, "plan", ATEA, "--directory", str(tmp_path / "missing.json"), "--target", url)
    assert code == 1 and err.count("\n") == 1 and "missing.json" in err
    code, _, err = run(capsys, "plan", ATEA, "--directory", directory(tmp_path), "--target",
                       "http://127.0.0.1:9/v2")
    assert code == 1 and err.count("\n") == 1 and "127.0.0.1:9" not in err.split(":")[0]
    assert "Traceback" not in err
    monkeypatch.delenv("ATEA_SCIM_TOKEN")
    code, _, err = run(capsys, "plan", ATEA, "--directory", directory(tmp_path), "--target", url)
    assert code == 1 and "ATEA_SCIM_TOKEN is not set" in err
    monkeypatch.setenv("ATEA_SCIM_TOKEN", "wrong-token-value")
    code, _, err = run(capsys, "plan", ATEA, "--directory", directory(tmp_path), "--target", url)
    assert code == 1 and "401" in err and "wrong-token-value" not in err
    code, _, err = run(capsys, "apply", ATEA, "--plan", str(tmp_path / "nope.json"), "--target", url)
    assert code == 1 and "cannot read plan" in err


def test_target_override_needs_one_manifest(url: str, capsys: Any) -> None:
    code, _, err = run(capsys, "plan", "manifests", "--target", url)
    assert code == 1 and "--target names one target" in err


def test_one_unreachable_app_does_not_hide_the_others(url: str, tmp_path: Path, capsys: Any,
                                                      monkeypatch: Any) -> None:
    monkeypatch.setenv("WIKI_SCIM_TOKEN", TOKEN)
    atea_only = tmp_path / "apps"
    atea_only.mkdir()
    text = (ROOT / "manifests" / "atea.yaml").read_text().replace("https://scim.atea.example/scim/v2", url)
    # Snapshot paths stay inside the manifests' folder (there is no repository around tmp_path).
    (atea_only / "directory.json").write_text((ROOT / "examples" / "directory.json").read_text())
    (atea_only / "atea.yaml").write_text(text.replace("../examples/directory.json", "directory.json"))
    wiki = (ROOT / "manifests" / "wiki.yaml").read_text().replace("https://wiki.example.com/scim/v2",
                                                                   "http://127.0.0.1:9/v2")
    (atea_only / "wiki.yaml").write_text(wiki.replace("../examples/directory.json", "directory.json"))
    saved = tmp_path / "plan.json"
    code, out, err = run(capsys, "plan", str(atea_only), "--format", "json", "--out", str(saved))
    assert code == 1
    assert [app["name"] for app in json.loads(out)["apps"]] == ["atea"]
    state_line, error = err.splitlines()  # atea has no state yet and says so; wiki fails in one line
    assert state_line.startswith("atea: no provisioning state for this app and target yet")
    assert error.startswith("wiki (http://127.0.0.1:9/v2): ")
    assert not saved.exists()
