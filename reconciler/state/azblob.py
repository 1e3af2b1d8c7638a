"""The Azure Blob Storage backend: ``azblob://CONTAINER[/PREFIX]``.

Each state is two blobs under ``PREFIX/``: ``<name>.json`` (a block blob, the document) and ``<name>.journal`` (an
append blob). The account comes from ``$AZURE_STORAGE_CONNECTION_STRING``, else ``$AZURE_STORAGE_ACCOUNT_URL``
with azure-identity's credential chain; a missing container is created private (no public access).

**The lock is the document blob's lease**, as Terraform's azurerm backend does it. A run creates the document blob
empty if it is missing (``If-None-Match: *``, so two runs cannot clobber each other), acquires a finite lease
(``$RECONCILER_LEASE_SECONDS``, 60 by default; Azure allows 15 to 60), records its holder (pid, host, command,
since) as the blob's metadata, and takes the journal blob's lease with the same lease id. A daemon thread renews
both every third of the duration while the run lives, and they are released when the body ends, however it ends.
A holder killed outright stops renewing, so its lease lapses by itself and the next run gets it within its wait. A
busy lease is polled until the wait ends, then :class:`LockBusy` names the holder from the metadata.

Every write passes the lease id, so Azure itself refuses the writes of a run whose lease was lost (its renewal
failed, or someone broke it): that run gets a ``lease lost`` :class:`StateError` instead of clobbering the state
another run now holds. A document is uploaded in one ``Put Blob``, or in blocks committed at once, so a reader sees
the old document or the new one, never half of one.

Every request has a deadline (connect and read timeouts, a few quick retries), a document or journal larger than
:data:`MAX_DOCUMENT_BYTES` is refused, and any Azure error becomes one line with its error code. Plain ``http`` is
accepted for a loopback endpoint only (the Azurite emulator); anything else needs ``https``. The connection
string's account key and shared access signature are registered as secrets, so no output can show them.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.storage.blob import BlobClient, BlobLeaseClient, BlobServiceClient, BlobType, ContainerClient, LinearRetry

from reconciler.errors import LockBusy, ReconcilerError, StateError
from reconciler.secrets import register_secret

SCHEME = "azblob://"
CONNECTION_STRING_ENV = "AZURE_STORAGE_CONNECTION_STRING"
ACCOUNT_URL_ENV = "AZURE_STORAGE_ACCOUNT_URL"
LEASE_ENV = "RECONCILER_LEASE_SECONDS"
DEFAULT_LEASE_SECONDS = 60
LEASE_RANGE = (15, 60)            # what Azure allows for a finite lease
DOCUMENT = ".json"
JOURNAL = ".journal"
CACHE = ".cache"                  # the directory as the last cycle read it, for incremental cycles
MAX_DOCUMENT_BYTES = 2 * 1024 ** 3  # as the folder backend: far above 100,000 objects (about 66 MB)
POLL = 1.0                        # seconds between two tries of a busy lease
CONNECT_TIMEOUT = 10              # seconds, per request
READ_TIMEOUT = 30
RETRIES = 3                       # per request, about 2 seconds apart
CHUNK = 4 * 1024 ** 2             # uploads and downloads go in requests of at most this many bytes
METADATA_CHARS = 200              # of each holder field, as recorded and as shown
CONTAINER_NAME = re.compile(r"[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}")
LEASE_LOST_CODES = frozenset({
    "LeaseIdMismatchWithBlobOperation", "LeaseIdMismatchWithLeaseOperation", "LeaseNotPresentWithBlobOperation",
    "LeaseNotPresentWithLeaseOperation", "LeaseLost", "LeaseIsBrokenAndCannotBeRenewed", "LeaseIdMissing",
    "LeaseIsBreakingAndCannotBeAcquired",
})
BUSY_CODES = frozenset({"LeaseAlreadyPresent", "LeaseIsBreakingAndCannotBeAcquired", ""})
T = TypeVar("T")
_QUIET = logging.NullHandler()


def _options() -> dict[str, Any]:
    """The client settings that give every request a deadline and bound what one request carries."""
    return {
        "connection_timeout": CONNECT_TIMEOUT, "read_timeout": READ_TIMEOUT,
        "retry_policy": LinearRetry(backoff=2, random_jitter_range=1, retry_total=RETRIES),
        "max_single_put_size": CHUNK, "max_block_size": CHUNK,
        "max_single_get_size": CHUNK, "max_chunk_get_size": CHUNK,
    }


@dataclass
class _Held:
    """One lease this process holds: the document's and the journal's (same id), and how the renewal goes."""

    lease: BlobLeaseClient
    journal: BlobLeaseClient
    record: dict[str, str]
    lost: str = ""
    stop: threading.Event = field(default_factory=threading.Event)


class BlobBackend:
    remote = True

    def __init__(self, service: BlobServiceClient, container: str, prefix: str, location: str,
                 lease_seconds: int = DEFAULT_LEASE_SECONDS) -> None:
        self.service = service
        self.container_name = container
        self.prefix = prefix
        self.location = location
        self.lease_seconds = lease_seconds
        self._container: ContainerClient = service.get_container_client(container)
        self._ensured = False
        self._held: dict[str, _Held] = {}
        self._guard = threading.Lock()

    @classmethod
    def from_url(cls, text: str) -> BlobBackend:
        """The backend of ``azblob://CONTAINER[/PREFIX]``, on the account the environment names."""
        container, prefix = parse_url(text)
        location = f"{SCHEME}{container}/{prefix}" if prefix else f"{SCHEME}{container}"
        seconds = lease_seconds()
        # Azure's own logging would print multi-line warnings on stderr; the one-line StateError says the same.
        # An application that configures logging still receives them.
        logging.getLogger("azure").addHandler(_QUIET)
        connection = os.environ.get(CONNECTION_STRING_ENV, "").strip()
        account_url = os.environ.get(ACCOUNT_URL_ENV, "").strip()
        if connection:
            register_connection_secrets(connection)
            try:
                service = BlobServiceClient.from_connection_string(connection, **_options())
            except (ValueError, AzureError) as error:
                detail = _first_line(str(error)) if isinstance(error, AzureError) else "missing or malformed parts"
                raise StateError(f"{location}: ${CONNECTION_STRING_ENV} is not a usable storage connection string "
                                 f"({detail}; expected AccountName=...;AccountKey=... or BlobEndpoint=...)") from None
            source = CONNECTION_STRING_ENV
        elif account_url:
            service = _from_account_url(account_url, location)
            source = ACCOUNT_URL_ENV
        else:
            raise StateError(f"{location}: set {CONNECTION_STRING_ENV}, or {ACCOUNT_URL_ENV} (with an Azure sign-in), "
                             "to use Azure Blob Storage for the state")
        check_endpoint(service.url, f"{location}: ${source}")
        return cls(service, container, prefix, location, seconds)

    # -- names -------------------------------------------------------------------------------------------------

    def blob_name(self, name: str, suffix: str) -> str:
        return f"{self.prefix}/{name}{suffix}" if self.prefix else f"{name}{suffix}"

    def _blob(self, name: str, suffix: str) -> BlobClient:
        return self._container.get_blob_client(self.blob_name(name, suffix))

    # -- the lock ----------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self, name: str, target: str, *, wait: float, command: str,
             on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
        self._ensure_container()
        document = self._blob(name, DOCUMENT)
        lease = self._acquire(document, target, wait, on_wait)
        held: _Held | None = None
        renewer: threading.Thread | None = None
        try:
            record = holder_record(command)
            self._call(f"cannot record the holder of {document.blob_name}",
                       lambda: document.set_blob_metadata(record, lease=lease))
            held = _Held(lease, self._take_journal(name, lease.id), record)
            with self._guard:
                self._held[name] = held
            renewer = threading.Thread(target=self._renew, args=(held,), name=f"lease {name}", daemon=True)
            renewer.start()
            yield
        finally:
            if held is not None:
                held.stop.set()
                if renewer is not None:
                    renewer.join(READ_TIMEOUT + CONNECT_TIMEOUT)
                with self._guard:
                    self._held.pop(name, None)
                with contextlib.suppress(AzureError):
                    held.journal.release(retry_total=0)
            with contextlib.suppress(AzureError):  # if this fails, the lease lapses within its duration
                lease.release(retry_total=0)

    def _acquire(self, document: BlobClient, target: str, wait: float,
                 on_wait: Callable[[str], None] | None) -> BlobLeaseClient:
        deadline = time.monotonic() + max(0.0, wait)
        told = False
        self._create_if_missing(document, BlobType.BLOCKBLOB)
        while True:
            lease = BlobLeaseClient(document)
            try:
                lease.acquire(lease_duration=self.lease_seconds)
                return lease
            except ResourceNotFoundError:  # removed since: create it again
                self._create_if_missing(document, BlobType.BLOCKBLOB)
                continue
            except HttpResponseError as error:
                if error.status_code != 409 or _code(error) not in BUSY_CODES:
                    raise self._failure(f"cannot lease {document.blob_name}", error) from None
            except AzureError as error:
                raise self._failure(f"cannot lease {document.blob_name}", error) from None
            left = deadline - time.monotonic()
            if left <= 0:
                raise LockBusy(f"{target}: another run holds the lease of {self.location} "
                               f"({self._holder(document)}); waited {wait:g}s; try again when it ends (blob "
                               f"{self.container_name}/{document.blob_name}; a crashed run's lease lapses within "
                               f"{self.lease_seconds}s)")
            if not told and on_wait is not None:
                told = True
                on_wait(self._holder(document))
            time.sleep(min(POLL, left))

    def _take_journal(self, name: str, lease_id: str) -> BlobLeaseClient:
        """The journal's lease, with the document's lease id. Whoever still holds it lost the document's lease,
        which this run now has: its journal lease is stale, and is broken."""
        journal = self._blob(name, JOURNAL)
        self._create_if_missing(journal, BlobType.APPENDBLOB)
        lease = BlobLeaseClient(journal, lease_id=lease_id)
        what = f"cannot lease {journal.blob_name}"
        try:
            lease.acquire(lease_duration=self.lease_seconds)
        except HttpResponseError as error:
            if error.status_code != 409:
                raise self._failure(what, error) from None
            self._call(what, lambda: BlobLeaseClient(journal).break_lease(lease_break_period=0))
            self._call(what, lambda: lease.acquire(lease_duration=self.lease_seconds))
        except AzureError as error:
            raise self._failure(what, error) from None
        return lease

    def _renew(self, held: _Held) -> None:
        """Renew both leases every third of their duration until the body ends. A refusal (the lease was broken
        or taken) or no renewal for a whole duration marks the lease lost: the run's next write is refused."""
        interval = self.lease_seconds / 3
        confirmed = time.monotonic()
        pause = interval
        while not held.stop.wait(pause):
            try:
                held.lease.renew(retry_total=0, read_timeout=interval)
                held.journal.renew(retry_total=0, read_timeout=interval)
                confirmed, pause = time.monotonic(), interval
            except HttpResponseError as error:
                if _code(error) in LEASE_LOST_CODES or error.status_code in (404, 409, 412):
                    held.lost = _summary(error)
                    return
                pause = min(POLL, interval)
            except AzureError:
                pause = min(POLL, interval)
            if time.monotonic() - confirmed >= self.lease_seconds:
                held.lost = f"not renewed for {self.lease_seconds}s"
                return

    def _holder(self, document: BlobClient) -> str:
        """Who holds the lease, as its holder recorded it in the blob's metadata."""
        try:
            metadata = document.get_blob_properties(retry_total=0).metadata or {}
        except AzureError:
            metadata = {}
        return describe_holder(metadata)

    # -- documents ---------------------------------------------------------------------------------------------

    def read(self, name: str) -> tuple[bytes | None, bytes]:
        return self._download(name, DOCUMENT) or None, self._download(name, JOURNAL) or b""

    def _download(self, name: str, suffix: str) -> bytes | None:
        blob = self._blob(name, suffix)
        what = f"cannot read {blob.blob_name}"
        for attempt in range(3):
            try:
                stream = blob.download_blob(max_concurrency=1)
                if stream.size > MAX_DOCUMENT_BYTES:
                    raise StateError(f"{self.location} ({blob.blob_name}): larger than {MAX_DOCUMENT_BYTES} bytes; "
                                     "not a provisioning state")
                return stream.readall()
            except ResourceNotFoundError:
                return None
            except HttpResponseError as error:
                if error.status_code == 412 and attempt < 2:
                    continue  # replaced while it was read in parts: read the new one
                raise self._failure(what, error) from None
            except AzureError as error:
                raise self._failure(what, error) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def write(self, name: str, document: bytes) -> None:
        self._ensure_container()
        held = self._check(name)
        blob, journal = self._blob(name, DOCUMENT), self._blob(name, JOURNAL)
        if held is None:
            self._guarded(name, None, f"cannot save {blob.blob_name}",
                          lambda: blob.upload_blob(document, overwrite=True))
            self._guarded(name, None, f"cannot empty {journal.blob_name}", lambda: journal.create_append_blob())
            return
        self._guarded(name, held, f"cannot save {blob.blob_name}",
                      lambda: blob.upload_blob(document, overwrite=True, lease=held.lease, metadata=held.record))
        self._guarded(name, held, f"cannot empty {journal.blob_name}",
                      lambda: journal.create_append_blob(lease=held.journal))

    def read_cache(self, name: str) -> bytes | None:
        return self._download(name, CACHE)

    def write_cache(self, name: str, data: bytes) -> None:
        self._ensure_container()
        held = self._check(name)
        blob = self._blob(name, CACHE)
        self._guarded(name, held, f"cannot save {blob.blob_name}", lambda: blob.upload_blob(data, overwrite=True))

    def append_journal(self, name: str, lines: bytes) -> None:
        self._ensure_container()
        held = self._check(name)
        journal = self._blob(name, JOURNAL)
        what = f"cannot append to {journal.blob_name}"
        if held is None:
            self._create_if_missing(journal, BlobType.APPENDBLOB)
        lease = held.journal if held is not None else None
        for start in range(0, len(lines), CHUNK):
            self._guarded(name, held, what, _appender(journal, lines[start:start + CHUNK], lease))

    def names(self) -> list[str]:
        start = f"{self.prefix}/" if self.prefix else ""
        stems: set[str] = set()
        try:
            for item in self._container.list_blobs(name_starts_with=start or None):
                rest = str(item.name)[len(start):]
                if "/" in rest or rest.startswith("."):
                    continue
                for suffix in (DOCUMENT, JOURNAL):
                    if rest.endswith(suffix) and len(rest) > len(suffix):
                        stems.add(rest[: -len(suffix)])
        except ResourceNotFoundError:
            return []
        except AzureError as error:
            raise self._failure("cannot list the states", error) from None
        return sorted(stems)

    # -- helpers -----------------------------------------------------------------------------------------------

    def _ensure_container(self) -> None:
        """Create the container, private, if it is missing (once per backend)."""
        if self._ensured:
            return
        try:
            self._container.create_container()  # no public_access: private
        except ResourceExistsError:
            pass
        except HttpResponseError as error:
            # A credential that may not create containers can still use one that exists.
            try:
                self._container.get_container_properties()
            except AzureError:
                raise self._failure(f"cannot create the container {self.container_name}", error) from None
        except AzureError as error:
            raise self._failure(f"cannot create the container {self.container_name}", error) from None
        self._ensured = True

    def _create_if_missing(self, blob: BlobClient, kind: BlobType) -> None:
        """An empty blob of ``kind`` unless one is there (``If-None-Match: *``: an existing one is never replaced)."""
        try:
            if kind == BlobType.APPENDBLOB:
                blob.create_append_blob(match_condition=MatchConditions.IfMissing)
            else:
                blob.upload_blob(b"", overwrite=False)
        except ResourceExistsError:
            pass
        except HttpResponseError as error:
            if error.status_code not in (409, 412):  # 412: it exists, under another run's lease
                raise self._failure(f"cannot create {blob.blob_name}", error) from None
        except AzureError as error:
            raise self._failure(f"cannot create {blob.blob_name}", error) from None

    def _check(self, name: str) -> _Held | None:
        with self._guard:
            held = self._held.get(name)
        if held is not None and held.lost:
            raise self._lost(name, held.lost)
        return held

    def _guarded(self, name: str, held: _Held | None, what: str, action: Callable[[], Any]) -> None:
        try:
            action()
        except HttpResponseError as error:
            if _code(error) in LEASE_LOST_CODES or error.status_code == 412:
                if held is not None:
                    held.lost = held.lost or _summary(error)
                    raise self._lost(name, _summary(error)) from None
                raise StateError(f"{self.location} ({name}): another run holds the lease; {what} "
                                 f"({_summary(error)})") from None
            raise self._failure(what, error) from None
        except AzureError as error:
            raise self._failure(what, error) from None

    def _lost(self, name: str, why: str) -> StateError:
        return StateError(f"{self.location} ({name}): lease lost: {why}; another run may hold the state now, so "
                          "this run's writes to it are refused (run again)")

    def _call(self, what: str, action: Callable[[], T]) -> T:
        try:
            return action()
        except AzureError as error:
            raise self._failure(what, error) from None

    def _failure(self, what: str, error: AzureError) -> StateError:
        return StateError(f"{self.location}: {what}: {_summary(error, self.service.url)}")


def _appender(journal: BlobClient, part: bytes, lease: BlobLeaseClient | None) -> Callable[[], Any]:
    return lambda: journal.append_block(part, lease=lease)


# -- the URL, the account and the endpoint -----------------------------------------------------------------------


def parse_url(text: str) -> tuple[str, str]:
    """``azblob://CONTAINER[/PREFIX]`` as (container, prefix without surrounding slashes)."""
    shown = text if len(text) <= 200 else text[:199] + "…"
    rest = text.removeprefix(SCHEME)
    container, _, prefix = rest.partition("/")
    if not CONTAINER_NAME.fullmatch(container):
        raise ReconcilerError(f"--state {shown}: {container[:80]!r} is not a container name (3 to 63 lowercase "
                              "letters, digits and single hyphens, starting and ending with a letter or digit)")
    parts = [part for part in prefix.split("/") if part]
    if any(part in (".", "..") or any(ord(c) < 32 or c == "\\" for c in part) for part in parts) or (
            len("/".join(parts)) > 900):
        raise ReconcilerError(f"--state {shown}: the prefix must be plain folder names ('/'-separated, no '.' or "
                              "'..' parts, no control characters, at most 900 characters)")
    return container, "/".join(parts)


def lease_seconds() -> int:
    text = os.environ.get(LEASE_ENV, "").strip()
    if not text:
        return DEFAULT_LEASE_SECONDS
    try:
        seconds = int(text)
    except ValueError:
        seconds = 0
    low, high = LEASE_RANGE
    if not low <= seconds <= high:
        raise ReconcilerError(f"${LEASE_ENV}={text[:40]!r}: expected whole seconds from {low} to {high} (the lease "
                              "durations Azure allows)")
    return seconds


def register_connection_secrets(connection: str) -> None:
    """The connection string's account key and shared access signature (and the signature's value, encoded and
    decoded) become known secrets: scrubbed from every output from now on. The rest (the account's name, its
    endpoints) is no secret, and masking it would mangle every message that names the account."""
    for part in connection.split(";"):
        key, _, value = part.partition("=")
        if key.strip().lower() in ("accountkey", "sharedaccesssignature") and value:
            register_secret(value.strip())
            if key.strip().lower() == "sharedaccesssignature":
                _register_sas(value.strip())


def _register_sas(query: str) -> None:
    register_secret(query)
    for key, value in parse_qsl(query.lstrip("?"), keep_blank_values=True):
        if key == "sig":
            register_secret(value)
            register_secret(quote(value, safe=""))
            register_secret(unquote(value))


def _from_account_url(account_url: str, location: str) -> BlobServiceClient:
    """A client for ``$AZURE_STORAGE_ACCOUNT_URL``: a shared access signature in its query, else the credential
    chain (az login, a managed identity, AZURE_CLIENT_ID/SECRET, ...)."""
    parts = urlsplit(account_url)
    if parts.query:
        _register_sas(parts.query)
    check_endpoint(account_url, f"{location}: ${ACCOUNT_URL_ENV}")
    if "sig=" in parts.query:
        return BlobServiceClient(account_url, **_options())
    from azure.identity import DefaultAzureCredential

    try:
        return BlobServiceClient(account_url, credential=DefaultAzureCredential(), **_options())
    except (ValueError, AzureError) as error:
        raise StateError(f"{location}: ${ACCOUNT_URL_ENV}: {_first_line(str(error))}") from None


def check_endpoint(url: str, where: str) -> None:
    """https, or plain http to a loopback address only (the Azurite emulator)."""
    parts = urlsplit(url)
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if scheme == "https" and host:
        return
    if scheme == "http" and is_loopback(host):
        return
    shown = f"{scheme}://{host}" if host else repr(url.split("?")[0][:80])
    if scheme == "http":
        raise StateError(f"{where}: the endpoint {shown} is plain http; only a loopback endpoint (Azurite) may be, "
                         "use https")
    raise StateError(f"{where}: the endpoint {shown} is not an https URL")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


# -- the holder --------------------------------------------------------------------------------------------------


def holder_record(command: str) -> dict[str, str]:
    """This run as the lease's holder: metadata values (ASCII, bounded)."""
    return {"holderpid": str(os.getpid()), "holderhost": _plain(socket.gethostname()),
            "holdercommand": _plain(command),
            "holdersince": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")}


def describe_holder(metadata: dict[str, str]) -> str:
    """The holder as :mod:`reconciler.lock` describes a lock file's: ``pid N on HOST (COMMAND) since WHEN``."""
    fields = {key.lower(): _plain(str(value)) for key, value in metadata.items()}
    if not fields.get("holderpid"):
        return "another process (its pid is not recorded yet)"
    where = f" on {fields['holderhost']}" if fields.get("holderhost") else ""
    since = f" since {fields['holdersince']}" if fields.get("holdersince") else ""
    what = f" ({fields['holdercommand']})" if fields.get("holdercommand") else ""
    return f"pid {fields['holderpid']}{where}{what}{since}"


def _plain(text: str) -> str:
    """``text`` as a metadata value: printable ASCII (anything else becomes '?'), bounded, trimmed."""
    return "".join(c if " " <= c <= "~" else "?" for c in text)[:METADATA_CHARS].strip()


# -- errors ------------------------------------------------------------------------------------------------------


def _code(error: HttpResponseError) -> str:
    """Azure's error code (``x-ms-error-code``), as the storage client records it, else from the answer."""
    code = getattr(error, "error_code", None)
    if not code and error.response is not None:
        headers: Any = getattr(error.response, "headers", None) or {}
        code = headers.get("x-ms-error-code")
    return str(getattr(code, "value", code) or "")  # the client gives an enum member: its value is Azure's code


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return " ".join(line.split())[:300]
    return ""


def _summary(error: AzureError, endpoint: str = "") -> str:
    """One line for an Azure error: the service's first line and its error code, or what the connection did."""
    if type(error).__name__ == "AzureSigningError":  # the storage client's: the key cannot sign a request
        return (f"the account key cannot sign requests ({_first_line(str(error)) or 'not a valid key'}; check "
                f"AccountKey in ${CONNECTION_STRING_ENV})")
    if isinstance(error, ClientAuthenticationError) and error.response is None:  # no token: nothing was sent
        return (f"no Azure sign-in: {_first_line(str(error)) or type(error).__name__} (sign in with 'az login', "
                f"run with a managed identity, or set {CONNECTION_STRING_ENV})")
    if isinstance(error, HttpResponseError):
        first = _first_line(error.message or "") or _first_line(str(error)) or (error.reason or "")
        first = re.sub(r"^Operation returned an invalid status '[^']*'\s*", "", first) or first
        code = _code(error)
        status = f"HTTP {error.status_code}" if error.status_code else ""
        tail = ", ".join(part for part in (str(code), status) if part)
        return f"{first} ({tail})" if tail else first or type(error).__name__
    where = f" {urlsplit(endpoint).netloc}" if endpoint else ""
    text = str(error)
    reason = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    detail = reason.group(1).strip() if reason else _first_line(text) or type(error).__name__
    if isinstance(error, ServiceRequestError):
        return f"cannot connect to{where}: {detail}"
    if isinstance(error, ServiceResponseError):
        return f"no complete answer from{where}: {detail}"
    return detail
