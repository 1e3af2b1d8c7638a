"""Load manifests from files and folders: YAML -> validated :class:`Manifest`, or every problem as FILE:LINE:COL."""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from reconciler.errors import ManifestError, Problem
from reconciler.manifest.checks import check_document
from reconciler.manifest.confine import manifest_outside_repository
from reconciler.manifest.model import Manifest
from reconciler.manifest.positions import Loc, SourceMap, dotted
from reconciler.manifest.salvage import covers, salvage
from reconciler.manifest.yamldoc import read_yaml

MANIFEST_SUFFIXES = (".yaml", ".yml")
SECRET_WORDS = ("token", "secret", "password", "passwd", "apikey", "api_key", "bearer", "credential", "clientsecret")


class LoadedManifest:
    """A valid manifest and where it came from; ``where(loc)`` answers FILE:LINE:COL for any of its keys."""

    def __init__(self, manifest: Manifest, source: SourceMap) -> None:
        self.manifest = manifest
        self.source = source

    @property
    def file(self) -> str:
        return self.source.file

    def problem(self, loc: Loc, message: str, *, key: bool = False, offset: int | None = None) -> Problem:
        """A problem about the key or value at ``loc`` (or at ``offset`` inside that value)."""
        return _at(self.source, loc, message, key, offset)

    def __repr__(self) -> str:
        return f"LoadedManifest({self.manifest.name!r} from {self.file!r})"


class PartialManifest(LoadedManifest):
    """A manifest that did not load, rebuilt from what did (:mod:`reconciler.manifest.salvage`), so that
    ``validate`` runs its other checks on the rest of the file in the same pass. Never provisioned.

    ``holes`` are the places of the stand-ins; a problem made at or under one (:meth:`problem`) is about a
    stand-in, and one made at a place the cross-field rules already reported (``said``: a Default Access role)
    would say it twice: both are kept in ``hidden`` for the caller to leave out."""

    def __init__(self, manifest: Manifest, source: SourceMap, holes: frozenset[Loc],
                 said: frozenset[Loc] = frozenset()) -> None:
        super().__init__(manifest, source)
        self.holes = holes
        self.said = said
        self.hidden: list[Problem] = []

    def problem(self, loc: Loc, message: str, *, key: bool = False, offset: int | None = None) -> Problem:
        found = super().problem(loc, message, key=key, offset=offset)
        if loc in self.said or covers(self.holes, loc):
            self.hidden.append(found)
        return found

    def __repr__(self) -> str:
        return f"PartialManifest({self.manifest.name!r} from {self.file!r})"


def manifest_files(paths: Sequence[str | os.PathLike[str]]) -> tuple[list[str], list[Problem]]:
    """Expand files and folders (their *.yaml / *.yml, recursively, sorted) into manifest file paths."""
    files: list[str] = []
    problems: list[Problem] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix in MANIFEST_SUFFIXES and p.is_file())
            files.extend(str(p) for p in found)
        elif path.is_file():
            files.append(str(path))
        else:
            problems.append(Problem(str(path), 1, 1, "no such file or folder"))
    outside = {file: problem for file in files if (problem := manifest_outside_repository(file))}
    return [f for f in files if f not in outside], problems + list(outside.values())


def load_manifest(path: str | os.PathLike[str]) -> LoadedManifest:
    """Load one manifest file or raise :class:`ManifestError` with all of its problems."""
    loaded, problems = _load_file(str(path))
    if problems or loaded is None:
        raise ManifestError(problems)
    return loaded


def load_manifests(paths: Sequence[str | os.PathLike[str]] = ("manifests",)) -> list[LoadedManifest]:
    """Load every manifest under ``paths``; raise :class:`ManifestError` with every problem of every file."""
    loaded, problems = inspect_manifests(paths)
    if problems:
        raise ManifestError(problems)
    return loaded


def inspect_manifests(paths: Sequence[str | os.PathLike[str]]) -> tuple[list[LoadedManifest], list[Problem]]:
    """Every manifest under ``paths`` and every problem found, never raising: a file with problems comes back as
    a :class:`PartialManifest` when what parsed could be rebuilt, for ``validate``'s other checks. Without
    problems, every manifest returned is whole."""
    files, problems = manifest_files(paths)
    if not files and not problems:
        problems.append(Problem(str(paths[0]) if paths else ".", 1, 1, "no manifests (*.yaml, *.yml) found"))
    loaded: list[LoadedManifest] = []
    for file in dict.fromkeys(files):
        manifest, file_problems = _inspect_bytes(file, None)
        problems.extend(file_problems)
        if manifest is not None:
            loaded.append(manifest)
    named = [m for m in loaded if not isinstance(m, PartialManifest) or not covers(m.holes, ("name",))]
    problems.extend(_duplicate_names(named))
    return loaded, sorted(problems)


def load_text(text: str, file: str = "<manifest>") -> LoadedManifest:
    """Load a manifest from a string (for tests and tools); raises :class:`ManifestError`."""
    return load_bytes(text.encode("utf-8"), file)


def load_bytes(raw: bytes, file: str = "<manifest>") -> LoadedManifest:
    """Load a manifest from raw bytes, e.g. a file at a git revision; raises :class:`ManifestError`."""
    loaded, problems = _load_bytes(file, raw)
    if problems or loaded is None:
        raise ManifestError(problems)
    return loaded


def _load_file(file: str) -> tuple[LoadedManifest | None, list[Problem]]:
    return _load_bytes(file, None)


def _load_bytes(file: str, raw: bytes | None) -> tuple[LoadedManifest | None, list[Problem]]:
    loaded, problems = _inspect_bytes(file, raw)
    return (None, problems) if problems else (loaded, [])


def _inspect_bytes(file: str, raw: bytes | None) -> tuple[LoadedManifest | None, list[Problem]]:
    """The manifest in one file and its problems: whole when there are none, else partial (when what parsed can
    be rebuilt) or None. Every layer is reported at once: YAML, unknown and missing keys, values, the cross-field
    rules of :mod:`reconciler.manifest.checks`, and the model rules that pydantic runs only on valid fields."""
    document = read_yaml(file, raw)
    if document.data is None and document.problems:
        return None, document.problems  # unreadable, or not YAML: nothing parsed
    source = document.source
    if not isinstance(document.data, dict):
        line, column = source.at(())  # the top-level value's own line, past any leading comments
        problem = Problem(file, line, column, "a manifest is a mapping of keys (apiVersion, kind, name, ...)")
        return None, [*document.problems, problem]
    reported = {(p.line, p.column) for p in document.problems}  # a bad tag's value: said once, by the reader
    crossed = check_document(document.data)
    said = frozenset(loc for loc, _, _ in crossed)
    problems = [*document.problems, *(_at(source, loc, message, key) for loc, message, key in crossed)]
    try:
        manifest = Manifest.model_validate(document.data)
    except ValidationError as exc:
        rebuilt = salvage(document.data, exc)
        found = _translate([*_details(exc), *rebuilt.errors], source)
        problems = sorted(set(problems + [p for p in found if (p.line, p.column) not in reported]))
        partial = PartialManifest(rebuilt.manifest, source, rebuilt.holes, said) if rebuilt.manifest else None
        return partial, problems
    if problems:
        return PartialManifest(manifest, source, frozenset(), said), sorted(problems)
    return LoadedManifest(manifest, source), []


def _at(source: SourceMap, loc: Loc, message: str, key: bool = False, offset: int | None = None) -> Problem:
    """A problem about the key or value at ``loc`` (or at ``offset`` inside that value)."""
    line, column = source.inside(loc, offset) if offset is not None else source.at(loc, key=key)
    prefix = f"{dotted(loc)}: " if loc else ""
    return Problem(source.file, line, column, prefix + message)


def _duplicate_names(loaded: Iterable[LoadedManifest]) -> list[Problem]:
    first: dict[str, LoadedManifest] = {}
    problems = []
    for item in loaded:
        name = item.manifest.name
        if name in first:
            other = first[name]
            line, _ = other.source.at(("name",))
            problems.append(item.problem(("name",), f"app name {name!r} is already used by {other.file}:{line}"))
        else:
            first[name] = item
    return problems


def _details(error: ValidationError) -> list[ErrorDetails]:
    return error.errors(include_url=False, include_input=False, include_context=True)


def _translate(errors: Iterable[ErrorDetails], source: SourceMap) -> list[Problem]:
    """Turn pydantic's errors into one-line problems at the offending key or value."""
    problems: dict[tuple[int, int, str], Problem] = {}
    for item in errors:
        loc: Loc = tuple(item["loc"])
        kind = item["type"]
        if kind == "missing":
            parent = loc[:-1]
            line, column = source.at(parent, key=True)
            where = f"{dotted(parent)}: " if parent else ""
            message = f"{where}missing required key {loc[-1]!r}"
        elif kind == "extra_forbidden":
            line, column = source.at(loc, key=True)
            message = _unknown_key(loc)
        else:
            line, column = source.at(loc)
            message = f"{dotted(loc)}: {_message(item)}" if loc else _message(item)
        problems.setdefault((line, column, message), Problem(source.file, line, column, message))
    return sorted(problems.values())


def _unknown_key(loc: Loc) -> str:
    key = str(loc[-1])
    parent = dotted(loc[:-1])
    where = f" in {parent}" if parent else ""
    if any(word in key.lower().replace("-", "").replace("_", "") for word in SECRET_WORDS):
        return (f"{dotted(loc)}: literal secrets are not allowed in a manifest; put the value in an environment "
                "variable and name that variable in provisioning.target.tokenEnv")
    allowed = _allowed_keys(loc[:-1])
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    listing = f"; allowed: {', '.join(sorted(allowed))}" if allowed else ""
    hint = f" (did you mean {close[0]!r}?)" if close else listing
    return f"unknown key {key!r}{where}{hint}"


def _allowed_keys(loc: Loc) -> list[str]:
    """The keys the model accepts at ``loc`` (a path into the manifest), for spelling hints."""
    model: Any = Manifest
    for part in loc:
        if isinstance(part, int):
            continue
        field = next((f for n, f in model.model_fields.items() if (f.alias or n) == part), None)
        if field is None:
            return []
        model = _inner_model(field.annotation)
        if model is None:
            return []
    return [f.alias or n for n, f in model.model_fields.items()]


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


_FIELD_HINTS = {
    "name": "must be a lowercase slug: a letter, then letters, digits or '-' (at most 63)",
    "notificationEmail": "must be an email address",
    "tokenEnv": "must be an environment variable name (letters, digits, '_'), not the token itself",
    "value": "must be a role value without whitespace (at most 120 characters)",
    "source": "must be a source attribute name such as userPrincipalName or mail",
    "attribute": "must be a source attribute name such as department",
}

_TYPE_NAMES = {
    "string_type": "a string",
    "int_type": "an integer",
    "bool_type": "true or false",
    "list_type": "a list",
    "model_type": "a mapping",
    "dict_type": "a mapping",
    "model_attributes_type": "a mapping",
}


def _message(item: Any) -> str:
    kind = item["type"]
    context = item.get("ctx") or {}
    field = next((p for p in reversed(item["loc"]) if isinstance(p, str)), "")
    if kind == "string_pattern_mismatch" and field in _FIELD_HINTS:
        return _FIELD_HINTS[field]
    if kind == "literal_error":
        return f"expected {context.get('expected', 'one of the allowed values')}"
    if kind in _TYPE_NAMES:
        return f"expected {_TYPE_NAMES[kind]}"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "too_short":
        return f"needs at least {context.get('min_length', 1)} item(s)"
    if kind in ("greater_than_equal", "greater_than"):
        return item["msg"].replace("Input should be", "must be")
    message = str(item["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    return message
