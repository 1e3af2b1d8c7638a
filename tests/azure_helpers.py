"""Helpers for the Azure-side and policy tests: a mock tenant, manifests to vary, CrossGuard argument builders."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    StackValidationArgs,
)
from pulumi_policy.proxy import unknown_checking_proxy

from reconciler.azure.declared import Recorder, Registration
from reconciler.manifest import LoadedManifest, load_manifest, load_text

ROOT = Path(__file__).resolve().parent.parent
ATEA = ROOT / "manifests" / "atea.yaml"


def oid(name: str) -> str:
    """A stable fake object id for a directory object."""
    return str(uuid.uuid5(uuid.NAMESPACE_DNS, name.lower()))


USERS = {upn: oid(upn) for upn in ("platform-team@contoso.com", "adele.vance@contoso.com", "ops@contoso.com")}
GROUPS = {name: oid(name) for name in ("Atea Users", "Atea Admins", "Demo Users")}


class Tenant(Recorder):
    """Mocks that answer getUser/getGroup from a small directory, like a tenant would, and fail on unknowns."""

    def __init__(self) -> None:
        super().__init__(self._lookup)
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def _lookup(self, token: str, args: Mapping[str, Any]) -> Mapping[str, Any]:
        self.calls.append((token, dict(args)))
        if token.endswith("getUser"):
            for upn, object_id in USERS.items():
                if args.get("userPrincipalName", "").lower() == upn or args.get("objectId") == object_id:
                    return {"objectId": object_id, "id": object_id, "userPrincipalName": upn}
            raise LookupError(f"user not found: {dict(args)}")
        for name, object_id in GROUPS.items():
            if args.get("displayName") == name or args.get("objectId") == object_id:
                return {"objectId": object_id, "id": object_id, "displayName": name}
        raise LookupError(f"group not found: {dict(args)}")

    def one(self, type_suffix: str, name: str | None = None) -> Registration:
        found = self.of(type_suffix)
        if name is not None:
            found = [r for r in found if r.name == name]
        assert len(found) == 1, [r.name for r in found]
        return found[0]

    def of(self, type_suffix: str) -> list[Registration]:
        return [r for r in self.registrations if r.type.endswith(type_suffix)]


def atea() -> LoadedManifest:
    return load_manifest(ATEA)


def atea_text(*pairs: str) -> str:
    """The Atea example's text with exact pieces replaced: ``old, new, old, new, ...`` (each old occurs once)."""
    text = ATEA.read_text()
    for old, new in zip(pairs[::2], pairs[1::2], strict=True):
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return text


def atea_with(*pairs: str, file: str = "atea.yaml") -> LoadedManifest:
    """The Atea example with exact pieces of text replaced (see :func:`atea_text`), loaded."""
    return load_text(atea_text(*pairs), file)


ENTRA = ("  scope: assigned\n", "  engine: entra\n  scope: assigned\n")


# --- CrossGuard arguments, built the way the analyzer builds them (props behind the unknown-checking proxy) ---

def options(*, parent: str | None = None, secret_outputs: Sequence[str] = ()) -> PolicyResourceOptions:
    return PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), list(secret_outputs), parent)


def urn(type_: str, name: str, parent_type: str | None = None) -> str:
    qualified = f"{parent_type}${type_}" if parent_type else type_
    return f"urn:pulumi:dev::reconciler::{qualified}::{name}"


def resource_args(type_: str, props: Mapping[str, Any], *, name: str = "x", parent: str | None = None,
                  secret_outputs: Sequence[str] = ()) -> ResourceValidationArgs:
    return ResourceValidationArgs(type_, unknown_checking_proxy(dict(props)), urn(type_, name), name,
                                  options(parent=parent, secret_outputs=secret_outputs), None)


def policy_resource(type_: str, props: Mapping[str, Any], *, name: str,
                    parent: PolicyResource | None = None) -> PolicyResource:
    return PolicyResource(type_, unknown_checking_proxy(dict(props)), urn(type_, name), name,
                          options(parent=parent.urn if parent else None), None, parent, [], {})


def stack_args(resources: list[PolicyResource]) -> StackValidationArgs:
    return StackValidationArgs(resources)


class Reports:
    """A ``report_violation`` that keeps what it is told."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, str | None]] = []

    def __call__(self, message: str, urn: str | None = None) -> None:
        self.messages.append((message, urn))

    def __bool__(self) -> bool:
        return bool(self.messages)
