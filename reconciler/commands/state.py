"""``reconciler state list|show APP|reset APP``: the provisioning state the runs keep, per app and target.

- ``list``: one row per document: the app, its target, the objects its ledger holds by kind (and how many of them
  are disabled), whether a watermark is set, the escrow, the quarantine and the last cycle.
- ``show APP``: that app's document(s) in detail; the first :data:`LEDGER_ROWS` ledger entries, or all of them
  with ``--ledger``. ``--format json`` prints the documents in their stored form (any journal replayed).
- ``reset APP``: Entra's "Restart provisioning", under the document's lock: the watermark, the escrow and the
  quarantine are cleared, so the next run is a full cycle that retries everything. The ledger is kept: it is what
  lets a run recognise the objects this app created or adopted, even those whose directory object is gone.
  ``--forget-ledger --yes`` clears it too; the next run then infers ownership from ``externalId``.

Which documents: ``--state URL``, else ``$RECONCILER_STATE``, else the state folder
(:func:`reconciler.state.store.open_backend`). Every name, target and error in a document came from a directory
or a server, so text output is made one line and stripped of control characters
(:func:`reconciler.report.escape.strip_controls`). A document this version cannot read is one line naming it;
``list`` still shows the others, and exits 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from reconciler.errors import ReconcilerError, StateError, StateFormatError
from reconciler.lock import DEFAULT_WAIT
from reconciler.report.escape import strip_controls
from reconciler.state.folder import DOCUMENT, FolderBackend
from reconciler.state.model import Cycle, LedgerEntry, ProvisioningState, Quarantine
from reconciler.state.store import Backend, document_name, now_iso, open_backend, open_session, parse_journal
from reconciler.targeturl import normalize_target_url

ACTIONS = ("list", "show", "reset")
LEDGER_ROWS = 20
UNSAVED = "(not saved yet)"
FORGET_COST = ("forgetting the ledger loses the record of which target objects this app created or adopted: "
               "users since purged from the directory can no longer be recognised (they stay in the target, "
               "never deprovisioned), and the next run infers ownership from externalId")
# the flags that only some actions take, and which
ONLY_FOR = {"target": ("show", "reset"), "format": ("list", "show"), "ledger": ("show",),
            "forget_ledger": ("reset",), "yes": ("reset",), "lock_wait": ("reset",)}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "state", help="list, show or reset the provisioning state (ledger, watermark, escrow, quarantine)",
        description="The provisioning state the runs keep per app and target. list: one row per document. "
                    "show APP: one app's document(s) in detail. reset APP: Entra's 'Restart provisioning' "
                    "(watermark, escrow and quarantine cleared; the ledger kept unless --forget-ledger --yes).")
    parser.add_argument("action", choices=ACTIONS, metavar="ACTION", help="list, show APP or reset APP")
    parser.add_argument("app", nargs="?", metavar="APP", help="the app's name (show, reset)")
    parser.add_argument("--state", metavar="URL",
                        help="a folder, file:PATH or azblob://CONTAINER[/PREFIX] (default: $RECONCILER_STATE, "
                             "else the state folder)")
    parser.add_argument("--target", metavar="URL", help="only the app's document for this target URL (show, reset)")
    parser.add_argument("--format", choices=("text", "json"), help="output format (list, show; default: text)")
    parser.add_argument("--ledger", action="store_true",
                        help=f"show: list every ledger entry (default: the first {LEDGER_ROWS})")
    parser.add_argument("--forget-ledger", action="store_true",
                        help="reset: forget the ledger too (needs --yes); the next run infers ownership from "
                             "externalId")
    parser.add_argument("--yes", action="store_true", help="reset: confirm --forget-ledger")
    parser.add_argument("--lock-wait", type=float, metavar="SECONDS",
                        help="reset: wait this long for a run holding the app's state to end, then fail "
                             f"(default {DEFAULT_WAIT:g})")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    _check_flags(args)
    backend = open_backend(args.state)
    if args.action == "list":
        return _list(backend, args.format or "text")
    if args.action == "show":
        return _show(backend, args)
    return _reset(backend, args)


def _check_flags(args: argparse.Namespace) -> None:
    for dest, actions in ONLY_FOR.items():
        value = getattr(args, dest)
        if value is not None and value is not False and args.action not in actions:
            flag = "--" + dest.replace("_", "-")
            raise ReconcilerError(f"state {args.action}: {flag} is for state {' and '.join(actions)}")
    if args.action == "list" and args.app:
        raise ReconcilerError(f"state list takes no APP (got {_line(args.app)!r}); use state show APP")
    if args.action != "list" and not args.app:
        raise ReconcilerError(f"state {args.action}: name the app (state {args.action} APP)")


# -- reading documents -------------------------------------------------------------------------------------------

@dataclass
class Held:
    """One document as found: its stem in the backend, and its state (journal replayed)."""

    name: str
    state: ProvisioningState


def _where(backend: Backend, name: str) -> str:
    """The document's file (or blob), for messages."""
    if isinstance(backend, FolderBackend):
        return str(backend.folder / f"{name}{DOCUMENT}")
    return f"{backend.location.rstrip('/')}/{name}{DOCUMENT}"


def _app_of(name: str) -> str:
    return name.rsplit("-", 1)[0]


def _documents(backend: Backend, app: str | None = None) -> tuple[list[Held], list[str]]:
    """Every document held (only ``app``'s when given), and one line per document that cannot be read."""
    held: list[Held] = []
    problems: list[str] = []
    try:
        names = backend.names()
    except OSError as error:
        raise StateError(f"{backend.location}: cannot list the provisioning state: {error}") from None
    for name in names:
        if app is not None and _app_of(name) != app:
            continue  # another app's document (its stem starts with its name): not read
        try:
            document, journal = backend.read(name)
            if not document and not journal:
                continue
            events = parse_journal(journal)
            if document:
                state = ProvisioningState.from_json(document, _where(backend, name))
            else:  # a first run killed before its first save: only the journal is there
                state = ProvisioningState(app=_app_of(name), target=UNSAVED)
        except (StateError, StateFormatError) as error:
            problems.append(str(error))
            continue
        except OSError as error:
            problems.append(f"{_where(backend, name)}: cannot read: {error.strerror or error}")
            continue
        held.append(Held(name, state.with_events(events, now_iso()) if events else state))
    held.sort(key=lambda h: (h.state.app, h.state.target))
    return held, problems


def _app_documents(backend: Backend, args: argparse.Namespace) -> list[Held]:
    """The documents of ``args.app`` (at ``args.target`` when given); an unknown app or target is one line."""
    app = str(args.app)
    held, problems = _documents(backend, app)
    if problems:
        raise StateFormatError(problems[0])
    mine = [h for h in held if h.state.app == app]
    if not mine:
        everything, _ = _documents(backend)
        apps = sorted({h.state.app for h in everything})
        holds = f"the apps held: {', '.join(_line(a) for a in apps)}" if apps else "it holds none"
        raise ReconcilerError(f"state: no provisioning state for app {_line(app)!r} in {backend.location} "
                              f"({holds})")
    if args.target:
        wanted = normalize_target_url(args.target)
        chosen = [h for h in mine if h.state.target == wanted]
        if not chosen:
            targets = ", ".join(_line(h.state.target) for h in mine)
            raise ReconcilerError(f"state: app {_line(app)!r} has no provisioning state for --target "
                                  f"{_line(wanted)} (its targets: {targets})")
        return chosen
    return mine


# -- list --------------------------------------------------------------------------------------------------------

def _list(backend: Backend, output: str) -> int:
    held, problems = _documents(backend)
    if output == "json":
        rows = [_summary(h.state) for h in held]
        print(json.dumps({"state": backend.location, "documents": rows}, indent=2, ensure_ascii=False))
    elif not held:
        readable = " readable" if problems else ""
        print(f"No{readable} provisioning state in {_line(backend.location)}.")
    else:
        rows_text = [[h.state.app, h.state.target, *_kind_cells(h.state),
                      "set" if h.state.watermark else "none", str(len(h.state.escrow)),
                      _quarantine_cell(h.state.quarantine), _cycle_cell(h.state.last_cycle)] for h in held]
        headers = ["app", "target", "users", "groups", "disabled", "watermark", "escrow", "quarantine",
                   "last cycle"]
        for line in _table(headers, rows_text):
            print(line)
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


def _summary(state: ProvisioningState) -> dict[str, Any]:
    counts = state.counts()
    return {"app": state.app, "target": state.target, "serial": state.serial, "updated": state.updated,
            "users": counts.get("User", 0), "groups": counts.get("Group", 0),
            "disabled": sum(1 for e in state.ledger.values() if e.disabled),
            "watermark": state.watermark is not None, "escrow": len(state.escrow),
            "quarantine": {"failures": state.quarantine.failures, "active": state.quarantine.active,
                           "nextAttempt": state.quarantine.next_attempt},
            "lastCycle": asdict(state.last_cycle) if state.last_cycle else None}


def _kind_cells(state: ProvisioningState) -> list[str]:
    counts = state.counts()
    disabled = sum(1 for e in state.ledger.values() if e.disabled)
    return [str(counts.get("User", 0)), str(counts.get("Group", 0)), str(disabled)]


def _quarantine_cell(quarantine: Quarantine) -> str:
    if not quarantine.failures:
        return "none"
    if not quarantine.active:
        return "1 failed cycle"
    due = f", next attempt {quarantine.next_attempt}" if quarantine.next_attempt else ""
    return f"quarantined ({quarantine.failures} failed cycles{due})"


def _cycle_cell(cycle: Cycle | None) -> str:
    if cycle is None:
        return "never"
    mode = "" if cycle.mode == "full" else f"{cycle.mode}, "
    return f"{cycle.finished or cycle.started} {mode}{cycle.outcome}, {cycle.writes} write(s)"


# -- show --------------------------------------------------------------------------------------------------------

def _show(backend: Backend, args: argparse.Namespace) -> int:
    held = _app_documents(backend, args)
    if (args.format or "text") == "json":
        print(json.dumps({"state": backend.location, "documents": [h.state.to_dict() for h in held]}, indent=2,
                         ensure_ascii=False))
        return 0
    for index, item in enumerate(held):
        if index:
            print()
        for line in _details(item, _where(backend, item.name), every_entry=args.ledger):
            print(line)
    return 0


def _details(item: Held, where: str, *, every_entry: bool) -> list[str]:
    state = item.state
    counts = state.counts()
    disabled = sum(1 for e in state.ledger.values() if e.disabled)
    lines = [f"{_line(state.app)} -> {_line(state.target)}",
             f"  document: {_line(where)}, serial {state.serial}, updated {_line(state.updated or '-')}",
             f"  ledger: {counts.get('User', 0)} user(s), {counts.get('Group', 0)} group(s), {disabled} disabled",
             "  watermark: " + ("set (the next incremental cycle resumes from it)" if state.watermark
                                else "none (the next cycle is a full one)")]
    cycle = state.last_cycle
    if cycle is None:
        lines.append("  last cycle: never")
    else:
        done = ", ".join(f"{n} {_line(action)}" for action, n in sorted(cycle.done.items()) if n)
        lines.append(f"  last cycle: {_line(cycle.started)} to {_line(cycle.finished)}, {_line(cycle.mode)}, "
                     f"{_line(cycle.outcome)}, {cycle.writes} write(s)" + (f" ({done})" if done else ""))
        if cycle.error:
            lines.append(f"    error: {_line(cycle.error)}")
    lines.append(f"  quarantine: {_quarantine_detail(state.quarantine)}")
    lines.append(f"  escrow: {len(state.escrow)} object(s)" + (", retried next cycle" if state.escrow else ""))
    for entry in sorted(state.escrow.values(), key=lambda e: (e.kind, e.display.lower(), e.source_id)):
        lines.append(f"    {entry.kind} {_line(entry.display or entry.source_id)} ({_line(entry.source_id)}): "
                     f"{entry.count} failure(s), first {_line(entry.first)}, last {_line(entry.last)}"
                     + (f": {_line(entry.error)}" if entry.error else ""))
    entries = sorted(state.ledger.values(), key=lambda e: (e.kind, e.display.lower(), e.source_id))
    shown = entries if every_entry else entries[:LEDGER_ROWS]
    if entries:
        heading = "ledger entries" if len(shown) == len(entries) else f"ledger entries (first {len(shown)} of " \
                                                                       f"{len(entries)})"
        lines.append(f"  {heading}:")
        lines.extend(f"    {line}" for line in _table(["kind", "object", "directory id", "target id", "since", ""],
                                                      [_ledger_row(e) for e in shown]))
        if len(shown) < len(entries):
            lines.append(f"    ... {len(entries) - len(shown)} more (--ledger lists them all)")
    return lines


def _quarantine_detail(quarantine: Quarantine) -> str:
    if not quarantine.failures:
        return "none"
    parts = [f"{quarantine.failures} consecutive failed cycle(s)"]
    if quarantine.since:
        parts.append(f"since {_line(quarantine.since)}")
    if quarantine.next_attempt:
        parts.append(f"next attempt {_line(quarantine.next_attempt)}")
    if quarantine.reason:
        parts.append(f"reason: {_line(quarantine.reason)}")
    if quarantine.last_error:
        parts.append(f"last error: {_line(quarantine.last_error)}")
    label = "quarantined: " if quarantine.active else ""
    return label + "; ".join(parts)


def _ledger_row(entry: LedgerEntry) -> list[str]:
    return [entry.kind, entry.display or "-", entry.source_id, entry.target_id, entry.since or "-",
            "disabled" if entry.disabled else ""]


# -- reset -------------------------------------------------------------------------------------------------------

def _reset(backend: Backend, args: argparse.Namespace) -> int:
    app = str(args.app)
    if args.forget_ledger and not args.yes:
        raise ReconcilerError(f"state reset {_line(app)} --forget-ledger: refused without --yes: {FORGET_COST}")
    held = _app_documents(backend, args)
    if len(held) > 1:
        targets = ", ".join(_line(h.state.target) for h in held)
        raise ReconcilerError(f"state reset: app {_line(app)!r} has provisioning state for {len(held)} targets "
                              f"({targets}); pass --target URL to reset one")
    item = held[0]
    target = item.state.target
    if target == UNSAVED or document_name(app, target) != item.name:
        raise ReconcilerError(f"{_where(backend, item.name)}: holds no saved document of app {_line(app)!r} yet "
                              "(only the journal of a first run cut short); run apply to finish it, then reset")
    wait = DEFAULT_WAIT if args.lock_wait is None else args.lock_wait

    def waiting(holder: str) -> None:
        print(f"{_line(app)}: waiting up to {wait:g}s for the state lock, held by {_line(holder)}", file=sys.stderr,
              flush=True)

    with open_session(backend, app, target, wait=wait, command=f"state reset {app}", on_wait=waiting) as session:
        if session.fresh:
            print(f"{_line(app)} -> {_line(target)}: no provisioning state any more; nothing to reset")
            return 0
        before = session.state
        after = session.commit(before.reset(forget_ledger=args.forget_ledger))
    counts = before.counts()
    objects = f"{counts.get('User', 0)} user(s), {counts.get('Group', 0)} group(s)"
    ledger = (f"ledger forgotten ({objects}); the next run infers ownership from externalId" if args.forget_ledger
              else f"ledger kept ({objects})")
    print(f"{_line(app)} -> {_line(target)}: provisioning restarted: watermark, escrow ({len(before.escrow)} "
          f"object(s)) and quarantine cleared; {ledger}; the next cycle is a full one (serial {after.serial})")
    return 0


# -- text --------------------------------------------------------------------------------------------------------

def _line(text: object) -> str:
    """Directory or server text for a terminal: no controls or escape sequences, one line."""
    return " ".join(strip_controls(str(text)).split())


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Plain aligned columns, every cell made one inert line."""
    cells = [[_line(c) for c in row] for row in [headers, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
