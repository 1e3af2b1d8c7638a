"""Shared fixtures for the SCIM tests: a real scim2-server over loopback HTTP, and a client for it."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Iterator
from typing import Any, TypeVar

import pytest

from reconciler.scim.client import ScimClient
from reconciler.scim.paths import CORE_GROUP, CORE_USER, ENTERPRISE_USER
from reconciler.scim.retry import RetryPolicy
from reconciler.target.serve import TargetServer, serving_target

T = TypeVar("T")


def run(awaitable: Awaitable[T]) -> T:
    async def wrap() -> T:
        return await awaitable

    return asyncio.run(wrap())


class SleepRecorder:
    """Stands in for asyncio.sleep in the client: records each wait, waits not at all."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


FAST_RETRY = RetryPolicy(max_attempts=4, max_total_wait=30.0, base_delay=0.01, max_delay=0.05)


@pytest.fixture
def token() -> str:
    return "tok-" + secrets.token_hex(12)


@pytest.fixture
def target(token: str) -> Iterator[TargetServer]:
    with serving_target(token=token) as server:
        yield server


def make_client(url: str, token: str | None, **options: Any) -> ScimClient:
    options.setdefault("retry", FAST_RETRY)
    options.setdefault("timeout", 10.0)
    return ScimClient(url, token, **options)


def user(name: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"schemas": [CORE_USER], "userName": name}
    body.update(extra)
    return body


def full_user(name: str, *, email: str | None = None, given: str = "Adele", family: str = "Vance",
              employee: str | None = "1001", active: Any = True) -> dict[str, Any]:
    """A desired user shaped like the desired-state engine's output."""
    body: dict[str, Any] = {
        "schemas": [CORE_USER, ENTERPRISE_USER],
        "userName": name,
        "externalId": f"ext-{name}",
        "active": active,
        "name": {"givenName": given, "familyName": family, "formatted": f"{given} {family}"},
        "emails": [{"type": "work", "value": email or name}],
    }
    if employee is not None:
        body[ENTERPRISE_USER] = {"employeeNumber": employee}
    return body


def group(name: str, members: list[str] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"schemas": [CORE_GROUP], "displayName": name, "externalId": f"ext-{name}"}
    if members is not None:
        body["members"] = [{"value": m} for m in members]
    return body
