"""The docs stay true: the generated manifest reference is current, every expression function has an example whose
value is checked, links resolve, and every command line quoted in the docs parses."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from reconciler.cli import build_parser, main
from reconciler.expressions.functions import FUNCTIONS
from reconciler.reference import DOC, render_reference

ROOT = Path(__file__).resolve().parent.parent
DOCS = sorted((ROOT / "docs").glob("*.md"))
README = ROOT / "README.md"
EVAL = ["--directory", "examples/directory.json", "--user", "adele.vance@contoso.com",
        "--manifest", "manifests/atea.yaml"]
RANDOM = {"Guid()": r'"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"',
          "Now()": r'"\d{1,2}/\d{1,2}/\d{4} \d{1,2}:\d{2}:\d{2} [AP]M"',
          "RandomString(12, 2, 2, 2, 2)": r'"(?:[^"\\]|\\.){12}"'}


def test_manifest_reference_is_current() -> None:
    assert DOC.read_text() == render_reference(), "docs/manifest-reference.md is stale: python -m reconciler.reference"


def test_manifest_reference_covers_every_key() -> None:
    from reconciler.manifest.schema import manifest_schema

    text = DOC.read_text()
    schema = manifest_schema()
    for definition in [schema, *schema["$defs"].values()]:
        for key in definition.get("properties", {}):
            assert f"| `{key}` |" in text, key


def examples() -> dict[str, str]:
    text = (ROOT / "docs" / "expressions.md").read_text()
    section = text[text.index("## One example per function"):]
    rows = re.findall(r"^\| `(.+?)` \| (.+?) \|$", section, flags=re.M)
    return dict(rows)


def test_every_function_has_an_example() -> None:
    called = {re.match(r"\w+", expression).group(0) for expression in examples()}  # type: ignore[union-attr]
    assert set(FUNCTIONS) <= called, sorted(set(FUNCTIONS) - called)


@pytest.mark.parametrize("expression", sorted(examples()))
def test_each_example_gives_its_documented_value(expression: str, capsys: Any, monkeypatch: Any) -> None:
    monkeypatch.chdir(ROOT)
    assert main(["eval", expression, *EVAL]) == 0
    value = capsys.readouterr().out.strip()
    documented = examples()[expression]
    if expression in RANDOM:
        assert re.fullmatch(RANDOM[expression], value), value
    else:
        assert documented == f"`{value}`"
        json.loads(value)


def links(path: Path) -> list[str]:
    return re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", path.read_text())


@pytest.mark.parametrize("path", [README, *DOCS], ids=lambda p: p.name)
def test_relative_links_resolve(path: Path) -> None:
    for target in links(path):
        if re.match(r"[a-z]+:", target):
            continue
        assert (path.parent / target).exists(), f"{path.name}: {target}"


def test_readme_keeps_its_two_commands_and_links_every_doc() -> None:
    text = README.read_text()
    assert text.split("\n")[2:6] == [
        "```sh",
        "make demo    # creates .venv, installs the project, runs the main job on the embedded defaults",
        "make test    # creates .venv and node_modules, installs the project and Azurite, runs the linters and the "
        "tests",
        "```",
    ]
    linked = {Path(t).name for t in links(README)}
    assert {"getting-started.md", "manifest-reference.md", "expressions.md", "scoping.md", "pipelines.md",
            "operations.md", "comparison.md"} <= linked


def quoted_command_lines(path: Path) -> list[str]:
    """Command lines in code (blocks and spans): `reconciler <command> ...`, continuations joined."""
    text = path.read_text().replace("\\\n", " ")
    code = re.findall(r"```.*?```", text, flags=re.S) + re.findall(r"`[^`\n]+`", text)
    lines = [line for block in code for line in block.splitlines()]
    return [m.group(0) for line in lines for m in re.finditer(r"\breconciler [a-z][a-z-]*[^`#|]*", line)]


@pytest.mark.parametrize("path", [README, *DOCS], ids=lambda p: p.name)
def test_quoted_commands_and_flags_exist(path: Path) -> None:
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    for line in quoted_command_lines(path):
        name = line.split()[1]
        if name not in commands:
            continue  # prose such as "reconciler engine" inside a code span
        known = {o for a in commands[name]._actions for o in a.option_strings}
        flags = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", line))
        assert flags <= known, f"{path.name}: {line!r}: {sorted(flags - known)}"


def test_new_commands_are_documented() -> None:
    text = "\n".join(p.read_text() for p in DOCS)
    for command in ("reconciler preview", "reconciler reconcile", "--interval", "--mask-pii", "--lock-wait",
                    "--detailed-exitcode", "--allow-deletes"):
        assert command in text, command
