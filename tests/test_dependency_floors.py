"""Dependency floors stay above releases with known advisories, in pyproject.toml and in what is installed."""

from __future__ import annotations

import tomllib
from importlib.metadata import version

from packaging.requirements import Requirement
from packaging.version import Version

from tests.reconcile_helpers import ROOT

FLOORS = {"h11": "0.16", "httpcore": "1.0.9", "azure-identity": "1.16.1", "azure-storage-blob": "12.13.0",
          "azure-core": "1.38.0"}
BUILD_FLOORS = {"setuptools": "78.1.1"}


def floor(requirement: Requirement) -> Version | None:
    bounds = [Version(s.version) for s in requirement.specifier if s.operator in (">=", "==", "~=")]
    return max(bounds) if bounds else None


def test_runtime_and_build_floors_exclude_advised_releases() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    runtime = {Requirement(r).name: Requirement(r) for r in project["project"]["dependencies"]}
    build = {Requirement(r).name: Requirement(r) for r in project["build-system"]["requires"]}
    for name, minimum in FLOORS.items():
        assert name in runtime, f"{name} has no floor of its own"
        assert floor(runtime[name]) is not None and floor(runtime[name]) >= Version(minimum), name
        assert Version(version(name)) >= Version(minimum), f"installed {name} {version(name)} < {minimum}"
    for name, minimum in BUILD_FLOORS.items():
        assert floor(build[name]) is not None and floor(build[name]) >= Version(minimum), name
