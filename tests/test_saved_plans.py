"""Saved plans stand alone: ``apply --plan FILE`` from any folder, against the plan's manifests and target.

Against the embedded target (``url``); the CLI is driven through ``reconciler.cli.main``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from reconciler.cli import main
from tests.reconcile_helpers import ROOT, by_username, directory

SNAPSHOT_LINES = "  directory:\n    snapshot: ../examples/directory.json\n"


def run(capsys: Any, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def work(tmp_path: Path, monkeypatch: Any) -> Path:
    """A folder with manifests/atea.yaml (directory from the command line) and dir.json; the current folder."""
    folder = tmp_path / "work"
    (folder / "manifests").mkdir(parents=True)
    text = (ROOT / "manifests" / "atea.yaml").read_text()
    assert SNAPSHOT_LINES in text
    (folder / "manifests" / "atea.yaml").write_text(text.replace(SNAPSHOT_LINES, ""))
    directory(folder)
    monkeypatch.chdir(folder)
    return folder


def saved_plan(capsys: Any, url: str, *extra: str) -> dict[str, Any]:
    """``plan manifests --directory dir.json --target URL --out plan.json`` in the current folder."""
    code, _, err = run(capsys, "plan", "manifests", "--directory", "dir.json", "--target", url, "--out", "plan.json",
                       *extra)
    assert code == 0, err
    return json.loads(Path("plan.json").read_text())  # type: ignore[no-any-return]


def elsewhere(tmp_path: Path, monkeypatch: Any) -> Path:
    other = tmp_path / "elsewhere"
    other.mkdir()
    monkeypatch.chdir(other)
    return other


def test_the_saved_plan_records_its_manifests_target_and_directory(work: Path, url: str, capsys: Any) -> None:
    document = saved_plan(capsys, url)
    manifest = work / "manifests" / "atea.yaml"
    assert document["format"] == 1 and [app["name"] for app in document["apps"]] == ["atea"]
    assert document["manifests"] == {
        "paths": [{"path": "manifests", "absolute": str(work / "manifests")}],
        "files": [{"path": "manifests/atea.yaml", "absolute": str(manifest),
                   "sha256": hashlib.sha256(manifest.read_bytes()).hexdigest()}]}
    assert document["target"] == url and document["apps"][0]["target"] == url
    assert document["directory"] == {"path": "dir.json", "absolute": str(work / "dir.json")}


def test_apply_plan_alone_from_another_folder_uses_the_plans_manifests_and_target(
        work: Path, url: str, tmp_path: Path, capsys: Any, monkeypatch: Any) -> None:
    saved_plan(capsys, url)
    elsewhere(tmp_path, monkeypatch)
    code, out, err = run(capsys, "apply", "--plan", str(work / "plan.json"))
    assert code == 0, err
    assert "atea: 10 create" in out and "converged" in out
    assert len(by_username(url)) == 10


def test_a_manifest_changed_since_the_plan_is_refused_in_one_line(work: Path, url: str, tmp_path: Path,
                                                                   capsys: Any, monkeypatch: Any) -> None:
    saved_plan(capsys, url)
    manifest = work / "manifests" / "atea.yaml"
    manifest.write_text(manifest.read_text().replace("deletionThreshold: 50", "deletionThreshold: 5000"))
    elsewhere(tmp_path, monkeypatch)
    code, out, err = run(capsys, "apply", "--plan", str(work / "plan.json"))
    assert code == 1 and out == ""
    assert err.splitlines() == ["manifests/atea.yaml changed since the plan was made; make a new plan"]
    assert by_username(url) == {}

    manifest.unlink()
    code, _, err = run(capsys, "apply", "--plan", str(work / "plan.json"))
    assert code == 1 and len(err.splitlines()) == 1
    assert err.startswith("manifests/atea.yaml: cannot read it since the plan was made") and "make a new plan" in err


def test_flags_that_contradict_the_plan_are_refused_and_flags_that_agree_are_not(
        work: Path, url: str, tmp_path: Path, capsys: Any) -> None:
    saved_plan(capsys, url)
    other = tmp_path / "other.yaml"
    other.write_text((work / "manifests" / "atea.yaml").read_text())
    refusals = {
        ("apply", str(other), "--plan", "plan.json"): "PATH",
        ("apply", "--plan", "plan.json", "--target", "http://127.0.0.1:9/scim/v2"): "--target",
        ("apply", "--plan", "plan.json", "--directory", str(ROOT / "examples" / "directory.json")): "--directory",
    }
    for argv, flag in refusals.items():
        code, out, err = run(capsys, *argv)
        assert code == 1 and out == "", argv
        [line] = err.splitlines()
        assert line.startswith(flag) and "plan.json" in line and "make a new plan" in line, line
    assert by_username(url) == {}

    # the same PATH (spelled absolute), target (with a trailing slash) and directory as the plan: applied
    code, out, err = run(capsys, "apply", str(work / "manifests"), "--plan", "plan.json", "--target", url + "/",
                         "--directory", "dir.json")
    assert code == 0, err
    assert len(by_username(url)) == 10


def test_an_older_saved_plan_applies_with_the_command_lines_paths(work: Path, url: str, tmp_path: Path,
                                                                 capsys: Any, monkeypatch: Any) -> None:
    document = saved_plan(capsys, url)
    for key in ("manifests", "target", "directory"):
        del document[key]
    old = work / "old.json"
    old.write_text(json.dumps(document))

    # as before: no PATH means manifests/ in the current folder ...
    elsewhere(tmp_path, monkeypatch)
    code, _, err = run(capsys, "apply", "--plan", str(old))
    assert code == 1 and err.splitlines() == ["manifests:1:1: no such file or folder"]
    # ... and the target is the command line's: the plan's own is named, never another written to
    monkeypatch.chdir(work)
    code, _, err = run(capsys, "apply", "--plan", str(old), "--directory", "dir.json")
    assert code == 1 and err.splitlines() == [
        f"atea: the saved plan was made against {url}, not https://scim.atea.example/scim/v2; pass --target {url}, "
        "or make a new plan"]
    code, out, err = run(capsys, "apply", "--plan", str(old), "--directory", "dir.json", "--target", url)
    assert code == 0 and "converged" in out, err
    assert len(by_username(url)) == 10
