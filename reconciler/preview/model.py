"""What a preview found, as plain data: per app, the Azure side and the SCIM side (or why not), and the checks."""

from __future__ import annotations

from dataclasses import dataclass, field

from reconciler.errors import Problem
from reconciler.policy.resources import Violation
from reconciler.preview.azure_side import ResourceChange
from reconciler.preview.scim_side import ScimResult


@dataclass
class AppPreview:
    name: str
    in_head: bool = True
    azure: list[ResourceChange] | None = None  # None: the Azure side was not evaluated
    scim: ScimResult | None = None             # None: not attempted (the manifest is removed, or invalid)


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
