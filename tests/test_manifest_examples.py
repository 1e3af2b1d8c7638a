"""The committed examples and schema: Atea is exactly its setup guide's table; the schema is current."""

from __future__ import annotations

import json
from pathlib import Path

from reconciler.manifest import load_manifest
from reconciler.manifest.schema import manifest_schema_text

ROOT = Path(__file__).resolve().parent.parent


def test_atea_maps_exactly_the_guide_table_plus_external_id() -> None:
    manifest = load_manifest(ROOT / "manifests" / "atea.yaml").manifest
    targets = [m.target for m in manifest.provisioning.users.mappings]
    guide = ["userName", "active", 'emails[type eq "work"].value', "name.givenName", "name.familyName",
             "name.formatted", 'phoneNumbers[type eq "mobile"].value', "locale", "nickName"]
    assert sorted(targets) == sorted([*guide, "externalId"])
    matching = [m for m in manifest.provisioning.users.mappings if m.matching]
    assert [(m.target, m.matching) for m in matching] == [("userName", 1)]
    external = next(m for m in manifest.provisioning.users.mappings if m.target == "externalId")
    assert external.source == "objectId"
    assert {a.principal_type for a in manifest.assignments} == {"user", "group"}
    assert manifest.provisioning.scoping_filters


def test_second_example_provisions_groups() -> None:
    manifest = load_manifest(ROOT / "manifests" / "wiki.yaml").manifest
    assert manifest.provisioning.groups.enabled
    assert any(m.target == "members" for m in manifest.provisioning.groups.mappings)


def test_committed_schema_is_current() -> None:
    committed = (ROOT / "manifest.schema.json").read_text()
    assert committed == manifest_schema_text(), "manifest.schema.json is stale: run `make schema`"


def test_schema_rejects_unknown_keys_and_requires_the_contract_keys() -> None:
    schema = json.loads(manifest_schema_text())
    assert schema["additionalProperties"] is False
    assert {"apiVersion", "kind", "name", "provisioning"} <= set(schema["required"])
    target = schema["$defs"]["Target"]
    assert set(target["required"]) == {"url", "tokenEnv"}


def test_examples_carry_the_editor_modeline() -> None:
    for path in (ROOT / "manifests").glob("*.yaml"):
        assert path.read_text().startswith("# yaml-language-server: $schema=../manifest.schema.json"), path
