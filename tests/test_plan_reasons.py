"""Plans say why and who: the reason of every disable, delete and conflict, and membership changes by member name,
in text and Markdown as in JSON (against the embedded target, through the command line)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from reconciler.cli import main
from reconciler.plan import Action, Plan, Step
from reconciler.preview.mask import PiiMasker
from reconciler.preview.render import MaskingFormatter
from reconciler.report import render_markdown, render_text
from reconciler.report.rows import step_rows
from tests.reconcile_helpers import ROOT, atea, converge, directory, group, user, wiki

ATEA = str(ROOT / "manifests" / "atea.yaml")
WIKI = str(ROOT / "manifests" / "wiki.yaml")
MEGAN = "megan.bowen@contoso.com"


def shown(capsys: Any, manifest: str, snapshot: str, url: str, form: str) -> str:
    code = main(["plan", manifest, "--directory", snapshot, "--target", url, "--format", form])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def flat(text: str) -> str:
    """Text without whitespace: the text table pads cells and folds long ones onto several lines."""
    return "".join(text.split())


def test_a_disable_says_why_in_text_and_markdown(url: str, tmp_path: Path, monkeypatch: Any, capsys: Any) -> None:
    converge(atea(), url, directory(tmp_path), monkeypatch)
    megan_id = user(json.loads(Path(directory(tmp_path)).read_text()), MEGAN)["id"]

    def edit(data: dict[str, Any]) -> None:
        group(data, "Atea Users")["members"].remove(megan_id)
        user(data, "alex.wilber@contoso.com")["department"] = "Contractors"

    snapshot = directory(tmp_path, edit, "after.json")
    markdown = shown(capsys, ATEA, snapshot, url, "markdown")
    assert "| disable | User | megan.bowen&#64;contoso.com | active | true | false |" in markdown
    assert "| disable | User | megan.bowen&#64;contoso.com | (reason) |   | unassigned |" in markdown
    assert "| disable | User | alex.wilber&#64;contoso.com | (reason) |   | out of scope |" in markdown
    text = flat(shown(capsys, ATEA, snapshot, url, "text"))
    assert flat(f"disable User {MEGAN} (reason) unassigned") in text
    assert flat("disable User alex.wilber@contoso.com (reason) out of scope") in text


def test_a_delete_says_why_and_membership_changes_name_the_members(
        url: str, tmp_path: Path, monkeypatch: Any, capsys: Any) -> None:
    converge(wiki(), url, directory(tmp_path), monkeypatch)
    sample = json.loads(Path(directory(tmp_path)).read_text())
    ids = {u["userPrincipalName"]: u["id"] for u in sample["users"]}

    def edit(data: dict[str, Any]) -> None:
        sales = group(data, "Sales")
        for gone in (MEGAN, "miriam.graham@contoso.com"):
            sales["members"].remove(ids[gone])
        sales["members"] += [ids[u] for u in ("diego.siciliani@contoso.com", "adele.vance@contoso.com",
                                              "alex.wilber@contoso.com")]

    snapshot = directory(tmp_path, edit, "after.json")
    markdown = shown(capsys, WIKI, snapshot, url, "markdown")
    assert "| DELETE | User | megan.bowen&#64;contoso.com | (reason) |   | unassigned |" in markdown
    assert ("| update | Group | Sales | members |   | +3: adele.vance&#64;contoso.com, alex.wilber&#64;contoso.com, "
            "diego.siciliani&#64;contoso.com |") in markdown
    assert ("| update | Group | Sales | members |   | -2: megan.bowen&#64;contoso.com, "
            "miriam.graham&#64;contoso.com |") in markdown
    text = flat(shown(capsys, WIKI, snapshot, url, "text"))
    assert flat(f"DELETE User {MEGAN} (reason) unassigned") in text
    assert flat("members +3: adele.vance@contoso.com, alex.wilber@contoso.com, diego.siciliani@contoso.com") in text
    assert flat(f"members -2: {MEGAN}, miriam.graham@contoso.com") in text
    [app] = json.loads(shown(capsys, WIKI, snapshot, url, "json"))["apps"]
    [sales] = [s for s in app["steps"] if s["display"] == "Sales"]
    assert sales["members_add"] == [ids[u] for u in ("adele.vance@contoso.com", "alex.wilber@contoso.com",
                                                     "diego.siciliani@contoso.com")]  # directory ids, by name
    assert sorted(sales["member_names"].values()) == sorted(
        ["adele.vance@contoso.com", "alex.wilber@contoso.com", "diego.siciliani@contoso.com", MEGAN,
         "miriam.graham@contoso.com"])


def test_a_long_membership_change_names_ten_then_counts_the_rest(
        url: str, tmp_path: Path, monkeypatch: Any, capsys: Any) -> None:
    converge(wiki(), url, directory(tmp_path), monkeypatch)

    def edit(data: dict[str, Any]) -> None:
        for n in reversed(range(12)):  # listed by name whatever the directory's order
            uid = f"00000000-0000-4000-8000-{n:012d}"
            data["users"].append({"id": uid, "userPrincipalName": f"user{n:02d}@contoso.com", "givenName": "G",
                                  "surname": f"S{n}", "accountEnabled": True, "department": "Sales"})
            group(data, "Sales")["members"].append(uid)

    markdown = shown(capsys, WIKI, directory(tmp_path, edit, "more.json"), url, "markdown")
    names = ", ".join(f"user{n:02d}&#64;contoso.com" for n in range(10))
    assert f"| update | Group | Sales | members |   | +12: {names}, +2 more |" in markdown


def test_a_saved_plan_without_member_names_loads_and_shows_ids() -> None:
    step = Step(Action.UPDATE, "Group", "Sales", "g1", "t-g1", reason="membership", members_add=["d1"],
                members_remove=["t9"], member_names={"d1": "Adele"})
    data = Plan("wiki", "http://x", "delete", 25, "fp", steps=[step]).to_dict()
    del data["steps"][0]["member_names"]  # as a plan saved before names were kept
    again = Plan.from_dict(json.loads(json.dumps(data)))
    assert again.steps[0].member_names == {}
    assert "| update | Group | Sales | members |   | +1: d1 |" in render_markdown([again])
    assert "-1: t9" in render_text([again])


def test_the_preview_masks_member_names_like_other_personal_data() -> None:
    step = Step(Action.UPDATE, "Group", "Sales", "g1", "t-g1", members_add=["d1", "d2"],
                member_names={"d1": "adele.vance@contoso.com", "d2": "Pilot Group"})
    [row] = step_rows(step, formatter=MaskingFormatter(PiiMasker(salt="s")))
    assert row.new.startswith("+2: pii:") and "adele" not in row.new and row.new.endswith(", Pilot Group")
