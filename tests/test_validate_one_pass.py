"""``validate`` reports every problem of every file in one pass, each at the right line.

Problems come in layers: YAML, keys, values, the cross-field rules on the raw document, the model rules pydantic
runs only on valid fields, and the checks that need a manifest (policies, mappings, files). A file broken in one
layer is still checked in the others (rebuilt around stand-ins, :mod:`reconciler.manifest.salvage`), and nothing
is said about a stand-in itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from reconciler.cli import main
from reconciler.errors import ManifestError
from reconciler.manifest import PartialManifest, inspect_manifests, load_manifests
from reconciler.manifest.model import Manifest
from reconciler.manifest.salvage import STAND_INS
from reconciler.validation import validate_paths
from tests.manifest_samples import BASE, delete, insert_after, replace

BROKEN = """\
# the demo app, broken in several ways
apiVersion: reconciler/v1
kind: EnterpriseApp
name: demo
displayNme: Demo
notificationEmail: ops@contoso.com
roles:
  - {value: User, displayName: User}
assignments:
  - {group: Demo Users, role: Admin}
provisioning:
  target:
    url: https://scim.example.com/v2
  deletionThreshold: 10
  users:
    mappings:
      - {target: userName, source: userPrincipalName, matching: 1}
      - {target: externalId, sourc: objectId}
      - {target: nickName, source: mailNickName}
"""

LIST = "# not a manifest: a list\n# of things\n- apiVersion: reconciler/v1\n  kind: EnterpriseApp\n"


def test_one_validate_run_lists_every_problem_at_its_line(tmp_path: Path, capsys: Any) -> None:
    (tmp_path / "broken.yaml").write_text(BROKEN)
    (tmp_path / "list.yaml").write_text(LIST)
    (tmp_path / "ok.yaml").write_text(BASE.replace("owners: [ops@contoso.com]", "owners: []")
                                      .replace("name: demo", "name: other"))
    code = main(["validate", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 1 and out == ""
    found = [line.removeprefix(f"{tmp_path}/") for line in err.splitlines()]
    assert found == [
        "broken.yaml:2:1: missing required key 'displayName'",
        "broken.yaml:2:1: owners: needs at least one owner (a user principal name or object id) "
        "[at-least-one-owner]",
        "broken.yaml:5:1: unknown key 'displayNme' (did you mean 'displayName'?)",
        "broken.yaml:10:31: assignments[0].role: role 'Admin' is not declared in roles (declared: 'User')",
        "broken.yaml:12:3: provisioning.target: missing required key 'tokenEnv'",
        "broken.yaml:18:9: provisioning.users.mappings[1]: a mapping has exactly one of 'source', 'constant' or "
        "'expression' (found: none)",
        "broken.yaml:18:30: unknown key 'sourc' in provisioning.users.mappings[1] (did you mean 'source'?)",
        "broken.yaml:19:36: provisioning.users.mappings[2].source: unknown source attribute 'mailNickName' "
        "(did you mean 'mailNickname'? names are case-sensitive)",
        "list.yaml:3:1: a manifest is a mapping of keys (apiVersion, kind, name, ...)",
        "ok.yaml:6:1: owners: needs at least one owner (a user principal name or object id) [at-least-one-owner]",
        "10 problem(s) in 3 file(s)",
    ]


def test_a_file_with_problems_is_never_handed_to_a_run(tmp_path: Path) -> None:
    (tmp_path / "broken.yaml").write_text(BROKEN)
    (tmp_path / "ok.yaml").write_text(BASE.replace("name: demo", "name: other"))
    loaded, problems = validate_paths([tmp_path])
    assert loaded == [] and problems
    with pytest.raises(ManifestError):
        load_manifests([tmp_path])
    inspected, _ = inspect_manifests([tmp_path])
    assert sorted(type(m).__name__ for m in inspected) == ["LoadedManifest", "PartialManifest"]


@pytest.mark.parametrize(("text", "expected"), [
    (delete(5), ["app.yaml:1:1: missing required key 'notificationEmail'"]),
    (delete(14), ["app.yaml:12:3: provisioning.target: missing required key 'tokenEnv'"]),
    (replace(13, "    url: http://scim.example.com/v2"),
     ["app.yaml:13:10: provisioning.target.url: plain http:// is allowed only to loopback (127.0.0.1, ::1, "
      "localhost); use https://"]),
    (replace(18, "      - {target: userName, source: 'not a name', matching: 1}"),
     ["app.yaml:18:36: provisioning.users.mappings[0].source: must be a source attribute name such as "
      "userPrincipalName or mail"]),
    (delete(16).replace("    mappings:\n", "").replace("      - {target: userName, source: userPrincipalName, "
                                                       "matching: 1}\n", "")
     .replace("      - {target: externalId, source: objectId}\n", ""),
     ["app.yaml:11:1: provisioning: missing required key 'users'"]),
    (replace(10, "  - {group: Demo Users, role: Default Access}"),
     ["app.yaml:10:31: assignments[0].role: assignments to the Default Access role are not provisioned (the app's "
      "setup guide); assign a declared role"]),
])
def test_each_problem_is_said_once(tmp_path: Path, text: str, expected: list[str]) -> None:
    """A missing or invalid value is reported once: the checks that run on its stand-in say nothing of it, nor
    of a place the cross-field rules already reported."""
    (tmp_path / "app.yaml").write_text(text)
    _, problems = validate_paths([tmp_path / "app.yaml"])
    assert [str(p).removeprefix(f"{tmp_path}/") for p in problems] == expected


def test_a_duplicate_key_does_not_hide_the_rest_of_the_file(tmp_path: Path) -> None:
    text = insert_after(5, "notificationEmail: other@contoso.com").replace("displayName: Demo", "displayNme: Demo")
    (tmp_path / "app.yaml").write_text(text)
    _, problems = validate_paths([tmp_path / "app.yaml"])
    messages = [f"{p.line}:{p.column}: {p.message}" for p in problems]
    assert "6:1: duplicate key 'notificationEmail' (first at line 5)" in messages
    assert "4:1: unknown key 'displayNme' (did you mean 'displayName'?)" in messages


def test_a_partial_manifests_name_counts_for_duplicates(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(BASE)
    (tmp_path / "b.yaml").write_text(BASE.replace("displayName: Demo", "displayNme: Demo"))
    _, problems = validate_paths([tmp_path])
    assert any(p.file.endswith("b.yaml") and "app name 'demo' is already used" in p.message for p in problems)
    inspected, _ = inspect_manifests([tmp_path / "b.yaml"])
    assert [type(m) for m in inspected] == [PartialManifest]


def _models(model: type[BaseModel], seen: set[type[BaseModel]]) -> set[type[BaseModel]]:
    seen.add(model)
    for info in model.model_fields.values():
        for inner in _inner(info.annotation):
            if inner not in seen:
                _models(inner, seen)
    return seen


def _inner(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in getattr(annotation, "__args__", ()) or () for m in _inner(arg)]


def test_every_required_key_has_a_stand_in_that_validates() -> None:
    """A model added to the manifest (or a required key) needs its stand-in in STAND_INS, or salvage stops short."""
    for model in _models(Manifest, set()):
        required = [info.alias or name for name, info in model.model_fields.items() if info.is_required()]
        if not required:
            continue
        assert model in STAND_INS, model.__name__
        assert set(required) <= set(STAND_INS[model]), model.__name__
        model.model_validate(STAND_INS[model])
