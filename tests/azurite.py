"""Azurite, the Azure Storage emulator (npm, installed by ``make test`` from package-lock.json), for the tests of
the Azure Blob state backend: the blob service only, on a free loopback port, in memory, without telemetry.

The ``azurite`` fixture starts one emulator for the whole session and yields its connection string (the documented
development account ``devstoreaccount1``); each test uses containers of its own (:func:`container_name`).
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
BINARY = ROOT / "node_modules" / ".bin" / "azurite-blob"
ACCOUNT = "devstoreaccount1"
# The emulator's published development key (not a secret: every Azurite and the Azure docs have it).
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
START_SECONDS = 60
LISTENING = re.compile(rb"listens on http://127\.0\.0\.1:(\d+)")


def connection_string(port: int, key: str = KEY) -> str:
    return (f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={key};"
            f"BlobEndpoint=http://127.0.0.1:{port}/{ACCOUNT};")


def container_name() -> str:
    """A fresh container name, so that tests sharing one emulator never see each other's state."""
    return f"t-{uuid.uuid4().hex[:20]}"


class AzuriteError(RuntimeError):
    """Azurite did not start."""


@pytest.fixture(scope="session")
def azurite() -> Iterator[str]:
    """A running Azurite blob service on loopback; its connection string."""
    if not BINARY.exists():
        pytest.fail(f"{BINARY.relative_to(ROOT)} is missing: run `make test` (it installs Azurite with npm ci)",
                    pytrace=False)
    with contextlib.ExitStack() as stack:
        try:
            connection = stack.enter_context(running())
        except AzuriteError as error:
            pytest.fail(str(error), pytrace=False)
        yield connection


@contextlib.contextmanager
def running() -> Iterator[str]:
    """Azurite's blob service on a free loopback port, in memory, for as long as the context lasts; its connection
    string. Raises :class:`AzuriteError` when it does not start."""
    workdir = Path(tempfile.mkdtemp(prefix="azurite-"))
    log_path = workdir / "azurite.log"
    with log_path.open("wb") as log:  # a file, not a pipe: the access log can never fill a pipe and stall it
        process = subprocess.Popen(
            [str(BINARY), "--blobHost", "127.0.0.1", "--blobPort", "0", "--inMemoryPersistence",
             "--disableTelemetry", "--skipApiVersionCheck", "--silent"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=workdir, start_new_session=True)
    try:
        port = _started(process, log_path)
        yield connection_string(port)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)
        shutil.rmtree(workdir, ignore_errors=True)


def _started(process: subprocess.Popen[bytes], log_path: Path) -> int:
    """The port Azurite printed, once it answers HTTP there."""
    deadline = time.monotonic() + START_SECONDS
    port = 0
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AzuriteError(f"Azurite exited with {process.returncode} at start: {_tail(log_path)}")
        if not port:
            found = LISTENING.search(log_path.read_bytes())
            port = int(found.group(1)) if found else 0
        if port:
            try:
                httpx.get(f"http://127.0.0.1:{port}/{ACCOUNT}?comp=list", timeout=2)
                return port  # any answer (unauthenticated: 403) means it serves
            except httpx.TransportError:
                pass
        time.sleep(0.1)
    raise AzuriteError(f"Azurite did not answer within {START_SECONDS}s: {_tail(log_path)}")


def _tail(path: Path) -> str:
    lines = path.read_text(errors="replace").strip().splitlines()
    return " | ".join(lines[-5:]) or "(no output)"
