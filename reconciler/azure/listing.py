"""Declared resources as plain data: the listing of what the manifests declare, and the diff of two listings.

Pure (no Pulumi): :mod:`reconciler.azure.declared` runs the program under Pulumi's mocks and fills a
:class:`Declaration`; the pull-request preview compares two of them. Secret values never enter a listing: inputs
marked secret, and any SecretToken credential (marked or not), are shown as :data:`MASK`.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.policy.resources import Violation
from reconciler.policy.rules import SECRET_TOKEN_KEY

MASK = "[secret]"


@dataclass(frozen=True)
class DeclaredResource:
    type: str
    name: str
    parent: str | None
    inputs: Mapping[str, Any]
    secret_outputs: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"type": self.type, "name": self.name, "parent": self.parent,
                                "inputs": self.inputs}
        if self.secret_outputs:
            data["secretOutputs"] = list(self.secret_outputs)
        return data


@dataclass
class Declaration:
    resources: list[DeclaredResource]
    violations: list[Violation] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps({
            "resources": [r.as_dict() for r in self.resources],
            "violations": [{"rule": v.rule.name, "enforcement": str(v.rule.enforcement), "resource": v.resource,
                            "message": v.message} for v in self.violations],
        }, indent=2, sort_keys=True)


@dataclass(frozen=True)
class Change:
    action: str  # "create" | "update" | "delete"
    type: str
    name: str
    keys: tuple[str, ...] = ()  # the inputs that differ, for an update


def compare(before: Declaration, after: Declaration) -> list[Change]:
    """What turning ``before`` into ``after`` declares: deletes first, then creates, then updates."""
    old = {(r.type, r.name): r for r in before.resources}
    new = {(r.type, r.name): r for r in after.resources}
    changes = [Change("delete", *key) for key in sorted(old.keys() - new.keys())]
    changes += [Change("create", *key) for key in sorted(new.keys() - old.keys())]
    for key in sorted(old.keys() & new.keys()):
        a, b = old[key].inputs, new[key].inputs
        differing = tuple(sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k)))
        if differing or old[key].parent != new[key].parent:
            changes.append(Change("update", *key, differing))
    return changes


def masked_inputs(inputs: Mapping[str, Any], secret_keys: Collection[str]) -> dict[str, Any]:
    """``inputs`` sorted by key, with the values of ``secret_keys`` and of SecretToken credentials masked."""
    return {key: MASK if key in secret_keys else _mask_tokens(inputs[key]) for key in sorted(inputs)}


def _mask_tokens(value: Any) -> Any:
    """Mask a SecretToken credential even where it was (wrongly) not marked secret: listings never leak it."""
    if isinstance(value, dict):
        if value.get("key") == SECRET_TOKEN_KEY and "value" in value:
            return {**value, "value": MASK}
        return {k: _mask_tokens(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [_mask_tokens(v) for v in value]
    return value
