"""Multi-valued attributes converge: elements are compared by their identity (RFC 7643), not by position or type.

Roles (from AppRoleAssignmentsComplex) all share one ``type``; they are told apart by ``value``. Emails and phone
numbers are told apart by ``type``; ``primary`` is honoured. The integration tests run against the embedded target
(scim2-server) on loopback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from reconciler.manifest import LoadedManifest
from reconciler.scim.normalize import diff_resource, merged_elements, patch_operations
from reconciler.scim.paths import CORE_USER
from reconciler.target.serve import TargetServer
from tests import scim_helpers
from tests.reconcile_helpers import atea, converge, directory, listing, plan
from tests.scim_helpers import make_client, run

token = scim_helpers.token
target = scim_helpers.target

ADELE = "adele.vance@contoso.com"
ROLE = "WindowsAzureActiveDirectoryRole"
NICKNAME = "      - {target: nickName, source: mailNickname}"
ADMIN_ROLE = "  - {value: Admin, displayName: Administrator, description: Full access}"
ADELE_ADMIN = "  - {user: adele.vance@contoso.com, role: Admin}"


def manifest(function: str = "AppRoleAssignmentsComplex", extra_roles: tuple[str, ...] = ()) -> LoadedManifest:
    """Atea with ``roles`` mapped from ``function``; Adele (Admin already) is also assigned ``extra_roles``, and
    the app declares an Auditor role."""
    assignments = "".join(f"\n  - {{user: {ADELE}, role: {role}}}" for role in extra_roles)
    return atea(**{
        NICKNAME: f"{NICKNAME}\n      - {{target: roles, expression: '{function}([appRoleAssignments])'}}",
        ADMIN_ROLE: f"{ADMIN_ROLE}\n  - {{value: Auditor, displayName: Auditor, description: Reads the audit log}}",
        ADELE_ADMIN: ADELE_ADMIN + assignments,
    })


def roles_of(url: str, user_name: str = ADELE) -> list[dict[str, Any]]:
    found = [u for u in listing(url) if u["userName"].lower() == user_name]
    assert len(found) == 1, found
    return list(found[0].get("roles") or [])


def role_values(url: str, user_name: str = ADELE) -> list[str]:
    return sorted(r["value"] for r in roles_of(url, user_name))


# -- against the embedded target ---------------------------------------------------------------------------------


@pytest.mark.parametrize("function", ["AppRoleAssignmentsComplex", "AssertiveAppRoleAssignmentsComplex"])
@pytest.mark.parametrize("extra", [(), ("User",), ("User", "Auditor")], ids=["1 role", "2 roles", "3 roles"])
def test_users_with_several_roles_converge_in_one_apply(url: str, tmp_path: Path, monkeypatch: Any,
                                                         function: str, extra: tuple[str, ...]) -> None:
    loaded, snapshot = manifest(function, extra), directory(tmp_path)
    result = converge(loaded, url, snapshot, monkeypatch)
    assert result.converged and len(result.rounds) == 1
    assert plan(loaded, url, snapshot, monkeypatch).empty
    assert role_values(url) == sorted(["Admin", *extra])
    displays = {"Admin": "Administrator", "User": "User", "Auditor": "Auditor"}
    assert {r["value"]: r.get("display") for r in roles_of(url)} == {v: displays[v] for v in ["Admin", *extra]}
    assert all(r.get("type") == ROLE for r in roles_of(url))
    assert role_values(url, "alex.wilber@contoso.com") == ["User"]  # a member of Atea Users only


@pytest.mark.parametrize(("function", "left"), [("AssertiveAppRoleAssignmentsComplex", ["Admin"]),
                                                ("AppRoleAssignmentsComplex", ["Admin", "User"])])
def test_a_removed_role_goes_with_the_assertive_function_and_stays_with_the_add_only_one(
        url: str, tmp_path: Path, monkeypatch: Any, function: str, left: list[str]) -> None:
    snapshot = directory(tmp_path)
    assert converge(manifest(function, ("User",)), url, snapshot, monkeypatch).converged
    assert role_values(url) == ["Admin", "User"]
    after = manifest(function)  # the User assignment is gone
    planned = plan(after, url, snapshot, monkeypatch)
    if function.startswith("Assertive"):
        assert [(s.display, [c.path for c in s.changes]) for s in planned.steps] == [
            (ADELE, ['roles[value eq "User"]'])]
    else:
        assert planned.empty
    result = converge(after, url, snapshot, monkeypatch)
    assert result.converged
    assert plan(after, url, snapshot, monkeypatch).empty
    assert role_values(url) == left


# -- the normalizer, pure ------------------------------------------------------------------------------------------


def role(value: str, display: str | None = None) -> dict[str, Any]:
    return {"primary": False, "type": ROLE, "display": display or value, "value": value}


def test_roles_are_matched_by_value_not_by_their_shared_type() -> None:
    live = {"id": "1", "roles": [{"value": "User", "type": ROLE, "display": "User"},
                                 {"value": "Admin", "type": ROLE, "display": "Administrator"}]}
    assert diff_resource({"roles": [role("Admin", "Administrator"), role("User")]}, live) == []
    ops = patch_operations(diff_resource({"roles": [role("Admin"), role("User"), role("Auditor")]}, live))
    assert ops == [{"op": "add", "path": "roles", "value": [role("Auditor")]}]


def test_a_role_the_desired_list_lacks_is_removed_by_value() -> None:
    live = {"id": "1", "roles": [{"value": "Admin", "type": ROLE}, {"value": "User", "type": ROLE}]}
    assert patch_operations(diff_resource({"roles": [role("Admin")]}, live)) == [
        {"op": "remove", "path": 'roles[value eq "User"]'}]


def test_a_changed_sub_attribute_of_a_role_is_addressed_by_its_value() -> None:
    live = {"id": "1", "roles": [{"value": "Admin", "type": "Other"}, {"value": "User", "type": ROLE}]}
    assert patch_operations(diff_resource({"roles": [role("Admin"), role("User")]}, live)) == [
        {"op": "replace", "path": 'roles[value eq "Admin"].type', "value": ROLE}]


def test_emails_are_matched_by_type_and_an_omitted_one_is_kept() -> None:
    live = {"id": "1", "emails": [{"type": "home", "value": "h@x.org"}, {"type": "Work", "value": "old@x.org"}]}
    ops = patch_operations(diff_resource({"emails": [{"type": "work", "value": "new@x.org"}]}, live))
    assert ops == [{"op": "replace", "path": 'emails[type eq "work"].value', "value": "new@x.org"}]


def test_an_email_without_type_is_matched_by_value() -> None:
    live = {"id": "1", "emails": [{"type": "work", "value": "A@x.org"}]}
    assert diff_resource({"emails": [{"value": "a@x.org"}]}, live) == []
    assert patch_operations(diff_resource({"emails": [{"value": "b@x.org"}]}, live)) == [
        {"op": "add", "path": "emails", "value": [{"value": "b@x.org"}]}]


def test_the_primary_element_is_made_primary_and_the_other_primary_demoted() -> None:
    live = {"id": "1", "emails": [{"type": "home", "value": "h@x.org", "primary": True},
                                  {"type": "work", "value": "w@x.org"}]}
    want = {"emails": [{"type": "work", "value": "w@x.org", "primary": True}]}
    assert patch_operations(diff_resource(want, live)) == [
        {"op": "replace", "path": 'emails[type eq "home"].primary', "value": False},
        {"op": "replace", "path": 'emails[type eq "work"].primary', "value": True},
    ]
    converged = {"id": "1", "emails": [{"type": "home", "value": "h@x.org"},
                                       {"type": "work", "value": "w@x.org", "primary": "True"}]}
    assert diff_resource(want, converged) == []
    # primary: false is not enforced: a server may choose its own primary element
    assert diff_resource({"emails": [{"type": "home", "value": "h@x.org", "primary": False}]}, live) == []


def test_a_primary_element_without_type_is_compared_with_the_live_primary() -> None:
    # emails[primary eq "True"].value: whichever email is primary, not a new one beside it
    live = {"id": "1", "emails": [{"type": "home", "value": "h@x.org"},
                                  {"type": "work", "value": "old@x.org", "primary": True}]}
    assert patch_operations(diff_resource({"emails": [{"primary": True, "value": "new@x.org"}]}, live)) == [
        {"op": "replace", "path": 'emails[type eq "work"].value', "value": "new@x.org"}]


def test_a_new_primary_role_demotes_the_old_one() -> None:
    live = {"id": "1", "roles": [{"value": "User", "primary": True}]}
    want = {"roles": [{"value": "User"}, {"value": "Admin", "primary": True}]}
    assert patch_operations(diff_resource(want, live)) == [
        {"op": "replace", "path": 'roles[value eq "User"].primary', "value": False},
        {"op": "add", "path": "roles", "value": [{"value": "Admin", "primary": True}]},
    ]


def test_elements_of_equal_identity_merge_and_at_most_one_is_primary() -> None:
    merged = merged_elements("roles", [{"primary": True, "value": "Admin"}, role("Admin", "Administrator"),
                                       role("User")])
    assert merged == [{"primary": True, "value": "Admin", "type": ROLE, "display": "Administrator"}, role("User")]
    emails = merged_elements("emails", [{"type": "work", "value": "w", "primary": True},
                                        {"type": "home", "value": "h", "primary": "True"}])
    assert [e["primary"] for e in emails] == [True, False]


def test_primary_demotion_and_role_removal_round_trip(target: TargetServer, token: str) -> None:
    """The operations are ones the embedded target understands: after them, the diff is empty."""
    start = {"schemas": [CORE_USER], "userName": "prim@contoso.com",
             "emails": [{"type": "home", "value": "h@x.org", "primary": True}, {"type": "work", "value": "w@x.org"}],
             "roles": [role("Admin"), role("User"), role("Auditor")]}
    want = {"schemas": [CORE_USER], "userName": "prim@contoso.com",
            "emails": [{"type": "work", "value": "w@x.org", "primary": True}],
            "roles": [role("Auditor"), {"value": "Admin", "primary": True}]}

    async def go() -> None:
        async with make_client(target.url, token) as client:
            uid = (await client.create("User", start))["id"]
            changes = diff_resource(want, await client.get("User", uid))
            assert {c.op for c in changes} == {"remove", "replace"}
            await client.patch("User", uid, patch_operations(changes))
            now = await client.get("User", uid)
            assert diff_resource(want, now) == []
            assert sorted(r["value"] for r in now["roles"]) == ["Admin", "Auditor"]
            assert [e["type"] for e in now["emails"] if e.get("primary")] == ["work"]

    run(go())
