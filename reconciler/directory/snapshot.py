"""Directory snapshots (the contract format): JSON or YAML shaped like Microsoft Graph's responses.

```
{"users":  [{"id": "...", "userPrincipalName": "...", "accountEnabled": true, ...}],
 "groups": [{"id": "...", "displayName": "...", "members": ["<user or group id>", ...]}],
 "deletedUsers": [{"id": "...", "userPrincipalName": "..."}]}
```
Absent properties are null; membership is direct. ``deletedUsers`` (optional) lists soft-deleted users, as Graph's
``/directory/deletedItems/microsoft.graph.user`` returns them. Problems are reported as FILE:LINE:COL (JSON
syntax errors from the JSON parser; structural ones located through the YAML reader, which keeps every position).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from reconciler.directory.model import Directory, DirectoryGroup, DirectoryUser
from reconciler.errors import DirectoryError, Problem
from reconciler.manifest.positions import Loc, SourceMap, dotted
from reconciler.manifest.yamldoc import read_yaml

MAX_REPORTED = 20
JSON_SUFFIXES = (".json",)


def load_snapshot(path: str | os.PathLike[str]) -> Directory:
    """Read a snapshot file; raises :class:`DirectoryError` naming FILE:LINE:COL (or FILE:) for bad input."""
    file = str(path)
    try:
        raw = Path(file).read_bytes()
    except OSError as exc:
        raise DirectoryError(f"{file}: cannot read directory snapshot: {exc.strerror or exc}") from None
    data, source = _parse(file, raw)
    return directory_from_data(data, file, raw, positions=source)


def directory_from_data(data: Any, file: str, raw: bytes, *, positions: SourceMap | None = None,
                        known_members: bool = True) -> Directory:
    """The directory in ``data``, a snapshot document already parsed from ``raw`` (the text of ``file``, which
    locates problems; ``positions`` when the YAML reader already has them). With ``known_members`` False a group
    member need not be a user or group of the document (a cached Graph directory, whose members are read a moment
    after its users, may name one created in between)."""
    problems: list[tuple[Loc, str]] = []
    directory = _build(file, data, problems, known_members=known_members)
    if problems:
        if positions is None:
            positions = read_yaml(file, raw).source
        located = sorted(Problem(file, *positions.at(loc, key=msg.startswith("unknown key")), _message(loc, msg))
                         for loc, msg in problems)
        lines = [str(p) for p in located[:MAX_REPORTED]]
        if len(located) > MAX_REPORTED:
            lines.append(f"{file}: ... and {len(located) - MAX_REPORTED} more problem(s)")
        raise DirectoryError("\n".join(lines))
    return directory


def dump_snapshot(directory: Directory, path: str | os.PathLike[str]) -> None:
    """Write ``directory`` as a JSON snapshot, 0600 (it holds personal data), atomically: a partial file never
    replaces a good one."""
    target = Path(path)
    temporary = target.with_name(target.name + ".tmp")
    try:
        temporary.unlink(missing_ok=True)
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(directory.to_snapshot(), indent=2, ensure_ascii=False) + "\n")
        temporary.replace(target)
    except OSError as exc:
        raise DirectoryError(f"{path}: cannot write snapshot: {exc.strerror or exc}") from None


def _parse(file: str, raw: bytes) -> tuple[Any, SourceMap | None]:
    if file.lower().endswith(JSON_SUFFIXES):
        try:
            return json.loads(raw.decode("utf-8-sig")), None
        except UnicodeDecodeError as exc:
            raise DirectoryError(f"{file}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start})") \
                from None
        except json.JSONDecodeError as exc:
            raise DirectoryError(f"{file}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from None
    document = read_yaml(file, raw)
    if document.problems:
        first = document.problems[0]
        message = (first.message.replace("a manifest is", "a snapshot is")
                   .replace("expected one manifest", "expected a snapshot")
                   .replace("; not a manifest", "; write large snapshots as JSON")
                   .replace("one manifest per file", "one snapshot per file"))
        raise DirectoryError(str(Problem(first.file, first.line, first.column, message)))
    return document.data, document.source


def _message(loc: Loc, message: str) -> str:
    return f"{dotted(loc)}: {message}" if loc else message


def _build(file: str, data: Any, problems: list[tuple[Loc, str]], *, known_members: bool = True) -> Directory:
    source = f"snapshot {file}"
    if not isinstance(data, dict):
        problems.append(((), 'a snapshot is a mapping with "users" and "groups" lists'))
        return Directory((), (), source)
    for key in data:
        if key not in ("users", "groups", "deletedUsers") and not str(key).startswith("@"):
            problems.append(((key,), f'unknown key {key!r}; a snapshot has "users", "groups" (and "deletedUsers")'))
    users = [u for u in (_user(item, ("users", i), problems) for i, item in enumerate(_list(data, "users", problems)))
             if u is not None]
    groups = [g for g in (_group(item, ("groups", i), problems)
                          for i, item in enumerate(_list(data, "groups", problems))) if g is not None]
    deleted = [u for u in (_user(item, ("deletedUsers", i), problems)
                           for i, item in enumerate(_list(data, "deletedUsers", problems))) if u is not None]
    _unique(users, "users", problems)
    _unique(groups, "groups", problems)
    _unique(deleted, "deletedUsers", problems)
    live_ids = {u.id for u in users}
    for index, user in enumerate(deleted):
        if user.id in live_ids:
            problems.append((("deletedUsers", index, "id"), f"user {user.id!r} is in users too"))
    known = {u.id for u in users} | {g.id for g in groups}
    for index, group in enumerate(groups if known_members else ()):
        for position, member in enumerate(group.members):
            if member not in known:
                problems.append((("groups", index, "members", position),
                                 f"member {member!r} is neither a user nor a group of this snapshot"))
    return Directory(tuple(users), tuple(groups), source, tuple(deleted))


def _list(data: dict[str, Any], key: str, problems: list[tuple[Loc, str]]) -> list[Any]:
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        problems.append(((key,), f"{key} must be a list"))
        return []
    return value


def _identity(item: Any, loc: Loc, problems: list[tuple[Loc, str]]) -> str | None:
    if not isinstance(item, dict):
        problems.append((loc, "expected a mapping of Graph properties"))
        return None
    object_id = item.get("id")
    if not isinstance(object_id, str) or not object_id:
        problems.append(((*loc, "id") if "id" in item else loc, 'every object needs an "id" (a string)'))
        return None
    return object_id


def _user(item: Any, loc: Loc, problems: list[tuple[Loc, str]]) -> DirectoryUser | None:
    object_id = _identity(item, loc, problems)
    if object_id is None:
        return None
    for key, kind in (("userPrincipalName", str), ("accountEnabled", bool)):
        if item.get(key) is not None and not isinstance(item[key], kind):
            problems.append(((*loc, key), f"{key} must be {'a string' if kind is str else 'true or false'}"))
    return DirectoryUser(object_id, item)


def _group(item: Any, loc: Loc, problems: list[tuple[Loc, str]]) -> DirectoryGroup | None:
    object_id = _identity(item, loc, problems)
    if object_id is None:
        return None
    members = item.get("members") or []
    if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
        problems.append(((*loc, "members"), "members must be a list of object ids"))
        members = []
    data = {k: v for k, v in item.items() if k != "members"}
    return DirectoryGroup(object_id, data, tuple(dict.fromkeys(members)))


def _unique(objects: list[Any], key: str, problems: list[tuple[Loc, str]]) -> None:
    seen: dict[str, int] = {}
    for index, item in enumerate(objects):
        if item.id in seen:
            problems.append(((key, index, "id"), f"duplicate id {item.id!r} (also {key}[{seen[item.id]}])"))
        seen.setdefault(item.id, index)
