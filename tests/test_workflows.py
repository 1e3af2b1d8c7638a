"""The GitHub workflows: actionlint (with shellcheck on their scripts) and the conventions they must keep."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from reconciler.cli import build_parser
from reconciler.preview.render import MARKER

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
BIN = Path(sys.executable).parent


def load(name: str) -> dict[str, Any]:
    return YAML(typ="safe").load((WORKFLOWS / name).read_text())


def test_actionlint_passes() -> None:
    actionlint = shutil.which("actionlint", path=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    assert actionlint, "actionlint is missing: install the dev extra (pip install -e '.[dev]')"
    files = sorted(str(p) for p in WORKFLOWS.glob("*.yml"))
    assert len(files) >= 3
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}  # its shellcheck, too
    answer = subprocess.run([actionlint, "-no-color", *files], capture_output=True, text=True, cwd=ROOT, env=env,
                            timeout=120)
    assert answer.returncode == 0, answer.stdout + answer.stderr


def test_applies_never_overlap() -> None:
    apply, drift = load("apply.yml"), load("drift.yml")
    assert apply["concurrency"] == drift["concurrency"] == {"group": "reconciler-apply",
                                                             "cancel-in-progress": False}
    assert load("preview.yml")["concurrency"]["cancel-in-progress"] is True  # an outdated preview may go


def test_triggers() -> None:
    assert "pull_request" in load("preview.yml")["on"]
    assert load("apply.yml")["on"]["push"]["branches"] == ["main"]
    assert "schedule" in load("drift.yml")["on"]
    assert "workflow_run" in load("preview-comment.yml")["on"]


def steps(name: str) -> list[dict[str, Any]]:
    return [s for job in load(name)["jobs"].values() for s in job["steps"]]


def commands(name: str) -> list[list[str]]:
    """``[command, flags...]`` of each reconciler call; flags collected in a bash ``args`` array count too."""
    found = []
    for step in steps(name):
        script = str(step.get("run", ""))
        extra = [f for line in script.splitlines() if re.match(r"\s*(if .*then )?args\+?=\(", line)
                 for f in re.findall(r"--[a-z-]+", line)]
        for line in script.splitlines():
            match = re.match(r"\s*reconciler ([a-z-]+)(.*)", line)
            if match:
                found.append([match.group(1), *re.findall(r"--[a-z-]+", match.group(2)), *extra])
    return found


@pytest.mark.parametrize("name", ["preview.yml", "apply.yml", "drift.yml"])
def test_every_reconciler_command_and_flag_exists(name: str) -> None:
    parser = build_parser()
    subcommands = next(a for a in parser._actions if a.dest == "command").choices
    used = commands(name)
    assert used
    for command, *flags in used:
        assert command in subcommands, command
        known = {o for a in subcommands[command]._actions for o in a.option_strings}
        assert set(flags) <= known, (command, set(flags) - known)


def test_the_pipelines_do_what_the_docs_say() -> None:
    assert ["preview", "--base", "--out", "--pulumi-output", "--mask-pii"] in commands("preview.yml")
    assert [c[0] for c in commands("apply.yml")] == ["validate", "plan", "apply"]
    assert ["plan", "--detailed-exitcode", "--out", "--format"] in commands("drift.yml")
    runs = "\n".join(str(s.get("run", "")) for s in steps("apply.yml"))
    assert runs.index("pulumi up") < runs.index("reconciler apply")
    assert "--policy-pack policies" in runs
    preview_runs = "\n".join(str(s.get("run", "")) for s in steps("preview.yml"))
    assert "pulumi preview" in preview_runs and "--diff" in preview_runs and "--policy-pack policies" in preview_runs
    for name in ("preview.yml", "preview-comment.yml"):
        scripts = "\n".join(str(s.get("with", {}).get("script", "")) for s in steps(name))
        assert MARKER in scripts and "updateComment" in scripts and "65000" in scripts


def test_secrets_reach_only_the_steps_that_need_them() -> None:
    for name in ("preview.yml", "apply.yml", "drift.yml", "preview-comment.yml"):
        workflow = load(name)
        assert "secrets." not in str(workflow.get("env", {})), name
        for job in workflow["jobs"].values():
            assert "secrets." not in str(job.get("env", {})), name
        for step in steps(name):
            assert "secrets." not in str(step.get("run", "")), (name, step.get("name"))
            assert "secrets." not in str(step.get("with", {})), (name, step.get("name"))
        for step in steps(name):
            checkout = str(step.get("uses", "")).startswith("actions/checkout")
            assert not checkout or step["with"]["persist-credentials"] is False, name
    assert not any(str(s.get("uses", "")).startswith("actions/checkout") for s in steps("preview-comment.yml"))
