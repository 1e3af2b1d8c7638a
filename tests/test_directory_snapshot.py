"""Directory snapshots: the contract format in JSON and YAML, Entra names over Graph names, positioned errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.directory import dump_snapshot, load_snapshot
from reconciler.directory.names import GROUP_NAMES, USER_ATTRIBUTES, USER_NAMES, graph_select
from reconciler.errors import DirectoryError

SAMPLE = Path(__file__).resolve().parent.parent / "examples" / "directory.json"


def test_the_sample_directory() -> None:
    directory = load_snapshot(SAMPLE)
    assert 12 <= len(directory.users) <= 20
    names = {g.display_name for g in directory.groups}
    assert {"Atea Users", "Atea Admins", "Engineering", "Sales"} <= names
    adele = directory.find_user("ADELE.VANCE@contoso.com")
    admins = directory.find_groups("atea admins")[0]
    assert adele is not None and adele.id in admins.members
    assert any(not u.enabled for u in directory.users)
    assert any(u.get("department") == "Contractors" for u in directory.users)
    assert directory.find_user("jose.muller@contoso.com").get("givenName") == "José"  # type: ignore[union-attr]
    nested = [g for g in directory.groups if any(m in directory.groups_by_id for m in g.members)]
    assert nested, "a group nested in another one"
    member_ids = {m for g in directory.groups for m in g.members}
    assert any(u.id not in member_ids for u in directory.users), "a user assigned to nothing"


def test_entra_names_read_graph_properties() -> None:
    adele = load_snapshot(SAMPLE).find_user("adele.vance@contoso.com")
    assert adele is not None
    assert adele.get("objectId") == adele.id
    assert adele.get("mobile") == adele.data["mobilePhone"]
    assert adele.get("surname") == "Vance"
    assert adele.get("physicalDeliveryOfficeName") == adele.data["officeLocation"]
    assert adele.get("telephoneNumber") is None  # businessPhones is empty
    assert adele.get("extensionAttribute3") is None
    assert adele.get("noSuchThing") is None


def test_nested_and_list_paths(tmp_path: Path) -> None:
    path = tmp_path / "d.yaml"
    path.write_text("users:\n  - id: u1\n    businessPhones: ['+1 555 0100']\n"
                    "    onPremisesExtensionAttributes: {extensionAttribute7: seven}\n"
                    "    manager: {id: u2}\n  - {id: u2, manager: u1}\n")
    directory = load_snapshot(path)
    one, two = directory.users
    assert one.get("telephoneNumber") == "+1 555 0100"
    assert one.get("extensionAttribute7") == "seven"
    assert one.get("manager") == "u2" and two.get("manager") == "u1"


def test_graph_select_uses_only_what_is_mapped() -> None:
    assert graph_select({"mobile", "objectId", "extensionAttribute2", "telephoneNumber"}, USER_ATTRIBUTES,
                        ("id", "userPrincipalName")) == ["id", "userPrincipalName", "onPremisesExtensionAttributes",
                                                         "mobilePhone", "businessPhones"]
    assert {"IsSoftDeleted", "appRoleAssignments", "mobile"} <= USER_NAMES and "members" in GROUP_NAMES


def test_round_trip_through_dump(tmp_path: Path) -> None:
    directory = load_snapshot(SAMPLE)
    dump_snapshot(directory, tmp_path / "copy.json")
    again = load_snapshot(tmp_path / "copy.json")
    assert again.to_snapshot() == directory.to_snapshot() == json.loads(SAMPLE.read_text())


@pytest.mark.parametrize(("name", "text", "message"), [
    ("bad.json", '{"users": [\n  {"id": "a",}\n]}', "bad.json:2:14: invalid JSON: Expecting property name"),
    ("bad.json", '{"users": [{"id": "a"}, {"userPrincipalName": "x"}]}',
     'bad.json:1:25: users[1]: every object needs an "id" (a string)'),
    ("bad.json", '{"users": [{"id": "a"},\n {"id": "a"}]}', "bad.json:2:9: users[1].id: duplicate id 'a'"),
    ("bad.json", '{"users": [{"id": "a", "accountEnabled": "yes"}]}',
     "bad.json:1:42: users[0].accountEnabled: accountEnabled must be true or false"),
    ("bad.json", '{"groups": [{"id": "g", "members": ["ghost"]}]}',
     "bad.json:1:37: groups[0].members[0]: member 'ghost' is neither a user nor a group of this snapshot"),
    ("bad.json", '{"user": []}', "bad.json:1:2: user: unknown key 'user'"),
    ("bad.json", "[]", 'bad.json:1:1: a snapshot is a mapping with "users" and "groups" lists'),
    ("bad.yaml", "users:\n  - id: a\n  - id: [x\n", "bad.yaml:4:1: YAML syntax error"),
    ("bad.yaml", "users: 5\n", "bad.yaml:1:8: users: users must be a list"),
])
def test_errors_name_file_line_and_column(tmp_path: Path, name: str, text: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(DirectoryError) as caught:
        load_snapshot(path)
    assert str(caught.value).startswith(f"{tmp_path}/{message}")


def test_missing_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(DirectoryError, match=r"missing.json: cannot read directory snapshot: No such file"):
        load_snapshot(tmp_path / "missing.json")


def test_deleted_users_are_read_and_kept_apart(tmp_path: Path) -> None:
    path = tmp_path / "snap.json"
    path.write_text(json.dumps({"users": [{"id": "u1", "userPrincipalName": "a@contoso.com"}], "groups": [],
                                "deletedUsers": [{"id": "u2", "userPrincipalName": "u2b@contoso.com"}]}))
    directory = load_snapshot(path)
    assert [u.id for u in directory.deleted_users] == ["u2"]
    assert directory.to_snapshot()["deletedUsers"] == [{"id": "u2", "userPrincipalName": "u2b@contoso.com"}]
    path.write_text(json.dumps({"users": [{"id": "u1"}], "groups": [], "deletedUsers": [{"id": "u1"}]}))
    with pytest.raises(DirectoryError, match=r"deletedUsers\[0\]\.id: user 'u1' is in users too"):
        load_snapshot(path)
