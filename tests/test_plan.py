"""The planner alone (pure): ownership, matching, conflicts, the guard, and the plan as data."""

from __future__ import annotations

import json
from typing import Any

import pytest

from reconciler.desired import Deprovision, DesiredObject, DesiredState
from reconciler.plan import Action, Plan, make_plan
from reconciler.scim.livestate import LiveState
from tests.reconcile_helpers import atea

CORE = ["urn:ietf:params:scim:schemas:core:2.0:User"]
ID_A = "0ed4a108-0445-5d0d-ba00-94de39090ba3"
ID_B = "58332430-eb1e-599d-9a72-ca797a6a1ca2"


def desired(source_id: str, upn: str, **extra: Any) -> DesiredObject:
    resource = {"schemas": CORE, "userName": upn, "externalId": source_id, "active": True, **extra}
    return DesiredObject("User", source_id, upn, (("userName", upn),), resource, {})


def live(*users: dict[str, Any]) -> LiveState:
    return LiveState(users={u["id"]: {"schemas": CORE, **u} for u in users})


def plan_for(users: tuple[DesiredObject, ...], state: LiveState, gone: tuple[Deprovision, ...] = (),
             **kwargs: Any) -> Plan:
    return make_plan(atea().manifest, DesiredState(users, (), gone), state, **kwargs)


def test_owned_by_external_id_even_when_the_user_name_changed() -> None:
    plan = plan_for((desired(ID_A, "adele.new@contoso.com"),),
                    live({"id": "t1", "userName": "adele.old@contoso.com", "externalId": ID_A, "active": True}))
    [step] = plan.steps
    assert (step.action, step.target_id) == ("update", "t1")
    assert step.operations == [{"op": "replace", "path": "userName", "value": "adele.new@contoso.com"}]


def test_an_external_id_that_merely_looks_similar_is_not_ownership() -> None:
    plan = plan_for((desired(ID_A, "adele@contoso.com"),),
                    live({"id": "t1", "userName": "someone@contoso.com", "externalId": ID_A.upper()}))
    assert [s.action for s in plan.steps] == ["create"]
    assert plan.unmanaged == {"User": 1, "Group": 0}


def test_matching_is_case_insensitive_for_user_name_and_adopts() -> None:
    plan = plan_for((desired(ID_A, "adele@contoso.com"),), live({"id": "t1", "userName": "ADELE@contoso.com"}))
    [step] = plan.steps
    assert step.action == "adopt" and {"op": "add", "path": "externalId", "value": ID_A} in step.operations


def test_an_object_owned_by_another_directory_object_is_a_conflict() -> None:
    plan = plan_for((desired(ID_A, "x@contoso.com"), desired(ID_B, "y@contoso.com")),
                    live({"id": "t1", "userName": "x@contoso.com", "externalId": ID_B}))
    actions = sorted((s.display, s.action) for s in plan.steps)
    assert actions == [("x@contoso.com", "conflict"), ("y@contoso.com", "update")]
    assert "belongs to directory object" in next(s.reason for s in plan.steps if s.action == "conflict")
    assert not plan.empty


def test_two_live_objects_with_one_user_name_are_a_conflict_never_a_write() -> None:
    plan = plan_for((desired(ID_A, "x@contoso.com"),),
                    live({"id": "t1", "userName": "x@contoso.com"}, {"id": "t2", "userName": "X@contoso.com"}))
    [step] = plan.steps
    assert step.action == "conflict" and not plan.has_writes


def test_deprovision_touches_only_objects_this_app_provisioned() -> None:
    gone = (Deprovision("User", ID_B, "b@contoso.com", (("userName", "b@contoso.com"),), "unassigned"),)
    matched_only = live({"id": "t1", "userName": "b@contoso.com", "active": True},
                        {"id": "t2", "userName": "stranger@contoso.com", "active": True, "externalId": "not-ours"})
    plan = plan_for((), matched_only, gone)
    assert plan.empty  # b@ was never provisioned by this app: left alone, and said so
    assert any("were not provisioned by this app" in n for n in plan.notes)
    assert any("externalId that names no object" in n for n in plan.notes)
    owned = live({"id": "t1", "userName": "b@contoso.com", "active": True, "externalId": ID_B})
    assert [(s.action, s.target_id, s.reason) for s in plan_for((), owned, gone).steps] == [
        ("disable", "t1", "unassigned")]
    already = plan_for((), live({"id": "t1", "userName": "b@contoso.com", "externalId": ID_B, "active": "False"}),
                       gone)
    assert already.empty  # a string "False" from the server already means disabled


def test_guard_and_round_trip_through_json() -> None:
    gone = tuple(Deprovision("User", f"id-{i}", f"u{i}@contoso.com", (("userName", f"u{i}@contoso.com"),),
                             "unassigned") for i in range(60))
    state = live(*({"id": f"t{i}", "userName": f"u{i}@contoso.com", "externalId": f"id-{i}"} for i in range(60)))
    plan = plan_for((), state, gone)
    assert plan.destructive == 60 and plan.guarded and any("deletion guard" in n for n in plan.notes)
    assert not plan_for((), state, gone, allow_deletes=True).guarded
    again = Plan.from_dict(json.loads(json.dumps(plan.to_dict())))
    assert again.to_dict() == plan.to_dict()
    assert again.summary()["disable"] == 60


def test_a_saved_plan_holds_bare_action_strings_and_loads_as_actions() -> None:
    state = live({"id": "t1", "userName": "a@contoso.com", "externalId": "old-id"})
    plan = plan_for((desired(ID_A, "a@contoso.com"), desired(ID_B, "b@contoso.com")), state)
    saved = json.loads(json.dumps(plan.to_dict()))
    assert sorted(s["action"] for s in saved["steps"]) == ["conflict", "create"]
    assert set(saved["summary"]) == {"create", "update", "adopt", "disable", "delete", "conflict"}
    again = Plan.from_dict(saved)
    assert [type(s.action) for s in again.steps] == [Action, Action]
    assert {s.action for s in again.steps} == {Action.CONFLICT, Action.CREATE}
    assert json.dumps(again.to_dict()) == json.dumps(plan.to_dict())


def test_a_saved_plan_with_an_unknown_action_does_not_load() -> None:
    saved = json.loads(json.dumps(plan_for((desired(ID_A, "a@contoso.com"),), live()).to_dict()))
    saved["steps"][0]["action"] = "truncate"
    with pytest.raises(ValueError, match="truncate"):
        Plan.from_dict(saved)


def test_manager_reference_resolves_to_the_target_id_or_waits_for_the_next_round() -> None:
    ext = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
    boss = desired(ID_B, "boss@contoso.com")
    report = DesiredObject("User", ID_A, "a@contoso.com", (("userName", "a@contoso.com"),),
                           {"schemas": CORE, "userName": "a@contoso.com", "externalId": ID_A, ext: {"manager": ID_B}},
                           {}, references=(f"{ext}:manager",))
    first = plan_for((boss, report), live())
    body = next(s.body for s in first.steps if s.display == "a@contoso.com")
    assert body is not None and body.get(ext, {}) == {}  # the boss has no target id yet: next round
    second = plan_for((boss, report), live({"id": "t-boss", "userName": "boss@contoso.com", "externalId": ID_B,
                                            "active": True}))
    body = next(s.body for s in second.steps if s.display == "a@contoso.com")
    assert body is not None and body[ext] == {"manager": {"value": "t-boss"}}


def test_redacted_values_never_reach_the_plan_display_and_add_only_never_removes() -> None:
    obj = DesiredObject("User", ID_A, "a@contoso.com", (("userName", "a@contoso.com"),),
                        {"schemas": CORE, "userName": "a@contoso.com", "externalId": ID_A, "title": "s3cret",
                         "roles": [{"value": "User"}]}, {}, redacted=("title",), add_only=("roles",))
    state = live({"id": "t1", "userName": "a@contoso.com", "externalId": ID_A, "title": "old",
                  "roles": [{"value": "User"}, {"value": "Admin"}]})
    [step] = plan_for((obj,), state).steps
    assert [(c.path, c.old, c.new) for c in step.changes] == [("title", "[Redact]", "[Redact]")]
    assert step.operations == [{"op": "replace", "path": "title", "value": "s3cret"}]
