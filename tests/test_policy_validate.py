"""``reconciler validate`` applies the same policy rules to manifests, each problem at FILE:LINE:COL."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.errors import Problem
from reconciler.validation import validate_paths
from tests.azure_helpers import ROOT
from tests.manifest_samples import BASE_LINES

LINES = BASE_LINES


def manifest(tmp_path: Path, changes: dict[int, str | None] | None = None, extra: list[str] | None = None) -> Path:
    """The demo manifest with 1-based lines replaced (None deletes the line) and lines appended."""
    lines = [changes.get(n, line) if changes else line for n, line in enumerate(LINES, 1)]
    text = "\n".join(line for line in [*lines, *(extra or [])] if line is not None) + "\n"
    path = tmp_path / "demo.yaml"
    path.write_text(text)
    return path


def problems(path: Path) -> list[Problem]:
    return validate_paths([path])[1]


def test_examples_have_no_policy_problems_at_all() -> None:
    loaded, found = validate_paths([ROOT / "manifests"])
    assert len(loaded) == 2 and found == []


def test_the_demo_manifest_is_clean(tmp_path: Path) -> None:
    assert problems(manifest(tmp_path)) == []


def test_empty_owners_is_an_error_at_the_key(tmp_path: Path) -> None:
    path = manifest(tmp_path, {6: "owners: []"})
    assert [str(p) for p in problems(path)] == [
        f"{path}:6:1: owners: needs at least one owner (a user principal name or object id) [at-least-one-owner]"]


def test_missing_owners_is_an_error_at_the_top(tmp_path: Path) -> None:
    path = manifest(tmp_path, {6: None})
    (problem,) = problems(path)
    assert (problem.line, problem.column, problem.severity) == (1, 1, "error")
    assert problem.message.startswith("owners: needs at least one owner")


def test_matching_attribute_the_target_cannot_filter_on(tmp_path: Path) -> None:
    path = manifest(tmp_path, {18: "      - {target: nickName, source: mailNickname, matching: 1}"},
                    ["      - {target: userName, source: userPrincipalName}"])
    (problem,) = problems(path)
    assert (problem.line, problem.column) == (18, 18)
    assert "'nickName' is not one the target can filter on" in problem.message
    assert problem.message.endswith("[matching-attributes-filterable]")


def test_filterable_attributes_are_configurable_per_manifest(tmp_path: Path) -> None:
    path = manifest(tmp_path, {18: "      - {target: nickName, source: mailNickname, matching: 1}",
                               15: "  deletionThreshold: 10\n  filterableAttributes: [userName, nickName]"})
    assert problems(path) == []


def test_group_matching_attributes_are_checked_too(tmp_path: Path) -> None:
    path = manifest(tmp_path, extra=["  groups:", "    enabled: true", "    mappings:",
                                     "      - {target: externalId, source: objectId}",
                                     "      - {target: title, source: displayName, matching: 1}"])
    (problem,) = problems(path)
    assert (problem.line, problem.column) == (24, 18) and "'title'" in problem.message


def test_token_env_that_looks_like_a_token(tmp_path: Path) -> None:
    path = manifest(tmp_path, {14: "    tokenEnv: ghp4f9Kx2LmQ7rT1vZ8bN3cD"})
    (problem,) = problems(path)
    assert (problem.line, problem.column) == (14, 15)
    assert "looks like a token" in problem.message and "[secret-token-not-plaintext]" in problem.message


def test_assigned_scope_without_assignments_is_a_warning(tmp_path: Path) -> None:
    path = manifest(tmp_path, {9: "assignments: []", 10: None}, ["  scope: assigned"])
    (problem,) = problems(path)
    assert problem.severity == "warning" and not problem.is_error
    assert str(problem) == (f"{path}:19:10: warning: provisioning.scope: scope is 'assigned' but nobody is "
                            "assigned: no user or group would be provisioned [assigned-scope-has-assignments]")


@pytest.mark.parametrize(("changes", "expected"), [
    ({10: "  - {group: Demo Users, role: Default Access}"}, "10:31: assignments[0].role: assignments to the Default"),
    ({5: None}, "missing required key 'notificationEmail'"),
    ({15: None}, "missing required key 'deletionThreshold'"),
])
def test_rules_a_manifest_cannot_break_once_loaded_are_refused_by_validate(
        tmp_path: Path, changes: dict[int, str | None], expected: str) -> None:
    found = problems(manifest(tmp_path, changes))
    assert found and any(expected in str(p) for p in found), [str(p) for p in found]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "reconciler", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def test_cli_exit_codes_for_errors_and_warnings(tmp_path: Path) -> None:
    bad = manifest(tmp_path, {6: "owners: []"})
    result = _cli("validate", str(bad))
    assert result.returncode == 1
    assert result.stderr.splitlines()[0].startswith(f"{bad}:6:1: owners: needs at least one owner")
    assert "Traceback" not in result.stderr

    warned = manifest(tmp_path, {9: "assignments: []", 10: None})
    result = _cli("validate", str(warned))
    assert result.returncode == 0, result.stderr
    assert f"{warned}:" in result.stderr and ": warning: " in result.stderr
    assert f"ok  {warned}" in result.stdout
