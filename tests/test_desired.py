"""The desired SCIM state: scope, scoping filters, mappings, groups, and what must be deprovisioned."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.desired import DesiredState, desired_state
from reconciler.directory import load_snapshot
from reconciler.directory_source import read_directory
from reconciler.errors import DirectoryError
from reconciler.manifest import load_manifest
from reconciler.scim.paths import CORE_USER, ENTERPRISE_USER
from tests.engine_helpers import directory, group, manifest, user

ROOT = Path(__file__).resolve().parent.parent


def _state(path: str) -> DesiredState:
    loaded = load_manifest(ROOT / path)
    return desired_state(loaded.manifest, asyncio.run(read_directory(loaded, None)))


def test_atea_over_the_sample_directory() -> None:
    state = _state("manifests/atea.yaml")
    provisioned = {u.display for u in state.users}
    assert provisioned == {f"{n}@contoso.com" for n in (
        "adele.vance",  # assigned directly (Admin) and through Atea Admins
        "johanna.lorenz",  # Atea Admins
        "alex.wilber", "diego.siciliani", "henrietta.mueller", "isaiah.langer", "joni.sherman", "lidia.holloway",
        "megan.bowen", "jose.muller")}  # direct members of Atea Users
    reasons = {d.display: d.reason for d in state.deprovision}
    assert reasons["nestor.wilke@contoso.com"] == "disabled"  # assigned through Atea Users, accountEnabled false
    assert reasons["pradeep.gupta@contoso.com"] == "out of scope"  # department Contractors
    assert reasons["christie.cline@contoso.com"] == "unassigned"  # only in Atea Pilot, nested in Atea Users
    assert reasons["patti.fernandez@contoso.com"] == "unassigned"  # assigned to nothing
    assert set(reasons) | provisioned == {u.upn for u in load_snapshot(ROOT / "examples/directory.json").users}
    assert state.groups == () and state.skipped == ()
    assert all(d.kind == "User" for d in state.deprovision)  # group provisioning is off: groups are not managed
    assert [u.source_id for u in state.users] == sorted(u.source_id for u in state.users)


def test_atea_user_body() -> None:
    state = _state("manifests/atea.yaml")
    adele = next(u for u in state.users if u.display == "adele.vance@contoso.com")
    assert adele.matching == (("userName", "adele.vance@contoso.com"),)
    assert adele.resource == {
        "schemas": [CORE_USER],
        "userName": "adele.vance@contoso.com",
        "externalId": adele.source_id,
        "active": True,
        "emails": [{"type": "work", "value": "adele.vance@contoso.com"}],
        "name": {"givenName": "Adele", "familyName": "Vance", "formatted": "Adele Vance"},
        "phoneNumbers": [{"type": "mobile", "value": "+1 425 555 0109"}],
        "locale": "en-US",
        "nickName": "adelevance",
    }
    assert adele.on_create == {} and adele.members == ()
    jose = next(u for u in state.users if u.display == "jose.muller@contoso.com")
    assert jose.resource["name"] == {"givenName": "José", "familyName": "Müller", "formatted": "José Müller"}
    alex = next(u for u in state.users if u.display == "alex.wilber@contoso.com")
    assert "phoneNumbers" not in alex.resource  # no mobile: left out, never sent as null


def test_disabled_user_in_the_deprovision_list_keeps_its_matching_value() -> None:
    nestor = next(d for d in _state("manifests/atea.yaml").deprovision if d.display == "nestor.wilke@contoso.com")
    assert nestor.kind == "User" and nestor.matching == (("userName", "nestor.wilke@contoso.com"),)


def test_wiki_groups_members_and_enterprise_extension() -> None:
    state = _state("manifests/wiki.yaml")
    snapshot = load_snapshot(ROOT / "examples/directory.json")
    by_name = {g.display: g for g in state.groups}
    assert set(by_name) == {"Engineering", "Sales"}
    engineering = by_name["Engineering"]
    expected = {u.id for u in snapshot.users if u.upn.split("@")[0] in (
        "grady.archie", "henrietta.mueller", "johanna.lorenz", "lee.gu", "lidia.holloway", "jose.muller")}
    assert set(engineering.members) == expected
    assert engineering.resource == {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                                    "displayName": "Engineering", "externalId": engineering.source_id}
    assert engineering.matching == (("displayName", "Engineering"),)
    lee = next(u for u in state.users if u.display == "lee.gu@contoso.com")
    assert lee.resource["schemas"] == [CORE_USER, ENTERPRISE_USER]
    assert lee.resource[ENTERPRISE_USER] == {"employeeNumber": "1009", "department": "Engineering"}
    assert lee.matching == (("userName", "lee.gu@contoso.com"), ('emails[type eq "work"].value', "lee.gu@contoso.com"))
    unassigned_groups = {d.display for d in state.deprovision if d.kind == "Group"}
    assert unassigned_groups == {"Atea Users", "Atea Admins", "Atea Pilot"}


MAPPINGS = """\
users:
  mappings:
    - {target: userName, source: userPrincipalName, matching: 1}
    - {target: externalId, source: objectId}
    - {target: active, expression: 'Switch([IsSoftDeleted], , "False", "True", "True", "False")'}
"""


def test_on_create_default_and_non_deterministic_functions() -> None:
    loaded = manifest(MAPPINGS + """\
    - {target: title, source: jobTitle, default: Employee}
    - {target: nickName, source: mailNickname, apply: onCreate}
    - {target: password, expression: 'Redact(RandomString(12, 2, 2, 2, 2))'}
    - {target: 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber', expression: 'Guid()'}
    - {target: displayName, source: displayName, default: Nobody}
""", "- {user: a@contoso.com, role: User}\n- {user: b@contoso.com, role: User}\n")
    state = desired_state(loaded.manifest, directory(
        user("a", "a@contoso.com", mailNickname="alpha", displayName="A"), user("b", "b@contoso.com")))
    a, b = state.users
    assert a.resource == {"schemas": [CORE_USER, ENTERPRISE_USER], "userName": "a@contoso.com", "externalId": "a",
                          "active": True, "displayName": "A"}
    assert a.on_create["title"] == "Employee" and a.on_create["nickName"] == "alpha"
    assert len(a.on_create["password"]) == 12 and a.redacted == ("password",)
    assert len(a.on_create[ENTERPRISE_USER]["employeeNumber"]) == 36
    assert "displayName" not in a.on_create  # a default fills nulls only
    assert b.on_create["displayName"] == "Nobody" and "nickName" not in b.on_create
    body = a.create_body()
    assert body["title"] == "Employee" and body["userName"] == "a@contoso.com"
    assert body[ENTERPRISE_USER]["employeeNumber"] == a.on_create[ENTERPRISE_USER]["employeeNumber"]


def test_select_unique_value_avoids_values_taken_by_other_objects() -> None:
    loaded = manifest(MAPPINGS + """\
    - {target: nickName, expression: 'SelectUniqueValue([surname], Join(".", [givenName], [surname]))'}
""", "- {user: a@contoso.com, role: User}\n- {user: b@contoso.com, role: User}\n")
    state = desired_state(loaded.manifest, directory(user("a", "a@contoso.com", givenName="Ann", surname="Lee"),
                                                     user("b", "b@contoso.com", givenName="Bo", surname="Lee")))
    assert [u.on_create["nickName"] for u in state.users] == ["Lee", "Bo.Lee"]
    assert all("nickName" not in u.resource for u in state.users)


def test_filtered_paths_build_typed_elements() -> None:
    loaded = manifest(MAPPINGS + """\
    - {target: 'emails[type eq "work"].value', source: mail}
    - {target: 'addresses[type eq "work"].locality', source: city}
    - {target: 'addresses[type eq "work"].postalCode', source: postalCode}
    - {target: 'phoneNumbers[type eq "work"].value', source: telephoneNumber}
    - {target: 'phoneNumbers[type eq "mobile"].value', source: mobile}
    - {target: 'roles[primary eq "True"].value', expression: 'SingleAppRoleAssignment([appRoleAssignments])'}
    - {target: roles, expression: 'AppRoleAssignmentsComplex([appRoleAssignments])'}
""", "- {user: a@contoso.com, role: Admin}\n")
    state = desired_state(loaded.manifest, directory(user(
        "a", "a@contoso.com", mail="a@contoso.com", city="Oslo", postalCode="0150", businessPhones=["+47 1"],
        mobilePhone="+47 2")))
    resource = state.users[0].resource
    assert resource["emails"] == [{"type": "work", "value": "a@contoso.com"}]
    assert resource["addresses"] == [{"type": "work", "locality": "Oslo", "postalCode": "0150"}]
    assert resource["phoneNumbers"] == [{"type": "work", "value": "+47 1"}, {"type": "mobile", "value": "+47 2"}]
    # the primary role's filtered mapping and AppRoleAssignmentsComplex's element are one role, primary
    assert resource["roles"] == [{"primary": True, "type": "WindowsAzureActiveDirectoryRole",
                                  "display": "Administrator", "value": "Admin"}]
    assert state.users[0].add_only == ("roles",)


def test_manager_is_a_reference_to_resolve() -> None:
    loaded = manifest(MAPPINGS + """\
    - {target: 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager', source: manager}
""", "- {user: a@contoso.com, role: User}\n")
    state = desired_state(loaded.manifest, directory(user("a", "a@contoso.com", manager={"id": "boss"})))
    a = state.users[0]
    assert a.resource[ENTERPRISE_USER] == {"manager": "boss"}  # a directory id: the planner maps it to a target id
    assert a.references == ("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",)


def test_primary_role_element_is_a_boolean_filter() -> None:
    loaded = manifest(MAPPINGS + """\
    - {target: 'roles[primary eq "True"].value', expression: 'SingleAppRoleAssignment([appRoleAssignments])'}
""", "- {user: a@contoso.com, role: Admin}\n")
    state = desired_state(loaded.manifest, directory(user("a", "a@contoso.com")))
    assert state.users[0].resource["roles"] == [{"primary": True, "value": "Admin"}]


def test_scope_all_groups_and_direct_members_only() -> None:
    loaded = manifest(MAPPINGS.replace("users:", "scope: all\nusers:") + """\
groups:
  enabled: true
  mappings:
    - {target: displayName, source: displayName, matching: 1}
    - {target: members, source: members}
""")
    dir_ = directory(user("a", "a@contoso.com"), user("b", "b@contoso.com", accountEnabled=False),
                     user("c", "c@contoso.com"), group("g1", "Outer", ("a", "b", "g2")), group("g2", "Inner", ("c",)))
    state = desired_state(loaded.manifest, dir_)
    assert [u.source_id for u in state.users] == ["a", "c"]
    assert [(d.source_id, d.reason) for d in state.deprovision] == [("b", "disabled")]
    outer, inner = state.groups
    assert outer.members == ("a", "g2") and inner.members == ("c",)  # b is disabled: not a member
    assert "members" not in outer.resource


def test_assigned_groups_provision_only_direct_members() -> None:
    loaded = manifest(MAPPINGS + """\
groups:
  enabled: true
  mappings:
    - {target: displayName, source: displayName, matching: 1}
    - {target: members, source: members}
""", "- {group: Outer, role: User}\n")
    dir_ = directory(user("a", "a@contoso.com"), user("c", "c@contoso.com"),
                     group("g1", "Outer", ("a", "g2")), group("g2", "Inner", ("c",)))
    state = desired_state(loaded.manifest, dir_)
    assert [u.source_id for u in state.users] == ["a"]
    assert [g.source_id for g in state.groups] == ["g1"]
    assert state.groups[0].members == ("a",)  # Inner is not provisioned, so it is not a member either
    assert {(d.kind, d.source_id, d.reason) for d in state.deprovision} == {("User", "c", "unassigned"),
                                                                           ("Group", "g2", "unassigned")}


@pytest.mark.parametrize(("assignments", "message"), [
    ("- {group: Missing, role: User}\n", "assigned group 'Missing' is not in test directory"),
    ("- {group: Twins, role: User}\n", "2 groups in test directory are named 'Twins'; assign the group by"),
    ("- {user: ghost@contoso.com, role: User}\n", "assigned user 'ghost@contoso.com' is not in test directory"),
])
def test_unknown_or_ambiguous_principals_stop_the_run(assignments: str, message: str) -> None:
    loaded = manifest(MAPPINGS, assignments)
    dir_ = directory(user("a", "a@contoso.com"), group("g1", "Twins"), group("g2", "twins"))
    with pytest.raises(DirectoryError, match=message):
        desired_state(loaded.manifest, dir_)


def test_evaluation_failures_and_missing_matching_values_are_skipped() -> None:
    loaded = manifest(MAPPINGS + "    - {target: title, expression: 'CDate([employeeHireDate])'}\n"
                                 "    - {target: nickName, expression: 'Item(Split([mail], \",\"), 1)', matching: 2}\n",
                      "- {user: a@contoso.com, role: User}\n- {user: b@contoso.com, role: User}\n")
    loaded_no_upn = manifest(MAPPINGS.replace("source: userPrincipalName", "source: mail"),
                             "- {user: a@contoso.com, role: User}\n")
    dir_ = directory(user("a", "a@contoso.com", employeeHireDate="soon"), user("b", "b@contoso.com"))
    state = desired_state(loaded.manifest, dir_)
    assert [u.source_id for u in state.users] == ["b"]
    assert state.skipped[0].source_id == "a" and "mapping to 'title'" in state.skipped[0].reason
    assert state.users[0].matching == (("userName", "b@contoso.com"),)  # null matching values dropped
    skipped = desired_state(loaded_no_upn.manifest, directory(user("a", "a@contoso.com"))).skipped
    assert skipped[0].reason.startswith("no matching value")


def test_boolean_targets_reject_non_booleans() -> None:
    loaded = manifest(MAPPINGS.replace("expression: 'Switch([IsSoftDeleted], , \"False\", \"True\", \"True\", "
                                       "\"False\")'", "source: department"), "- {user: a@contoso.com, role: User}\n")
    state = desired_state(loaded.manifest, directory(user("a", "a@contoso.com", department="Sales")))
    assert "active is a boolean" in state.skipped[0].reason


_DEPARTMENTS = ["Sales", "Engineering", "Contractors", None]
_FILTER_CLAUSES = st.sampled_from([
    "{attribute: department, operator: NOT EQUALS, value: Contractors}",
    "{attribute: department, operator: EQUALS, value: Sales}",
    "{attribute: employeeId, operator: Greater_Than, value: 5}",
    "{attribute: jobTitle, operator: IS NOT NULL}",
    "{attribute: accountEnabled, operator: IS TRUE}",
    "{attribute: userPrincipalName, operator: ENDS_WITH, value: '@contoso.com'}",
])


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(_DEPARTMENTS), st.integers(0, 9), st.booleans(), st.booleans()),
                min_size=1, max_size=6),
       st.lists(_FILTER_CLAUSES, min_size=1, max_size=3), _FILTER_CLAUSES)
def test_desired_users_shrink_when_a_clause_is_added(people, clauses, extra) -> None:
    users = [user(f"u{i}", f"u{i}@contoso.com" if i % 2 else f"u{i}@fabrikam.com", department=dept,
                  employeeId=str(number), jobTitle="T" if titled else None, accountEnabled=enabled)
             for i, (dept, number, titled, enabled) in enumerate(people)]

    def provisioned(filter_clauses: list[str]) -> set[str]:
        block = "scope: all\nscopingFilters:\n  - " + "\n    ".join(f"- {c}" for c in filter_clauses) + "\n"
        return {u.source_id for u in desired_state(manifest(block + MAPPINGS).manifest, directory(*users)).users}

    assert provisioned([*clauses, extra]) <= provisioned(clauses)
