"""The manifest reference (docs/manifest-reference.md), generated from the manifest's JSON Schema.

``python -m reconciler.reference`` rewrites the file; ``--check`` exits 1 when the committed file is stale (a test
does the same). One section per object, in the order a manifest nests them, one row per key.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from reconciler.manifest.schema import manifest_schema
from reconciler.report.escape import trusted_cell

DOC = Path(__file__).resolve().parent.parent / "docs" / "manifest-reference.md"
ROOT_TITLE = "Manifest"


def _anchor(title: str) -> str:
    return title.lower().replace(" ", "-")


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def _type(schema: dict[str, Any]) -> str:
    """A short, readable type: ``string``, ``list of [Mapping](#mapping)``, ``disable | delete``."""
    if "$ref" in schema:
        name = _ref_name(schema["$ref"])
        return f"[{name}](#{_anchor(name)})"
    if "const" in schema:
        return f"`{json.dumps(schema['const'])}`"
    if "enum" in schema:
        return " | ".join(f"`{v}`" for v in schema["enum"])
    if "anyOf" in schema:
        options = [s for s in schema["anyOf"] if s.get("type") != "null"]
        return " or ".join(_type(s) for s in options)
    kind = schema.get("type", "any")
    if kind == "array":
        inner = _type(schema.get("items", {}))
        return f"list of {inner}"
    return kind


def _constraints(schema: dict[str, Any]) -> list[str]:
    found: list[str] = []
    for option in [schema, *schema.get("anyOf", []), schema.get("items", {})]:
        if "pattern" in option:
            found.append(f"matches `{option['pattern']}`")
        if "minimum" in option:
            found.append(f"at least {option['minimum']}")
        if "minItems" in option:
            found.append(f"at least {option['minItems']} item(s)")
        if option.get("minLength") == 1:
            found.append("not empty")
    return list(dict.fromkeys(found))


def _section(title: str, schema: dict[str, Any]) -> list[str]:
    lines = [f"## {title}", ""]
    if schema.get("description"):
        lines += [schema["description"], ""]
    required = set(schema.get("required", []))
    lines += ["| Key | Type | Required | Default | Description |", "|---|---|---|---|---|"]
    for key, prop in schema.get("properties", {}).items():
        default = f"`{json.dumps(prop['default'])}`" if "default" in prop and prop["default"] is not None else ""
        notes = [prop.get("description", "").rstrip("."), *_constraints(prop)]
        description = "; ".join(n for n in notes if n)
        lines.append(f"| `{key}` | {trusted_cell(_type(prop))} | {'yes' if key in required else ''} | "
                     f"{trusted_cell(default)} | {trusted_cell(description)} |")
    if schema.get("additionalProperties") is False:
        lines += ["", "Other keys are errors."]
    return [*lines, ""]


def _refs(schema: Any) -> list[str]:
    """Definitions referred to under ``schema``, in document order."""
    if isinstance(schema, dict):
        found = [_ref_name(schema["$ref"])] if "$ref" in schema else []
        for value in schema.values():
            found += _refs(value)
        return found
    if isinstance(schema, list):
        return [name for item in schema for name in _refs(item)]
    return []


def render_reference(schema: dict[str, Any] | None = None) -> str:
    schema = schema or manifest_schema()
    definitions = schema.get("$defs", {})
    order: list[str] = []
    queue = _refs(schema.get("properties", {}))
    while queue:
        name = queue.pop(0)
        if name not in order and name in definitions:
            order.append(name)
            queue += _refs(definitions[name].get("properties", {}))
    order += sorted(set(definitions) - set(order))
    lines = ["# Manifest reference", "",
             "<!-- Generated from the manifest's JSON Schema by `python -m reconciler.reference`; do not edit. -->",
             "",
             "Every manifest is one YAML document of `kind: EnterpriseApp`. Keys are case-sensitive, unknown keys are "
             "errors, and `reconciler validate` reports each problem at its `FILE:LINE:COL`. Editors that speak the "
             "YAML language server check manifests as you type against `manifest.schema.json` (the same schema).",
             "", "Contents: " + ", ".join(f"[{t}](#{_anchor(t)})" for t in [ROOT_TITLE, *order]) + ".", ""]
    lines += _section(ROOT_TITLE, schema)
    for name in order:
        lines += _section(name, definitions[name])
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reconciler.reference", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when the committed reference is stale")
    args = parser.parse_args(argv)
    text = render_reference()
    if args.check:
        current = DOC.read_text(encoding="utf-8") if DOC.exists() else ""
        if current != text:
            print(f"{DOC}: stale; run `python -m reconciler.reference`", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(text, encoding="utf-8")
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
