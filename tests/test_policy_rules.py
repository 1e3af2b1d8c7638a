"""The rule functions themselves: the one place each rule's logic lives."""

from __future__ import annotations

import pytest

from reconciler.policy import rules


@pytest.mark.parametrize("role", ["Default Access", "default access", "msiam_access", rules.DEFAULT_ACCESS_ROLE_ID])
def test_default_access_in_any_spelling(role: str) -> None:
    assert rules.default_access(role) is not None


@pytest.mark.parametrize("role", ["User", "Admin", "4cf63f06-496b-53b8-b752-b30e0d72c59c", None])
def test_other_roles_are_fine(role: str | None) -> None:
    assert rules.default_access(role) is None


@pytest.mark.parametrize(("name", "looks_like_token"), [
    ("ATEA_SCIM_TOKEN", False), ("WikiToken", False), ("scim_token_2", False),
    ("ghp4f9Kx2LmQ7rT1vZ8bN3cD", True), ("a1b2c3d4e5f6a7b8c9d0e1f2", True),
])
def test_token_env_name(name: str, looks_like_token: bool) -> None:
    assert (rules.token_env_name(name) is not None) is looks_like_token


def test_secret_token_knows_what_it_cannot_know() -> None:
    assert rules.secret_token(True, None, ["credentials"]) == []  # CrossGuard: secretness unknowable
    assert rules.secret_token(True, True, ["credentials"]) == []
    (plain,) = rules.secret_token(True, False, ["credentials"])
    assert "plaintext" in plain
    assert len(rules.secret_token(False, None, [])) == 2


def test_matching_filterable_compares_scim_paths() -> None:
    filterable = ["userName", 'emails[type eq "work"].value']
    assert list(rules.matching_filterable(["USERNAME", 'Emails[Type eq "work"].Value'], filterable)) == []
    # filter values are data, not names: "Work" is another element
    found = list(rules.matching_filterable(['emails[type eq "Work"].value', "externalId"], filterable))
    assert [index for index, _ in found] == [0, 1]


@pytest.mark.parametrize(("threshold", "ok"), [(0, True), (500, True), (50.0, True), (None, False), (-1, False),
                                               (True, False), ("50", False)])
def test_deletion_threshold(threshold: object, ok: bool) -> None:
    assert (rules.deletion_threshold(threshold) is None) is ok


def test_assignment_required_only_matters_for_assigned_scope() -> None:
    assert rules.assignment_required("assigned", True) is None
    assert rules.assignment_required("assigned", None) is not None
    assert rules.assignment_required("all", False) is None
