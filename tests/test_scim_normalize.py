"""The normalizer: a converged target shows no diff, and a diff is exactly the PATCH that converges it."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.scim.normalize import Change, SchemaIndex, diff_resource, patch_operations
from reconciler.scim.paths import CORE_USER, ENTERPRISE_USER
from reconciler.target.serve import TargetServer
from tests import scim_helpers
from tests.scim_helpers import full_user, group, make_client, run, user

token = scim_helpers.token
target = scim_helpers.target

LIVE = {
    "schemas": [CORE_USER, ENTERPRISE_USER],
    "id": "2819c223",
    "externalId": "ext-1",
    "meta": {"resourceType": "User", "version": 'W/"3"'},
    "userName": "Adele@Contoso.com",
    "name": {"givenName": "ADELE", "familyName": "Vance", "formatted": "Adele Vance"},
    "active": True,
    "emails": [{"value": "home@x.org", "type": "home"}, {"value": "ADELE@contoso.com", "type": "Work",
                                                         "primary": True, "display": "Adele"}],
    "phoneNumbers": [{"value": "+1 555", "type": "mobile"}],
    ENTERPRISE_USER: {"employeeNumber": "1001", "department": "Sales"},
    "title": "Sales rep",
}


def desired(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "schemas": [CORE_USER, ENTERPRISE_USER],
        "userName": "adele@contoso.com",
        "externalId": "ext-1",
        "active": "True",
        "name": {"givenName": "Adele", "familyName": "Vance", "formatted": "Adele Vance"},
        "emails": [{"type": "work", "value": "adele@contoso.com", "primary": True}],
        "phoneNumbers": [{"type": "mobile", "value": "+1 555"}],
        ENTERPRISE_USER: {"employeeNumber": "1001"},
    }
    base.update(changes)
    return base


def test_a_converged_resource_shows_no_diff() -> None:
    # case-insensitive userName/givenName/email value and type, "True" as a string, element order, server-added
    # primary/display/meta/id, and attributes the target holds beyond the declared ones (title, department)
    assert diff_resource(desired(), LIVE) == []


def test_case_exact_attributes_do_differ() -> None:
    assert diff_resource(desired(externalId="EXT-1"), LIVE) == [
        Change("replace", "externalId", "EXT-1", "ext-1", "EXT-1")]


def test_server_schemas_override_rfc_case_exactness() -> None:
    exact = SchemaIndex.from_schemas([{"id": CORE_USER, "attributes": [
        {"name": "userName", "type": "string", "caseExact": True}]}])
    assert [c.path for c in diff_resource(desired(), LIVE, exact)] == ["userName"]
    assert diff_resource(desired(), LIVE, SchemaIndex.from_schemas([])) == []


def test_one_changed_attribute_is_one_operation_with_old_and_new() -> None:
    changes = diff_resource(desired(name={"givenName": "Adèle"}), LIVE)
    assert changes == [Change("replace", "name.givenName", "Adèle", "ADELE", "Adèle")]
    assert patch_operations(changes) == [{"op": "replace", "path": "name.givenName", "value": "Adèle"}]


def test_typed_elements_use_filtered_paths_when_present_and_whole_elements_when_missing() -> None:
    changes = diff_resource(desired(
        emails=[{"type": "work", "value": "new@contoso.com"}],
        phoneNumbers=[{"type": "mobile", "value": "+1 555"}, {"type": "fax", "value": "+1 999"}],
    ), LIVE)
    assert patch_operations(changes) == [
        {"op": "replace", "path": 'emails[type eq "work"].value', "value": "new@contoso.com"},
        {"op": "add", "path": "phoneNumbers", "value": [{"type": "fax", "value": "+1 999"}]},
    ]
    assert changes[0].old == "ADELE@contoso.com"


def test_extension_attributes_are_addressed_by_urn() -> None:
    changes = diff_resource(desired(**{ENTERPRISE_USER: {"employeeNumber": "2002", "costCenter": "CC1"}}), LIVE)
    assert patch_operations(changes) == [
        {"op": "replace", "path": f"{ENTERPRISE_USER}:employeeNumber", "value": "2002"},
        {"op": "add", "path": f"{ENTERPRISE_USER}:costCenter", "value": "CC1"},
    ]


def test_booleans_as_strings_and_disable() -> None:
    assert diff_resource(desired(active="TRUE"), LIVE) == []
    assert patch_operations(diff_resource(desired(active="False"), LIVE)) == [
        {"op": "replace", "path": "active", "value": False}]


def test_omitted_or_null_attributes_are_never_removed() -> None:
    sparse = {"schemas": [CORE_USER], "userName": "adele@contoso.com", "nickName": None,
              "name": {"givenName": None}, ENTERPRISE_USER: {"employeeNumber": None}}
    assert diff_resource(sparse, LIVE) == []


def test_missing_complex_attribute_is_added_whole() -> None:
    live = {"id": "1", "userName": "a"}
    assert patch_operations(diff_resource({"userName": "a", "name": {"givenName": "G", "familyName": None}},
                                          live)) == [{"op": "add", "path": "name", "value": {"givenName": "G"}}]


def test_group_members_compare_as_sets_and_extra_members_are_removed() -> None:
    live = {"id": "g", "displayName": "Atea Users",
            "members": [{"value": "u1", "display": "One", "$ref": "x"}, {"value": "u2"}, {"value": "u9"}]}
    want = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "atea users",
            "members": [{"value": "u2"}, {"value": "u1"}, {"value": "u3"}]}
    assert patch_operations(diff_resource(want, live)) == [
        {"op": "add", "path": "members", "value": [{"value": "u3"}]},
        {"op": "remove", "path": 'members[value eq "u9"]'},
    ]
    assert diff_resource({**want, "members": [{"value": "u1"}, {"value": "u2"}, {"value": "u9"}]}, live) == []
    assert patch_operations(diff_resource({**want, "members": []}, live))[0]["op"] == "remove"


# -- round trips against the real server ---------------------------------------------------------------------


def test_round_trip_create_read_diff_patch(target: TargetServer, token: str) -> None:
    start = full_user("adele@contoso.com")
    steps = [  # one changed attribute each, and the one operation it must give
        (lambda w: {**w, "name": {**w["name"], "givenName": "Adèle"}}, ("replace", "name.givenName")),
        (lambda w: {**w, "emails": [{"type": "work", "value": "adele.vance@contoso.com"}]},
         ("replace", 'emails[type eq "work"].value')),
        (lambda w: {**w, ENTERPRISE_USER: {"employeeNumber": "77"}},
         ("replace", f"{ENTERPRISE_USER}:employeeNumber")),
        (lambda w: {**w, ENTERPRISE_USER: {"employeeNumber": "77", "department": "R&D"}},
         ("add", f"{ENTERPRISE_USER}:department")),
        (lambda w: {**w, "phoneNumbers": [{"type": "mobile", "value": "+47 1"}]}, ("add", "phoneNumbers")),
        (lambda w: {**w, "phoneNumbers": [{"type": "mobile", "value": "+47 2"}]},
         ("replace", 'phoneNumbers[type eq "mobile"].value')),
        (lambda w: {**w, "active": "False"}, ("replace", "active")),
        (lambda w: {**w, "nickName": "adele"}, ("add", "nickName")),
        (lambda w: {**w, "userName": "ADELE@contoso.com"}, None),  # case only: not a change
    ]

    async def go() -> None:
        want = start
        async with make_client(target.url, token) as client:
            uid = (await client.create("User", want))["id"]
            assert diff_resource(want, await client.get("User", uid)) == []
            for change, expected in steps:
                want = change(want)
                changes = diff_resource(want, await client.get("User", uid))
                assert [(c.op, c.path) for c in changes] == ([expected] if expected else [])
                if changes:
                    await client.patch("User", uid, patch_operations(changes))
                assert diff_resource(want, await client.get("User", uid)) == []

    run(go())


def test_round_trip_a_user_created_bare_gets_every_attribute(target: TargetServer, token: str) -> None:
    want = full_user("bare@contoso.com")
    want["phoneNumbers"] = [{"type": "mobile", "value": "+1"}, {"type": "work", "value": "+2"}]

    async def go() -> None:
        async with make_client(target.url, token) as client:
            uid = (await client.create("User", user("bare@contoso.com")))["id"]
            changes = diff_resource(want, await client.get("User", uid))
            await client.patch("User", uid, patch_operations(changes))
            assert diff_resource(want, await client.get("User", uid)) == []

    run(go())


def test_round_trip_group_membership(target: TargetServer, token: str) -> None:
    async def go() -> None:
        async with make_client(target.url, token) as client:
            ids = [(await client.create("User", user(f"m{i}")))["id"] for i in range(4)]
            want = group("Atea Users", members=ids[:2])
            gid = (await client.create("Group", want))["id"]
            assert diff_resource(want, await client.get("Group", gid)) == []
            want = group("Atea Users", members=ids[1:])
            ops = patch_operations(diff_resource(want, await client.get("Group", gid)))
            assert [op["op"] for op in ops] == ["add", "remove"]
            await client.patch("Group", gid, ops)
            assert diff_resource(want, await client.get("Group", gid)) == []

    run(go())


_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=12)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(given_name=_text, email=_text, employee=_text, active=st.sampled_from([True, False, "True", "false"]))
def test_round_trip_property(target: TargetServer, token: str, given_name: str, email: str, employee: str,
                             active: Any) -> None:
    want = full_user("prop", email=email, given=given_name, employee=employee, active=active)

    async def go() -> None:
        async with make_client(target.url, token) as client:
            found = await client.find("User", "userName", "prop")
            if found:
                uid = found[0]["id"]
                await client.patch("User", uid, patch_operations(diff_resource(want, found[0])))
            else:
                uid = (await client.create("User", want))["id"]
            assert diff_resource(want, await client.get("User", uid)) == []

    run(go())


@pytest.mark.parametrize("value", ['a"b', "back\\slash", "ÆØÅ"])
def test_filtered_path_values_are_quoted(value: str) -> None:
    live = {"id": "1", "emails": [{"type": value, "value": "x"}]}
    ops = patch_operations(diff_resource({"emails": [{"type": value, "value": "y"}]}, live))
    from reconciler.scim.paths import parse_path

    assert parse_path(ops[0]["path"]).filter == ("type", value)


def test_creation_body_drops_nulls_and_fixes_booleans(target: TargetServer, token: str) -> None:
    from reconciler.scim.normalize import creation_body

    want = full_user("c@contoso.com", active="False")
    want["nickName"] = None
    want["phoneNumbers"] = [{"type": "mobile", "value": None}]
    want["name"]["middleName"] = None
    want[ENTERPRISE_USER]["department"] = None
    body = creation_body(want)
    assert body["active"] is False and "nickName" not in body and "phoneNumbers" not in body
    assert "middleName" not in body["name"] and body[ENTERPRISE_USER] == {"employeeNumber": "1001"}

    async def go() -> None:
        async with make_client(target.url, token) as client:
            created = await client.create("User", body)
            assert diff_resource(want, created) == []

    run(go())
