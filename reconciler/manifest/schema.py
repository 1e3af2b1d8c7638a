"""The manifest's JSON Schema, generated from the models (committed as manifest.schema.json for editors)."""

from __future__ import annotations

import json
from typing import Any

from reconciler.manifest.model import Manifest

SCHEMA_ID = "https://reconciler.invalid/manifest/v1/schema.json"


def manifest_schema() -> dict[str, Any]:
    schema = Manifest.model_json_schema(by_alias=True, mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}


def manifest_schema_text() -> str:
    return json.dumps(manifest_schema(), indent=2, sort_keys=True) + "\n"
