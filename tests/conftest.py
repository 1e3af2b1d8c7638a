"""Fixtures shared by the tests that drive a real SCIM target over loopback HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

# hypothesis is loaded now: its plugin imports it at the session's end otherwise, where a run of only the Pulumi
# tests has left CPython's AST recursion counter off and the import fails.
import hypothesis  # noqa: F401
import pytest

from reconciler.target.serve import serving_target
from tests.azurite import azurite  # noqa: F401  (the session's Azurite: a fixture for the Azure Blob state tests)
from tests.reconcile_helpers import TOKEN


@pytest.fixture(autouse=True)
def private_state(tmp_path_factory: Any, monkeypatch: Any) -> Any:
    """Every test keeps its provisioning state (and its locks) in a folder of its own."""
    folder = tmp_path_factory.mktemp("state")
    monkeypatch.setenv("RECONCILER_STATE_DIR", str(folder))
    monkeypatch.delenv("RECONCILER_STATE", raising=False)
    return folder


@pytest.fixture
def url(monkeypatch: Any) -> Iterator[str]:
    """A fresh embedded target (scim2-server) for one test; the Atea manifest's token variable points at it."""
    monkeypatch.setenv("ATEA_SCIM_TOKEN", TOKEN)
    with serving_target(token=TOKEN) as server:
        yield server.url
