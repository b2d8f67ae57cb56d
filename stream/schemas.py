"""The contract: JSON Schemas of ``schemas/`` (shipped inside the package as ``stream/data/schemas``;
in the repository, a link to ``schemas/``), compiled once on first use.

``first_error`` is what the hot path calls once per input record: fastjsonschema's generated code
accepts a valid event in about a microsecond (jsonschema's validator takes ~16); jsonschema stays
the authority — it decides every event the fast check refuses, and writes the message."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import fastjsonschema
from jsonschema import Draft202012Validator

SCHEMAS_DIR = Path(__file__).resolve().parent / "data" / "schemas"
TEXT_EVENT = "text-event.v1.json"
ENTITY_EVENT = "entity-event.v1.json"
EXTRACTION_EVENT = "extraction-event.v1.json"
DEAD_LETTER = "dead-letter.v1.json"
OPENAPI = SCHEMAS_DIR / "openapi.json"

__all__ = ["DEAD_LETTER", "ENTITY_EVENT", "EXTRACTION_EVENT", "OPENAPI", "SCHEMAS_DIR", "TEXT_EVENT", "first_error",
           "validator"]


@lru_cache(maxsize=None)
def validator(name: str) -> Draft202012Validator:
    schema = json.loads((SCHEMAS_DIR / name).read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


@lru_cache(maxsize=None)
def _fast_check(name: str):
    return fastjsonschema.compile(json.loads((SCHEMAS_DIR / name).read_text()))


def first_error(name: str, instance) -> tuple[str, str] | None:
    """``(where, message)`` of the first violation of schema ``name`` by ``instance`` (errors
    ordered by path, as jsonschema reports them), or None when it is valid. fastjsonschema
    (draft-07 semantics: stricter where 2020-12 differs, e.g. it refuses ``1.0`` as an integer)
    only lets valid events skip jsonschema; anything it refuses is decided by jsonschema."""
    try:
        _fast_check(name)(instance)
        return None
    except fastjsonschema.JsonSchemaException:
        pass
    errors = sorted(validator(name).iter_errors(instance), key=lambda e: list(e.path))
    if not errors:
        return None
    err = errors[0]
    return "/".join(map(str, err.absolute_path)) or "(root)", err.message

