"""A bad object fails alone: a directory object whose text cannot be sent (a lone surrogate, as a JSON snapshot can
spell it) or whose mapping expression fails for its value is listed as failed with its reason; the others are
planned and applied, and ``apply`` exits 1."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from reconciler.cli import main
from reconciler.desired import DesiredObject, desired_state, unsendable
from reconciler.lock import STATE_DIR_ENV
from reconciler.scim.paths import CORE_USER, ENTERPRISE_USER
from tests.engine_helpers import directory as engine_directory
from tests.engine_helpers import group, manifest, user
from tests.reconcile_helpers import ROOT, by_username, directory
from tests.reconcile_helpers import user as sample_user

ATEA = ROOT / "manifests" / "atea.yaml"
LONE = "\ud800"


def bad_text(data: dict[str, Any]) -> None:
    sample_user(data, "adele.vance@contoso.com")["givenName"] = LONE
    sample_user(data, "megan.bowen@contoso.com")["userPrincipalName"] = f"megan{LONE}@contoso.com"


def test_a_lone_surrogate_arrives_from_a_json_escape(tmp_path: Path) -> None:
    snapshot = Path(directory(tmp_path, bad_text))
    assert '"\\ud800"' in snapshot.read_text()  # the snapshot itself is plain ASCII JSON


def test_plan_lists_objects_that_cannot_be_sent_and_plans_the_others(url: str, tmp_path: Path, capsys: Any,
                                                                     monkeypatch: Any) -> None:
    monkeypatch.setenv(STATE_DIR_ENV, str(tmp_path / "state"))
    snapshot = directory(tmp_path, bad_text)
    code = main(["plan", str(ATEA), "--directory", snapshot, "--target", url, "--format", "json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    [app] = json.loads(out)["apps"]
    assert app["summary"]["create"] == 8
    notes = "\n".join(app["notes"])
    assert "failed user adele.vance@contoso.com: name.givenName: not valid Unicode text (a lone surrogate, " \
           "U+D800)" in notes
    assert "failed user megan\\ud800@contoso.com: userName: not valid Unicode text" in notes


def test_apply_applies_the_others_names_the_failed_and_exits_1(url: str, tmp_path: Path, capsys: Any,
                                                               monkeypatch: Any) -> None:
    monkeypatch.setenv(STATE_DIR_ENV, str(tmp_path / "state"))
    snapshot = directory(tmp_path, bad_text)
    log = tmp_path / "log.jsonl"
    code = main(["apply", str(ATEA), "--directory", snapshot, "--target", url, "--log", str(log)])
    out, err = capsys.readouterr()
    assert code == 1
    assert "atea: 8 create;" in out and "converged, 2 object(s) failed" in out
    failed = [line for line in err.splitlines() if ": failed: " in line]
    assert len(failed) == 2
    assert failed[0].startswith("atea: failed: user adele.vance@contoso.com: name.givenName: not valid Unicode")
    assert failed[1].startswith("atea: failed: user megan\\ud800@contoso.com: userName: not valid Unicode")
    assert "Traceback" not in err and "internal error" not in err
    users = by_username(url)
    assert len(users) == 8 and "adele.vance@contoso.com" not in users
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert sum(r["status"] == "Success" for r in records) == 8
    failed = [r for r in records if r["status"] == "Failure"]  # the two objects whose mapping failed
    assert len(failed) == 2 and {r["statusInfo"]["errorCode"] for r in failed} == {"MappingFailed"}
    assert main(["apply", str(ATEA), "--directory", snapshot, "--target", url]) == 1  # still failing, nothing to do
    assert "nothing to do; 0 write request(s)" in capsys.readouterr().out


def expression_manifest(tmp_path: Path) -> Path:
    """The Atea manifest with two expressions that fail for some users' values (and no snapshot of its own)."""
    text = ATEA.read_text()
    text = text.replace("  directory:\n    snapshot: ../examples/directory.json\n", "")
    mapped = "      - {target: nickName, source: mailNickname}\n"
    assert mapped in text
    title = "      - {target: title, expression: 'FormatDateTime([jobTitle], \"yyyyMMdd\", \"yyyy-MM-dd\")'}\n"
    name = "      - {target: displayName, expression: 'ConvertToUTF8Hex([department])'}\n"
    text = text.replace(mapped, mapped + title + name)
    path = tmp_path / "atea.yaml"
    path.write_text(text)
    return path


def odd_values(data: dict[str, Any]) -> None:
    for item in data["users"]:
        item["jobTitle"] = "20200131"
    sample_user(data, "alex.wilber@contoso.com")["jobTitle"] = "not-a-date"
    sample_user(data, "diego.siciliani@contoso.com")["department"] = LONE  # ConvertToUTF8Hex cannot encode it


def test_an_expression_that_fails_for_one_users_value_fails_that_user_alone(url: str, tmp_path: Path,
                                                                              capsys: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv(STATE_DIR_ENV, str(tmp_path / "state"))
    path = expression_manifest(tmp_path)
    snapshot = directory(tmp_path, odd_values)
    code = main(["apply", str(path), "--directory", snapshot, "--target", url])
    err = capsys.readouterr().err
    assert code == 1, err
    failed = sorted(line for line in err.splitlines() if ": failed: " in line)
    assert len(failed) == 2, err
    assert failed[0].startswith("atea: failed: user alex.wilber@contoso.com: mapping to 'title': FormatDateTime: ")
    assert failed[1].startswith("atea: failed: user diego.siciliani@contoso.com: mapping to 'displayName': not "
                                "valid Unicode text")
    users = by_username(url)
    assert len(users) == 8 and {"alex.wilber@contoso.com", "diego.siciliani@contoso.com"}.isdisjoint(users)
    assert users["adele.vance@contoso.com"]["title"] == "2020-01-31"


GROUPS = """\
scope: all
users:
  mappings:
    - {target: userName, source: userPrincipalName, matching: 1}
    - {target: externalId, source: objectId}
    - {target: name.givenName, source: givenName}
groups:
  enabled: true
  mappings:
    - {target: displayName, source: displayName, matching: 1}
    - {target: externalId, source: objectId}
    - {target: members, source: members}
"""


def test_a_bad_group_and_a_bad_member_fail_alone_in_the_desired_state() -> None:
    loaded = manifest(GROUPS)
    state = desired_state(loaded.manifest, engine_directory(
        user("u1", "one@contoso.com", givenName="One"), user("u2", "two@contoso.com", givenName=f"T{LONE}"),
        group("g1", "Good", ("u1", "u2")), group("g2", f"Bad{LONE}", ("u1",))))
    assert [u.source_id for u in state.users] == ["u1"]
    assert [g.source_id for g in state.groups] == ["g1"]
    assert state.groups[0].members == ("u1",)  # the failed member is left out, not the group
    reasons = {(s.kind, s.source_id): (s.display, s.reason, s.failed) for s in state.skipped}
    assert set(reasons) == {("User", "u2"), ("Group", "g2")}
    assert reasons["Group", "g2"][0] == "Bad\\ud800" and reasons["Group", "g2"][1].startswith("displayName: not valid")
    assert reasons["User", "u2"][1].startswith("name.givenName: not valid Unicode text") and reasons["User", "u2"][2]


def test_no_matching_value_is_skipped_but_not_failed() -> None:
    loaded = manifest(GROUPS)
    state = desired_state(loaded.manifest, engine_directory(
        user("u1", "one@contoso.com"), group("g1", "Good"), group("g2", None)))  # type: ignore[arg-type]
    assert [g.source_id for g in state.groups] == ["g1"]
    [skipped] = state.skipped
    assert skipped.source_id == "g2" and not skipped.failed and skipped.reason.startswith("no matching value")


def test_every_text_of_a_body_is_checked_with_its_path() -> None:
    def body(**resource: Any) -> DesiredObject:
        return DesiredObject("User", "u1", "u1", (("userName", "a"),), {"schemas": [CORE_USER], **resource}, {})

    assert unsendable(body(userName="a", emails=[{"type": "work", "value": "a@contoso.com"}])) is None
    assert unsendable(body(emails=[{"type": "work", "value": LONE}])).startswith('emails[type eq "work"].value: ')
    assert unsendable(body(**{ENTERPRISE_USER: {"department": LONE}})).startswith(f"{ENTERPRISE_USER}:department: ")
    assert unsendable(body(addresses=[{"locality": "x"}, {"locality": LONE}])).startswith("addresses[1].locality: ")
    assert unsendable(DesiredObject("User", f"u{LONE}", "u", (), {}, {})).startswith("objectId: ")
