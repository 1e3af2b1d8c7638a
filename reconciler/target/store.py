"""Persistence for the embedded target: scim2-server keeps resources in memory; this loads them from a JSON file
at start and writes them back atomically (temporary file, fsync, rename) after changes and at shutdown.

The file is ``{"version": 1, "resources": [...]}``; a bare list (what ``scim2-server --dump-resources`` writes)
is read too.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import tempfile
import threading
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from scim2_models import ScimProvider
from scim2_server.memory import InMemoryStorage

from reconciler.errors import TargetError

FORMAT_VERSION = 1
_VERSION_NUMBER = re.compile(r'^W/"(\d+)"$')


def load_resources(path: Path, storage: InMemoryStorage, provider: ScimProvider) -> int:
    """Fill ``storage`` from ``path`` (absent file: nothing to load); the number of resources loaded."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return 0
    except OSError as error:
        raise TargetError(f"{path}: cannot read the target's data file: {error.strerror}") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise TargetError(f"{path}:{error.lineno}:{error.colno}: the data file is not valid JSON: {error.msg}") \
            from None
    items = document.get("resources") if isinstance(document, dict) else document
    if not isinstance(items, list):
        raise TargetError(f"{path}: the data file holds no 'resources' list")
    models = {rt.id: provider.model_for(rt) for rt in provider.resource_types}
    resources: list[Any] = []
    highest = 0
    for index, item in enumerate(items):
        kind = (item.get("meta") or {}).get("resourceType") if isinstance(item, dict) else None
        model = models.get(kind)
        if model is None:
            raise TargetError(f"{path}: resource #{index + 1} has no known meta.resourceType")
        try:
            resources.append(model.model_validate(item))
        except ValidationError as error:
            raise TargetError(f"{path}: resource #{index + 1} ({item.get('id')}) is invalid: "
                              f"{error.errors()[0]['msg']}") from None
        match = _VERSION_NUMBER.match(str(item["meta"].get("version") or ""))
        if match:
            highest = max(highest, int(match.group(1)))
    with storage.lock:
        storage.resources = resources
        # New writes must not reuse an ETag issued before the restart.
        storage.versions = itertools.count(highest + 1)
    return len(resources)


def dump_resources(storage: InMemoryStorage) -> dict[str, Any]:
    with storage.lock:
        return {"version": FORMAT_VERSION, "resources": [r.model_dump() for r in storage.resources]}


def write_atomically(path: Path, document: Any) -> None:
    """Write JSON to ``path`` so that a crash leaves either the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(document, handle, ensure_ascii=False)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class Saver:
    """Writes the storage to its file in a background thread, at most every ``interval`` seconds after a change
    (so a burst of writes costs one save, not one per request), and once more at :meth:`close`."""

    def __init__(self, path: Path, storage: InMemoryStorage, interval: float = 0.2) -> None:
        self.path = path
        self.storage = storage
        self.interval = interval
        self.error: Exception | None = None
        self._changed = threading.Event()
        self._closing = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="target-saver", daemon=True)
        self._thread.start()

    def changed(self) -> None:
        self._changed.set()

    def save(self) -> None:
        with self._lock:
            self._changed.clear()
            write_atomically(self.path, dump_resources(self.storage))

    def _run(self) -> None:
        while not self._closing.is_set():
            if not self._changed.wait(timeout=0.5):
                continue
            if self._closing.wait(self.interval):
                break
            try:
                self.save()
            except OSError as error:  # reported at shutdown; the next change retries
                self.error = error

    def close(self) -> None:
        self._closing.set()
        self._changed.set()
        self._thread.join(timeout=10)
        self.save()
