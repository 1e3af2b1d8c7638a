"""``plan --format markdown`` fits where it goes: the preview's size budget, summary first, a note of what was cut."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from reconciler.cli import main
from reconciler.report.budget import LIMIT, Block, fit
from tests.reconcile_helpers import ROOT, directory, many_users

ATEA = str(ROOT / "manifests" / "atea.yaml")
TRIMMED = re.compile(r"\*\*Trimmed:\*\* ([\d,]+) of ([\d,]+) detail row\(s\) \(([\d,]+) characters\) not shown")


def run(capsys: Any, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def numbers(match: re.Match[str]) -> list[int]:
    return [int(group.replace(",", "")) for group in match.groups()]


def test_a_2000_user_initial_plan_stays_under_the_limit_and_says_how_much_was_cut(url: str, tmp_path: Path,
                                                                                 capsys: Any) -> None:
    snapshot = directory(tmp_path, lambda data: many_users(data, 2000), "big.json")
    code, out, err = run(capsys, "plan", ATEA, "--directory", snapshot, "--target", url, "--format", "markdown")
    assert code == 0, err
    assert len(out) <= LIMIT
    assert out.startswith("### `atea`: 2010 to create\n")
    assert "| 2010 | 0 | 0 | 0 | 0 | 0 |" in out  # the summary is whole
    match = TRIMMED.search(out)
    assert match, out[-600:]
    cut, total, chars = numbers(match)
    shown = sum(1 for line in out.splitlines() if line.startswith("| create | User |"))
    assert total == 2010 and 0 < cut < total and shown + cut == total and chars > LIMIT
    assert "see the JSON plan" in out[match.start():]
    assert out.count("<details") == out.count("</details>")

    code, small, _ = run(capsys, "plan", ATEA, "--directory", snapshot, "--target", url, "--format", "markdown",
                         "--max-chars", "2000")
    assert code == 0 and len(small) <= 2000 and "| 2010 | 0 | 0 | 0 | 0 | 0 |" in small
    match = TRIMMED.search(small)
    assert match and numbers(match)[0] > cut


def test_a_small_plan_is_whole_and_has_no_note(url: str, tmp_path: Path, capsys: Any) -> None:
    code, out, _ = run(capsys, "plan", ATEA, "--directory", directory(tmp_path), "--target", url,
                       "--format", "markdown")
    assert code == 0
    assert "**Trimmed:**" not in out
    assert sum(1 for line in out.splitlines() if line.startswith("| create | User |")) == 10


def test_max_chars_is_bounded_and_only_for_markdown(capsys: Any) -> None:
    for value in ("1999", "65001"):
        code, _, err = run(capsys, "plan", ATEA, "--format", "markdown", "--max-chars", value)
        assert code == 1 and err.splitlines() == ["plan: --max-chars must be between 2000 and 65000"]
    code, _, err = run(capsys, "plan", ATEA, "--format", "json", "--max-chars", "5000")
    assert code == 1 and err.splitlines() == ["plan: --max-chars is for --format markdown"]


def test_the_budgeted_writer_never_trims_the_summary_and_closes_every_block() -> None:
    summary = "### summary\n\n| a |\n|---:|\n| 1 |\n\n"
    blocks = [Block(f"block {n}", ["| x |", "|---|"], [f"| row {n}.{i} {'y' * 40} |" for i in range(100)])
              for n in range(5)]
    out = fit(summary, blocks, limit=3_000, rest="for every row, see elsewhere")
    assert out.startswith(summary) and len(out) <= 3_000
    assert out.count("<details>") == out.count("</details>") >= 1
    match = TRIMMED.search(out)
    assert match
    cut, total, _ = numbers(match)
    assert total == 500 and cut == 500 - sum(1 for line in out.splitlines() if line.startswith("| row "))
    assert out.rstrip().endswith("for every row, see elsewhere.")
    assert fit(summary, blocks[:1], limit=65_000, rest="x") == summary + blocks[0].opening() + "".join(
        f"{row}\n" for row in blocks[0].rows) + blocks[0].closing()
