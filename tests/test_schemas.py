"""The hot path's schema check (fastjsonschema, then jsonschema for what it refuses) decides and
words every input exactly as jsonschema alone does."""

import orjson
import pytest
from jsonschema import Draft202012Validator

from stream.schemas import TEXT_EVENT, _fast_check, first_error, validator

CASES = [
    b'{"text": "ok"}',
    b'{"text": "ok", "id": "a", "labels": ["person"], "threshold": 0.5, "metadata": {"k": [1, 2]}}',
    b'{"text": "ok", "id": 7}', b'{"text": "ok", "id": 1.0}', b'{"text": "ok", "id": 1e3}',
    b'{"text": "ok", "id": 1.5}', b'{"text": "ok", "id": true}', b'{"text": "ok", "id": null}',
    b'{"text": "ok", "id": {"nested": true}}', b'{"text": "ok", "threshold": 0}', b'{"text": "ok", "threshold": 1}',
    b'{"text": "ok", "threshold": 1.0000001}', b'{"text": "ok", "threshold": -0.0}', b'{"text": "ok", "threshold": true}',
    b'{"text": "ok", "threshold": "high"}', b'{"text": "ok", "labels": []}', b'{"text": "ok", "labels": [""]}',
    b'{"text": "ok", "labels": "person"}', b'{"text": "ok", "labels": ["a", 3]}',
    b'{"text": "ok", "labels": ["' + b"x" * 200 + b'"]}', b'{"text": "ok", "labels": ["' + b"x" * 201 + b'"]}',
    ('{"text": "ok", "labels": ["' + "\U0001F600" * 200 + '"]}').encode(),
    ('{"text": "ok", "labels": ["' + "\U0001F600" * 201 + '"]}').encode(),
    b'{"text": "ok", "schema": {"entities": ["x"]}}', b'{"text": "ok", "schema": ["x"]}',
    b'{"text": "ok", "extra": 1}', b'{"text": 42}', b'{"id": "no-text"}', b'{"text": null}',
    b'[1, 2, 3]', b'"just a string"', b'null', b'3', b'{}', b'{"text": "", "labels": [], "threshold": 9}',
]


def _reference(obj) -> tuple[str, str] | None:
    errors = sorted(Draft202012Validator(validator(TEXT_EVENT).schema).iter_errors(obj), key=lambda e: list(e.path))
    return ("/".join(map(str, errors[0].absolute_path)) or "(root)", errors[0].message) if errors else None


@pytest.mark.parametrize("raw", CASES, ids=range(len(CASES)))
def test_the_fast_text_event_check_decides_and_words_each_case_as_jsonschema_does(raw):
    obj = orjson.loads(raw)
    assert first_error(TEXT_EVENT, obj) == _reference(obj)


def test_the_fast_check_alone_accepts_the_usual_valid_events():
    """Where it refused them, every event would pay for jsonschema as before."""
    fast = _fast_check(TEXT_EVENT)
    for raw in CASES[:3]:
        fast(orjson.loads(raw))  # raises JsonSchemaException when it refuses
