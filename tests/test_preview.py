"""``reconciler preview``: the pull-request comment, against a real git repository and the embedded target."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from reconciler.cli import main
from reconciler.manifest import load_manifest
from reconciler.preview.render import LIMIT, MARKER
from tests.reconcile_helpers import ROOT, SAMPLE, converge, directory, user

GIT_ENV = {"GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.invalid", "GIT_COMMITTER_NAME": "test",
           "GIT_COMMITTER_EMAIL": "test@example.invalid", "GIT_CONFIG_GLOBAL": os.devnull,
           "GIT_CONFIG_NOSYSTEM": "1"}


def git(repo: Path, *args: str) -> str:
    answer = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True,
                            env={**os.environ, **GIT_ENV}, timeout=60)
    return answer.stdout.strip()


def make_repo(tmp_path: Path) -> Path:
    """``repo/manifests/atea.yaml`` and ``repo/examples/directory.json``, committed on ``main``."""
    repo = tmp_path / "repo"
    (repo / "manifests").mkdir(parents=True)
    (repo / "examples").mkdir()
    shutil.copy(ROOT / "manifests" / "atea.yaml", repo / "manifests" / "atea.yaml")
    shutil.copy(ROOT / "examples" / "directory.json", repo / "examples" / "directory.json")
    git(repo, "init", "-q", "-b", "main")
    commit(repo, "base")
    return repo


def commit(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "-c", "commit.gpgsign=false", "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new))


ADD_ASSIGNMENT = ("  - {user: adele.vance@contoso.com, role: Admin}\n",
                  "  - {user: adele.vance@contoso.com, role: Admin}\n  - {user: megan.bowen@contoso.com, role: User}\n")


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: Any) -> Path:
    repo = make_repo(tmp_path)
    monkeypatch.chdir(repo)
    return repo


def preview(capsys: Any, *args: str) -> tuple[int, str, str]:
    code = main(["preview", "manifests", *args])
    out, err = capsys.readouterr()
    return code, out, err


def summary_row(comment: str, app: str = "atea") -> list[str]:
    line = next(line for line in comment.splitlines() if line.startswith(f"| {app} |"))
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_no_change(repo: Path, url: str, tmp_path: Path, capsys: Any, monkeypatch: Any) -> None:
    snapshot = directory(tmp_path)
    converge(load_manifest(repo / "manifests" / "atea.yaml"), url, snapshot, monkeypatch)
    code, out, _ = preview(capsys, "--base", "main", "--directory", snapshot, "--target", url)
    assert code == 0
    assert out.startswith(MARKER + "\n")
    assert summary_row(out) == ["atea", "0", "0", "0", "0", "0", "0", "0", ""]
    assert "No changes on either side." in out
    assert "<details" not in out and "\x1b" not in out


def test_small_change_both_sides_per_attribute_and_deterministic(repo: Path, url: str, tmp_path: Path,
                                                                 capsys: Any, monkeypatch: Any) -> None:
    snapshot = directory(tmp_path)
    converge(load_manifest(repo / "manifests" / "atea.yaml"), url, snapshot, monkeypatch)
    edit(repo / "manifests" / "atea.yaml", *ADD_ASSIGNMENT)
    edit(repo / "manifests" / "atea.yaml", "description: Full access}", "description: Full administrative access}")

    def rename(data: dict[str, Any]) -> None:
        user(data, "megan.bowen@contoso.com")["givenName"] = "Meg"

    changed = directory(tmp_path, rename, "renamed.json")
    code, out, _ = preview(capsys, "--base", "main", "--directory", changed, "--target", url)
    assert code == 0
    # Azure: the new assignment is added, the application's roles change; SCIM: Megan is renamed (she was
    # already in scope through Atea Users, so the new assignment creates nobody).
    assert summary_row(out) == ["atea", "1", "1", "0", "0", "1", "0", "0", ""]
    assert "| add | atea-user-megan-bowen-contoso-com-user | AppRoleAssignment | principalObjectId | - |" in out
    assert ("| change | atea-app | Application | appRoles&#91;value=Admin&#93;.description | Full access | "
            "Full administrative access |") in out
    assert "| update | User | megan.bowen&#64;contoso.com | name.givenName | Megan | Meg |" in out
    assert out.index("| app |") < out.index("<details")  # summary first
    again = preview(capsys, "--base", "main", "--directory", changed, "--target", url)[1]
    assert again == out
    assert "\x1b" not in out


def test_disables_are_listed_first_and_flagged_against_the_threshold(repo: Path, url: str, tmp_path: Path,
                                                                     capsys: Any, monkeypatch: Any) -> None:
    snapshot = directory(tmp_path)
    converge(load_manifest(repo / "manifests" / "atea.yaml"), url, snapshot, monkeypatch)
    edit(repo / "manifests" / "atea.yaml", "deletionThreshold: 50", "deletionThreshold: 2")

    def unassign(data: dict[str, Any]) -> None:
        for group in data["groups"]:
            if group["displayName"] == "Atea Users":
                group["members"] = []

    code, out, _ = preview(capsys, "--base", "main", "--directory", directory(tmp_path, unassign, "u.json"),
                           "--target", url)
    assert code == 0
    row = summary_row(out)
    disables = int(row[6])
    assert disables > 2 and row[1:4] == ["0", "1", "0"]  # the threshold is an input of the app's component
    assert f"**{disables} disable/delete step(s), over the deletion threshold** (deletionThreshold 2)" in out
    destructive = out.index("removal(s), disable(s) and delete(s) (over the deletion threshold)")
    assert destructive < out.index("| SCIM | disable | User |")
    assert "<details open>" in out[destructive - 60:destructive]


def test_mass_change_stays_under_the_limit_and_says_what_was_cut(repo: Path, url: str, tmp_path: Path,
                                                                 capsys: Any) -> None:
    def many(data: dict[str, Any]) -> None:
        group = next(g for g in data["groups"] if g["displayName"] == "Atea Users")
        for n in range(3000):
            uid = f"00000000-0000-4000-8000-{n:012d}"
            data["users"].append({"id": uid, "userPrincipalName": f"user{n:04d}@contoso.com",
                                  "mail": f"user{n:04d}@contoso.com", "givenName": f"Given{n}",
                                  "surname": f"Surname{n}", "displayName": f"User {n}", "accountEnabled": True,
                                  "department": "Sales"})
            group["members"].append(uid)

    code, out, _ = preview(capsys, "--base", "main", "--directory", directory(tmp_path, many, "big.json"),
                           "--target", url)
    assert code == 0
    assert len(out) <= LIMIT
    assert summary_row(out)[4] == "3010"  # the summary is never trimmed
    match = re.search(r"\*\*Trimmed:\*\* ([\d,]+) of ([\d,]+) detail row\(s\) \(([\d,]+) characters\)", out)
    assert match, out[-500:]
    cut, total = (int(match.group(i).replace(",", "")) for i in (1, 2))
    assert 0 < cut < total
    shown = sum(1 for line in out.splitlines() if line.startswith("| create | User |"))
    assert shown + cut == total
    assert out.count("<details") == out.count("</details>")


def test_fork_mode_without_credentials_still_shows_the_azure_side(repo: Path, tmp_path: Path, capsys: Any,
                                                                  monkeypatch: Any) -> None:
    monkeypatch.delenv("ATEA_SCIM_TOKEN", raising=False)
    edit(repo / "manifests" / "atea.yaml", *ADD_ASSIGNMENT)
    code, out, _ = preview(capsys, "--base", "main")
    assert code == 0
    assert summary_row(out) == ["atea", "1", "0", "0", "-", "-", "-", "-", "SCIM not evaluated"]
    [line] = [x for x in out.splitlines() if "SCIM side not evaluated" in x]
    assert "&#36;ATEA_SCIM_TOKEN is not set" in line and "fork" in line


def test_new_app_and_removed_app(repo: Path, capsys: Any, monkeypatch: Any) -> None:
    monkeypatch.delenv("ATEA_SCIM_TOKEN", raising=False)
    text = (repo / "manifests" / "atea.yaml").read_text()
    (repo / "manifests" / "atea2.yaml").write_text(text.replace("name: atea\n", "name: atea2\n"))
    commit(repo, "two apps")
    (repo / "manifests" / "atea.yaml").unlink()
    code, out, _ = preview(capsys, "--base", "main")
    assert code == 0
    removed = summary_row(out, "atea")
    assert removed[1:3] == ["0", "0"] and int(removed[3]) >= 4 and removed[-1] == "manifest removed"
    assert "the manifest is removed; the reconciler leaves the app's SCIM target as it is" in out
    commit(repo, "drop atea")
    (repo / "manifests" / "atea.yaml").write_text(text)
    out = preview(capsys, "--base", "HEAD")[1]
    added = summary_row(out, "atea")
    assert int(added[1]) >= 4 and added[2:4] == ["0", "0"]
    assert summary_row(out, "atea2")[1:4] == ["0", "0", "0"]


def test_base_revision_problems_are_one_line(repo: Path, tmp_path: Path, capsys: Any, monkeypatch: Any) -> None:
    monkeypatch.delenv("ATEA_SCIM_TOKEN", raising=False)
    code, out, err = preview(capsys, "--base", "no-such-ref")
    assert code == 0
    assert "- Azure side not evaluated: base revision 'no-such-ref' is not a commit in this repository" in out
    assert err.count("Azure side not evaluated") == 1
    edit(repo / "manifests" / "atea.yaml", "deletionThreshold: 50", "deletionThreshold: 40")
    commit(repo, "second")
    shallow = tmp_path / "shallow"
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{repo}", str(shallow)], check=True,
                   capture_output=True, timeout=60)
    monkeypatch.chdir(shallow)
    out = preview(capsys, "--base", "HEAD~1")[1]
    assert "is not in this shallow clone; fetch it" in out


def test_masking_hides_names_and_emails_with_stable_hashes(repo: Path, url: str, tmp_path: Path, capsys: Any,
                                                          monkeypatch: Any) -> None:
    edit(repo / "manifests" / "atea.yaml", *ADD_ASSIGNMENT)
    snapshot = directory(tmp_path)
    code, out, _ = preview(capsys, "--base", "main", "--directory", snapshot, "--target", url, "--mask-pii")
    assert code == 0
    people = {u["userPrincipalName"] for u in SAMPLE["users"]}
    words = {w for u in SAMPLE["users"] for w in (u["givenName"], u["surname"], u["mailNickname"]) if w}
    assert not [p for p in people if p.replace("@", "&#64;") in out or p in out]
    assert not [w for w in words if re.search(rf"\b{re.escape(w)}\b", out)]
    assert "contoso" not in out.lower()
    assert "megan-bowen" not in out  # resource names are built from principals too
    assert re.search(r"\| create \| User \| pii:[0-9a-f]{8} \| userName \| - \| pii:[0-9a-f]{8} \|", out)
    assert preview(capsys, "--base", "main", "--directory", snapshot, "--target", url, "--mask-pii")[1] == out
    unmasked = preview(capsys, "--base", "main", "--directory", snapshot, "--target", url)[1]
    assert "adele.vance&#64;contoso.com" in unmasked


def test_markup_in_directory_values_is_inert(repo: Path, url: str, tmp_path: Path, capsys: Any) -> None:
    def hostile(data: dict[str, Any]) -> None:
        user(data, "megan.bowen@contoso.com")["surname"] = "<img src=x> @org/admins | `x` [a](http://e.example)"

    out = preview(capsys, "--base", "main", "--directory", directory(tmp_path, hostile, "h.json"),
                  "--target", url)[1]
    assert "<img" not in out and "@org" not in out and "](http" not in out
    assert "&lt;img src=x&gt; &#64;&#8203;org/admins &#124; &#96;x&#96;" in out


def test_invalid_manifest_is_shown_and_exits_1(repo: Path, capsys: Any, monkeypatch: Any) -> None:
    monkeypatch.delenv("ATEA_SCIM_TOKEN", raising=False)
    edit(repo / "manifests" / "atea.yaml", "  deprovision: disable", "  deprovision: disabel")
    code, out, err = preview(capsys, "--base", "main")
    assert code == 1
    assert "**The manifests are invalid: nothing was previewed.**" in out
    assert "| error | manifests/atea.yaml:" in out and "deprovision" in out
    assert "manifests/atea.yaml:" in err


def test_pulumi_output_is_attached_without_ansi_and_out_file(repo: Path, tmp_path: Path, capsys: Any,
                                                             monkeypatch: Any) -> None:
    monkeypatch.delenv("ATEA_SCIM_TOKEN", raising=False)
    pulumi = tmp_path / "pulumi.txt"
    pulumi.write_text("\x1b[32m+ azuread:index/application:Application atea-app create\x1b[0m\n<b>x</b>\n")
    target = tmp_path / "comment.md"
    code, out, _ = preview(capsys, "--base", "main", "--pulumi-output", str(pulumi), "--out", str(target))
    assert code == 0 and out == ""
    comment = target.read_text()
    assert "<summary>pulumi preview --diff</summary>" in comment
    assert "+ azuread:index/application:Application atea-app create" in comment
    assert "\x1b" not in comment and "&lt;b&gt;x&lt;/b&gt;" in comment
    assert json.dumps(comment)  # plain text


def test_masker_is_stable_keyed_and_whole_word() -> None:
    from reconciler.preview.mask import PiiMasker

    masker = PiiMasker(salt="")
    masker.add("Ann Lee")
    masker.add("ann.lee@contoso.com", slugs=True)
    text = "Ann Lee <ann.lee@contoso.com> in atea-user-ann-lee-contoso-com-user; annual report; bob@example.org"
    masked = masker.mask(text)
    assert "Ann Lee" not in masked and "ann.lee" not in masked and "ann-lee" not in masked
    assert "annual report" in masked and "bob@example.org" not in masked
    token = PiiMasker(salt="").token("ANN.LEE@contoso.com ")
    assert token == masker.token("ann.lee@contoso.com") and f"atea-user-{token}-user" in masked
    assert PiiMasker(salt="k1").token("ann.lee@contoso.com") != token != PiiMasker(salt="k2").token("x@y.zz")


def test_a_small_limit_trims_details_not_the_summary(repo: Path, url: str, tmp_path: Path, capsys: Any) -> None:
    code, out, _ = preview(capsys, "--base", "main", "--directory", directory(tmp_path), "--target", url,
                           "--max-chars", "2000")
    assert code == 0 and len(out) <= 2000
    assert summary_row(out) == ["atea", "0", "0", "0", "10", "0", "0", "0", ""]
    assert "**Trimmed:**" in out and out.count("<details") == out.count("</details>")
