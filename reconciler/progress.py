"""Progress of an apply: a rich progress bar on a terminal, plain lines elsewhere (CI logs)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from reconciler.plan import Step

PLAIN_EVERY = 10  # percent between plain progress lines


class Reporter:
    def __init__(self, app: str, bar: Progress | None) -> None:
        self.app = app
        self.bar = bar
        self.task: TaskID | None = None
        self.total = 0
        self.done = 0
        self.failed = 0
        self.next_mark = PLAIN_EVERY

    def start_round(self, number: int, total: int) -> None:
        self.total, self.done, self.failed, self.next_mark = total, 0, 0, PLAIN_EVERY
        label = f"{self.app} round {number}"
        if self.bar is not None:
            self.task = self.bar.add_task(label, total=total)
        else:
            print(f"{label}: {total} change(s)", file=sys.stderr, flush=True)

    def step(self, step: Step, ok: bool) -> None:
        self.done += 1
        self.failed += 0 if ok else 1
        if self.bar is not None and self.task is not None:
            self.bar.advance(self.task)
            return
        percent = 100 * self.done // max(self.total, 1)
        if percent >= self.next_mark or self.done == self.total:
            print(f"{self.app}: {self.done}/{self.total} applied, {self.failed} failed", file=sys.stderr,
                  flush=True)
            self.next_mark = (percent // PLAIN_EVERY + 1) * PLAIN_EVERY


@contextmanager
def progress_reporter(app: str) -> Iterator[Reporter]:
    if not sys.stderr.isatty():
        yield Reporter(app, None)
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(file=sys.stderr), transient=False) as bar:
        yield Reporter(app, bar)
