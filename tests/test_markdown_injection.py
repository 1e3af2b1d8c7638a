"""Directory values that try to be Markdown, HTML, mentions or terminal escapes stay text in every renderer.

The plan (``plan --format markdown``, appended to job summaries), the pull-request preview and the text plan are
rendered from a real run against the embedded target, with one user whose attributes carry the payloads.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from reconciler.cli import main
from reconciler.lock import STATE_DIR_ENV
from reconciler.report.escape import code_span, escape_markdown, strip_controls
from tests.reconcile_helpers import ROOT, converge, directory, user
from tests.test_preview import make_repo, preview

MEGAN = "megan.bowen@contoso.com"
SCRIPT = "</details><script>alert(1)</script>"
MENTION = "@org/team [x](http://evil.example)"
BREAKERS = "a|b `c` \x1b[31mred\nnext"
# displayName and department are not in the example's mappings: map them, so that they reach the target.
EXTRA_MAPPINGS = ("      - {target: nickName, source: mailNickname}\n",
                  "      - {target: nickName, source: mailNickname}\n"
                  "      - {target: displayName, source: displayName}\n"
                  "      - {target: title, source: department}\n")


def manifest_text() -> str:
    text = (ROOT / "manifests" / "atea.yaml").read_text()
    assert EXTRA_MAPPINGS[0] in text
    return text.replace(*EXTRA_MAPPINGS)


def hostile(data: dict[str, Any]) -> None:
    megan = user(data, MEGAN)
    megan["userPrincipalName"] = f"{MEGAN} {SCRIPT} {MENTION} {BREAKERS}"
    megan["displayName"] = SCRIPT
    megan["surname"] = MENTION
    megan["department"] = BREAKERS


@pytest.fixture(autouse=True)
def state(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv(STATE_DIR_ENV, str(tmp_path / "state"))


def assert_inert(markdown: str) -> None:
    assert "<script" not in markdown.lower()
    assert markdown.count("</details>") == markdown.count("<details")  # only the renderer's own blocks
    assert not re.search(r"@(?!&)", markdown.replace(MEGAN.replace("@", "&#64;"), ""))  # no raw @ but emails
    assert "@org" not in markdown and "&#64;org" not in markdown  # entities are decoded before mentions
    assert "](http" not in markdown and "[x]" not in markdown
    assert "\x1b" not in markdown and "\nnext" not in markdown
    assert "a|b" not in markdown and "`c`" not in markdown
    tables = tables_of(markdown)
    assert tables and all(len({line.count("|") for line in table}) == 1 for table in tables)  # no cell is split


def tables_of(markdown: str) -> list[list[str]]:
    """Runs of consecutive table lines (each table: its header, the rule and the rows)."""
    tables: list[list[str]] = []
    previous = False
    for line in markdown.splitlines():
        row = line.startswith("|")
        if row and not previous:
            tables.append([])
        if row:
            tables[-1].append(line)
        previous = row
    return tables


def plan_markdown(tmp_path: Path, url: str, capsys: Any, monkeypatch: Any) -> str:
    from reconciler.manifest import load_text

    file = tmp_path / "atea.yaml"  # outside the repository: the directory is given on the command line
    file.write_text(manifest_text().replace("  directory:\n    snapshot: ../examples/directory.json\n", ""))
    converge(load_text(file.read_text(), file=str(file)), url, directory(tmp_path), monkeypatch)
    code = main(["plan", str(file), "--directory", directory(tmp_path, hostile, "h.json"), "--target", url,
                 "--format", "markdown"])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def test_plan_markdown_escapes_every_directory_value(url: str, tmp_path: Path, capsys: Any,
                                                     monkeypatch: Any) -> None:
    out = plan_markdown(tmp_path, url, capsys, monkeypatch)
    assert_inert(out)
    assert f"| {escape_markdown(SCRIPT)} |" in out  # displayName, whole, as text
    assert "| title | Marketing | a&#124;b &#96;c&#96; red next |" in out
    assert "&#64;&#8203;org/team &#91;x&#93;(http://evil.example)" in out


def test_preview_comment_escapes_every_directory_value(tmp_path: Path, url: str, capsys: Any,
                                                       monkeypatch: Any) -> None:
    repo = make_repo(tmp_path)
    (repo / "manifests" / "atea.yaml").write_text(manifest_text())
    monkeypatch.chdir(repo)
    code, out, _ = preview(capsys, "--base", "HEAD", "--directory", directory(tmp_path, hostile, "h.json"),
                           "--target", url)
    assert code == 0
    assert_inert(out)
    assert escape_markdown(SCRIPT) in out and "red next" in out


def test_text_plan_has_no_terminal_escapes(url: str, tmp_path: Path, capsys: Any, monkeypatch: Any) -> None:
    def retitle(data: dict[str, Any]) -> None:
        user(data, MEGAN)["surname"] = "\x1b]0;owned\x07Bowen\x1b[2J\x9b1m\x7f"

    from reconciler.manifest import load_manifest

    converge(load_manifest(ROOT / "manifests" / "atea.yaml"), url, directory(tmp_path), monkeypatch)
    code = main(["plan", str(ROOT / "manifests" / "atea.yaml"), "--directory", directory(tmp_path, retitle, "t.json"),
                 "--target", url])
    out = capsys.readouterr().out
    assert code == 0
    assert "name.familyName" in out and "Bowen" in out
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", out) and "owned" not in out


def test_strip_controls_keeps_text_and_removes_whole_sequences() -> None:
    assert strip_controls("a\x1b[31mb\x1b[0m\tc\nd") == "ab\tc\nd"
    assert strip_controls("\x1b]0;title\x07x\x1b]8;;http://e\x1b\\y\x1bcz\x1b(B") == "xyz"
    assert strip_controls("\x00\x08\r\x7f\x85\x9b2Jok\x9f") == "ok"
    assert strip_controls("Zoë Ünal ✓") == "Zoë Ünal ✓"


def test_escape_markdown_and_code_span() -> None:
    assert escape_markdown("ATEA_SCIM_TOKEN and alice@contoso.com") == "ATEA_SCIM_TOKEN and alice&#64;contoso.com"
    assert escape_markdown("_x_ *y* ~z~ #12 org/repo#3") == \
        "&#95;x&#95; &#42;y&#42; &#126;z&#126; &#35;&#8203;12 org/repo&#35;&#8203;3"
    assert escape_markdown("- item") == "&#45; item" and escape_markdown("1. item") == "1&#46; item"
    assert escape_markdown("&lt;") == "&amp;lt;" and escape_markdown("$x$") == "&#36;x&#36;"
    assert code_span("a``b") == "```a``b```" and code_span("`x") == "`` `x ``"
