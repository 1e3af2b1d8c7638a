"""Benchmark the reconciler against the embedded target (scim2-server in its own process, loopback HTTP).

Phases, for N users (default 10,000):

1. initial apply (every user created, then read back until converged);
2. no-op plan (the target already matches: page reads only);
3. a 1% change (renames) applied;
4. a raw loader: the same creates, one POST each at the same concurrency, to a fresh target of the same kind
   (the best this server allows one-request-per-user), for the ratio apply / raw.

For each phase: requests sent (by method), requests per changed object, wall time, and the reconciler process's
peak RSS so far. Usage: ``python benchmarks/reconcile.py [--users N] [--concurrency C]``.

``--cycles``: incremental cycles instead, from a fake Microsoft Graph (``tests/fake_graph.py``, loopback) to the
embedded target (``serving_target``, in this process) behind a counting proxy (``FaultProxy``, no fault), the
reconciler run as a subprocess (``python -m reconciler apply MANIFEST --target PROXY [--incremental] --state DIR``)
so that its peak RSS is its own. The tenant is the sample directory plus ``benchmarks/state.py``'s N synthetic users
(every mapped attribute set), spread over assigned groups of at most ``--group-size`` members (default 5,000:
scim2-server spends time in proportion to a group's size on each member operation of a PATCH, so that a 1% change
to one 100,000-member group outlasts the client's 30 s read timeout; 0 keeps them all in Atea Users). The manifest
is ``manifests/atea.yaml`` reading that Graph, with those groups assigned, groups provisioned, and its
``deletionThreshold`` raised to 1% of N (the 1% change disables 0.3% of N). Rows, in this order, on one state
folder:

1. full cycle, initial: everything created (no state yet);
2. incremental cycle, no change;
3. incremental cycle after a 1% change in Graph: 60% of it surnames changed, 20% accounts disabled, 5% users
   soft-deleted, 5% purged, 10% new hires added to the assigned groups;
4. full cycle after another 1% change of the same shape.

Per row: the child's wall time, the Graph requests (the fake's ``counts``), the target requests (every request the
proxy forwards: reads by kind and writes apart), the objects changed (the apply's summary line), target requests per
changed object, and the child's peak RSS (``ru_maxrss`` of its own children, read by a small launcher process: Linux
carries a process's peak across exec, so the benchmark's own, with the tenant and the target in it, would show
through ``RUSAGE_CHILDREN`` here). For a full cycle the requests per changed object count the writes and the reads
after the first write (verification), not discovery or the paged read before the writes; for an incremental cycle
every target request counts. Then each aim is printed with whether it is met. ``--profile ROW,...`` runs those rows
under cProfile and prints their top functions; ``--trace-memory ROW,...`` runs them under tracemalloc and prints the
top allocation sites near the traced peak (rows: initial, noop, incremental, full; both slow the row down);
``--diagnose-noop`` runs the no-op cycle twice more after its row (it changes nothing), under each tool. The
tracemalloc looks are samples, taken when the sampling thread gets a turn: a short peak can pass unseen. For what a
loaded state holds, ``--keep-state DIR`` keeps the state folder of a run and ``--state-parts DIR`` loads its parts
one after the other under tracemalloc (the ledger, the directory cache, the desired state, the save). The
``(target)`` column is the wall time during which at least one target request was in flight: the server's share.
Usage: ``python benchmarks/reconcile.py --cycles [--users N] [--group-size G] [--profile ROWS]
[--trace-memory ROWS] [--diagnose-noop]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from reconciler.manifest import load_manifest  # noqa: E402
from reconciler.run import AppRun, RunOptions  # noqa: E402
from reconciler.target.process import TargetProcess  # noqa: E402
from tests.reconcile_helpers import GROUPS  # noqa: E402  (the group provisioning the tests add to Atea)

TOKEN = "benchmark-token"
REQUESTS: Counter[str] = Counter()
_send = httpx.AsyncClient.send


async def _counting_send(self: httpx.AsyncClient, request: httpx.Request, **kwargs: Any) -> httpx.Response:
    REQUESTS[request.method] += 1
    return await _send(self, request, **kwargs)


httpx.AsyncClient.send = _counting_send  # type: ignore[method-assign]


def make_directory(count: int, renamed: int = 0) -> dict[str, Any]:
    users = [{"id": f"00000000-0000-4000-8000-{i:012d}", "userPrincipalName": f"user{i:06d}@contoso.com",
              "mail": f"user{i:06d}@contoso.com", "givenName": f"Given{i}",
              "surname": f"Family{i}" + ("-renamed" if i < renamed else ""), "mailNickname": f"user{i:06d}",
              "preferredLanguage": "en-US", "mobilePhone": f"+1 555 {i:07d}", "accountEnabled": True,
              "department": "Engineering"} for i in range(count)]
    admin = {"id": "20000000-0000-4000-8000-000000000000", "userPrincipalName": "adele.vance@contoso.com",
             "accountEnabled": True}
    groups = [{"id": "10000000-0000-4000-8000-000000000000", "displayName": "Atea Users",
               "members": [u["id"] for u in users]},
              {"id": "10000000-0000-4000-8000-000000000001", "displayName": "Atea Admins", "members": []}]
    return {"users": [*users, admin], "groups": groups}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def reconcile(url: str, snapshot: Path, concurrency: int, *, plan_only: bool) -> tuple[float, int, dict]:
    REQUESTS.clear()
    loaded = load_manifest(ROOT / "manifests" / "atea.yaml")
    started = time.perf_counter()
    async with AppRun(loaded, RunOptions(directory=str(snapshot), target=url, concurrency=concurrency)) as app:
        if plan_only:
            plan = await app.plan()
            changed = sum(1 for s in plan.steps if s.writes)
        else:
            result = await app.converge()
            assert result.converged, "did not converge"
            changed = sum(sum(r.done.values()) for r in result.rounds)
    return time.perf_counter() - started, changed, dict(REQUESTS)


async def raw_loader(url: str, directory: dict[str, Any], concurrency: int) -> tuple[float, dict]:
    """One POST per user, the same bodies the reconciler sends, ``concurrency`` at a time; nothing else."""
    from reconciler.desired import desired_state
    from reconciler.directory.snapshot import load_snapshot

    loaded = load_manifest(ROOT / "manifests" / "atea.yaml")
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(directory, handle)
    bodies = [u.create_body() for u in desired_state(loaded.manifest, load_snapshot(handle.name)).users]
    os.unlink(handle.name)
    REQUESTS.clear()
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/scim+json"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        async def worker() -> None:
            while not queue.empty():
                body = queue.get_nowait()
                answer = await client.post(f"{url}/Users", content=json.dumps(body), headers=headers)
                answer.raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started, dict(REQUESTS)


def row(phase: str, seconds: float, changed: int, requests: dict[str, int]) -> dict[str, Any]:
    total = sum(requests.values())
    return {"phase": phase, "seconds": round(seconds, 2), "changed": changed, "requests": total,
            "by_method": requests, "requests_per_change": round(total / changed, 2) if changed else None,
            "peak_rss_mb": round(peak_rss_mb(), 1)}


# -- --cycles: incremental cycles from the fake Graph, the reconciler as a subprocess ------------------------------

SNAPSHOT_LINE = "    snapshot: ../examples/directory.json\n"
THRESHOLD_LINE = "  deletionThreshold: 50\n"
ADMINS_LINE = "  - {group: Atea Admins, role: Admin}\n"
SUMMARY = re.compile(r"^atea: (.+?); (\d+) write request\(s\) in (\d+) round\(s\); (.+)$", re.MULTILINE)
DISCOVERY = ("/ServiceProviderConfig", "/ResourceTypes", "/Schemas")
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
ROWS = {"initial": "full cycle (initial)", "noop": "incremental, no change", "incremental": "incremental, 1% change",
        "full": "full cycle, 1% change"}
MB = 1024 * 1024

# Started by the benchmark, this process is small when it starts the reconciler: the reconciler's ru_maxrss, read
# through RUSAGE_CHILDREN, is its own (at most this launcher's few MB carried across exec).
LAUNCHER = """
import resource, subprocess, sys, time
started = time.perf_counter()
code = subprocess.call(sys.argv[2:])
seconds = time.perf_counter() - started
with open(sys.argv[1], "w") as out:
    out.write(f"{resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss} {seconds}")
sys.exit(code)
"""

# The reconciler under tracemalloc (12 frames): each time the traced memory has grown by 5% since the last look,
# the top allocation sites are taken, each block charged to its innermost frame in the reconciler's own code (so
# that what json builds is charged to the reconciler line that parsed it), and the snapshot dropped at once.
TRACER = """
import json, runpy, sys, threading, time, tracemalloc
out, sys.argv = sys.argv[1], ["reconciler", *sys.argv[2:]]
BUFFER = 256 * 1024 * 1024
tracemalloc.start(12)
started = time.perf_counter()
looks = []
done = threading.Event()

def look(current):
    snapshot = tracemalloc.take_snapshot()
    sites = {}
    held = 0
    for stat in snapshot.statistics("traceback"):
        # a read's size cap allocated up front (not touched, so not resident) is not what the process holds
        if stat.size < BUFFER * stat.count:
            held += stat.size
        frame = next((f for f in reversed(stat.traceback) if "/reconciler/" in f.filename), stat.traceback[-1])
        where = f"{frame.filename}:{frame.lineno}"
        size, count = sites.get(where, (0, 0))
        sites[where] = (size + stat.size, count + stat.count)
    del snapshot
    top = sorted(((where, size, count) for where, (size, count) in sites.items()), key=lambda t: -t[1])[:15]
    looks.append({"at": round(time.perf_counter() - started, 1), "traced": current, "held": held, "top": top})
    return held

def sample():
    level = 20e6
    while not done.wait(0.2):
        current = tracemalloc.get_traced_memory()[0]
        if current > level:
            level = max(level, look(current) * 1.05)

sampler = threading.Thread(target=sample, daemon=True)
sampler.start()
try:
    runpy.run_module("reconciler", run_name="__main__")
finally:
    done.set()
    sampler.join(600)  # a look at a large heap takes a while: let it end
    with open(out, "w") as handle:
        json.dump({"peak": tracemalloc.get_traced_memory()[1], "looks": looks}, handle)
"""


def synthetic_hire(batch: int, n: int) -> dict[str, Any]:
    """A new hire of change batch ``batch``, shaped as ``benchmarks/state.py``'s synthetic users."""
    nick = f"nora.lindqvist.{batch}.{n}"
    return {"id": str(uuid.UUID(int=(2 << 64) + batch * 1_000_000 + n, version=4)),
            "userPrincipalName": f"{nick}@contoso.com", "displayName": "Nora Lindqvist", "givenName": "Nora",
            "surname": "Lindqvist", "mail": f"{nick}@contoso.com", "mailNickname": nick,
            "mobilePhone": f"+47 4{n:07d}", "preferredLanguage": "nb-NO", "department": "Engineering",
            "jobTitle": "Consultant", "accountEnabled": True, "employeeId": f"H{batch}{n:06d}"}


def staff_groups(data: dict[str, Any], synthetic: list[dict[str, Any]], size: int) -> list[dict[str, Any]]:
    """Move the synthetic users from Atea Users into new groups of at most ``size`` members (Atea Staff 001, ...),
    which the manifest assigns; those groups (with ``size`` 0, Atea Users keeps them all: the one group)."""
    atea = next(g for g in data["groups"] if g["displayName"] == "Atea Users")
    if not size:
        return [atea]
    moved = {u["id"] for u in synthetic}
    atea["members"] = [m for m in atea["members"] if m not in moved]
    groups = []
    for n, start in enumerate(range(0, len(synthetic), size), start=1):
        members = [u["id"] for u in synthetic[start:start + size]]
        groups.append({"id": str(uuid.UUID(int=(3 << 64) + n, version=4)), "displayName": f"Atea Staff {n:03d}",
                       "mailNickname": f"atea-staff-{n:03d}", "members": members})
    data["groups"].extend(groups)
    return groups


def change_one_percent(graph: Any, synthetic: list[dict[str, Any]], group_ids: list[str],
                       batch: int) -> dict[str, int]:
    """1% of the users changed in Graph, each batch on other users: surnames, disables, soft-deletes, purges and
    new hires added to the assigned groups ``group_ids`` in turn."""
    count = max(len(synthetic) // 100, 10)
    hires, purged, deleted, disabled = count // 10, count // 20, count // 20, count // 5
    renamed = count - hires - purged - deleted - disabled
    picked = synthetic[batch::100][:count - hires]
    plan = {"surname changed": renamed, "disabled": disabled, "soft-deleted": deleted, "purged": purged}
    start = 0
    for what, size in plan.items():
        for record in picked[start:start + size]:
            if what == "surname changed":
                graph.update_user(record["id"], surname=f"{record['surname']}-Moe")
            elif what == "disabled":
                graph.update_user(record["id"], accountEnabled=False)
            elif what == "soft-deleted":
                graph.soft_delete_user(record["id"])
            else:
                graph.purge_user(record["id"])
        start += size
    for n in range(hires):
        hire = synthetic_hire(batch, n)
        graph.add_user(hire["id"], **{k: v for k, v in hire.items() if k != "id"})
        graph.add_member(group_ids[n % len(group_ids)], hire["id"])
    return {**plan, "new hires": hires}


def load_tenant(graph: Any, data: dict[str, Any]) -> None:
    graph.add_users(data["users"])
    for group in data["groups"]:  # every group first: a group may be another's member
        graph.add_group(group["id"], **{k: v for k, v in group.items() if k not in ("id", "members")})
    for group in data["groups"]:
        for member in group["members"]:
            graph.add_member(group["id"], member)


def cycle_manifest(text: str, endpoint: str, users: int, staff: list[dict[str, Any]]) -> str:
    for old in (SNAPSHOT_LINE, THRESHOLD_LINE, ADMINS_LINE):
        if old not in text:
            raise SystemExit(f"manifests/atea.yaml: the benchmark edits the line {old.strip()!r}, which is gone")
    text = text.replace(SNAPSHOT_LINE, f"    graph: {{endpoint: '{endpoint}', tokenEnv: GRAPH_TOKEN}}\n")
    text = text.replace(THRESHOLD_LINE, f"  deletionThreshold: {max(50, users // 100)}\n")
    assigned = "".join(f"  - {{group: {g['displayName']}, role: User}}\n" for g in staff
                       if g["displayName"] != "Atea Users")
    text = text.replace(ADMINS_LINE, ADMINS_LINE + assigned)
    return text.rstrip("\n") + "\n" + GROUPS


def target_counts(log: list[tuple[str, str]], full: bool) -> dict[str, Any]:
    """The target requests of one cycle (method and path with query, in the order sent): reads by kind (discovery,
    page of a listing, filtered read, by id), writes by method, and what counts per changed object."""
    first_write = next((n for n, (method, _) in enumerate(log) if method in WRITES), len(log))
    reads: Counter[str] = Counter()
    writes: Counter[str] = Counter()
    verification = 0
    for n, (method, target) in enumerate(log):
        if method in WRITES:
            writes[method] += 1
            continue
        path, _, query = target.partition("?")
        tail = path.rstrip("/").rsplit("/", 2)
        kind = ("discovery" if path.endswith(DISCOVERY) else "by id" if tail[-1] not in ("Users", "Groups")
                else "filter" if "filter=" in query else "page")
        reads[kind] += 1
        verification += n > first_write
    total_writes = sum(writes.values())
    counted = total_writes + verification if full else len(log)
    return {"reads": sum(reads.values()), "writes": total_writes, "read_kinds": dict(reads),
            "write_methods": dict(writes), "verification_reads": verification, "counted": counted}


class InFlight:
    """Wraps a proxy's ``forward``: the wall time during which at least one target request was in flight (the
    server's share of a cycle, from the proxy's side of loopback)."""

    def __init__(self, proxy: Any) -> None:
        self.spans: list[tuple[float, float]] = []
        self.requests: list[tuple[str, str]] = []  # method and path with query, in the order sent
        self._forward = proxy.forward
        proxy.forward = self.forward

    def forward(self, method: str, target: str, *args: Any) -> Any:
        self.requests.append((method, target))
        started = time.perf_counter()
        try:
            return self._forward(method, target, *args)
        finally:
            self.spans.append((started, time.perf_counter()))

    def busy(self, since: int) -> float:
        total, end = 0.0, float("-inf")
        for start, stop in sorted(self.spans[since:]):
            if stop > end:
                total += stop - max(start, end)
                end = stop
        return total


def run_cycle(key: str, command: list[str], workdir: Path, env: dict[str, str], graph: Any,
              diagnose: str | None, in_flight: InFlight) -> dict[str, Any]:
    """One reconciler run through the launcher: what it sent, changed and used."""
    graph.counts.clear()
    sent, spans = len(in_flight.requests), len(in_flight.spans)
    rusage, stdout, stderr = workdir / f"{key}.rusage", workdir / f"{key}.out", workdir / f"{key}.err"
    python = str(ROOT / ".venv" / "bin" / "python")
    if diagnose == "profile":
        child = [python, "-m", "cProfile", "-o", str(workdir / f"{key}.prof"), "-m", "reconciler", *command]
    elif diagnose == "memory":
        child = [python, "-c", TRACER, str(workdir / f"{key}.trace"), *command]
    else:
        child = [python, "-m", "reconciler", *command]
    with stdout.open("wb") as out, stderr.open("wb") as err:
        code = subprocess.call([sys.executable, "-c", LAUNCHER, str(rusage), *child], stdout=out, stderr=err,
                               env=env, cwd=ROOT)
    output, errors = stdout.read_text(errors="replace"), stderr.read_text(errors="replace")
    found = SUMMARY.search(output)
    if not found:
        raise SystemExit(f"{ROWS[key]}: the reconciler exited {code}: {(errors or output).strip()[-600:]}")
    failures = [line[:300] for line in errors.splitlines() if line.startswith(("atea: failed: ", "atea: pending: "))]
    if "--incremental" in command and "a full cycle" in errors:
        raise SystemExit(f"{ROWS[key]}: the incremental cycle fell back to a full one: {errors.strip()[-300:]}")
    changed = sum(int(n) for n in re.findall(r"(\d+) (?:create|update|disable|delete|adopt)", found.group(1)))
    maxrss_kb, seconds = rusage.read_text().split()
    target = target_counts(in_flight.requests[sent:], full="--incremental" not in command)
    notes = [line[:300] for line in (output + errors).splitlines() if "read back" in line]
    graph_total = sum(graph.counts.values())
    return {"key": key, "row": ROWS[key], "seconds": round(float(seconds), 2),
            "target_busy_seconds": round(in_flight.busy(spans), 2), "graph_requests": graph_total,
            "graph_delta_requests": sum(n for path, n in graph.counts.items() if path.endswith("/delta")),
            **target, "changed": changed, "summary": found.group(1), "rounds": int(found.group(3)),
            "per_change": round(target["counted"] / changed, 3) if changed else None,
            "peak_rss_mb": round(int(maxrss_kb) / 1024, 1), "diagnosed": diagnose, "exit": code,
            "status": found.group(4), "failures": failures, "notes": notes}


def aims(rows: dict[str, dict[str, Any]], users: int) -> list[tuple[str, bool, str]]:
    """Each aim, whether it is met, and the measured values."""
    noop, inc, initial, full = rows["noop"], rows["incremental"], rows["initial"], rows["full"]
    noop_requests = noop["reads"] + noop["writes"]
    loaded = [rows[k] for k in ("noop", "incremental", "full")]
    result = [
        ("no-op incremental: at most 2 Graph requests", noop["graph_requests"] <= 2, f"{noop['graph_requests']}"),
        ("no-op incremental: no target request", noop_requests == 0, f"{noop_requests}"),
        (f"no-op incremental: under 5 s (the aim is set at 100,000 users; here {users:,})", noop["seconds"] < 5,
         f"{noop['seconds']:.2f} s"),
        ("1% incremental: at most 1.05 target requests per changed object", (inc["per_change"] or 0) <= 1.05,
         f"{inc['per_change']}"),
    ]
    for row in (initial, full):
        result.append((f"{row['row']}: at most 1.05 requests per changed object (writes + verification reads)",
                       (row["per_change"] or 0) <= 1.05, f"{row['per_change']}"))
    worst = max(loaded, key=lambda r: r["peak_rss_mb"])
    result.append((f"peak RSS with the state loaded under 400 MB (the aim is set at 100,000 users; here {users:,})",
                   worst["peak_rss_mb"] < 400, f"{worst['peak_rss_mb']:.0f} MB ({worst['row']})"))
    return result


def print_profile(path: Path, label: str, top: int = 15) -> None:
    import io
    import pstats

    for order in ("tottime", "cumulative"):
        text = io.StringIO()
        pstats.Stats(str(path), stream=text).sort_stats(order).print_stats(top)
        lines = [line for line in text.getvalue().splitlines() if line.strip()]
        start = next((i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls")), 0)
        print(f"\nprofile: {label} (cProfile, by {order})")
        for line in lines[start:]:
            print("  " + line.replace(str(ROOT) + "/", "").replace(sys.prefix + "/", ""))


def print_trace(path: Path, label: str) -> None:
    trace = json.loads(path.read_text())
    print(f"\nmemory: {label} (tracemalloc peak {trace['peak'] / MB:,.0f} MB traced)")
    if not trace["looks"]:
        return
    last = max(trace["looks"], key=lambda look: look["held"])
    print(f"  top allocation sites at {last['at']} s, {last['held'] / MB:,.0f} MB held ({last['traced'] / MB:,.0f} MB "
          "traced, with any read buffer allocated at its size cap):")
    for where, size, count in last["top"]:
        print(f"  {size / MB:>9.1f} MB {count:>10,} blocks  {where.replace(str(ROOT) + '/', '')}")
    print("  held over the run: " + ", ".join(f"{look['at']} s {look['held'] / MB:,.0f} MB" for look in trace["looks"]))


def cycles(args: argparse.Namespace) -> int:
    from benchmarks.state import directory_data
    from reconciler.target.faults import FaultProxy
    from reconciler.target.serve import serving_target
    from tests.fake_graph import fake_graph

    profiled = {k for k in (args.profile or "").split(",") if k}
    traced = {k for k in (args.trace_memory or "").split(",") if k}
    for key in profiled | traced:
        if key not in ROWS:
            raise SystemExit(f"--profile/--trace-memory: unknown row {key!r} (rows: {', '.join(ROWS)})")
    data = directory_data(args.users)
    synthetic = data["users"][len(data["users"]) - args.users:]
    staff = staff_groups(data, synthetic, args.group_size)
    group_ids = [g["id"] for g in staff]
    rows: dict[str, dict[str, Any]] = {}
    changes: list[dict[str, int]] = []
    setup = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, fake_graph() as graph, \
            serving_target(token=TOKEN) as server, FaultProxy(server.url) as proxy:
        workdir = Path(tmp)
        in_flight = InFlight(proxy)
        load_tenant(graph, data)
        del data
        manifest = workdir / "atea.yaml"
        manifest.write_text(cycle_manifest((ROOT / "manifests" / "atea.yaml").read_text(), graph.endpoint,
                                           args.users, staff))
        env = {**os.environ, "ATEA_SCIM_TOKEN": TOKEN, "GRAPH_TOKEN": graph.token}
        base = ["apply", str(manifest), "--target", proxy.url, "--state", str(workdir / "state"),
                "--concurrency", str(args.concurrency)]
        print(f"users={args.users:,} in {len(staff)} assigned group(s) concurrency={args.concurrency} "
              f"cpus={os.cpu_count()} "
              f"load average={os.getloadavg()[0]:.2f} (tenant set up in {time.perf_counter() - setup:.1f} s)",
              flush=True)

        def run(key: str, incremental: bool) -> None:
            diagnose = "profile" if key in profiled else "memory" if key in traced else None
            row = run_cycle(key, base + (["--incremental"] if incremental else []), workdir, env, graph, diagnose,
                            in_flight)
            print(f"  {row['row']}: {row['seconds']:.1f} s ({row['target_busy_seconds']:.1f} s of it with a target "
                  f"request in flight), {row['summary']}; Graph {row['graph_requests']}, target reads "
                  f"{row['reads']} writes {row['writes']}, {row['per_change']} per changed object, peak RSS "
                  f"{row['peak_rss_mb']:.0f} MB; {row['status']}" + (f", exit {row['exit']}" if row["exit"] else ""),
                  flush=True)
            rows.setdefault(key, row)
            if diagnose == "profile":
                print_profile(workdir / f"{key}.prof", row["row"])
            elif diagnose == "memory":
                print_trace(workdir / f"{key}.trace", row["row"])

        run("initial", incremental=False)
        run("noop", incremental=True)
        if args.diagnose_noop:  # a no-op cycle changes nothing: run it again under each tool, not as a row
            profiled.add("noop")
            run("noop", incremental=True)
            profiled.discard("noop")
            traced.add("noop")
            run("noop", incremental=True)
        changes.append(change_one_percent(graph, synthetic, group_ids, batch=1))
        run("incremental", incremental=True)
        changes.append(change_one_percent(graph, synthetic, group_ids, batch=2))
        run("full", incremental=False)
        if args.keep_state:
            shutil.copytree(workdir / "state", args.keep_state, dirs_exist_ok=True)
    print_cycles(args, rows, changes)
    return 0


def state_parts(args: argparse.Namespace) -> int:
    """What a state folder's parts hold once loaded, one after the other in this process, under tracemalloc: the
    ledger, the directory cache, the desired state of the whole directory, and the save's peak."""
    import gc
    import tracemalloc

    from benchmarks.state import directory_data
    from reconciler.desired import desired_state
    from reconciler.directory.changes import directory_from_json
    from reconciler.manifest import load_text
    from reconciler.state.model import ProvisioningState

    folder = Path(args.state_parts)
    documents, caches = sorted(folder.glob("*.json")), sorted(folder.glob("*.cache"))
    if len(documents) != 1 or len(caches) != 1:
        raise SystemExit(f"{folder}: expected one state document (*.json) and one directory cache (*.cache)")
    data = directory_data(args.users)
    staff = staff_groups(data, data["users"][len(data["users"]) - args.users:], args.group_size)
    del data
    manifest = load_text(cycle_manifest((ROOT / "manifests" / "atea.yaml").read_text(), "http://127.0.0.1:9",
                                        args.users, staff), file=str(ROOT / "manifests" / "atea.yaml")).manifest
    print(f"{documents[0].name}: {documents[0].stat().st_size / 1e6:.1f} MB; {caches[0].name}: "
          f"{caches[0].stat().st_size / 1e6:.1f} MB; the manifest for {args.users:,} users")
    tracemalloc.start()

    def part(name: str, action: Any) -> Any:
        gc.collect()
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        started = time.perf_counter()
        value = action()
        seconds = time.perf_counter() - started
        now, peak = tracemalloc.get_traced_memory()
        print(f"  {name:<40}{seconds:>7.2f} s  holds {(now - before) / MB:>7.1f} MB  "
              f"peak +{(peak - before) / MB:>7.1f} MB", flush=True)
        return value

    document = part("the state document's bytes", documents[0].read_bytes)
    state = part("ProvisioningState.from_json", lambda: ProvisioningState.from_json(document, str(documents[0])))
    document = b""
    cache = part("the directory cache's bytes", caches[0].read_bytes)
    directory = part("directory_from_json (the cache)", lambda: directory_from_json(cache, str(caches[0])))
    cache = b""
    part("desired_state of the whole directory", lambda: desired_state(manifest, directory))
    part("to_json (the save; its bytes held)", state.to_json)
    tracemalloc.stop()
    print(f"  {len(state.ledger):,} ledger entries, {len(directory.users):,} users in the cache")
    return 0


def print_cycles(args: argparse.Namespace, rows: dict[str, dict[str, Any]], changes: list[dict[str, int]]) -> None:
    size = args.group_size or args.users
    print(f"\nusers={args.users:,} (assigned groups of at most {size:,} members); each 1% change: "
          + ", ".join(f"{n} {what}" for what, n in changes[0].items()))
    print(f"{'row':<26}{'seconds':>9}{'(target)':>9}{'Graph':>7}{'reads':>7}{'writes':>8}{'changed':>9}"
          f"{'req/changed':>13}{'peak RSS MB':>13}  target requests")
    for r in rows.values():
        per = "-" if r["per_change"] is None else f"{r['per_change']:.3f}"
        detail = " ".join([*(f"GET {kind} {n}" for kind, n in sorted(r["read_kinds"].items())),
                           *(f"{m} {n}" for m, n in sorted(r["write_methods"].items()))])
        mark = " *" if r["diagnosed"] else ""
        print(f"{r['row'] + mark:<26}{r['seconds']:>9.2f}{r['target_busy_seconds']:>9.2f}{r['graph_requests']:>7}"
              f"{r['reads']:>7}{r['writes']:>8}"
              f"{r['changed']:>9}{per:>13}{r['peak_rss_mb']:>13.1f}  {detail or '-'}")
    if any(r["diagnosed"] for r in rows.values()):
        print("* run under cProfile or tracemalloc: its time and memory are not the reconciler's own")
    for r in rows.values():
        if r["exit"] or r["status"] != "converged" or r["failures"]:
            print(f"{r['row']}: exit {r['exit']}, {r['status']}; " + " | ".join(r["failures"][:3]))
        for note in r["notes"]:
            print(f"{r['row']}: {note}")
    print("\naims:")
    results = aims(rows, args.users)
    for text, met, value in results:
        print(f"  [{'met' if met else 'MISSED'}] {text}: {value}")
    print(json.dumps({"users": args.users, "concurrency": args.concurrency, "changes": changes,
                      "rows": list(rows.values()),
                      "aims": [{"aim": t, "met": m, "value": v} for t, m, v in results]}, ensure_ascii=False))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--skip-raw", action="store_true", help="leave out the raw loader (long at 100k users)")
    parser.add_argument("--cycles", action="store_true",
                        help="incremental cycles: the fake Graph as the directory, the reconciler as a subprocess")
    parser.add_argument("--profile", metavar="ROWS", help="with --cycles: these rows (initial,noop,incremental,"
                                                          "full) under cProfile")
    parser.add_argument("--trace-memory", metavar="ROWS", help="with --cycles: these rows under tracemalloc")
    parser.add_argument("--group-size", type=int, default=5000,
                        help="with --cycles: the synthetic users in assigned groups of at most this many members "
                             "(0: all in Atea Users)")
    parser.add_argument("--keep-state", metavar="DIR", help="with --cycles: copy the state folder to DIR at the end")
    parser.add_argument("--state-parts", metavar="DIR",
                        help="what the parts of a state folder kept by --keep-state hold once loaded (tracemalloc; "
                             "give the same --users and --group-size)")
    parser.add_argument("--diagnose-noop", action="store_true",
                        help="with --cycles: after the no-op row, the no-op cycle again under cProfile, then under "
                             "tracemalloc (not rows)")
    args = parser.parse_args()
    if args.state_parts:
        return state_parts(args)
    if args.cycles:
        return cycles(args)
    os.environ["ATEA_SCIM_TOKEN"] = TOKEN
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        base = Path(workdir) / "directory.json"
        base.write_text(json.dumps(make_directory(args.users)))
        changed = Path(workdir) / "changed.json"
        changed.write_text(json.dumps(make_directory(args.users, renamed=max(1, args.users // 100))))
        with TargetProcess(token=TOKEN) as target:
            assert target.url
            rows.append(row("initial apply", *asyncio.run(reconcile(target.url, base, args.concurrency,
                                                                    plan_only=False))))
            rows.append(row("no-op plan", *asyncio.run(reconcile(target.url, base, args.concurrency,
                                                                 plan_only=True))))
            rows.append(row("1% change apply", *asyncio.run(reconcile(target.url, changed, args.concurrency,
                                                                      plan_only=False))))
        if not args.skip_raw:
            with TargetProcess(token=TOKEN) as target:
                assert target.url
                seconds, requests = asyncio.run(raw_loader(target.url, make_directory(args.users),
                                                           args.concurrency))
                rows.append(row("raw loader (POST only)", seconds, args.users, requests))
    ratio = rows[0]["seconds"] / rows[-1]["seconds"] if not args.skip_raw else float("nan")
    print(f"users={args.users} concurrency={args.concurrency} cpus={os.cpu_count()}")
    print(f"{'phase':<24}{'seconds':>9}{'changed':>9}{'requests':>10}{'req/change':>12}{'peak RSS MB':>13}  methods")
    for r in rows:
        per = "-" if r["requests_per_change"] is None else f"{r['requests_per_change']:.2f}"
        methods = " ".join(f"{m}={n}" for m, n in sorted(r["by_method"].items()))
        print(f"{r['phase']:<24}{r['seconds']:>9.2f}{r['changed']:>9}{r['requests']:>10}{per:>12}"
              f"{r['peak_rss_mb']:>13.1f}  {methods}")
    if not args.skip_raw:
        print(f"apply / raw loader = {ratio:.2f}x")
    print(json.dumps({"users": args.users, "concurrency": args.concurrency, "rows": rows,
                      "ratio": None if args.skip_raw else round(ratio, 3)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
