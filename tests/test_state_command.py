"""``reconciler state list|show|reset``: documents written the way runs write them (``StateSession.commit``), then
read, shown and reset through the command line."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest

from reconciler.cli import main
from reconciler.lock import STATE_DIR_ENV
from reconciler.state.model import Cycle, Failure, ProvisioningState, Quarantine, event, with_escrow
from reconciler.state.store import STATE_ENV, document_name, now_iso, open_backend, open_session

ATEA = "https://SCIM.atea.example:443/scim/v2/"        # stored normalized: https://scim.atea.example/scim/v2
ATEA_NORMAL = "https://scim.atea.example/scim/v2"
WIKI = "https://wiki.example.com/scim/v2"
OTHER = "https://staging.atea.example/scim/v2"


@pytest.fixture(autouse=True)
def folder(tmp_path: Path, monkeypatch: Any) -> Path:
    state = tmp_path / "state"
    monkeypatch.setenv(STATE_DIR_ENV, str(state))
    monkeypatch.delenv(STATE_ENV, raising=False)
    return state


def users(count: int, *, disabled: int = 0, start: int = 0) -> list[dict[str, Any]]:
    return [event("disable" if n < disabled else "create", "User", f"u{start + n:03}", f"t{start + n:03}",
                  f"user{start + n:03}@contoso.com", [["userName", f"user{start + n:03}@contoso.com"]])
            for n in range(count)]


def save(app: str, target: str, *, location: str | None = None, events: list[dict[str, Any]] | None = None,
         failures: list[Failure] | None = None, watermark: dict[str, Any] | None = None,
         quarantine: Quarantine | None = None, cycle: Cycle | None = None) -> ProvisioningState:
    """One document, saved as a run saves it: under the lock, through StateSession.commit."""
    backend = open_backend(location)
    with open_session(backend, app, target, wait=5, command="test") as session:
        now = now_iso()
        state = session.state.with_events(events or [], now)
        state = with_escrow(state, failures or [], now)
        state.watermark = watermark
        state.quarantine = quarantine or Quarantine()
        state.last_cycle = cycle
        return session.commit(state)


def atea(location: str | None = None) -> ProvisioningState:
    return save("atea", ATEA, location=location,
                events=[*users(3, disabled=1),
                        event("create", "Group", "g1", "tg1", "Atea Users", [["displayName", "Atea Users"]])],
                failures=[Failure("User", "u900", "nora.lindqvist@contoso.com", "HTTP 500: upstream\nbroke")],
                watermark={"users": "https://graph.microsoft.com/v1.0/users/delta?$deltatoken=abc"},
                quarantine=Quarantine(3, "2026-11-27T09:00:00Z", "3 cycles failed", "2026-11-27T11:00:00Z",
                                      "GET /Users: HTTP 503"),
                cycle=Cycle("2026-11-27T09:00:00Z", "2026-11-27T09:01:00Z", "full", "not converged", 4,
                            {"create": 3, "disable": 1}, "1 object failed"))


def path_of(folder: Path, app: str, target: str, suffix: str = ".json") -> Path:
    return folder / f"{document_name(app, target)}{suffix}"


def run(capsys: Any, *argv: str) -> tuple[int, str, str]:
    code = main(["state", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# -- list --------------------------------------------------------------------------------------------------------

def test_list_with_no_state(capsys: Any, folder: Path) -> None:
    code, out, err = run(capsys, "list")
    assert (code, err) == (0, "")
    assert out == f"No provisioning state in {folder}.\n"
    code, out, _ = run(capsys, "list", "--format", "json")
    assert code == 0 and json.loads(out) == {"state": str(folder), "documents": []}


def test_list_one_row_per_document(capsys: Any) -> None:
    atea()
    save("wiki", WIKI, events=users(2), cycle=Cycle("2026-11-27T10:00:00Z", "2026-11-27T10:02:00Z",
                                                       "incremental", "converged", 2))
    code, out, err = run(capsys, "list")
    assert (code, err) == (0, "")
    header, first, second = out.splitlines()
    assert header.split() == ["app", "target", "users", "groups", "disabled", "watermark", "escrow", "quarantine",
                              "last", "cycle"]
    assert first.split()[:8] == ["atea", ATEA_NORMAL, "3", "1", "1", "set", "1", "quarantined"]
    assert "(3 failed cycles, next attempt 2026-11-27T11:00:00Z)" in first
    assert first.endswith("2026-11-27T09:01:00Z not converged, 4 write(s)")
    assert second.split()[:8] == ["wiki", WIKI, "2", "0", "0", "none", "0", "none"]
    assert second.endswith("2026-11-27T10:02:00Z incremental, converged, 2 write(s)")

    code, out, _ = run(capsys, "list", "--format", "json")
    rows = json.loads(out)["documents"]
    assert code == 0 and [r["app"] for r in rows] == ["atea", "wiki"]
    assert rows[0] | {"updated": ""} == {
        "app": "atea", "target": ATEA_NORMAL, "serial": 1, "updated": "", "users": 3, "groups": 1, "disabled": 1,
        "watermark": True, "escrow": 1,
        "quarantine": {"failures": 3, "active": True, "nextAttempt": "2026-11-27T11:00:00Z"},
        "lastCycle": {"started": "2026-11-27T09:00:00Z", "finished": "2026-11-27T09:01:00Z", "mode": "full",
                      "outcome": "not converged", "writes": 4, "done": {"create": 3, "disable": 1},
                      "error": "1 object failed"}}


def test_state_flag_and_environment(capsys: Any, tmp_path: Path, monkeypatch: Any) -> None:
    elsewhere = tmp_path / "elsewhere"
    save("wiki", WIKI, location=str(elsewhere), events=users(1))
    code, out, _ = run(capsys, "list")
    assert code == 0 and out.startswith("No provisioning state")      # the default folder holds nothing
    code, out, _ = run(capsys, "list", "--state", str(elsewhere))
    assert code == 0 and out.splitlines()[1].split()[0] == "wiki"
    code, out, _ = run(capsys, "list", "--state", f"file:{elsewhere}")
    assert code == 0 and out.splitlines()[1].split()[0] == "wiki"
    monkeypatch.setenv(STATE_ENV, str(elsewhere))
    code, out, _ = run(capsys, "list")
    assert code == 0 and out.splitlines()[1].split()[0] == "wiki"
    code, out, _ = run(capsys, "list", "--state", str(tmp_path / "empty"))  # the flag wins over the variable
    assert code == 0 and out.startswith("No provisioning state")


def test_a_journal_is_replayed_and_a_journal_alone_is_listed(capsys: Any, folder: Path) -> None:
    save("atea", ATEA, events=users(2))
    backend = open_backend(None)
    with open_session(backend, "atea", ATEA, wait=5, command="test") as session:
        for item in users(3, start=2):   # a round's writes, journaled; the run is killed before its commit
            session.journal(item)
    with open_session(backend, "wiki", WIKI, wait=5, command="test") as session:
        session.journal(users(1)[0])      # a first run killed before its first save
    code, out, err = run(capsys, "list")
    assert (code, err) == (0, "")
    rows = [line.split() for line in out.splitlines()[1:]]
    assert rows[0][:3] == ["atea", ATEA_NORMAL, "5"]
    assert rows[1][:5] == ["wiki", "(not", "saved", "yet)", "1"]
    code, _, err = run(capsys, "reset", "wiki")
    assert code == 1 and len(err.splitlines()) == 1
    assert "no saved document of app 'wiki'" in err and str(path_of(folder, "wiki", WIKI)) in err


# -- show --------------------------------------------------------------------------------------------------------

def test_show_in_detail(capsys: Any, folder: Path) -> None:
    atea()
    code, out, err = run(capsys, "show", "atea")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == f"atea -> {ATEA_NORMAL}"
    assert lines[1].startswith(f"  document: {path_of(folder, 'atea', ATEA)}, serial 1, updated ")
    assert "  ledger: 3 user(s), 1 group(s), 1 disabled" in lines
    assert "  watermark: set (the next incremental cycle resumes from it)" in lines
    assert ("  last cycle: 2026-11-27T09:00:00Z to 2026-11-27T09:01:00Z, full, not converged, 4 write(s) "
            "(3 create, 1 disable)") in lines
    assert "    error: 1 object failed" in lines
    assert ("  quarantine: quarantined: 3 consecutive failed cycle(s); since 2026-11-27T09:00:00Z; next attempt "
            "2026-11-27T11:00:00Z; reason: 3 cycles failed; last error: GET /Users: HTTP 503") in lines
    assert "  escrow: 1 object(s), retried next cycle" in lines
    escrowed = next(line for line in lines if "nora.lindqvist" in line)
    assert escrowed.startswith("    User nora.lindqvist@contoso.com (u900): 1 failure(s), first ")
    assert escrowed.endswith(": HTTP 500: upstream broke")
    assert "  ledger entries:" in lines
    entries = lines[lines.index("  ledger entries:") + 2:]
    assert [e.split()[:4] for e in entries] == [["Group", "Atea", "Users", "g1"],
                                                ["User", "user000@contoso.com", "u000", "t000"],
                                                ["User", "user001@contoso.com", "u001", "t001"],
                                                ["User", "user002@contoso.com", "u002", "t002"]]
    assert entries[1].endswith("disabled") and not entries[2].endswith("disabled")


def test_show_lists_the_first_entries_unless_asked_for_all(capsys: Any) -> None:
    save("wiki", WIKI, events=users(25))
    code, out, _ = run(capsys, "show", "wiki")
    assert code == 0
    assert "  ledger entries (first 20 of 25):" in out.splitlines()
    assert "user019@contoso.com" in out and "user020@contoso.com" not in out
    assert out.splitlines()[-1] == "    ... 5 more (--ledger lists them all)"
    code, out, _ = run(capsys, "show", "wiki", "--ledger")
    assert code == 0 and "  ledger entries:" in out.splitlines() and "user024@contoso.com" in out
    assert "more (--ledger" not in out


def test_show_json_prints_the_documents_as_stored(capsys: Any, folder: Path) -> None:
    atea()
    save("atea", OTHER, events=users(1))
    code, out, _ = run(capsys, "show", "atea", "--format", "json")
    assert code == 0
    shown = json.loads(out)
    assert shown["state"] == str(folder)
    assert shown["documents"] == [json.loads(path_of(folder, "atea", t).read_bytes()) for t in (ATEA, OTHER)]
    code, out, _ = run(capsys, "show", "atea", "--target", "https://scim.ATEA.example/scim/v2", "--format", "json")
    assert code == 0 and [d["target"] for d in json.loads(out)["documents"]] == [ATEA_NORMAL]


def test_unknown_app_or_target_is_one_line(capsys: Any) -> None:
    atea()
    save("wiki", WIKI, events=users(1))
    code, out, err = run(capsys, "show", "payroll")
    assert (code, out) == (1, "")
    assert err.splitlines() == [f"state: no provisioning state for app 'payroll' in {open_backend(None).location} "
                                "(the apps held: atea, wiki)"]
    code, _, err = run(capsys, "reset", "payroll")
    assert code == 1 and len(err.splitlines()) == 1 and "(the apps held: atea, wiki)" in err
    code, _, err = run(capsys, "show", "atea", "--target", WIKI)
    assert code == 1 and err.splitlines() == [
        f"state: app 'atea' has no provisioning state for --target {WIKI} (its targets: {ATEA_NORMAL})"]


def test_an_empty_state_names_no_apps(capsys: Any) -> None:
    code, _, err = run(capsys, "show", "atea")
    assert code == 1 and err.strip().endswith("(it holds none)")


def test_directory_text_is_made_inert(capsys: Any) -> None:
    hostile = "eve\x1b]0;owned\x07\x1b[2J\nroot\x9b31m@contoso.com"
    save("atea", ATEA, events=[event("create", "User", "u1", "t1", hostile)],
         failures=[Failure("User", "u2", "mallory\x1b[1A", "HTTP 400:\x1b]52;c;Y2xpcA==\x07 bad\r\nvalue")])
    for argv in (["list"], ["show", "atea"]):
        code, out, _ = run(capsys, *argv)
        assert code == 0
        assert "\x1b" not in out and "\x9b" not in out and "\x07" not in out and "\r" not in out
    assert "eve root@contoso.com" in out
    assert "User mallory (u2): 1 failure(s)" in out and out.count("HTTP 400: bad value") == 1


# -- reset -------------------------------------------------------------------------------------------------------

def test_reset_restarts_provisioning_and_keeps_the_ledger(capsys: Any, folder: Path) -> None:
    before = atea()
    code, out, err = run(capsys, "reset", "atea")
    assert (code, err) == (0, "")
    assert out.splitlines() == [f"atea -> {ATEA_NORMAL}: provisioning restarted: watermark, escrow (1 object(s)) "
                                "and quarantine cleared; ledger kept (3 user(s), 1 group(s)); the next cycle is a "
                                "full one (serial 2)"]
    after, fresh = load_state("atea", ATEA)
    assert not fresh and after.serial == before.serial + 1
    assert after.watermark is None and after.escrow == {} and after.quarantine == Quarantine()
    assert after.ledger == before.ledger and after.last_cycle == before.last_cycle
    for suffix in (".json", ".journal"):
        assert stat.S_IMODE(path_of(folder, "atea", ATEA, suffix).stat().st_mode) == 0o600
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in folder.iterdir())
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_forgetting_the_ledger_needs_yes(capsys: Any, folder: Path) -> None:
    atea()
    stored = path_of(folder, "atea", ATEA).read_bytes()
    code, out, err = run(capsys, "reset", "atea", "--forget-ledger")
    assert (code, out) == (1, "")
    assert len(err.splitlines()) == 1
    assert "refused without --yes" in err and "purged from the directory can no longer be recognised" in err
    assert "infers ownership from externalId" in err
    assert path_of(folder, "atea", ATEA).read_bytes() == stored    # nothing written

    code, out, err = run(capsys, "reset", "atea", "--forget-ledger", "--yes")
    assert (code, err) == (0, "")
    assert "ledger forgotten (3 user(s), 1 group(s)); the next run infers ownership from externalId" in out
    after, _ = load_state("atea", ATEA)
    assert after.ledger == {} and after.watermark is None and after.escrow == {} and after.serial == 2
    assert stat.S_IMODE(path_of(folder, "atea", ATEA).stat().st_mode) == 0o600


def test_reset_waits_for_the_lock_and_gives_up(capsys: Any, folder: Path) -> None:
    atea()
    stored = path_of(folder, "atea", ATEA).read_bytes()
    with open_session(open_backend(None), "atea", ATEA, wait=5, command="apply atea"):
        code, out, err = run(capsys, "reset", "atea", "--lock-wait", "0.3")
    assert (code, out) == (1, "")
    lines = err.splitlines()
    assert lines[0].startswith("atea: waiting up to 0.3s for the state lock, held by pid ")
    assert "(apply atea)" in lines[0]
    assert len(lines) == 2 and "another run holds the lock" in lines[1] and "(apply atea)" in lines[1]
    assert path_of(folder, "atea", ATEA).read_bytes() == stored
    code, _, _ = run(capsys, "reset", "atea", "--lock-wait", "0")   # released: it goes through
    assert code == 0


def test_reset_of_an_app_with_two_targets_needs_target(capsys: Any) -> None:
    atea()
    save("atea", OTHER, events=users(1), watermark={"users": "x"})
    code, _, err = run(capsys, "reset", "atea")
    assert code == 1 and err.splitlines() == [
        f"state reset: app 'atea' has provisioning state for 2 targets ({ATEA_NORMAL}, {OTHER}); pass --target URL "
        "to reset one"]
    code, out, _ = run(capsys, "reset", "atea", "--target", OTHER)
    assert code == 0 and out.startswith(f"atea -> {OTHER}: provisioning restarted")
    assert load_state("atea", OTHER)[0].watermark is None
    assert load_state("atea", ATEA)[0].watermark is not None      # the other target's document is untouched


# -- bad documents and flags -------------------------------------------------------------------------------------

def test_a_malformed_document_is_one_line_naming_the_file(capsys: Any, folder: Path) -> None:
    save("wiki", WIKI, events=users(1))
    atea()
    broken = path_of(folder, "atea", ATEA)
    broken.write_text('{"format": 1, "app": "atea", "ledger": {"User": {"u1": {}}}}')
    code, out, err = run(capsys, "list")
    assert code == 1
    assert out.splitlines()[1].split()[0] == "wiki"            # the others are still listed
    assert len(err.splitlines()) == 1 and err.startswith(f"{broken}: malformed provisioning state")
    for argv in (["show", "atea"], ["reset", "atea"]):
        code, out, err = run(capsys, *argv)
        assert (code, out) == (1, "")
        assert len(err.splitlines()) == 1 and err.startswith(f"{broken}: ")
    broken.write_bytes(b"\x00not json")
    code, _, err = run(capsys, "show", "atea")
    assert code == 1 and err.splitlines() == [f"{broken}: not a provisioning state document "
                                              f"({err.split('(', 1)[1].strip()}"]
    assert "Traceback" not in err


def test_flags_that_do_not_belong(capsys: Any) -> None:
    atea()
    for argv, line in ((["list", "--ledger"], "state list: --ledger is for state show"),
                       (["show", "atea", "--yes"], "state show: --yes is for state reset"),
                       (["reset", "atea", "--format", "json"], "state reset: --format is for state list and show"),
                       (["list", "--lock-wait", "0"], "state list: --lock-wait is for state reset"),
                       (["show"], "state show: name the app (state show APP)"),
                       (["list", "atea"], "state list takes no APP (got 'atea'); use state show APP")):
        code, out, err = run(capsys, *argv)
        assert (code, out, err.splitlines()) == (1, "", [line]), argv


def load_state(app: str, target: str) -> tuple[ProvisioningState, bool]:
    from reconciler.state.store import load

    return load(open_backend(None), app, target)


# -- the same over Azure Blob Storage (Azurite) --------------------------------------------------------------------

def test_list_show_and_reset_over_azure_blob(capsys: Any, azurite: str, monkeypatch: Any) -> None:
    from tests.azurite import container_name

    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite)
    monkeypatch.delenv("AZURE_STORAGE_ACCOUNT_URL", raising=False)
    location = f"azblob://{container_name()}/prod"
    before = atea(location)
    save("wiki", WIKI, location=location, events=users(2))
    code, out, err = run(capsys, "list", "--state", location)
    assert (code, err) == (0, "")
    assert [line.split()[:3] for line in out.splitlines()[1:]] == [["atea", ATEA_NORMAL, "3"], ["wiki", WIKI, "2"]]
    code, out, _ = run(capsys, "show", "atea", "--state", location)
    assert code == 0
    assert out.splitlines()[1].startswith(f"  document: {location}/{document_name('atea', ATEA)}.json, serial 1")

    monkeypatch.setenv(STATE_ENV, location)      # $RECONCILER_STATE, as the pipelines set it
    with open_session(open_backend(location), "atea", ATEA, wait=5, command="apply atea"):   # the lease is held
        code, out, err = run(capsys, "reset", "atea", "--lock-wait", "0")
    assert (code, out) == (1, "")
    assert len(err.splitlines()) == 1 and "(apply atea)" in err and "Traceback" not in err
    code, out, err = run(capsys, "reset", "atea")
    assert (code, err) == (0, "")
    assert out.startswith(f"atea -> {ATEA_NORMAL}: provisioning restarted")
    state, fresh = load_state("atea", ATEA)           # read from $RECONCILER_STATE
    assert not fresh and state.serial == 2 and state.watermark is None and state.escrow == {}
    assert state.ledger == before.ledger
    assert azurite.split("AccountKey=")[1].split(";")[0] not in out + err
