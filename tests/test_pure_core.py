"""The pure core imports no I/O library: each module, imported alone in a fresh interpreter, loads neither the
HTTP client (httpx) nor Pulumi nor the Azure SDK."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

PURE = ("reconciler.manifest", "reconciler.expressions", "reconciler.scope", "reconciler.match",
        "reconciler.desired", "reconciler.plan", "reconciler.report", "reconciler.scim.livestate",
        "reconciler.azure.listing", "reconciler.preview.model", "reconciler.preview.render",
        "reconciler.state.model", "reconciler.ledger", "reconciler.directory.changes",
        "reconciler.entra.schema", "reconciler.entra.managed", "reconciler.entra.imported")
EDGE = ("httpx", "pulumi", "pulumi_azuread", "azure")

_PROBE = """
import json, sys
import {module}
print(json.dumps(sorted({{name.split(".")[0] for name in sys.modules}})))
"""


def loaded_packages(module: str) -> set[str]:
    """The top-level packages in ``sys.modules`` after a fresh interpreter imports ``module`` and nothing else."""
    answer = subprocess.run([sys.executable, "-c", _PROBE.format(module=module)], cwd=ROOT, capture_output=True,
                            text=True, timeout=120, check=False)
    assert answer.returncode == 0, answer.stderr
    return set(json.loads(answer.stdout))


@pytest.mark.parametrize("module", PURE)
def test_pure_module_loads_no_io_library(module: str) -> None:
    assert loaded_packages(module) & set(EDGE) == set()


def test_the_probe_sees_an_edge_module() -> None:
    """The check can fail: the SCIM reader does load the HTTP client."""
    assert "httpx" in loaded_packages("reconciler.scim.live")
