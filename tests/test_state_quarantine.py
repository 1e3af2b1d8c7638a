"""The quarantine and the escrow across runs, kept in the provisioning state: a restarted loop keeps its backoff
and sends nothing before the next attempt is due, a clean cycle ends the quarantine, ``apply`` says what earlier
runs left, and an object the target refuses stays in escrow (its error scrubbed) until it succeeds."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from reconciler.cli import main
from reconciler.ledger import NOT_CONVERGED, QUARANTINE_ESCROWS, QUARANTINE_FAILED
from reconciler.loop import LoopOptions, ReconcileLoop, wall_iso
from reconciler.run import RunOptions
from reconciler.state.model import ProvisioningState, Quarantine
from reconciler.state.store import load, open_backend, open_session
from tests.hostile import Reply, Request, serving
from tests.reconcile_helpers import ROOT, TOKEN, atea, by_username, directory, many_users

ATEA = str(ROOT / "manifests" / "atea.yaml")
REFUSED = "megan.bowen@contoso.com"
START = 1_800_000_000.0  # the wall clock's start in these tests (seconds since the epoch)
SCIM_ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"


class Gate:
    """A SCIM target in front of the embedded one: every request answered 500 while ``failing``; else passed on,
    except a create of the user ``refuse`` names, refused with 400 and a detail that echoes the bearer token."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self.prefix = parts.path
        self.failing = True
        self.refuse: str | None = None

    def __call__(self, request: Request) -> Reply:
        if self.failing:
            return Reply(500, {"schemas": [SCIM_ERROR], "status": "500", "detail": "upstream broke"})
        body = request.json() if request.method == "POST" else None
        if self.refuse and request.route.endswith("/Users") and isinstance(body, dict) and (
                str(body.get("userName", "")).lower() == self.refuse):
            return Reply(400, {"schemas": [SCIM_ERROR], "status": "400", "scimType": "invalidValue",
                               "detail": f"userName refused for {request.headers.get('Authorization')}"})
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("authorization", "content-type",
                                                                                 "accept")}
        answer = httpx.request(request.method, self.origin + request.path, content=request.body, headers=headers)
        return Reply(answer.status_code, answer.content,
                     content_type=answer.headers.get("content-type", "application/scim+json"))


class Clocks:
    """A loop's clocks: its own (a new process starts it anywhere) and the wall clock; a sleep moves both."""

    def __init__(self, wall: float, mono: float) -> None:
        self.wall, self.mono = wall, mono

    def sleep(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds

    def loop(self, options: LoopOptions, emit: Any) -> ReconcileLoop:
        return ReconcileLoop([atea()], options, stop=threading.Event(), emit=emit, clock=lambda: self.mono,
                             wall=lambda: self.wall, rand=lambda: 0.5, sleep=self.sleep)


def stored(target: str) -> ProvisioningState:
    state, _ = load(open_backend(None), "atea", target)
    return state


def state_bytes(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file())


def test_a_restarted_loop_keeps_the_backoff_and_a_clean_cycle_ends_it(url: str, tmp_path: Path) -> None:
    gate = Gate(url)
    with serving(gate) as server:
        target = server.url + gate.prefix
        options = LoopOptions(interval=60, max_cycles=2, run=RunOptions(directory=directory(tmp_path), target=target))
        lines: list[str] = []
        clocks = Clocks(START, 500.0)
        assert clocks.loop(options, lines.append).run() == 1
        first, second = lines
        assert "atea: FAILED: " in first and "500" in first and "quarantine" not in first
        assert ("2 consecutive failures: quarantined like Entra's provisioning quarantine, next attempt in 2m "
                f"({QUARANTINE_FAILED}; the wait doubles") in second
        quarantine = stored(target).quarantine
        assert (quarantine.failures, quarantine.reason) == (2, QUARANTINE_FAILED)
        assert quarantine.next_attempt == wall_iso(START + 60 + 120)  # the second cycle's time, plus 2 intervals
        assert quarantine.since is not None and quarantine.active

        # the service restarts 30 seconds later: a new process, a new loop clock, the same state folder
        sent: list[int] = []
        lines.clear()

        def emit(line: str) -> None:
            lines.append(line)
            sent.append(len(server.requests))

        before = len(server.requests)
        restarted = Clocks(START + 90, 7.0)
        assert restarted.loop(LoopOptions(interval=60, max_cycles=3, run=options.run), emit).run() == 1
        skipped, still, third = lines
        assert (f"atea: quarantined after 2 consecutive failure(s), next attempt in 1m30s ({QUARANTINE_FAILED})"
                in skipped)
        assert "atea: quarantined after 2 consecutive failure(s), next attempt in 30s" in still
        assert sent[:2] == [before, before]  # nothing was sent before the next attempt was due
        assert "atea: FAILED: " in third and "3 consecutive failures" in third and "next attempt in 4m" in third
        assert sent[2] > before
        quarantine = stored(target).quarantine
        assert quarantine.failures == 3 and quarantine.next_attempt == wall_iso(START + 210 + 240)

        # restarted again once the target is back, after the next attempt is due: one clean cycle ends it
        gate.failing = False
        lines.clear()
        again = Clocks(START + 450, 3.0)
        assert again.loop(LoopOptions(interval=60, max_cycles=1, run=options.run), lines.append).run() == 0
        [clean] = lines
        assert "atea: 10 create; converged" in clean and "out of quarantine after 3 failure(s)" in clean
        after = stored(target)
        assert after.quarantine == Quarantine() and after.last_cycle is not None
        assert after.last_cycle.outcome == "converged"
    assert len(by_username(url)) == 10


def test_a_due_attempt_is_sent_at_once_after_a_restart(url: str, tmp_path: Path) -> None:
    gate = Gate(url)
    with serving(gate) as server:
        target = server.url + gate.prefix
        options = LoopOptions(interval=60, max_cycles=2, run=RunOptions(directory=directory(tmp_path), target=target))
        assert Clocks(START, 0.0).loop(options, lambda line: None).run() == 1
        gate.failing = False
        lines: list[str] = []
        # restarted a day later: the stored attempt is long due
        assert Clocks(START + 86400, 0.0).loop(LoopOptions(interval=60, max_cycles=1, run=options.run),
                                               lines.append).run() == 0
        assert "atea: 10 create; converged" in lines[0] and "out of quarantine after 2 failure(s)" in lines[0]
    assert stored(target).quarantine == Quarantine()


def test_apply_shows_the_quarantine_and_a_converged_apply_ends_it(url: str, tmp_path: Path, capsys: Any) -> None:
    gate = Gate(url)
    with serving(gate) as server:
        target = server.url + gate.prefix
        snapshot = directory(tmp_path)
        options = LoopOptions(interval=60, max_cycles=2, run=RunOptions(directory=snapshot, target=target))
        assert Clocks(START, 0.0).loop(options, lambda line: None).run() == 1
        since = stored(target).quarantine.since
        gate.failing = False
        assert main(["apply", ATEA, "--directory", snapshot, "--target", target]) == 0
        out, err = capsys.readouterr()
        assert f"atea: quarantined since {since} ({QUARANTINE_FAILED}), 2 failed cycles" in err.splitlines()
        assert "converged" in out  # an apply is an explicit request: it runs all the same
        assert stored(target).quarantine == Quarantine()
        assert main(["apply", ATEA, "--directory", snapshot, "--target", target]) == 0
        assert "quarantined" not in capsys.readouterr().err


def test_a_refused_object_stays_in_escrow_until_it_succeeds(url: str, tmp_path: Path, capsys: Any,
                                                             private_state: Path) -> None:
    gate = Gate(url)
    gate.failing, gate.refuse = False, REFUSED
    with serving(gate) as server:
        target = server.url + gate.prefix
        snapshot = directory(tmp_path)

        def apply() -> tuple[int, str, str]:
            code = main(["apply", ATEA, "--directory", snapshot, "--target", target])
            out, err = capsys.readouterr()
            return code, out, err

        code, _, err = apply()
        assert code == 1 and "in escrow" not in err
        [entry] = stored(target).escrow.values()
        assert (entry.kind, entry.display, entry.count) == ("User", REFUSED, 1)
        assert entry.error is not None and "userName refused" in entry.error and TOKEN not in entry.error
        first = entry.first
        assert stored(target).quarantine.failures == 1  # one failed cycle: not a quarantine yet

        code, _, err = apply()
        assert code == 1
        assert f"atea: 1 object(s) in escrow from earlier runs (oldest failing since {first}, 1 time)" in err
        assert "quarantined" not in err.split("\n")[0]
        [entry] = stored(target).escrow.values()
        assert entry.count == 2 and entry.first == first and "userName refused" in (entry.error or "")
        state = stored(target)
        assert (state.quarantine.failures, state.quarantine.reason) == (2, NOT_CONVERGED)
        assert TOKEN.encode() not in state_bytes(private_state) and TOKEN not in err

        gate.refuse = None  # the target's owner fixes the rule
        code, out, err = apply()
        assert code == 0 and "converged" in out
        history = next(line for line in err.splitlines() if "in escrow" in line)
        assert history.startswith(f"atea: 1 object(s) in escrow from earlier runs (oldest failing since {first}, "
                                  "2 times); quarantined since ")
        assert history.endswith(f"({NOT_CONVERGED}), 2 failed cycles")
        state = stored(target)
        assert state.escrow == {} and state.quarantine == Quarantine()
    assert REFUSED in by_username(url)


LONE = "\ud800"


def unsendable_many(data: dict[str, Any]) -> None:
    """5,000 more users in scope whose given name cannot be sent: each fails alone, as Entra escrows it."""
    many_users(data, 5000)
    for user in data["users"][-5000:]:
        user["givenName"] = LONE


def test_an_escrow_past_entras_threshold_quarantines_a_converged_cycle(url: str, tmp_path: Path) -> None:
    options = LoopOptions(interval=60, max_cycles=2,
                          run=RunOptions(directory=directory(tmp_path, unsendable_many), target=url))
    lines: list[str] = []
    assert Clocks(START, 0.0).loop(options, lines.append).run() == 1
    first, second = lines
    assert "atea: 10 create; converged (10 write(s)); 5000 object(s) in escrow, past Entra's escrow threshold" \
        in first
    assert "no changes; converged (0 write(s)); 5000 object(s) in escrow" in second
    assert f"2 consecutive failures: quarantined like Entra's provisioning quarantine, next attempt in 2m " \
           f"({QUARANTINE_ESCROWS};" in second
    state = stored(url)
    assert len(state.escrow) == 5000 and {e.count for e in state.escrow.values()} == {2}
    assert (state.quarantine.failures, state.quarantine.reason) == (2, QUARANTINE_ESCROWS)
    assert len(by_username(url)) == 10


def test_a_cycle_that_cannot_hold_the_state_counts_in_memory_only(url: str, tmp_path: Path) -> None:
    options = LoopOptions(interval=60, max_cycles=2, lock_wait=0,
                          run=RunOptions(directory=directory(tmp_path), target=url))
    lines: list[str] = []
    with open_session(open_backend(None), "atea", url, wait=0, command="apply atea"):  # an apply holds the lock
        assert Clocks(START, 0.0).loop(options, lines.append).run() == 1
    first, second = lines
    assert "atea: FAILED: " in first and "apply atea" in first
    assert "2 consecutive failures: quarantined like Entra's provisioning quarantine, next attempt in 2m (the wait" \
        in second  # no reason: the state says nothing of these cycles
    assert stored(url).quarantine == Quarantine() and by_username(url) == {}


def test_a_clean_apply_ends_the_wait_of_a_running_loop(url: str, tmp_path: Path, capsys: Any) -> None:
    gate = Gate(url)
    with serving(gate) as server:
        target = server.url + gate.prefix
        snapshot = directory(tmp_path)
        lines: list[str] = []

        def emit(line: str) -> None:
            lines.append(line)
            if len(lines) == 2:  # quarantined; someone fixes the target and applies by hand
                gate.failing = False
                assert main(["apply", ATEA, "--directory", snapshot, "--target", target]) == 0

        options = LoopOptions(interval=60, max_cycles=3, run=RunOptions(directory=snapshot, target=target))
        assert Clocks(START, 0.0).loop(options, emit).run() == 0
        assert "next attempt in 2m" in lines[1]
        assert "atea: no changes; converged (0 write(s))" in lines[2]  # not due yet, but the quarantine is over
    capsys.readouterr()
    assert stored(target).quarantine == Quarantine()
