"""The contract: JSON Schemas of ``schemas/`` (shipped inside the package as ``stream/data/schemas``;
in the repository, a link to ``schemas/``), compiled once on first use."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from jsonschema import Draft202012Validator

SCHEMAS_DIR = Path(__file__).resolve().parent / "data" / "schemas"
TEXT_EVENT = "text-event.v1.json"
ENTITY_EVENT = "entity-event.v1.json"
EXTRACTION_EVENT = "extraction-event.v1.json"
DEAD_LETTER = "dead-letter.v1.json"
OPENAPI = SCHEMAS_DIR / "openapi.json"

__all__ = ["DEAD_LETTER", "ENTITY_EVENT", "EXTRACTION_EVENT", "OPENAPI", "SCHEMAS_DIR", "TEXT_EVENT", "validator"]


@lru_cache(maxsize=None)
def validator(name: str) -> Draft202012Validator:
    schema = json.loads((SCHEMAS_DIR / name).read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)
