"""Fixtures shared by the tests that drive a real SCIM target over loopback HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from reconciler.target.serve import serving_target
from tests.reconcile_helpers import TOKEN


@pytest.fixture
def url(monkeypatch: Any) -> Iterator[str]:
    """A fresh embedded target (scim2-server) for one test; the Atea manifest's token variable points at it."""
    monkeypatch.setenv("ATEA_SCIM_TOKEN", TOKEN)
    with serving_target(token=TOKEN) as server:
        yield server.url
