"""What a preview found, as plain data: per app, the Azure side and the SCIM side (or why not), and the checks.

Pure: :mod:`reconciler.preview.azure_side` and :mod:`reconciler.preview.scim_side` fill these types, and
:mod:`reconciler.preview.render` shows them without importing Pulumi, HTTP or the run engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from reconciler.errors import Problem
from reconciler.plan import Plan
from reconciler.policy.resources import Violation


@dataclass(frozen=True)
class InputChange:
    key: str
    old: Any
    new: Any


@dataclass(frozen=True)
class ResourceChange:
    action: str  # add | change | remove
    type: str
    name: str
    app: str
    inputs: tuple[InputChange, ...] = ()

    @property
    def short_type(self) -> str:
        return self.type.rsplit(":", 1)[-1]


@dataclass
class AzureSide:
    changes: list[ResourceChange] = field(default_factory=list)

    def of(self, app: str) -> list[ResourceChange]:
        return [c for c in self.changes if c.app == app]

    @property
    def apps(self) -> set[str]:
        return {c.app for c in self.changes}


@dataclass
class ScimResult:
    plan: Plan | None = None
    reason: str = ""  # why there is no plan


@dataclass
class EntraSide:
    """An ``engine: entra`` app's side instead of SCIM: how its job's synchronization schema (the managed part the
    manifest compiles to) changes from the base revision, and where Entra's job will read the manifest otherwise."""

    changes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    reason: str = ""  # why there is no diff, "" when there is one


@dataclass
class AppPreview:
    name: str
    in_head: bool = True
    azure: list[ResourceChange] | None = None  # None: the Azure side was not evaluated
    scim: ScimResult | None = None             # None: not attempted (manifest removed or invalid, engine entra)
    entra: EntraSide | None = None             # engine entra in the working tree: Entra's job provisions it
    switched: tuple[str, str] | None = None    # (base engine, head engine) when the change switches the app's engine


@dataclass
class Preview:
    base_label: str = ""
    azure_reason: str = ""                      # why the Azure side was not evaluated, "" when it was
    valid: bool = True
    apps: list[AppPreview] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    violations: list[Violation] = field(default_factory=list)
    attachments: list[tuple[str, str]] = field(default_factory=list)  # (title, text), e.g. pulumi preview --diff

    @property
    def blocking(self) -> bool:
        """Invalid manifests or a mandatory policy finding: a pipeline should not merge this."""
        return not self.valid or any(v.rule.mandatory for v in self.violations)
