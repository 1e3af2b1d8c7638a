"""`make demo` keeps working: the whole narrated cycle against the embedded target, as a user runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_demo_runs_the_full_cycle_and_cleans_up() -> None:
    result = subprocess.run([sys.executable, "-m", "reconciler.demo"], cwd=ROOT, capture_output=True, text=True,
                            timeout=300, env={"PATH": "/usr/bin:/bin", "COLUMNS": "160"})
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    out = result.stdout
    assert "10 to create" in out
    assert out.count("No changes. The target matches the desired state.") == 2
    assert "1 to create, 1 to update, 1 to disable" in out
    assert "Bowen-Hughes" in out and "nora.lindqvist@contoso.com" in out
    assert "Demo complete" in out
    assert "Traceback" not in result.stderr
