"""Stable identifiers derived from the manifest alone."""

from __future__ import annotations

from reconciler.azure.ids import assignment_names, role_id
from reconciler.manifest.model import Assignment


def test_role_ids_depend_on_app_and_value_only() -> None:
    assert role_id("atea", "User") == role_id("atea", "User") == "4cf63f06-496b-53b8-b752-b30e0d72c59c"
    assert role_id("atea", "User") != role_id("wiki", "User")
    assert role_id("atea", "User") != role_id("atea", "user")  # role values are case-sensitive in tokens


def test_assignment_names_are_readable_and_kept_apart_when_they_slug_alike() -> None:
    plain = [Assignment(group="Atea Users", role="User"), Assignment(user="adele.vance@contoso.com", role="Admin")]
    assert assignment_names("atea", plain) == ["atea-group-atea-users-user", "atea-user-adele-vance-contoso-com-admin"]
    alike = [Assignment(group="Atea Users", role="User"), Assignment(group="Atea-Users", role="User")]
    names = assignment_names("atea", alike)
    assert len(set(names)) == 2 and all(n.startswith("atea-group-atea-users-user-") for n in names)
    assert names == assignment_names("atea", alike)
