"""Benchmark the reconciler against the embedded target (scim2-server in its own process, loopback HTTP).

Phases, for N users (default 10,000):

1. initial apply (every user created, then read back until converged);
2. no-op plan (the target already matches: page reads only);
3. a 1% change (renames) applied;
4. a raw loader: the same creates, one POST each at the same concurrency, to a fresh target of the same kind
   (the best this server allows one-request-per-user), for the ratio apply / raw.

For each phase: requests sent (by method), requests per changed object, wall time, and the reconciler process's
peak RSS so far. Usage: ``python benchmarks/reconcile.py [--users N] [--concurrency C]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from reconciler.manifest import load_manifest  # noqa: E402
from reconciler.run import AppRun, RunOptions  # noqa: E402
from reconciler.target.process import TargetProcess  # noqa: E402

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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--skip-raw", action="store_true", help="leave out the raw loader (long at 100k users)")
    args = parser.parse_args()
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
