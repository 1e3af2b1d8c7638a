"""How many writes to keep in flight: single-object writes (creates with Bulk off, then updates) against the
embedded target in its own process, at several concurrency levels. The default of ``apply --concurrency`` comes
from this measurement.

Usage: ``python benchmarks/concurrency.py [--users N] [--levels 1,2,4,8,16,32]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.reconcile import TOKEN, make_directory  # noqa: E402
from reconciler.manifest import load_manifest  # noqa: E402
from reconciler.run import AppRun, RunOptions  # noqa: E402
from reconciler.target.process import TargetProcess  # noqa: E402


async def timed_apply(url: str, snapshot: Path, concurrency: int) -> tuple[float, int]:
    loaded = load_manifest(ROOT / "manifests" / "atea.yaml")
    options = RunOptions(directory=str(snapshot), target=url, concurrency=concurrency, bulk=False)
    async with AppRun(loaded, options) as app:
        await app.prepare()
        plan = app.plan_for(await app.read())
        from reconciler.apply import PlanExecutor

        started = time.perf_counter()
        report = await PlanExecutor(app.client, plan, concurrency=concurrency, bulk=False).run()
        assert not report.failures, report.failures[:3]
        return time.perf_counter() - started, report.writes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--levels", default="1,2,4,8,16,32")
    args = parser.parse_args()
    os.environ["ATEA_SCIM_TOKEN"] = TOKEN
    levels = [int(level) for level in args.levels.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        base = Path(workdir) / "base.json"
        base.write_text(json.dumps(make_directory(args.users)))
        renamed = Path(workdir) / "renamed.json"
        renamed.write_text(json.dumps(make_directory(args.users, renamed=args.users)))
        for level in levels:
            with TargetProcess(token=TOKEN) as target:
                assert target.url
                create_s, creates = asyncio.run(timed_apply(target.url, base, level))
                update_s, updates = asyncio.run(timed_apply(target.url, renamed, level))
            rows.append((level, creates / create_s, updates / update_s))
    print(f"users={args.users} cpus={os.cpu_count()} (writes per second, single-object requests)")
    print(f"{'concurrency':>11}{'POST/s':>10}{'PATCH/s':>10}")
    for level, posts, patches in rows:
        print(f"{level:>11}{posts:>10.0f}{patches:>10.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
