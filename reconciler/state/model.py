"""The state document of one app and target, as plain values. Pure: no I/O, no clock (callers pass ``now``).

The vocabulary (Entra's, see DESIGN.md "Provisioning state"):

- **ledger**: every target object this app created or adopted, by kind and directory id: its target id, its
  display name and matching values, and ``applied``, the always-applied attributes as last written (``None``
  when not known, as after an adoption cut short). A target object is ours when the ledger names it.
- **journal event**: one write's outcome, appended while a round runs; replayed onto the ledger after a crash.
- **escrow**: objects whose writes failed, with how often and the last error; retried next cycle.
- **quarantine**: consecutive failed cycles and when the next attempt is due (Entra's backoff).
- **watermark**: where an incremental cycle resumes; cleared when the manifest's mappings, scope or filters
  change (``config_digest``).

A document holds no secret: error texts are scrubbed before they are stored (:func:`scrubbed`), and nothing else
in it comes from a credential.
"""

from __future__ import annotations

import contextlib
import gc
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from reconciler.errors import StateFormatError
from reconciler.secrets import scrub

STATE_FORMAT = 1
KINDS = ("User", "Group")
ERROR_CHARS = 500  # an escrowed error is one line; a server's essay is cut


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """The cyclic garbage collector paused for the body: building 100,000 ledger entries from JSON allocates
    millions of objects and no cycle, and the collector would otherwise spend two thirds of the time looking."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def ledger_key(kind: str, source_id: str) -> str:
    return f"{kind}:{source_id}"


def scrubbed(text: str | None) -> str | None:
    """``text`` as a state document may hold it: no known secret, one line, bounded."""
    if text is None:
        return None
    line = " ".join(scrub(text).split())
    return line if len(line) <= ERROR_CHARS else line[:ERROR_CHARS - 1] + "…"


@dataclass(slots=True)
class LedgerEntry:
    kind: str
    source_id: str
    target_id: str
    display: str = ""
    matching: list[list[Any]] = field(default_factory=list)
    applied: dict[str, Any] | None = None  # the always-applied attributes as last written; None: not known
    since: str = ""                        # when the reconciler first recorded it
    disabled: bool = False                 # deprovisioned with active=false (still ours)
    members: list[list[str]] | None = None  # groups: [target id, "User" | "Group"] of every member last seen

    @property
    def key(self) -> str:
        return ledger_key(self.kind, self.source_id)


@dataclass
class EscrowEntry:
    kind: str
    source_id: str
    display: str
    count: int
    first: str
    last: str
    error: str | None = None

    @property
    def key(self) -> str:
        return ledger_key(self.kind, self.source_id)


@dataclass
class Quarantine:
    """Consecutive failed cycles; ``reason`` in Entra's words; ``next_attempt`` an ISO time, or None."""

    failures: int = 0
    since: str | None = None
    reason: str | None = None
    next_attempt: str | None = None
    last_error: str | None = None

    @property
    def active(self) -> bool:
        return self.failures > 1


@dataclass
class Cycle:
    """What the last run that wrote state did."""

    started: str
    finished: str
    mode: str = "full"            # full | incremental | on-demand
    outcome: str = "converged"    # converged | not converged | failed
    writes: int = 0
    done: dict[str, int] = field(default_factory=dict)
    error: str | None = None


@dataclass
class Failure:
    """One object's failure this run, as :func:`with_escrow` takes it."""

    kind: str
    source_id: str
    display: str
    error: str


@dataclass
class ProvisioningState:
    app: str
    target: str                   # the normalized target URL
    serial: int = 0               # incremented by every save, so that a reader can tell documents apart
    updated: str = ""
    config_digest: str = ""
    watermark: dict[str, Any] | None = None
    ledger: dict[str, LedgerEntry] = field(default_factory=dict)
    escrow: dict[str, EscrowEntry] = field(default_factory=dict)
    quarantine: Quarantine = field(default_factory=Quarantine)
    last_cycle: Cycle | None = None

    # -- reading -----------------------------------------------------------------------------------------------

    def entry(self, kind: str, source_id: str) -> LedgerEntry | None:
        return self.ledger.get(ledger_key(kind, source_id))

    def entries(self, kind: str) -> list[LedgerEntry]:
        return [e for e in self.ledger.values() if e.kind == kind]

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(KINDS, 0)
        for entry in self.ledger.values():
            counts[entry.kind] = counts.get(entry.kind, 0) + 1
        return counts

    # -- pure updates ------------------------------------------------------------------------------------------

    def with_event(self, event: Mapping[str, Any], now: str) -> ProvisioningState:
        """The state with one journal event applied (see :func:`event`): a write that succeeded."""
        state = replace(self, ledger=dict(self.ledger))
        apply_event(state.ledger, event, now)
        return state

    def with_events(self, events: Iterable[Mapping[str, Any]], now: str) -> ProvisioningState:
        state = replace(self, ledger=dict(self.ledger))
        for item in events:
            apply_event(state.ledger, item, now)
        return state

    def reset(self, *, forget_ledger: bool = False) -> ProvisioningState:
        """Entra's "Restart provisioning": watermark, escrow and quarantine cleared; the ledger too on request."""
        return replace(self, watermark=None, escrow={}, quarantine=Quarantine(),
                       ledger={} if forget_ledger else dict(self.ledger))

    def with_config(self, digest: str) -> ProvisioningState:
        """The state for a manifest whose mappings, scope and filters digest to ``digest``: a change clears the
        watermark (the next cycle is a full one), as Entra restarts a job whose schema changed."""
        if digest == self.config_digest:
            return self
        return replace(self, config_digest=digest, watermark=None)

    # -- the document ------------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        ledger: dict[str, dict[str, Any]] = {kind: {} for kind in KINDS}
        for entry in sorted(self.ledger.values(), key=lambda e: (e.kind, e.source_id)):
            item: dict[str, Any] = {"id": entry.target_id, "display": entry.display,
                                    "matching": entry.matching, "since": entry.since}
            if entry.applied is not None:
                item["applied"] = entry.applied
            if entry.disabled:
                item["disabled"] = True
            if entry.members is not None:
                item["members"] = entry.members
            ledger.setdefault(entry.kind, {})[entry.source_id] = item
        return {
            "format": STATE_FORMAT,
            "app": self.app,
            "target": self.target,
            "serial": self.serial,
            "updated": self.updated,
            "configDigest": self.config_digest,
            "watermark": self.watermark,
            "lastCycle": asdict(self.last_cycle) if self.last_cycle else None,
            "quarantine": {"failures": self.quarantine.failures, "since": self.quarantine.since,
                           "reason": self.quarantine.reason, "nextAttempt": self.quarantine.next_attempt,
                           "lastError": self.quarantine.last_error},
            "escrow": [asdict(e) for e in sorted(self.escrow.values(), key=lambda e: e.key)],
            "ledger": ledger,
        }

    def to_json(self) -> bytes:
        # a lone surrogate (a display name from the directory can hold one) becomes its JSON escape, which
        # reads back as itself
        with paused_gc():
            text = json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))
        return text.encode("utf-8", "backslashreplace")

    @classmethod
    def from_json(cls, data: bytes, where: str) -> ProvisioningState:
        """Parse a document; anything this version cannot read is a :class:`StateFormatError` naming ``where``."""
        try:
            with paused_gc():
                document = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as error:
            raise StateFormatError(f"{where}: not a provisioning state document ({error})") from None
        try:
            with paused_gc():
                return cls.from_dict(document)
        except StateFormatError as error:
            raise StateFormatError(f"{where}: {error}") from None
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise StateFormatError(f"{where}: malformed provisioning state ({type(error).__name__}: {error})"
                                   ) from None

    @classmethod
    def from_dict(cls, document: Any) -> ProvisioningState:
        if not isinstance(document, dict):
            raise StateFormatError("not a JSON object")
        if document.get("format") != STATE_FORMAT:
            raise StateFormatError(f"state format {document.get('format')!r}; this version reads {STATE_FORMAT}")
        ledger: dict[str, LedgerEntry] = {}
        for kind, entries in (document.get("ledger") or {}).items():
            if kind not in KINDS:
                raise ValueError(f"unknown kind {kind!r} in the ledger")
            for source_id, item in entries.items():
                members = item.get("members")
                entry = LedgerEntry(kind, str(source_id), str(item["id"]), str(item.get("display", "")),
                                    list(item.get("matching", [])), item.get("applied"),
                                    str(item.get("since", "")), bool(item.get("disabled", False)),
                                    [[str(m[0]), str(m[1])] for m in members] if isinstance(members, list) else None)
                ledger[entry.key] = entry
        escrow = {e.key: e for e in (EscrowEntry(**item) for item in document.get("escrow") or [])}
        quarantine = document.get("quarantine") or {}
        cycle = document.get("lastCycle")
        return cls(app=str(document["app"]), target=str(document["target"]), serial=int(document.get("serial", 0)),
                   updated=str(document.get("updated", "")), config_digest=str(document.get("configDigest", "")),
                   watermark=document.get("watermark"), ledger=ledger, escrow=escrow,
                   quarantine=Quarantine(int(quarantine.get("failures", 0)), quarantine.get("since"),
                                         quarantine.get("reason"), quarantine.get("nextAttempt"),
                                         quarantine.get("lastError")),
                   last_cycle=Cycle(**cycle) if cycle else None)


# -- journal events ----------------------------------------------------------------------------------------------

WRITE_EVENTS = ("create", "adopt", "update", "disable", "delete")


def event(action: str, kind: str, source_id: str, target_id: str, display: str = "",
          matching: Iterable[Iterable[Any]] = ()) -> dict[str, Any]:
    """One successful write as the journal records it."""
    return {"op": str(action), "kind": kind, "source": source_id, "target": target_id, "display": display,
            "matching": [list(pair) for pair in matching]}


def apply_event(ledger: dict[str, LedgerEntry], item: Mapping[str, Any], now: str) -> None:
    """A journal event onto ``ledger`` (in place): a delete removes the object, any other write records it."""
    op, kind, source_id = item.get("op"), item.get("kind"), item.get("source")
    target_id = item.get("target")
    if op not in WRITE_EVENTS or kind not in KINDS or not isinstance(source_id, str) or not source_id:
        return
    key = ledger_key(str(kind), source_id)
    if op == "delete":
        ledger.pop(key, None)
        return
    if not isinstance(target_id, str) or not target_id:
        return
    previous = ledger.get(key)
    same = previous is not None and previous.target_id == target_id
    ledger[key] = LedgerEntry(
        str(kind), source_id, target_id, str(item.get("display") or (previous.display if previous else "")),
        list(item.get("matching") or (previous.matching if previous else [])),
        applied=previous.applied if same and previous and op not in ("create", "adopt") else None,
        since=previous.since if same and previous else now, disabled=op == "disable")


def with_escrow(state: ProvisioningState, failures: Iterable[Failure], now: str) -> ProvisioningState:
    """The escrow after a run: this run's failures, counted on from the last run's; whatever did not fail this
    run has healed and leaves the escrow."""
    escrow: dict[str, EscrowEntry] = {}
    for failure in failures:
        key = ledger_key(failure.kind, failure.source_id)
        if key in escrow:
            continue  # one object failing twice in one run is one more failure, not two
        previous = state.escrow.get(key)
        escrow[key] = EscrowEntry(failure.kind, failure.source_id, failure.display,
                                  (previous.count if previous else 0) + 1, previous.first if previous else now,
                                  now, scrubbed(failure.error))
    return replace(state, escrow=escrow)
