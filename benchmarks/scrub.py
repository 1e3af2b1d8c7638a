"""Benchmark the output boundary's scrubber: MB/s over plan-shaped text, with a Graph-sized and a short token.

Usage: ``python benchmarks/scrub.py [--lines N]``. Prints, per case, the text size, the time and the throughput.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reconciler.outputs import strip_controls
from reconciler.secrets import SecretRegistry

LINE = ('{"action": "update", "kind": "User", "display": "user%06d@contoso.com", "source_id": '
        '"0f8fad5b-d9cb-469f-a165-%012d", "changes": [{"path": "name.familyName", "old": "Bowen", "new": "Hughes"}]}\n')


def measure(label: str, registry: SecretRegistry, text: str) -> None:
    started = time.perf_counter()
    registry.scrub(text)
    seconds = time.perf_counter() - started
    size = len(text) / 1e6
    print(f"{label:<44} {size:7.1f} MB {seconds:7.3f} s {size / seconds:8.1f} MB/s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=100_000)
    args = parser.parse_args()
    text = "".join(LINE % (n, n) for n in range(args.lines))
    graph_like = secrets.token_urlsafe(1500)  # a Graph access token is 1.5-2.5 kB
    short = secrets.token_urlsafe(24)
    for label, tokens in (("no secret registered", []), ("one 32-character token", [short]),
                          ("a 2 kB Graph-like token", [graph_like]), ("both", [short, graph_like])):
        registry = SecretRegistry()
        for token in tokens:
            registry.register(token)
        measure(label, registry, text)
    started = time.perf_counter()
    strip_controls(text)
    seconds = time.perf_counter() - started
    print(f"{'control-character stripping':<44} {len(text) / 1e6:7.1f} MB {seconds:7.3f} s "
          f"{len(text) / 1e6 / seconds:8.1f} MB/s")


if __name__ == "__main__":
    main()
