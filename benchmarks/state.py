"""Benchmark the provisioning state: its size, its load and save, the ledger after a round, and the journal.

For N users (default 10,000 and 100,000) of a synthetic directory under the Atea manifest (the sample directory
plus N members of Atea Users with names, mail, mobile, department), the ledger is built as a real apply records
it: the desired state (``desired_state``), a live state equal to it with target ids, the plan made on it
(``make_plan``), then ``after_round``. Measured, per N:

1. the document: its size in bytes, plain and gzip-compressed (for information), per ledger entry;
2. ``to_json`` and ``from_json``; the folder backend's save (``StateSession.commit`` under ``open_session``:
   write, fsync, rename, fsync of the folder) and ``load``; the memory a loaded state holds (tracemalloc);
3. ``after_round`` on a first run (empty ledger) and on a later one (a full ledger), and ``make_plan`` without
   and with the ledger (what the ledger costs planning);
4. the journal: E events (default 10,000) appended through ``StateSession.journal``, and ``load`` replaying them;
5. the same save, load and journal on Azure Blob Storage through Azurite (loopback, in memory), when
   ``node_modules/.bin/azurite-blob`` exists; otherwise a line says it was skipped.

Times are medians of ``--runs`` runs (default 3), and ``make_plan``'s of ``--plan-runs`` (default 2, the two
variants interleaved: at 100,000 users one plan takes about ten seconds here); nothing is asserted on time. Two
rows repeat ``after_round`` and ``from_json`` with the cyclic garbage collector paused, for information: how much
of their time is collections. ``--profile`` adds cProfile's top entries (by own time) of ``from_json``,
``after_round`` and ``make_plan`` with the ledger, and ``to_json``'s peak memory (tracing it is slow).
Usage: ``python benchmarks/state.py [--users N ...] [--runs R] [--plan-runs R] [--events E] [--skip-azure]
[--profile]``.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import gc
import gzip
import io
import json
import os
import pstats
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from reconciler.desired import DesiredState, desired_state  # noqa: E402
from reconciler.directory.model import Directory, DirectoryGroup, DirectoryUser  # noqa: E402
from reconciler.ledger import after_round  # noqa: E402
from reconciler.manifest import load_manifest  # noqa: E402
from reconciler.manifest.model import Manifest  # noqa: E402
from reconciler.plan import Plan, make_plan  # noqa: E402
from reconciler.scim.livestate import LiveState  # noqa: E402
from reconciler.state.model import ProvisioningState, event  # noqa: E402
from reconciler.state.store import (  # noqa: E402
    Backend,
    document_name,
    load,
    open_backend,
    open_session,
    parse_journal,
)
from tests.azurite import BINARY as AZURITE_BINARY  # noqa: E402
from tests.azurite import AzuriteError  # noqa: E402
from tests.azurite import running as running_azurite  # noqa: E402

MANIFEST = ROOT / "manifests" / "atea.yaml"
SAMPLE = ROOT / "examples" / "directory.json"
NOW = "2025-01-01T00:00:00Z"
WAIT = 5.0

GIVEN = ["Ada", "Bjørn", "Chloé", "Dmitri", "Eva", "François", "Greta", "Hiro", "Ingrid", "José", "Kari", "Lars",
         "Mei", "Nils", "Olga", "Pål", "Rania", "Siri", "Tomás", "Ulla", "Viktor", "Wanjiru", "Xavier", "Yusuf"]
FAMILY = ["Andersen", "Berg", "Carlsson", "Dahl", "Eriksen", "Fjeld", "Gundersen", "Halvorsen", "Iversen",
          "Johansen", "Kristiansen", "Larsen", "Moen", "Nilsen", "Olsen", "Pedersen", "Quist", "Ruud", "Solberg",
          "Thorsen", "Ødegård", "Åsheim", "Müller-Lüdenscheidt", "Van der Berg"]
DEPARTMENTS = ["Sales", "Engineering", "Finance", "Support", "Marketing", "Operations", "Legal", "Human Resources"]


# -- the inputs --------------------------------------------------------------------------------------------------


def directory_data(count: int) -> dict[str, Any]:
    """The sample directory plus ``count`` members of Atea Users with the attributes the Atea mappings read."""
    data = json.loads(SAMPLE.read_text())
    group = next(g for g in data["groups"] if g["displayName"] == "Atea Users")
    for n in range(count):
        given, family = GIVEN[n % len(GIVEN)], FAMILY[(n // len(GIVEN)) % len(FAMILY)]
        nick = f"{given}.{family}.{n}".lower().replace(" ", "")
        uid = str(uuid.UUID(int=n, version=4))
        data["users"].append({
            "id": uid, "userPrincipalName": f"{nick}@contoso.com", "displayName": f"{given} {family}",
            "givenName": given, "surname": family, "mail": f"{nick}@contoso.com", "mailNickname": nick,
            "mobilePhone": f"+47 9{n % 10_000_000:07d}", "preferredLanguage": "nb-NO",
            "department": DEPARTMENTS[n % len(DEPARTMENTS)], "jobTitle": "Consultant", "accountEnabled": True,
            "employeeId": f"E{n:07d}"})
        group["members"].append(uid)
    return data


def as_directory(data: dict[str, Any]) -> Directory:
    """``data`` as the snapshot reader gives it (no file in between: the reader is not what is measured)."""
    users = tuple(DirectoryUser(u["id"], u) for u in data["users"])
    groups = tuple(DirectoryGroup(g["id"], {k: v for k, v in g.items() if k != "members"},
                                  tuple(dict.fromkeys(g.get("members", [])))) for g in data["groups"])
    return Directory(users, groups, "benchmark")


def live_like(desired: DesiredState) -> LiveState:
    """A target holding exactly the desired users, each with a target id of its own (as a SCIM server gives)."""
    users: dict[str, dict[str, Any]] = {}
    for n, obj in enumerate(desired.users):
        target_id = str(uuid.UUID(int=(1 << 64) + n, version=4))
        users[target_id] = {"id": target_id, **obj.create_body()}
    return LiveState(users=users)


def user_events(state: ProvisioningState, count: int) -> list[dict[str, Any]]:
    """``count`` update events for ledger users, as a round's writes journal them."""
    entries = [e for e in state.ledger.values() if e.kind == "User"]
    return [event("update", "User", e.source_id, e.target_id, e.display, e.matching)
            for e in (entries[n % len(entries)] for n in range(count))]


# -- measuring ---------------------------------------------------------------------------------------------------


def timed(action: Callable[[], Any]) -> tuple[float, Any]:
    """The wall time of one call of ``action``, and its result."""
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


def median_seconds(action: Callable[[], Any], runs: int) -> tuple[float, Any]:
    """The median wall time of ``runs`` calls of ``action``, and the last call's result (each call's result is
    dropped before the next call, so that two are never held at once)."""
    times = []
    result = None
    for _ in range(runs):
        result = None
        seconds, result = timed(action)
        times.append(seconds)
    return statistics.median(times), result


def traced_mb(action: Callable[[], Any]) -> tuple[float, float, Any]:
    """What ``action``'s result holds (MB still allocated after it) and its peak (MB), by tracemalloc."""
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        result = action()
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return (current - base) / 1e6, (peak - base) / 1e6, result


def profile(label: str, action: Callable[[], Any], top: int = 12) -> None:
    profiler = cProfile.Profile()
    profiler.runcall(action)
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(top)
    lines = [line for line in text.getvalue().splitlines() if line.strip()]
    start = next((i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls")), 0)
    print(f"\nprofile: {label} (cProfile, by own time)")
    for line in lines[start:]:
        print("  " + line.replace(str(ROOT) + "/", ""))


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off for the body (what a step costs without its collections)."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# Linux keeps ru_maxrss across exec (a child would report this large process's peak): VmHWM is the child's own.
LOADER = """
import re, resource, sys, time
sys.path.insert(0, sys.argv[1])
from reconciler.state.store import load, open_backend
started = time.perf_counter()
state, _ = load(open_backend(sys.argv[2]), sys.argv[3], sys.argv[4])
seconds = time.perf_counter() - started
assert state.ledger
try:
    with open("/proc/self/status") as status:
        peak = int(re.search(r"VmHWM:\\s*(\\d+) kB", status.read()).group(1))
except OSError:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(peak, seconds)
"""


def fresh_load(folder: Path, app: str, target: str) -> tuple[float, float]:
    """A fresh process that loads the state from ``folder`` and holds it, as ``state show`` does: its peak RSS
    (MB) and the time ``load`` took there (a small heap: fewer objects for the collector to go through)."""
    answer = subprocess.run([sys.executable, "-c", LOADER, str(ROOT), str(folder), app, target], check=True,
                            capture_output=True, text=True, timeout=300)
    peak, seconds = answer.stdout.split()[-2:]
    return int(peak) / 1024, float(seconds)


class Report:
    def __init__(self, users: int) -> None:
        self.users = users
        self.rows: list[dict[str, Any]] = []

    def add(self, what: str, value: float, unit: str, note: str = "") -> None:
        self.rows.append({"what": what, "value": value, "unit": unit, "note": note})
        shown = f"{value:,.0f}" if unit in ("bytes", "B/entry", "entries") else f"{value:,.3f}"
        print(f"  {what:<48}{shown:>14} {unit:<8} {note}", flush=True)


# -- the backends ------------------------------------------------------------------------------------------------


def backend_rows(report: Report, backend: Backend, label: str, app: str, target: str, state: ProvisioningState,
                 events: list[dict[str, Any]], runs: int) -> None:
    """Save (commit under the lock), load, journal appends and the replay of the journal, on ``backend``."""
    with open_session(backend, app, target, wait=WAIT, command="benchmark") as session:
        seconds, _ = median_seconds(lambda: session.commit(state), runs)
    report.add(f"{label}: save (commit: to_json + write)", seconds, "s")
    seconds, (loaded, _) = median_seconds(lambda: load(backend, app, target), runs)
    assert len(loaded.ledger) == len(state.ledger)
    del loaded
    report.add(f"{label}: load (read + from_json)", seconds, "s")
    started = time.perf_counter()
    with open_session(backend, app, target, wait=WAIT, command="benchmark") as session:
        opened = time.perf_counter() - started
        started = time.perf_counter()
        for item in events:
            session.journal(item)
        session.flush()
        appended = time.perf_counter() - started
    report.add(f"{label}: open_session (lock + load), once", opened, "s")
    report.add(f"{label}: journal {len(events):,} events", appended, "s",
               f"{appended / len(events) * 1e6:,.0f} µs/event")
    seconds, (replayed, _) = median_seconds(lambda: load(backend, app, target), runs)
    assert len(replayed.ledger) == len(state.ledger)
    del replayed
    report.add(f"{label}: load with the journal replayed", seconds, "s")
    journal = backend.read(session.name)[1]
    seconds, _ = median_seconds(lambda: state.with_events(parse_journal(journal), NOW), runs)
    report.add(f"{label}: the replay alone (parse + with_events)", seconds, "s")


@contextlib.contextmanager
def azurite() -> Iterator[str | None]:
    """A connection string to an Azurite blob service on loopback (in memory), or None when it is not installed."""
    if not AZURITE_BINARY.exists():
        yield None
        return
    try:
        stack = contextlib.ExitStack()
        connection = stack.enter_context(running_azurite())
    except AzuriteError as error:
        raise SystemExit(str(error)) from None
    with stack:
        yield connection


# -- one size ----------------------------------------------------------------------------------------------------


def bench(count: int, manifest: Manifest, workdir: Path, args: argparse.Namespace,
          connection: str | None) -> Report:
    report = Report(count)
    runs = args.runs
    directory = as_directory(directory_data(count))
    started = time.perf_counter()
    desired = desired_state(manifest, directory)
    built = time.perf_counter() - started
    del directory
    live = live_like(desired)
    target = manifest.provisioning.target.url
    print(f"\nusers={count:,} (+{len(desired.users) - count} from the sample directory) runs={runs}")
    report.add("desired_state (setup, once)", built, "s")

    # the ledger as a first run records it (no ledger yet: owned by externalId), then as every later run does
    fresh = ProvisioningState(app=manifest.name, target=target)
    seconds, first_plan = timed(lambda: make_plan(manifest, desired, live, target=target))
    without, with_ledger = [seconds], []
    seconds, state = median_seconds(lambda: after_round(fresh, desired, first_plan, live, now=NOW, groups=False),
                                    runs)
    assert len(state.ledger) == len(desired.users) and all(e.applied for e in state.ledger.values())
    report.add("after_round, first run (empty ledger)", seconds, "s")
    plan = first_plan
    for n in range(args.plan_runs):  # interleaved, so that a busy moment of the machine falls on both alike
        seconds, plan = timed(lambda: make_plan(manifest, desired, live, target=target, ledger=state.ledger))
        with_ledger.append(seconds)
        if n + 1 < args.plan_runs:
            without.append(timed(lambda: make_plan(manifest, desired, live, target=target))[0])
    assert isinstance(plan, Plan) and not plan.steps, plan.summary()
    plain, ledgered = statistics.median(without), statistics.median(with_ledger)
    report.add("make_plan without a ledger", plain, "s")
    report.add("make_plan with the ledger", ledgered, "s", f"{(ledgered - plain) / plain:+.0%}")
    seconds, later = median_seconds(lambda: after_round(state, desired, plan, live, now=NOW, groups=False), runs)
    assert later.ledger == state.ledger
    del later
    report.add("after_round, later run (full ledger)", seconds, "s")
    with gc_paused():
        seconds, _ = median_seconds(lambda: after_round(state, desired, plan, live, now=NOW, groups=False), runs)
    report.add("  the same with the cyclic GC paused", seconds, "s", "(for information)")

    # the document
    document = state.to_json()
    entries = len(state.ledger)
    report.add("ledger entries", entries, "entries")
    report.add("document size", len(document), "bytes", f"{len(document) / 1e6:.1f} MB")
    report.add("document per ledger entry", len(document) / entries, "B/entry")
    applied = sum(len(json.dumps(e.applied, ensure_ascii=False, separators=(",", ":")).encode())
                  for e in state.ledger.values())
    report.add("  of which the applied bodies", applied, "bytes", f"{applied / len(document):.0%}")
    compressed = gzip.compress(document, compresslevel=6)
    report.add("document gzip-compressed (level 6)", len(compressed), "bytes",
               f"{len(compressed) / 1e6:.1f} MB, {len(document) / len(compressed):.1f}x smaller")
    del compressed
    seconds, _ = median_seconds(state.to_json, runs)
    report.add("to_json", seconds, "s", f"{len(document) / 1e6 / seconds:.0f} MB/s")
    seconds, _ = median_seconds(lambda: ProvisioningState.from_json(document, "benchmark"), runs)
    report.add("from_json", seconds, "s", f"{len(document) / 1e6 / seconds:.0f} MB/s")
    with gc_paused():
        seconds, _ = median_seconds(lambda: ProvisioningState.from_json(document, "benchmark"), runs)
    report.add("  the same with the cyclic GC paused", seconds, "s", "(for information)")
    held, peak, _ = traced_mb(lambda: ProvisioningState.from_json(document, "benchmark"))
    report.add("memory held by a loaded state (tracemalloc)", held, "MB",
               f"{held * 1e6 / entries:,.0f} B/entry; peak {peak:,.0f} MB while parsing")
    alone = workdir / f"loaded-{count}"
    open_backend(str(alone)).write(document_name(manifest.name, target), document)
    rss, seconds = fresh_load(alone, manifest.name, target)
    report.add("a fresh process that only loads it: load", seconds, "s", "(once)")
    report.add("  its peak RSS", rss, "MB", "(Python and the reconciler's imports included)")
    if args.profile:
        _, peak, _ = traced_mb(state.to_json)
        report.add("peak memory of to_json (tracemalloc)", peak, "MB")

    # the backends
    events = user_events(state, args.events)
    backend_rows(report, open_backend(str(workdir / f"state-{count}")), "folder", manifest.name, target, state,
                 events, runs)
    if connection is not None:
        os.environ["AZURE_STORAGE_CONNECTION_STRING"] = connection
        backend_rows(report, open_backend(f"azblob://bench-{count}"), "azblob", manifest.name, target, state,
                     events, runs)
    report.add("peak RSS of the process so far", peak_rss_mb(), "MB", "(directory, desired, live, plan, states)")

    if args.profile:
        profile(f"from_json, {count:,} users", lambda: ProvisioningState.from_json(document, "benchmark"))
        profile(f"after_round (later run), {count:,} users",
                lambda: after_round(state, desired, plan, live, now=NOW, groups=False))
        profile(f"make_plan with the ledger, {count:,} users",
                lambda: make_plan(manifest, desired, live, target=target, ledger=state.ledger))
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--runs", type=int, default=3, help="runs per measurement; the median is printed")
    parser.add_argument("--plan-runs", type=int, default=2,
                        help="runs of make_plan with and without the ledger (the costliest step)")
    parser.add_argument("--events", type=int, default=10_000, help="journal events appended and replayed")
    parser.add_argument("--skip-azure", action="store_true", help="leave out Azure Blob (Azurite)")
    parser.add_argument("--profile", action="store_true", help="cProfile's top entries of the costly steps")
    args = parser.parse_args()
    if min(args.runs, args.plan_runs, args.events, *args.users) < 1:
        parser.error("--users, --runs, --plan-runs and --events must be at least 1")
    started = time.perf_counter()
    manifest = load_manifest(MANIFEST).manifest
    print(f"cpus={os.cpu_count()} python={sys.version.split()[0]} load average={os.getloadavg()[0]:.2f}")
    reports = []
    with tempfile.TemporaryDirectory() as workdir, contextlib.ExitStack() as stack:
        connection = None
        if args.skip_azure:
            print("azblob: skipped (--skip-azure)")
        else:
            connection = stack.enter_context(azurite())
            if connection is None:
                print(f"azblob: skipped ({AZURITE_BINARY.relative_to(ROOT)} is not installed: npm ci)")
        for count in args.users:
            reports.append(bench(count, manifest, Path(workdir), args, connection))
    elapsed = time.perf_counter() - started
    print(f"\nbenchmark took {elapsed:.0f} s; load average now {os.getloadavg()[0]:.2f}")
    print(json.dumps({"runs": args.runs, "plan_runs": args.plan_runs, "events": args.events,
                      "elapsed": round(elapsed, 1),
                      "sizes": [{"users": r.users, "rows": r.rows} for r in reports]}, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
