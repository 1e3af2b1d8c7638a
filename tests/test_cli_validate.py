"""The command line as a user meets it: exit codes, one line per problem on stderr, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from reconciler import __version__
from tests.manifest_samples import BASE, replace

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "reconciler", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


def test_version() -> None:
    result = run("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"reconciler {__version__}"


def test_validate_defaults_to_the_manifests_folder() -> None:
    result = run("validate")
    assert result.returncode == 0, result.stderr
    assert "manifests/atea.yaml" in result.stdout and "manifests/wiki.yaml" in result.stdout


def test_invalid_manifest_exits_1_with_positioned_lines(tmp_path: Path) -> None:
    (tmp_path / "ok.yaml").write_text(BASE)
    (tmp_path / "bad.yaml").write_text(replace(15, "  deletionThreshold: many").replace("name: demo", "name: other"))
    result = run("validate", str(tmp_path))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    first = result.stderr.splitlines()[0]
    assert first == f"{tmp_path / 'bad.yaml'}:15:22: provisioning.deletionThreshold: expected an integer"
    assert result.stderr.splitlines()[-1] == "1 problem(s) in 1 file(s)"


def test_hostile_inputs_never_print_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "binary.yaml").write_bytes(b"\x00\x01\x02")
    (tmp_path / "latin1.yaml").write_bytes("name: caf\xe9\n".encode("latin-1"))
    (tmp_path / "bomb.yaml").write_text("a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"a{i}: &a{i} [{', '.join(['*a' if i == 0 else f'*a{i - 1}'] * 10)}]\n" for i in range(9)))
    (tmp_path / "deep.yaml").write_text("a: " + "[" * 3000 + "]" * 3000 + "\n")
    (tmp_path / "list.yaml").write_text("- 1\n")
    result = run("validate", str(tmp_path), str(tmp_path / "missing.yaml"))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 7  # one per file, the missing path, and the count
    assert all(line.count(":") >= 3 for line in lines[:-1])


def test_schema_command_prints_the_committed_schema() -> None:
    result = run("schema")
    assert result.returncode == 0
    assert json.loads(result.stdout)["title"] == "Manifest"
    assert result.stdout == (ROOT / "manifest.schema.json").read_text()


def test_unknown_command_is_a_usage_error() -> None:
    result = run("frobnicate")
    assert result.returncode == 2 and "invalid choice" in result.stderr
