"""Read one YAML file into plain Python values and a :class:`SourceMap`, defending against YAML's hazards.

- Duplicate keys are errors (YAML says keys are unique; most loaders silently keep the last one).
- Alias expansion is bounded: a "billion laughs" document is rejected after a fixed number of nodes.
- Non-UTF-8, binary and oversized input are reported as such, with a position where one exists.
- Only the core schema's scalars are built (strings, numbers, booleans, null); other tags are errors.

libyaml (through ``ruamel.yaml.clib``) parses when it is installed, which keeps multi-megabyte input to seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from reconciler.errors import Problem
from reconciler.manifest.positions import Loc, Position, SourceMap

MAX_BYTES = 8 * 1024 * 1024
MAX_NODES = 500_000
MAX_DEPTH = 64

_STR = "tag:yaml.org,2002:str"
_NULL = "tag:yaml.org,2002:null"
_BOOL = "tag:yaml.org,2002:bool"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_MERGE = "tag:yaml.org,2002:merge"


@dataclass
class Document:
    """A parsed file: its plain value (None when unreadable), where everything sits, and what was wrong."""

    data: Any
    source: SourceMap
    problems: list[Problem]


def read_yaml(path: str, raw: bytes | None = None) -> Document:
    """Parse ``path`` (or ``raw``, its bytes) into a :class:`Document`; never raises for bad input."""
    source = SourceMap(path)
    if raw is None:
        try:
            with open(path, "rb") as handle:
                raw = handle.read(MAX_BYTES + 1)
        except OSError as exc:
            return Document(None, source, [Problem(path, 1, 1, f"cannot read file: {exc.strerror or exc}")])
    text, problem = _decode(path, raw)
    if problem:
        return Document(None, source, [problem])
    return _compose(path, text, source)


def _decode(path: str, raw: bytes) -> tuple[str, Problem | None]:
    if len(raw) > MAX_BYTES:
        return "", Problem(path, 1, 1, f"file is larger than {MAX_BYTES // (1024 * 1024)} MiB; not a manifest")
    if b"\x00" in raw[:8192]:
        return "", Problem(path, 1, 1, "binary file (contains NUL bytes); a manifest is UTF-8 YAML text")
    try:
        return raw.decode("utf-8-sig"), None
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        return "", Problem(path, line, column, f"not UTF-8 text: byte 0x{raw[exc.start]:02x} cannot be decoded")


def _compose(path: str, text: str, source: SourceMap) -> Document:
    yaml = YAML(typ="safe", pure=False)
    try:
        documents = list(yaml.compose_all(text))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        message = " ".join(str(part) for part in (exc.context, exc.problem) if part)
        if "unexpected ':'" in message:
            message += " (quote a value that holds ':' inside {...}, e.g. url: 'https://...')"
        return Document(None, source, [Problem(path, line, column, f"YAML syntax error: {message}")])
    except YAMLError as exc:
        return Document(None, source, [Problem(path, 1, 1, f"YAML error: {str(exc).splitlines()[0]}")])
    documents = [d for d in documents if d is not None]
    if not documents:
        return Document(None, source, [Problem(path, 1, 1, "empty file; expected one manifest")])
    if len(documents) > 1:
        mark = documents[1].start_mark
        problem = Problem(path, mark.line + 1, mark.column + 1, "one manifest per file; found a second document")
        return Document(None, source, [problem])
    too_deep = _first_too_deep(documents[0])
    if too_deep is not None:
        node, message = too_deep
        mark = node.start_mark
        return Document(None, source, [Problem(path, mark.line + 1, mark.column + 1, message)])
    oversized = _first_oversized(documents[0])
    if oversized is not None:
        mark = oversized.start_mark
        message = f"document expands to more than {MAX_NODES} values (aliases nested too deep?)"
        return Document(None, source, [Problem(path, mark.line + 1, mark.column + 1, message)])
    builder = _Builder(path, source, yaml)
    data = builder.build(documents[0], ())
    return Document(data, source, builder.problems)


def _first_too_deep(root: Node) -> tuple[Node, str] | None:
    """The first node nested deeper than MAX_DEPTH, or that contains itself through an alias, and why.

    Recursion is bounded by MAX_DEPTH, so a hostile document cannot exhaust Python's stack.
    """
    deepest: dict[int, int] = {}  # an aliased node is revisited only when reached at a greater depth
    ancestors: set[int] = set()

    def visit(node: Node, depth: int) -> tuple[Node, str] | None:
        if id(node) in ancestors:
            return node, "recursive alias: a value contains itself"
        if depth > MAX_DEPTH:
            return node, f"values nested more than {MAX_DEPTH} levels deep; not a manifest"
        if deepest.get(id(node), -1) >= depth or isinstance(node, ScalarNode):
            return None
        deepest[id(node)] = depth
        children = node.value if isinstance(node, SequenceNode) else [v for _, v in node.value]
        ancestors.add(id(node))
        try:
            for child in children:
                found = visit(child, depth + 1)
                if found:
                    return found
        finally:
            ancestors.discard(id(node))
        return None

    return visit(root, 0)


def _first_oversized(root: Node) -> Node | None:
    """The key (or node) at which the document's size with aliases expanded passes MAX_NODES, if it does.

    Sizes are memoised per node, so a "billion laughs" document costs as many steps as it has distinct nodes.
    """
    sizes: dict[int, int] = {}

    def size(node: Node) -> int:
        known = sizes.get(id(node))
        if known is not None:
            return known
        sizes[id(node)] = 1  # provisional, so that a recursive alias terminates (the builder reports it)
        total = 1
        if isinstance(node, SequenceNode):
            total += sum(size(item) for item in node.value)
        elif isinstance(node, MappingNode):
            total += sum(size(key) + size(value) for key, value in node.value)
        sizes[id(node)] = min(total, MAX_NODES + 1)
        return sizes[id(node)]

    if not isinstance(root, MappingNode):
        return root if size(root) > MAX_NODES else None
    running = 1
    for key, value in root.value:
        running += size(key) + size(value)
        if running > MAX_NODES:
            return key
    return None


class _Builder:
    """Builds plain values from composed nodes, recording positions and problems as it goes."""

    def __init__(self, path: str, source: SourceMap, yaml: YAML) -> None:
        self.path = path
        self.source = source
        self.yaml = yaml
        self.problems: list[Problem] = []

    def problem(self, node: Node, message: str) -> None:
        self.problems.append(Problem(self.path, node.start_mark.line + 1, node.start_mark.column + 1, message))

    def build(self, node: Node, loc: Loc, key_node: Node | None = None) -> Any:
        self._record(node, loc, key_node)
        if isinstance(node, ScalarNode):
            return self._scalar(node)
        if isinstance(node, SequenceNode):
            return [self.build(item, (*loc, index)) for index, item in enumerate(node.value)]
        if isinstance(node, MappingNode):
            return self._mapping(node, loc)
        self.problem(node, "unsupported YAML node")
        return None

    def _record(self, node: Node, loc: Loc, key_node: Node | None) -> None:
        quote = node.style if isinstance(node, ScalarNode) and node.style in ('"', "'") else ""
        key_line = key_node.start_mark.line + 1 if key_node is not None else None
        key_column = key_node.start_mark.column + 1 if key_node is not None else None
        self.source.positions[loc] = Position(
            node.start_mark.line + 1, node.start_mark.column + 1, key_line, key_column, quote
        )

    def _mapping(self, node: MappingNode, loc: Loc) -> dict[str, Any]:
        result: dict[str, Any] = {}
        merged: list[MappingNode] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                merged.extend(self._merge_sources(value_node))
                continue
            if not isinstance(key_node, ScalarNode):
                self.problem(key_node, "a key must be a plain string, not a list or mapping")
                continue
            key = str(key_node.value)
            if key in result:
                first = self.source.positions.get((*loc, key))
                where = f" (first at line {first.key_line})" if first and first.key_line else ""
                self.problem(key_node, f"duplicate key {key!r}{where}")
                continue
            result[key] = self.build(value_node, (*loc, key), key_node)
        for source in merged:
            for key_node, value_node in source.value:
                key = str(key_node.value)
                if isinstance(key_node, ScalarNode) and key not in result:
                    result[key] = self.build(value_node, (*loc, key), key_node)
        return result

    def _merge_sources(self, node: Node) -> list[MappingNode]:
        if isinstance(node, MappingNode):
            return [node]
        if isinstance(node, SequenceNode) and all(isinstance(n, MappingNode) for n in node.value):
            return list(node.value)
        self.problem(node, "a merge key ('<<') takes a mapping or a list of mappings")
        return []

    def _scalar(self, node: ScalarNode) -> Any:
        tag = node.tag
        if tag in (_STR, _TIMESTAMP):
            return node.value
        if tag == _NULL:
            return None
        if tag in (_BOOL, _INT, _FLOAT):
            return self.yaml.constructor.construct_object(node)
        self.problem(node, f"unsupported YAML tag {tag!r}; use plain strings, numbers and booleans")
        return None
