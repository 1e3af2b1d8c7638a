"""The GitHub workflows: actionlint (with shellcheck on their scripts) and the conventions they must keep."""

from __future__ import annotations

import json
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


def test_applies_of_one_app_never_overlap_and_apps_run_in_parallel() -> None:
    apply, drift = load("apply.yml"), load("drift.yml")
    assert "concurrency" not in apply and "concurrency" not in drift   # no global group: apps run in parallel
    per_app = {"group": "reconciler-apply-${{ matrix.app }}", "cancel-in-progress": False}
    assert apply["jobs"]["scim"]["concurrency"] == drift["jobs"]["drift"]["concurrency"] == per_app
    assert apply["jobs"]["entra"]["concurrency"] == {"group": "reconciler-entra", "cancel-in-progress": False}
    for job, lister in ((apply["jobs"]["scim"], "entra"), (drift["jobs"]["drift"], "apps")):
        assert job["needs"] == lister and job["if"] == f"needs.{lister}.outputs.apps != '[]'"
        assert job["strategy"] == {"fail-fast": False,
                                   "matrix": {"include": f"${{{{ fromJSON(needs.{lister}.outputs.apps) }}}}"}}
        assert job["env"]["MANIFEST"] == "${{ matrix.manifest }}"
        assert job["env"]["RECONCILER_STATE"] == "${{ vars.RECONCILER_STATE }}"
        assert job["env"]["AZURE_STORAGE_ACCOUNT_URL"] == "${{ vars.AZURE_STORAGE_ACCOUNT_URL }}"
        assert any(str(s.get("uses", "")).startswith("azure/login") for s in job["steps"])   # OIDC, no secret
        uploads = [s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/upload-artifact")]
        assert len(uploads) == 1 and "${{ matrix.app }}" in uploads[0]["with"]["name"]
        plans = [line for s in job["steps"] for line in str(s.get("run", "")).splitlines()
                 if line.strip().startswith("reconciler plan")]
        assert plans and all(line.strip().startswith('reconciler plan "$MANIFEST" ') for line in plans)
    assert load("preview.yml")["concurrency"]["cancel-in-progress"] is True  # an outdated preview may go


@pytest.mark.parametrize("name", ["apply.yml", "drift.yml"])
def test_the_app_list_is_every_manifest_the_reconciler_finds(name: str, tmp_path: Path) -> None:
    """The listing step's own script, run as the runner runs it (bash, the project's Python on PATH)."""
    step = next(s for job in load(name)["jobs"].values() for s in job["steps"] if s.get("id") == "apps")
    output = tmp_path / "output"
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "GITHUB_OUTPUT": str(output)}
    answer = subprocess.run(["bash", "-e", "-c", step["run"]], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=60)
    assert answer.returncode == 0, answer.stderr
    key, _, value = output.read_text().strip().partition("=")
    assert key == "apps"
    assert json.loads(value) == [{"app": "atea", "manifest": "manifests/atea.yaml"},
                                 {"app": "wiki", "manifest": "manifests/wiki.yaml"}]
    if name == "apply.yml":   # Run workflow with one app
        output.write_text("")
        answer = subprocess.run(["bash", "-e", "-c", step["run"]], cwd=ROOT, env={**env, "ONLY_APP": "wiki"},
                                capture_output=True, text=True, timeout=60)
        assert answer.returncode == 0 and json.loads(output.read_text().partition("=")[2]) == [
            {"app": "wiki", "manifest": "manifests/wiki.yaml"}]
        output.write_text("")
        answer = subprocess.run(["bash", "-e", "-c", step["run"]], cwd=ROOT, env={**env, "ONLY_APP": "payroll"},
                                capture_output=True, text=True, timeout=60)
        assert answer.returncode != 0 and output.read_text() == ""
        assert answer.stderr.strip() == "app 'payroll': no manifest under manifests/ has that name"


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
    assert ["apply", "--plan", "--log", "--allow-deletes"] in commands("apply.yml")   # the reviewed plan
    assert ["apply", "--plan", "--log"] in commands("drift.yml")
    issue = "\n".join(str(s.get("with", {}).get("script", "")) for s in steps("drift.yml"))
    assert "const title = `Drift: ${process.env.APP}: " in issue and "labels: ['drift']" in issue   # one per app
    for name in ("apply.yml", "drift.yml"):
        assert "MASK_PII" in str(load(name)["env"]) and 'if [ "$MASK_PII" != "true" ]' in "\n".join(
            str(s.get("run", "")) for s in steps(name))
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
