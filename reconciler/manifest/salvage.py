"""A broken manifest rebuilt from what did parse, so that ``validate`` checks the rest of it in the same pass.

pydantic reports one layer of errors: a model with a field error runs none of its ``after`` validators, and a
document that does not validate gives no :class:`Manifest` to the checks that need one (policies, expressions,
the files a manifest names). :func:`salvage` works on a copy of the raw document: it drops unknown keys and puts
a valid **stand-in** where a value is missing or invalid (the field's default when it has one, else the model's
entry in :data:`STAND_INS`; a whole list item or model when the error is about it as a whole), then validates
again, a bounded number of times.

It returns the manifest, the places of the stand-ins (**holes**), and the errors that the first layer hid (a
mapping left with no source once its misspelt ``sourc`` is dropped). An error at or under a hole, or about a
model that holds one, is about a stand-in and is not returned; a caller drops its own findings at or under a hole
for the same reason. List items are replaced, never removed, so every position in the file stays where it was.
"""

from __future__ import annotations

import copy
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from reconciler.manifest.model import (
    API_VERSION,
    KIND,
    Assignment,
    Manifest,
    Mapping,
    Provisioning,
    Role,
    ScopingClause,
    Target,
    UserProvisioning,
)
from reconciler.manifest.positions import Loc

MAX_ROUNDS = 8

_TARGET = {"url": "https://placeholder.invalid", "tokenEnv": "PLACEHOLDER"}
_MAPPING = {"target": "placeholder", "constant": "placeholder"}
_USERS = {"mappings": [_MAPPING]}
_PROVISIONING = {"target": _TARGET, "deletionThreshold": 0, "users": _USERS}

# A valid value for every required key of every model, and for each model as a whole (a list item, or a model
# whose own validator fails). tests/test_manifest_salvage.py checks that each validates and that none is missing.
STAND_INS: dict[type[BaseModel], dict[str, Any]] = {
    Manifest: {"apiVersion": API_VERSION, "kind": KIND, "name": "placeholder", "displayName": "placeholder",
               "notificationEmail": "placeholder@example.invalid", "provisioning": _PROVISIONING},
    Provisioning: _PROVISIONING,
    Target: _TARGET,
    UserProvisioning: _USERS,
    Mapping: _MAPPING,
    Role: {"value": "placeholder", "displayName": "placeholder"},
    Assignment: {"group": "placeholder", "role": "placeholder"},
    ScopingClause: {"attribute": "placeholder", "operator": "IS NULL"},
}

_DROP = object()  # the stand-in of a field with a default: leave the key out


@dataclass
class Salvage:
    """What :func:`salvage` rebuilt: the manifest (None when even stand-ins did not make it valid), the holes,
    and the errors found beyond the first layer."""

    manifest: Manifest | None
    holes: frozenset[Loc]
    errors: list[ErrorDetails] = field(default_factory=list)


def covers(holes: Collection[Loc], loc: Loc) -> bool:
    """Whether ``loc`` is at or under one of ``holes`` (a finding there is about a stand-in)."""
    return any(loc[:end] in holes for end in range(len(loc) + 1))


def salvage(data: dict[str, Any], first: ValidationError) -> Salvage:
    """Rebuild ``data`` (a document whose validation raised ``first``) into a valid manifest; see the module."""
    work = copy.deepcopy(data)
    holes: set[Loc] = set()
    found: dict[tuple[Loc, str, str], ErrorDetails] = {}
    errors = _details(first)
    for _ in range(MAX_ROUNDS):
        mended = [_mend(work, tuple(error["loc"]), error["type"], holes) for error in errors]
        if not any(mended):
            break
        try:
            manifest = Manifest.model_validate(work)
        except ValidationError as error:
            errors = _details(error)
            holding = {hole[:end] for hole in holes for end in range(len(hole))}  # the models that hold a hole
            for item in errors:
                loc = tuple(item["loc"])
                if loc not in holding and not covers(holes, loc):
                    found.setdefault((loc, item["type"], item["msg"]), item)
            continue
        return Salvage(manifest, frozenset(holes), list(found.values()))
    return Salvage(None, frozenset(holes), list(found.values()))


def _details(error: ValidationError) -> list[ErrorDetails]:
    return error.errors(include_url=False, include_input=False, include_context=True)


def _mend(work: dict[str, Any], loc: Loc, kind: str, holes: set[Loc]) -> bool:
    """Change ``work`` so that the error ``kind`` at ``loc`` goes away; False when nothing could be done."""
    if kind == "extra_forbidden":
        return _put(work, loc, _DROP)
    steps = _stand_ins(loc)
    for end in range(len(steps), 0, -1):
        stand_in = steps[end - 1]
        if stand_in is not None and _put(work, loc[:end], stand_in):
            holes.add(loc[:end])
            return True
    return False


def _stand_ins(loc: Loc) -> list[Any]:
    """For each prefix of ``loc`` that names a field or a list item, the value that may stand in for it there
    (``_DROP`` for a field with a default, None when there is none)."""
    annotation: Any = Manifest
    steps: list[Any] = []
    for part in loc:
        if isinstance(part, int):
            item = _list_item(annotation)
            if item is None:
                break
            model = _model(item)
            steps.append(copy.deepcopy(STAND_INS[model]) if model in STAND_INS else None)
            annotation = item
            continue
        model = _model(annotation)
        info = _field(model, part) if model is not None else None
        if model is None or info is None:
            break
        if not info.is_required():
            steps.append(_DROP)
        else:
            value = STAND_INS.get(model, {}).get(str(part))
            steps.append(copy.deepcopy(value) if value is not None else None)
        annotation = info.annotation
    return steps


def _field(model: type[BaseModel], key: str | int) -> FieldInfo | None:
    return next((f for n, f in model.model_fields.items() if key in (f.alias, n)), None)


def _model(annotation: Any) -> type[BaseModel] | None:
    """The model an annotation holds (``Model`` or ``Model | None``), if any; not the items of a list."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) is list:
        return None
    return next((m for arg in get_args(annotation) if (m := _model(arg)) is not None), None)


def _list_item(annotation: Any) -> Any:
    """The item annotation of ``list[X]`` (or ``list[X] | None``), else None."""
    if get_origin(annotation) is list:
        return get_args(annotation)[0]
    return next((item for arg in get_args(annotation) if (item := _list_item(arg)) is not None), None)


def _put(work: Any, loc: Loc, value: Any) -> bool:
    """Set (or with ``_DROP`` remove) the value at ``loc`` in ``work``; False when ``loc`` does not lead there."""
    if not loc:
        return False
    container = work
    for part in loc[:-1]:
        try:
            container = container[part]
        except (KeyError, IndexError, TypeError):
            return False
    last = loc[-1]
    if isinstance(container, dict) and isinstance(last, str):
        if value is _DROP:
            return container.pop(last, _DROP) is not _DROP
        container[last] = value
        return True
    if isinstance(container, list) and isinstance(last, int) and 0 <= last < len(container) and value is not _DROP:
        container[last] = value
        return True
    return False
