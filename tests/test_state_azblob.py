"""The Azure Blob state backend against Azurite: documents and journals, the lease as the lock (a waiting run, a
killed holder, a broken lease), the private container, and errors that stay one line without the account key."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from azure.storage.blob import BlobLeaseClient, BlobServiceClient

from reconciler.errors import LockBusy, ReconcilerError, StateError
from reconciler.secrets import known_secrets, scrub
from reconciler.state import azblob
from reconciler.state.model import event
from reconciler.state.store import document_name, list_states, load, open_backend, open_session, read_state
from tests.azurite import KEY, connection_string, container_name
from tests.reconcile_helpers import ROOT

TARGET = "https://scim.example/v2"
PREFIX = "team/prod"
NAME = document_name("atea", TARGET)
HOLDER = """
import sys
from reconciler.state.model import event
from reconciler.state.store import open_backend, open_session
with open_session(open_backend(sys.argv[1]), "atea", sys.argv[2], wait=0, command="holder") as session:
    session.journal(event("create", "User", "dir-held", "tgt-held", "Held"))
    session.flush()
    print("held", flush=True)
    sys.stdin.readline()
"""


@pytest.fixture
def blob(azurite: str, monkeypatch: Any) -> Iterator[tuple[str, BlobServiceClient]]:
    """A fresh ``azblob://`` location (its container not created yet) and a client of the test's own."""
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite)
    monkeypatch.delenv("AZURE_STORAGE_ACCOUNT_URL", raising=False)
    monkeypatch.delenv("RECONCILER_LEASE_SECONDS", raising=False)
    container = container_name()
    with BlobServiceClient.from_connection_string(azurite) as service:
        yield f"azblob://{container}/{PREFIX}", service


def container_of(location: str) -> str:
    return location.removeprefix("azblob://").split("/")[0]


def hold(location: str, **env: str) -> subprocess.Popen[str]:
    """Another process that holds the lease of atea's state (one journal event written) until its stdin closes."""
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, location, TARGET], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, cwd=ROOT, env={**os.environ, **env})
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


def release(holder: subprocess.Popen[str]) -> None:
    assert holder.stdin is not None
    holder.stdin.close()
    assert holder.wait(timeout=60) == 0


def test_document_and_journal_round_trip(blob: tuple[str, BlobServiceClient]) -> None:
    location, service = blob
    backend = open_backend(location)
    assert backend.remote
    with open_session(backend, "atea", TARGET, wait=0, command="test") as session:
        assert session.fresh and session.state.serial == 0
        session.journal(event("create", "User", "dir-1", "tgt-1", "Ada", [["userName", "ada@contoso.com"]]))
        session.journal(event("create", "User", "dir-2", "tgt-2", "Bob"))
        session.flush()
        seen, fresh = load(open_backend(location), "atea", TARGET)  # another reader: the journal replayed
        assert not fresh and {e.target_id for e in seen.ledger.values()} == {"tgt-1", "tgt-2"}
        session.commit(seen)
        session.journal(event("delete", "User", "dir-2", "tgt-2"))
        session.flush()
    document, journal = open_backend(location).read(NAME)
    assert document is not None and json.loads(document)["serial"] == 1
    assert journal.count(b"\n") == 1 and b'"delete"' in journal  # after the save: only what came since

    states = list_states(open_backend(location))
    assert [(s.app, s.serial) for s in states] == [("atea", 1)]
    assert {e.target_id for e in states[0].ledger.values()} == {"tgt-1"}
    with open_session(open_backend(location), "atea", TARGET, wait=0, command="test") as session:
        assert not session.fresh and session.state.serial == 1 and len(session.state.ledger) == 1
        session.commit(session.state)
    assert open_backend(location).read(NAME)[1] == b""  # the save emptied the journal
    blobs = sorted(b.name for b in service.get_container_client(container_of(location)).list_blobs())
    assert blobs == [f"{PREFIX}/{NAME}.journal", f"{PREFIX}/{NAME}.json"]
    assert open_backend(location).names() == [NAME]
    assert open_backend(f"azblob://{container_of(location)}/other").names() == []


def test_a_document_larger_than_one_request_is_saved_whole_and_reads_are_capped(
        blob: tuple[str, BlobServiceClient], monkeypatch: Any) -> None:
    location, _ = blob
    backend = open_backend(location)
    large = json.dumps({"padding": "x" * (9 * 1024 * 1024)}).encode()  # blocks of 4 MiB, committed at once
    with open_session(backend, "atea", TARGET, wait=0, command="test"):
        backend.write(NAME, large)
        backend.append_journal(NAME, b"y" * (5 * 1024 * 1024))
    document, journal = open_backend(location).read(NAME)
    assert document == large and len(journal) == 5 * 1024 * 1024
    monkeypatch.setattr(azblob, "MAX_DOCUMENT_BYTES", 1024)
    with pytest.raises(StateError, match=r"larger than 1024 bytes; not a provisioning state"):
        open_backend(location).read(NAME)


def test_the_container_is_created_private_and_a_read_creates_nothing(blob: tuple[str, BlobServiceClient]) -> None:
    location, service = blob
    container = service.get_container_client(container_of(location))
    state, fresh = read_state(location, "atea", TARGET)  # plan's read: no container yet, no state, nothing made
    assert fresh and not state.ledger and not container.exists()
    assert open_backend(location).names() == []
    with open_session(open_backend(location), "atea", TARGET, wait=0, command="test"):
        pass
    assert container.exists()
    assert container.get_container_properties().public_access is None


def test_a_waiting_run_gives_up_naming_the_holder(blob: tuple[str, BlobServiceClient]) -> None:
    location, service = blob
    holder = hold(location)
    try:
        metadata = service.get_blob_client(container_of(location), f"{PREFIX}/{NAME}.json") \
            .get_blob_properties().metadata
        assert metadata["holderpid"] == str(holder.pid) and metadata["holdercommand"] == "holder"
        waits: list[str] = []
        with pytest.raises(LockBusy) as caught, open_session(open_backend(location), "atea", TARGET, wait=1.5,
                                                            command="test", on_wait=waits.append):
            pass
    finally:
        release(holder)
    message = str(caught.value)
    assert "\n" not in message
    assert f"another run holds the lease of {location} (pid {holder.pid} on {socket.gethostname()} (holder) " \
           "since " in message and "waited 1.5s" in message and TARGET in message
    assert len(waits) == 1 and waits[0].startswith(f"pid {holder.pid} on ") and "(holder)" in waits[0]
    with open_session(open_backend(location), "atea", TARGET, wait=0, command="test") as session:
        assert not session.fresh  # released: the next run gets it at once, the holder's journal replayed
        assert [e.target_id for e in session.state.ledger.values()] == ["tgt-held"]


def test_a_killed_holders_lease_lapses_and_the_next_run_gets_it(blob: tuple[str, BlobServiceClient],
                                                                 monkeypatch: Any) -> None:
    location, _ = blob
    monkeypatch.setenv("RECONCILER_LEASE_SECONDS", "15")
    holder = hold(location)
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    waits: list[str] = []
    with open_session(open_backend(location), "atea", TARGET, wait=120, command="test",
                      on_wait=waits.append) as session:
        assert [e.target_id for e in session.state.ledger.values()] == ["tgt-held"]  # its journal replayed
        session.commit(session.state)
    assert len(waits) == 1 and waits[0].startswith(f"pid {holder.pid} on ")
    assert open_backend(location).read(NAME)[1] == b""


def test_the_lease_is_renewed_while_the_run_lives(blob: tuple[str, BlobServiceClient], monkeypatch: Any) -> None:
    location, service = blob
    monkeypatch.setenv("RECONCILER_LEASE_SECONDS", "15")
    document = service.get_blob_client(container_of(location), f"{PREFIX}/{NAME}.json")
    with open_session(open_backend(location), "atea", TARGET, wait=0, command="long") as session:
        time.sleep(25)  # longer than the lease: only the renewals keep it
        assert document.get_blob_properties().lease.state == "leased"
        with pytest.raises(LockBusy, match=r"\(long\)"), open_session(open_backend(location), "atea", TARGET,
                                                                      wait=0, command="test"):
            pass
        session.commit(session.state)
    assert document.get_blob_properties().lease.state == "available"


def test_a_write_after_the_lease_was_broken_is_refused(blob: tuple[str, BlobServiceClient]) -> None:
    location, service = blob
    with open_session(open_backend(location), "atea", TARGET, wait=0, command="first") as first:
        first.journal(event("create", "User", "dir-1", "tgt-1", "Ada"))
        first.flush()
        BlobLeaseClient(service.get_blob_client(container_of(location), f"{PREFIX}/{NAME}.json")).break_lease(0)
        with pytest.raises(StateError, match=r"lease lost") as caught:
            first.commit(first.state)
        assert "\n" not in str(caught.value) and location in str(caught.value)
    document, journal = open_backend(location).read(NAME)
    assert document is None and b"tgt-1" in journal  # nothing saved; the journal kept for the next run


def test_a_run_that_lost_its_lease_cannot_touch_the_new_holders_state(blob: tuple[str, BlobServiceClient]) -> None:
    location, service = blob
    with open_session(open_backend(location), "atea", TARGET, wait=0, command="first") as first:
        first.journal(event("create", "User", "dir-1", "tgt-1", "Ada"))
        first.flush()
        BlobLeaseClient(service.get_blob_client(container_of(location), f"{PREFIX}/{NAME}.json")).break_lease(0)
        with open_session(open_backend(location), "atea", TARGET, wait=0, command="second") as second:
            assert [e.target_id for e in second.state.ledger.values()] == ["tgt-1"]
            with pytest.raises(StateError, match=r"lease lost"):  # the journal's lease went to the new holder too
                first.backend.append_journal(first.name, b'{"op":"create"}\n')
            with pytest.raises(StateError, match=r"lease lost"):
                first.commit(first.state.reset(forget_ledger=True))
            second.commit(second.state.with_event(event("create", "User", "dir-2", "tgt-2", "Bob"), "now"))
    saved = list_states(open_backend(location))
    assert [sorted(e.target_id for e in s.ledger.values()) for s in saved] == [["tgt-1", "tgt-2"]]


def test_errors_are_one_line_and_never_show_the_account_key(blob: tuple[str, BlobServiceClient], azurite: str,
                                                            monkeypatch: Any) -> None:
    location, _ = blob
    port = int(azurite.split("127.0.0.1:")[1].split("/")[0])
    wrong_key = base64.b64encode(b"not the account key of devstoreaccount1, 64 bytes long.........").decode()
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", connection_string(port, wrong_key))
    with pytest.raises(StateError) as caught, open_session(open_backend(location), "atea", TARGET, wait=0,
                                                          command="test"):
        pass
    assert_one_line(str(caught.value), wrong_key)
    assert "AuthorizationFailure" in str(caught.value) or "403" in str(caught.value)
    assert wrong_key in known_secrets() and wrong_key not in scrub(f"echoed: {wrong_key}")

    with socket.socket() as free:  # a port nothing listens on
        free.bind(("127.0.0.1", 0))
        closed = free.getsockname()[1]
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", connection_string(closed))
    with pytest.raises(StateError) as caught:
        open_backend(location).read(NAME)
    assert_one_line(str(caught.value), KEY)
    assert f"cannot connect to 127.0.0.1:{closed}" in str(caught.value)

    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", f"AccountKey={wrong_key};Nonsense")
    with pytest.raises(StateError) as caught:
        open_backend(location)
    assert_one_line(str(caught.value), wrong_key)

    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", connection_string(port).replace(
        "http://127.0.0.1", "http://storage.example"))
    with pytest.raises(StateError, match=r"plain http; only a loopback endpoint \(Azurite\)") as caught:
        open_backend(location)
    assert_one_line(str(caught.value), KEY)

    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING")
    with pytest.raises(StateError, match=r"AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT_URL"):
        open_backend(location)
    with pytest.raises(ReconcilerError, match=r"'Bad_Name' is not a container name"):
        open_backend("azblob://Bad_Name/x")
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite)
    monkeypatch.setenv("RECONCILER_LEASE_SECONDS", "5")
    with pytest.raises(ReconcilerError, match=r"RECONCILER_LEASE_SECONDS='5': expected whole seconds from 15 to 60"):
        open_backend(location)


def test_a_cli_error_is_one_line_without_the_key(blob: tuple[str, BlobServiceClient], azurite: str,
                                                 url: str, tmp_path: Any) -> None:
    location, _ = blob
    port = int(azurite.split("127.0.0.1:")[1].split("/")[0])
    wrong_key = base64.b64encode(b"another key that Azurite will refuse, also 64 bytes long........").decode()
    from tests.reconcile_helpers import directory
    env = {**os.environ, "AZURE_STORAGE_CONNECTION_STRING": connection_string(port, wrong_key)}
    result = subprocess.run([sys.executable, "-m", "reconciler", "apply", str(ROOT / "manifests" / "atea.yaml"),
                             "--directory", directory(tmp_path), "--target", url, "--state", location,
                             "--lock-wait", "0"], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert result.returncode != 0
    assert_one_line(result.stderr.strip(), wrong_key)
    assert location in result.stderr and "Traceback" not in result.stderr and wrong_key not in result.stdout


def assert_one_line(message: str, key: str) -> None:
    assert message and "\n" not in message, message
    assert key not in message and key[:12] not in message and "Traceback" not in message, message
