"""What fails one step alone when a plan is applied (a saved plan is a file anyone can edit): the target's answer,
a malformed SCIM path, text that cannot be sent as UTF-8. Anything else (a bug) is not mistaken for a failed step.
Against the embedded target over loopback HTTP."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from reconciler.apply import ApplyReport, PlanExecutor
from reconciler.plan import Action, Plan, Step
from reconciler.scim.client import ScimClient
from reconciler.scim.paths import CORE_USER
from tests.reconcile_helpers import TOKEN, by_username, post


def create(name: str, **extra: Any) -> Step:
    body = {"schemas": [CORE_USER], "userName": name, "externalId": f"id-{name}", **extra}
    return Step(Action.CREATE, "User", name, source_id=f"id-{name}", body=body, matching=[["userName", name]])


def apply(url: str, steps: list[Step], **options: Any) -> ApplyReport:
    plan = Plan("atea", url, "disable", 10, "", steps=steps)

    async def go() -> ApplyReport:
        async with ScimClient(url, TOKEN) as client:
            return await PlanExecutor(client, plan, **options).run()

    return asyncio.run(go())


def test_text_that_cannot_be_sent_as_utf8_fails_that_step_alone(url: str) -> None:
    report = apply(url, [create("good@contoso.com"), create("bad@contoso.com", displayName="Bad\ud800")])
    assert report.done == {"create": 1}
    [failure] = report.failures
    assert failure.step.display == "bad@contoso.com" and "surrogates not allowed" in failure.reason
    assert set(by_username(url)) == {"good@contoso.com"}


def test_a_malformed_matching_path_fails_that_step_alone(url: str) -> None:
    post(url, "Users", {"schemas": [CORE_USER], "userName": "taken@contoso.com"})
    clash = create("taken@contoso.com")
    clash.matching = [["user name", "taken@contoso.com"]]  # the 409 is followed by a lookup on this path
    report = apply(url, [clash, create("good@contoso.com")])
    assert report.done == {"create": 1}
    [failure] = report.failures
    assert failure.step is clash and failure.reason.startswith("malformed SCIM path 'user name'")


def test_a_bug_is_not_reported_as_a_failed_step(url: str) -> None:
    post(url, "Users", {"schemas": [CORE_USER], "userName": "taken@contoso.com"})
    with pytest.raises(ValueError, match="unknown adopt policy 'sometimes'"):
        apply(url, [create("taken@contoso.com")], adopt="sometimes")
