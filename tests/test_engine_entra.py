"""One engine per app: ``plan``, ``apply`` and ``reconcile`` never drive the target of an ``engine: entra`` app.

Through the CLI, with the app's target a real embedded SCIM server behind a recording proxy and its directory a
loopback fake Graph: for such an app each command says one line, exits 0, and neither server sees a request; in a
folder with a reconciler app beside it, that app is planned and applied as always.
"""

from __future__ import annotations

import html
import json
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from reconciler.cli import main
from reconciler.run import entra_engine_line
from reconciler.target.faults import FaultProxy
from tests.fake_graph import FakeGraph, fake_graph
from tests.reconcile_helpers import ROOT, TOKEN, listing

ATEA = (ROOT / "manifests" / "atea.yaml").read_text()
ENTRA_APP = "atea-entra"
GRAPH_TOKEN = "graph-token-0123456789"
LINE = entra_engine_line(ENTRA_APP)


@dataclass
class Folder:
    path: Path
    entra: Path            # the engine: entra manifest
    reconciler: Path | None
    proxy: FaultProxy      # in front of the entra app's target
    graph: FakeGraph       # the entra app's directory

    def untouched(self) -> None:
        assert self.proxy.log == [], self.proxy.log
        assert sum(self.graph.counts.values()) == 0 and not self.graph.calls, (self.graph.counts, self.graph.calls)


def _entra_manifest(target: str, graph: str) -> str:
    text = ATEA.replace("name: atea\n", f"name: {ENTRA_APP}\n")
    text = text.replace("  scope: assigned\n", "  engine: entra\n  scope: assigned\n")
    text = text.replace("    snapshot: ../examples/directory.json\n",
                        f"    graph: {{endpoint: '{graph}', tokenEnv: ENTRA_GRAPH_TOKEN}}\n")
    text = text.replace("https://scim.atea.example/scim/v2", target)
    assert text.count(ENTRA_APP) == 1 and "engine: entra" in text and graph in text and target in text
    return text


def _reconciler_manifest(target: str) -> str:
    text = ATEA.replace("    snapshot: ../examples/directory.json\n", "    snapshot: directory.json\n")
    return text.replace("https://scim.atea.example/scim/v2", target)


@pytest.fixture
def graph(monkeypatch: Any) -> Iterator[FakeGraph]:
    monkeypatch.setenv("ENTRA_GRAPH_TOKEN", GRAPH_TOKEN)
    with fake_graph(GRAPH_TOKEN) as fake:
        yield fake


def _folder(tmp_path: Path, url: str, graph: FakeGraph, *, mixed: bool) -> Iterator[Folder]:
    folder = tmp_path / "manifests"
    folder.mkdir()
    with FaultProxy(url) as proxy:
        entra = folder / "entra.yaml"
        entra.write_text(_entra_manifest(proxy.url, graph.endpoint))
        reconciler = None
        if mixed:
            shutil.copy(ROOT / "examples" / "directory.json", folder / "directory.json")
            reconciler = folder / "atea.yaml"
            reconciler.write_text(_reconciler_manifest(url))
        yield Folder(folder, entra, reconciler, proxy, graph)


@pytest.fixture
def alone(tmp_path: Path, url: str, graph: FakeGraph) -> Iterator[Folder]:
    yield from _folder(tmp_path, url, graph, mixed=False)


@pytest.fixture
def mixed(tmp_path: Path, url: str, graph: FakeGraph) -> Iterator[Folder]:
    yield from _folder(tmp_path, url, graph, mixed=True)


def cli(capsys: Any, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def lines_naming(text: str, name: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(f"{name}:")]


@pytest.mark.parametrize("argv", [
    ("plan",), ("plan", "--format", "markdown"), ("plan", "--detailed-exitcode"), ("plan", "--incremental"),
    ("apply",), ("apply", "--incremental"), ("apply", "--only", "adele.vance@contoso.com"),
    ("reconcile", "--interval", "1m", "--once"),
])
def test_an_entra_app_is_never_driven(alone: Folder, capsys: Any, argv: tuple[str, ...]) -> None:
    code, out, err = cli(capsys, *argv, str(alone.entra))
    assert code == 0, (out, err)
    said = lines_naming(out + err, ENTRA_APP)
    assert len(said) == 1 and said[0].startswith(LINE), said
    alone.untouched()


def test_plan_line_is_on_stderr_and_json_lists_the_app_with_zero_counts(alone: Folder, capsys: Any) -> None:
    code, out, err = cli(capsys, "plan", str(alone.entra), "--format", "json", "--detailed-exitcode")
    assert code == 0  # nothing the reconciler would change
    assert lines_naming(err, ENTRA_APP) == [LINE]
    document = json.loads(out)
    assert document["apps"] == [{"name": ENTRA_APP, "engine": "entra",
                                 "summary": {"create": 0, "update": 0, "disable": 0, "delete": 0, "adopt": 0,
                                             "conflict": 0} | document["apps"][0]["summary"], "steps": []}]
    assert set(document["apps"][0]["summary"].values()) == {0}
    alone.untouched()


def test_the_same_line_as_apply_only(alone: Folder, capsys: Any) -> None:
    _, only, _ = cli(capsys, "apply", str(alone.entra), "--only", "adele.vance@contoso.com")
    _, applied, _ = cli(capsys, "apply", str(alone.entra))
    assert lines_naming(only, ENTRA_APP) == [entra_engine_line(ENTRA_APP, "use Entra's Provision on demand")]
    assert lines_naming(applied, ENTRA_APP) == [LINE]
    alone.untouched()


def test_a_mixed_folder_plans_and_applies_the_reconciler_app(mixed: Folder, url: str, capsys: Any) -> None:
    folder = str(mixed.path)
    code, out, err = cli(capsys, "plan", folder, "--format", "json", "--detailed-exitcode")
    assert code == 2, err  # atea has changes; the entra app adds none
    apps = {app["name"]: app for app in json.loads(out)["apps"]}
    assert apps[ENTRA_APP]["engine"] == "entra" and apps[ENTRA_APP]["steps"] == []
    assert apps["atea"]["summary"]["create"] > 0 and "engine" not in apps["atea"]
    assert lines_naming(err, ENTRA_APP) == [LINE]

    code, out, err = cli(capsys, "apply", folder)
    assert code == 0, err
    assert lines_naming(out, ENTRA_APP) == [LINE]
    assert any(line.endswith("converged") for line in lines_naming(out, "atea"))
    assert listing(url), "the reconciler app's target was provisioned"
    mixed.untouched()


def test_apply_a_saved_plan_of_a_mixed_folder(mixed: Folder, url: str, tmp_path: Path, capsys: Any) -> None:
    saved = tmp_path / "plan.json"
    code, _, err = cli(capsys, "plan", str(mixed.path), "--out", str(saved))
    assert code == 0, err
    assert [a.get("engine") for a in json.loads(saved.read_text())["apps"]] == [None, "entra"]
    code, out, err = cli(capsys, "apply", "--plan", str(saved))
    assert code == 0, err
    assert lines_naming(out, ENTRA_APP) == [LINE]
    assert listing(url)
    mixed.untouched()


def test_the_loop_with_metrics_cycles_only_the_reconciler_app(mixed: Folder, capsys: Any) -> None:
    code, out, err = cli(capsys, "reconcile", str(mixed.path), "--interval", "1m", "--once",
                         "--listen", "127.0.0.1:0")
    assert code == 0, (out, err)
    assert lines_naming(out, ENTRA_APP) == [LINE]
    assert "reconcile: atea every 1m" in out and f"{ENTRA_APP} every" not in out
    assert "/metrics" in out
    assert ENTRA_APP not in out.replace(LINE, "")  # in no cycle line
    mixed.untouched()


def test_a_loop_of_entra_apps_only_ends_at_once(alone: Folder, capsys: Any) -> None:
    code, out, _ = cli(capsys, "reconcile", str(alone.entra), "--interval", "1m")
    assert code == 0
    assert out.splitlines() == [LINE, "reconcile: no app for the reconciler to converge"]
    alone.untouched()


def test_the_token_is_not_needed_for_an_entra_app(alone: Folder, capsys: Any, monkeypatch: Any) -> None:
    monkeypatch.delenv("ATEA_SCIM_TOKEN", raising=False)
    code, _, err = cli(capsys, "apply", str(alone.entra))
    assert code == 0, err
    assert TOKEN not in err
    alone.untouched()


# --- preview: the Entra job's schema diff instead of the SCIM side ---

ENGINE = ("  scope: assigned\n", "  engine: entra\n  scope: assigned\n")
CONTRACTORS = "{attribute: department, operator: NOT EQUALS, value: Contractors}"


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: Any) -> Path:
    from tests.test_preview import make_repo

    repo = make_repo(tmp_path)
    monkeypatch.chdir(repo)
    return repo


@pytest.fixture
def proxy(url: str) -> Iterator[FaultProxy]:
    with FaultProxy(url) as watching:
        yield watching


def _preview(capsys: Any, proxy: FaultProxy) -> tuple[int, str, str]:
    from tests.test_preview import preview

    return preview(capsys, "--base", "main", "--target", proxy.url)


def _entra_block(comment: str) -> list[list[str]]:
    """The rows of the schema block, as cells (their HTML entities read back)."""
    start = comment.index("Entra's synchronization schema")
    rows = []
    for line in comment[start:].splitlines()[1:]:
        if line.startswith("</details>"):
            break
        if line.startswith("| ") and not line.startswith(("| object |", "|---")):
            rows.append([html.unescape(cell.strip()) for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]])
    return rows


def test_preview_shows_the_schema_diff_and_plans_no_target(repo: Path, proxy: FaultProxy, capsys: Any) -> None:
    from tests.test_preview import commit, edit, summary_row

    manifest = repo / "manifests" / "atea.yaml"
    edit(manifest, *ENGINE)
    commit(repo, "engine entra")
    edit(manifest, CONTRACTORS, "{attribute: department, operator: NOT EQUALS, value: Vendors}")
    edit(manifest, "{target: nickName, source: mailNickname}", "{target: nickName, source: displayName}")
    code, out, err = _preview(capsys, proxy)
    assert code == 0, err
    assert proxy.log == []  # the SCIM side of an engine entra app is Entra's: never planned
    row = summary_row(out)
    assert row[4:8] == ["-", "-", "-", "-"] and row[8] == "Entra's job: 3 schema change(s)"
    rows = _entra_block(out)
    assert ["User", "~ nickName: [mailNickname] -> [displayName]"] in rows, rows
    changes = [cells[1] for cells in rows]
    assert any("Contractors" in c and c.startswith("scope: -") for c in changes)
    assert any("Vendors" in c and c.startswith("scope: +") for c in changes)
    assert "SCIM side not evaluated" not in out and "SCIM side (" not in out


def test_preview_with_no_schema_change(repo: Path, proxy: FaultProxy, capsys: Any) -> None:
    from tests.test_preview import commit, edit, summary_row

    edit(repo / "manifests" / "atea.yaml", *ENGINE)
    commit(repo, "engine entra")
    code, out, _ = _preview(capsys, proxy)
    assert code == 0
    assert summary_row(out)[8] == "Entra's job: 0 schema change(s)"
    assert "No changes on either side." in out
    assert proxy.log == []


def test_preview_says_when_an_app_switches_to_entra(repo: Path, proxy: FaultProxy, capsys: Any) -> None:
    from tests.test_preview import edit, summary_row

    edit(repo / "manifests" / "atea.yaml", *ENGINE)
    code, out, err = _preview(capsys, proxy)
    assert code == 0, err
    assert "engine reconciler to entra" in summary_row(out)[8]
    assert "switches from the reconciler to Entra's own synchronization job" in out
    assert ["User", "+ object mapping (enabled)"] in _entra_block(out)
    assert proxy.log == []


def test_preview_says_when_an_app_switches_back(repo: Path, proxy: FaultProxy, capsys: Any) -> None:
    from tests.test_preview import commit, edit, summary_row

    manifest = repo / "manifests" / "atea.yaml"
    edit(manifest, *ENGINE)
    commit(repo, "engine entra")
    edit(manifest, "  engine: entra\n", "")
    code, out, _ = _preview(capsys, proxy)
    assert code == 0
    assert summary_row(out)[8].startswith("engine entra to reconciler")
    assert "switches from Entra's own synchronization job to the reconciler" in out
    assert "Entra's synchronization schema" not in out
    assert proxy.log, "back on the reconciler, its SCIM side is planned again (read-only)"
    assert all(method == "GET" for method, _, _ in proxy.log)


def test_preview_escapes_the_schema_lines(repo: Path, proxy: FaultProxy, capsys: Any) -> None:
    from tests.test_preview import commit, edit

    manifest = repo / "manifests" / "atea.yaml"
    edit(manifest, *ENGINE)
    commit(repo, "engine entra")
    edit(manifest, CONTRACTORS, "{attribute: department, operator: NOT EQUALS, value: 'x | <img src=y> **z** `w`'}")
    code, out, err = _preview(capsys, proxy)
    assert code == 0, err
    assert "<img" not in out and "**z**" not in out
    rows = _entra_block(out)
    assert rows and all(len(cells) == 2 for cells in rows), rows
