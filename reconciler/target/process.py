"""``reconciler serve-target`` as a child process, for tests that kill the server (crashes, restarts)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from reconciler.errors import TargetError

_URL = re.compile(r"(http://\S+/v2)")


class TargetProcess:
    """Start ``python -m reconciler serve-target --port 0`` and wait until it answers; ``url`` is its base URL.

    ``token`` is passed through the environment variable ``token_env`` (never on the command line).
    Use as a context manager, or call :meth:`start` and :meth:`stop` (SIGTERM, clean save) / :meth:`kill`
    (SIGKILL, a crash).
    """

    def __init__(self, *, token: str | None = None, data: Path | str | None = None,
                 token_env: str = "RECONCILER_TARGET_TOKEN", startup_timeout: float = 30.0) -> None:
        self.token = token
        self.data = Path(data) if data else None
        self.token_env = token_env
        self.startup_timeout = startup_timeout
        self.url: str | None = None
        self.process: subprocess.Popen[str] | None = None
        self.output = ""  # everything the process printed (stdout, then stderr), once it has stopped

    def __repr__(self) -> str:
        return f"TargetProcess(url={self.url!r}, data={self.data!s})"

    def start(self) -> TargetProcess:
        command = [sys.executable, "-m", "reconciler", "serve-target", "--port", "0",
                   "--token-env", self.token_env]
        if self.data:
            command += ["--data", str(self.data)]
        env = {k: v for k, v in os.environ.items() if k != self.token_env}
        if self.token:
            env[self.token_env] = self.token
        else:
            command.append("--no-auth")
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                        env=env)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        self.output = line
        match = _URL.search(line)
        if not match:
            self.process.kill()
            _, err = self.process.communicate(timeout=10)
            raise TargetError(f"serve-target did not start: {(err or line).strip().splitlines()[-1:]}")
        self.url = match.group(1)
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{self.url}/ServiceProviderConfig", timeout=2)
                return
            except httpx.TransportError:
                time.sleep(0.05)
        self.kill()
        raise TargetError(f"serve-target at {self.url} did not answer within {self.startup_timeout:.0f}s")

    def stop(self, timeout: float = 15.0, sig: int = signal.SIGTERM) -> int:
        """Signal (SIGTERM, or SIGINT as Ctrl-C would) and wait: the server saves its data and exits; the exit
        code."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            self._collect(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self._collect(timeout)
        return self.process.returncode

    def _collect(self, timeout: float) -> None:
        assert self.process is not None
        if self.process.returncode is None or (self.process.stdout and not self.process.stdout.closed):
            out, err = self.process.communicate(timeout=timeout)
            self.output += (out or "") + (err or "")

    def kill(self) -> None:
        """SIGKILL: a crash, with no chance to save."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self._collect(15)

    def __enter__(self) -> TargetProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
