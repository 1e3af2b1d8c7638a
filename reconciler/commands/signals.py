"""SIGTERM and SIGINT during ``apply``: start no new request, let those in flight finish, say how far the run got.

The stop gate is the one the reconcile loop uses too (:mod:`reconciler.stopgate`): a request hook on the app's
SCIM client refuses every new request once a stop was requested, raising :class:`~reconciler.stopgate.Stopping`.
The requests in flight are answered within a grace of :data:`GRACE` seconds after the signal
(``RECONCILER_STOP_GRACE`` sets another); whatever still runs then is cancelled, and so is everything at a second
signal. Each provisioning-log record is written whole, so the log ends with complete lines. A write cut short is
safe to redo: the next apply converges, without duplicates.

Exit codes are the shell's for a process ended by the signal: 143 for SIGTERM, 130 for SIGINT.
"""

from __future__ import annotations

import asyncio
import signal
import threading

from reconciler.settings import env_number

GRACE = 10.0
GRACE_ENV = "RECONCILER_STOP_GRACE"
EXIT_CODES = {signal.SIGTERM: 143, signal.SIGINT: 130}  # 128 + the signal's number


def grace_from_environment() -> float:
    """Seconds that requests in flight get after a stop signal: ``$RECONCILER_STOP_GRACE``, else :data:`GRACE`."""
    return env_number(GRACE_ENV, GRACE, zero=True)


class StopSignals:
    """Catches SIGTERM and SIGINT while installed in the running event loop; ``event`` feeds the stop gate."""

    def __init__(self, grace: float | None = None) -> None:
        self.grace = grace if grace is not None else grace_from_environment()
        self.event = threading.Event()
        self.signum: int | None = None
        self.summary: str | None = None  # the one line that says where the run stopped
        self._task: asyncio.Task[object] | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._since = 0.0
        self._installed: list[int] = []

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else ""

    @property
    def exit_code(self) -> int:
        return EXIT_CODES.get(signal.Signals(self.signum), 128 + self.signum) if self.signum is not None else 0

    def install(self) -> None:
        """Take SIGTERM and SIGINT for the current task (call from inside it). Outside the main thread, or where
        the event loop cannot take signals (Windows), the signals keep their default handling."""
        loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        try:
            for number in EXIT_CODES:
                loop.add_signal_handler(number, self._received, number)
                self._installed.append(number)
        except (NotImplementedError, RuntimeError, ValueError):
            return

    def uninstall(self) -> None:
        loop = asyncio.get_running_loop()
        for number in self._installed:
            loop.remove_signal_handler(number)
        self._installed.clear()
        if self._deadline is not None:
            self._deadline.cancel()

    def _received(self, number: int) -> None:
        if self.signum is not None:  # a second signal: stop now
            self._cancel()
            return
        self.signum = number
        self.event.set()
        loop = asyncio.get_running_loop()
        self._since = loop.time()
        self._deadline = loop.call_later(self.grace, self._cancel)

    def _cancel(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()

    def caught(self, error: BaseException) -> bool:
        """Whether ``error`` (a refused request, or the cancellation at the grace's end) is this stop's doing;
        a cancellation that was ours is taken back, so that the task can finish its cleanup and report."""
        if not self.requested:
            return False
        if isinstance(error, asyncio.CancelledError) and self._task is not None:
            self._task.uncancel()
        return True

    async def drain(self) -> None:
        """Wait for the requests still in flight, within what is left of the grace, then cancel what remains."""
        if self._deadline is not None:
            self._deadline.cancel()  # the drain is bounded by itself; do not cancel the reporting task
        loop = asyncio.get_running_loop()
        others = asyncio.all_tasks() - {asyncio.current_task()}
        if not others:
            return
        left = max(0.0, self._since + self.grace - loop.time())
        try:
            await asyncio.wait(others, timeout=left)
        except asyncio.CancelledError:  # a second signal
            self.caught(asyncio.CancelledError())
        pending = [task for task in others if not task.done()]
        for task in pending:
            task.cancel()
        try:
            await asyncio.wait(pending, timeout=self.grace) if pending else None
        except asyncio.CancelledError:
            self.caught(asyncio.CancelledError())
        for task in others:
            if task.done() and not task.cancelled():
                task.exception()  # retrieved: a refused request in a sibling task is not an error to print
