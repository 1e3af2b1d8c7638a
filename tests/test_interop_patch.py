"""PATCH and POST against servers that say no: the member-removal form each target accepts, learned once per run,
and definite refusals (a 4xx, a 501) reported with the server's words instead of as lost answers.

The servers are :class:`tests.interop_server.InteropTarget` (atomic PATCH, both removal forms understood) behind a
refusing front that answers some requests itself, as the servers named in each test do; the embedded target is
scim2-server.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from reconciler.cli import main
from reconciler.manifest import LoadedManifest
from reconciler.run import AppRun, RunOptions, RunResult
from reconciler.scim.client import (
    REMOVE_BY_FILTER,
    REMOVE_BY_VALUE_LIST,
    describe_operations,
    member_removals,
)
from tests.hostile import Reply, Request, serving
from tests.interop_server import ERROR, InteropTarget, Quirks
from tests.reconcile_helpers import ROOT, TOKEN, atea, directory, group, user, wiki

WIKI = str(ROOT / "manifests" / "wiki.yaml")
Refusal = Callable[[Request], "Reply | None"]


@contextmanager
def refusing(refuse: Refusal) -> Iterator[InteropTarget]:
    """An interop target whose front answers what ``refuse`` answers (nothing of it reaches the store)."""
    target = InteropTarget(Quirks())

    def app(request: Request) -> Reply | None:
        return refuse(request) or target(request)

    with serving(app) as server:
        target.server = server
        yield target


def error(status: int, detail: str, scim_type: str | None = None) -> Reply:
    body: dict[str, Any] = {"schemas": [ERROR], "status": str(status), "detail": detail}
    if scim_type:
        body["scimType"] = scim_type
    return Reply(status, body)


def operations(request: Request) -> list[dict[str, Any]]:
    body = request.json() if request.method == "PATCH" else None
    return list(body.get("Operations", [])) if isinstance(body, dict) else []


def removal_form(request: Request) -> str | None:
    """How a group PATCH removes members: by filtered path, by value list, or not at all."""
    for operation in operations(request):
        path = str(operation.get("path", ""))
        if str(operation.get("op")).lower() == "remove" and path.startswith("members["):
            return REMOVE_BY_FILTER
        if str(operation.get("op")).lower() == "remove" and path == "members":
            return REMOVE_BY_VALUE_LIST
    return None


def no_filtered_member_removal(request: Request) -> Reply | None:
    """As some servers do: a filtered-path member removal is not implemented (and, atomic, nothing is applied)."""
    if removal_form(request) == REMOVE_BY_FILTER:
        return error(501, "remove with a value filter is not implemented; send the members as a value list")
    return None


def run_app(loaded: LoadedManifest, url: str, snapshot: str, monkeypatch: Any) -> tuple[RunResult, str | None]:
    """Converge one app; the result and the member-removal form its client learned."""
    monkeypatch.setenv(loaded.manifest.provisioning.target.token_env, TOKEN)

    async def go() -> tuple[RunResult, str | None]:
        async with AppRun(loaded, RunOptions(directory=snapshot, target=url)) as app:
            result = await app.converge()
            return result, app.client.member_removal_form

    return asyncio.run(go())


def swap_members(data: dict[str, Any]) -> None:
    """Lee Gu moves from Engineering to Sales and Megan Bowen the other way: each group gains one, loses one."""
    lee, megan = user(data, "lee.gu@contoso.com")["id"], user(data, "megan.bowen@contoso.com")["id"]
    group(data, "Engineering")["members"].remove(lee)
    group(data, "Sales")["members"].remove(megan)
    group(data, "Engineering")["members"].append(megan)
    group(data, "Sales")["members"].append(lee)


def member_names(target: InteropTarget, name: str) -> set[str]:
    users = {u["id"]: u["userName"] for u in target.users.values()}
    return {users[m["value"]] for m in target.by("Group", "displayName", name).get("members", [])}


# -- the wire shapes ---------------------------------------------------------------------------------------------


def test_the_two_member_removal_forms() -> None:
    assert member_removals(["184", 'a"b']) == [{"op": "remove", "path": 'members[value eq "184"]'},
                                               {"op": "remove", "path": 'members[value eq "a\\"b"]'}]
    assert member_removals(["184", "185"], REMOVE_BY_VALUE_LIST) == [
        {"op": "remove", "path": "members", "value": [{"value": "184"}, {"value": "185"}]}]
    assert [len(op["value"]) for op in member_removals([str(n) for n in range(1001)], REMOVE_BY_VALUE_LIST)] == [
        500, 500, 1]
    with pytest.raises(ValueError, match="unknown member removal form"):
        member_removals(["1"], "by-magic")


def test_operations_are_named_by_op_and_attribute_once_each() -> None:
    assert describe_operations([{"op": "Replace", "path": "displayName", "value": "x"},
                                {"op": "remove", "path": 'members[value eq "1"]'},
                                {"op": "remove", "path": 'members[value eq "2"]'},
                                {"op": "replace", "path": 'emails[type eq "work"].value', "value": "a@b"},
                                {"op": "replace", "value": {"externalId": "e", "active": False}},
                                {"op": "add"}]) == (
        "replace of displayName", "remove of members", "replace of emails.value", "replace of externalId",
        "replace of active", "add without a path")


# -- item 2: the member-removal form -----------------------------------------------------------------------------


def test_a_server_without_filtered_removal_gets_the_value_list_form_and_keeps_the_adds(
        tmp_path: Path, monkeypatch: Any) -> None:
    with refusing(no_filtered_member_removal) as target:
        first, _ = run_app(wiki(), target.url, directory(tmp_path), monkeypatch)
        assert first.converged, [f.reason for f in first.failures]
        before = len(target.requests)

        result, form = run_app(wiki(), target.url, directory(tmp_path, swap_members, "swap.json"), monkeypatch)

        assert result.converged and len(result.rounds) == 1, [f.reason for f in result.failures]
        assert form == REMOVE_BY_VALUE_LIST
        patches = [r for r in target.requests[before:] if r.method == "PATCH"]
        assert [(r.route, removal_form(r)) for r in patches] == [
            (patches[0].route, REMOVE_BY_FILTER),      # the RFC form first: 501, nothing applied
            (patches[0].route, REMOVE_BY_VALUE_LIST),  # the same PATCH again, its add included
            (patches[2].route, REMOVE_BY_VALUE_LIST),  # the other group: the learned form at once
        ]
        assert patches[0].route != patches[2].route and all(r.route.startswith("/Groups/") for r in patches)
        assert all(any(op["op"] == "add" for op in operations(r)) for r in patches)
        assert "megan.bowen@contoso.com" in member_names(target, "Engineering")
        assert "lee.gu@contoso.com" not in member_names(target, "Engineering")
        assert "lee.gu@contoso.com" in member_names(target, "Sales")
        assert "megan.bowen@contoso.com" not in member_names(target, "Sales")


def test_a_server_without_the_value_list_form_is_answered_in_the_filtered_form(
        tmp_path: Path, monkeypatch: Any) -> None:
    def no_value_list(request: Request) -> Reply | None:
        if removal_form(request) == REMOVE_BY_VALUE_LIST:
            return error(400, "members: a remove takes a filtered path", "noTarget")
        return None

    with refusing(no_value_list) as target:
        run_app(wiki(), target.url, directory(tmp_path), monkeypatch)
        before = len(target.requests)
        result, form = run_app(wiki(), target.url, directory(tmp_path, swap_members, "swap.json"), monkeypatch)
        assert result.converged and form == REMOVE_BY_FILTER
        assert [removal_form(r) for r in target.requests[before:] if r.method == "PATCH"] == [REMOVE_BY_FILTER] * 2


def test_the_embedded_target_still_gets_the_filtered_form(url: str, tmp_path: Path, monkeypatch: Any) -> None:
    run_app(wiki(), url, directory(tmp_path), monkeypatch)
    monkeypatch.setenv("WIKI_SCIM_TOKEN", TOKEN)

    async def go() -> tuple[RunResult, str | None, int]:
        options = RunOptions(directory=directory(tmp_path, swap_members, "swap.json"), target=url)
        async with AppRun(wiki(), options) as app:
            result = await app.converge()
            return result, app.client.member_removal_form, app.client.requests["PATCH"]

    result, form, patches = asyncio.run(go())
    assert result.converged, [f.reason for f in result.failures]
    assert form == REMOVE_BY_FILTER
    assert patches == 2  # one per group, none refused


def test_a_patch_refused_in_both_forms_fails_once_naming_both(tmp_path: Path, monkeypatch: Any) -> None:
    def no_member_removal(request: Request) -> Reply | None:
        return error(501, "member removal is not implemented") if removal_form(request) else None

    with refusing(no_member_removal) as target:
        run_app(wiki(), target.url, directory(tmp_path), monkeypatch)
        before = len(target.requests)
        result, form = run_app(wiki(), target.url, directory(tmp_path, swap_members, "swap.json"), monkeypatch)
        assert not result.converged and form is None
        reasons = sorted(f.reason for f in result.failures)
        assert len(reasons) == 2
        for reason in reasons:
            assert "the target does not support one of add of members, remove of members (HTTP 501: member " \
                   "removal is not implemented); refused with members removed in the value-list form too " \
                   "(HTTP 501)" in reason
        # each group: its PATCH in each form once, in the first round only; the adds were never applied
        assert len([r for r in target.requests[before:] if r.method == "PATCH"]) == 4
        assert "megan.bowen@contoso.com" not in member_names(target, "Engineering")


# -- item 3: a definite "no" -------------------------------------------------------------------------------------


def test_a_replace_only_server_fails_the_rename_once_per_run_naming_the_operation(
        tmp_path: Path, monkeypatch: Any, capsys: Any) -> None:
    def no_rename(request: Request) -> Reply | None:
        if request.route.startswith("/Groups/") and any(
                str(op.get("op")).lower() == "replace" and op.get("path") == "displayName"
                for op in operations(request)):
            return error(501, "replace of displayName is not implemented")
        return None

    monkeypatch.setenv("RECONCILER_STATE_DIR", str(tmp_path / "state"))
    with refusing(no_rename) as target:
        run_app(wiki(), target.url, directory(tmp_path), monkeypatch)
        capsys.readouterr()
        engineering = target.by("Group", "displayName", "Engineering")["id"]
        target.groups[engineering]["displayName"] = "Engineering (old)"  # renamed by hand in the target
        before = len(target.requests)

        code = main(["apply", WIKI, "--directory", directory(tmp_path), "--target", target.url])

        out, err = capsys.readouterr()
        assert code == 1, out + err
        failed = [line for line in err.splitlines() if ": failed: " in line]
        assert failed == [f"wiki: failed: update Group Engineering: PATCH /Groups/{engineering}: the target does "
                          "not support replace of displayName (HTTP 501: replace of displayName is not implemented)"]
        assert "NOT converged" in out and "1 round(s)" in out
        assert "answer was lost" not in out + err and "may have been applied" not in out + err
        assert [r.route for r in target.requests[before:] if r.method == "PATCH"] == [f"/Groups/{engineering}"]
        assert target.groups[engineering]["displayName"] == "Engineering (old)"


@pytest.mark.parametrize("status", [400, 501])
def test_a_refused_create_is_reported_with_the_server_detail_and_not_looked_up(
        status: int, tmp_path: Path, monkeypatch: Any) -> None:
    def no_alex(request: Request) -> Reply | None:
        body = request.json() if request.method == "POST" else None
        if isinstance(body, dict) and body.get("userName") == "alex.wilber@contoso.com":
            # the detail echoes the request's token, as careless servers do: it must not reach the output
            return error(status, f"department is not implemented ({request.headers.get('Authorization')})")
        return None

    with refusing(no_alex) as target:
        result, _ = run_app(atea(), target.url, directory(tmp_path), monkeypatch)

        assert not result.converged and len(result.rounds) == 1
        [failure] = result.failures
        assert failure.step.display == "alex.wilber@contoso.com" and failure.refused
        assert f"POST /Users: HTTP {status}: department is not implemented (Bearer " in failure.reason
        assert TOKEN not in failure.reason and "answer was lost" not in failure.reason
        posts = [r for r in target.requests if r.method == "POST" and b"alex.wilber" in r.body]
        assert len(posts) == 1  # not resent in a later round
        assert not [r for r in target.requests if "filter" in r.query]  # no lookup after a definite refusal
        assert "alex.wilber@contoso.com" not in {u["userName"] for u in target.users.values()}
        assert len(target.users) == 9


def test_a_stateful_refusal_is_still_retried_in_the_next_round(tmp_path: Path, monkeypatch: Any) -> None:
    refused: list[str] = []

    def locked_once(request: Request) -> Reply | None:
        if request.method == "POST" and b"alex.wilber" in request.body and not refused:
            refused.append(request.path)
            return error(423, "the account store is being synchronised; try again later")
        return None

    with refusing(locked_once) as target:
        result, _ = run_app(atea(), target.url, directory(tmp_path), monkeypatch)
        assert result.converged and len(result.rounds) == 2, [f.reason for f in result.failures]
        assert not result.rounds[0].failures[0].refused
        assert json.loads([r for r in target.requests if r.method == "POST"][-1].body)["userName"] == (
            "alex.wilber@contoso.com")
