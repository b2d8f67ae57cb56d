"""Events → rows (no database): entity events, extraction events, what is refused."""

from __future__ import annotations

import orjson
import pytest

from stream.sink.rows import RowError, event_rows

SOURCE = {"topic": "texts", "partition": 3, "offset": 41, "timestamp": 1_764_000_000_000}
MODEL = {"name": "m", "version": "1", "variant": "fp32"}


def entity_event(**extra) -> bytes:
    return orjson.dumps({"schema_version": 1, "id": "a1", "source": SOURCE, "model": MODEL, "labels": ["person"],
                         "entities": [{"text": "Ada", "label": "person", "start": 0, "end": 3, "score": 0.9},
                                      {"text": "London", "label": "city", "start": 13, "end": 19, "score": 0.7}],
                         "windowed": False, "processing": {"received_at": 1, "processed_at": 1_764_000_000_500,
                                                           "inference_ms": 2.0, "batch_size": 1}, **extra})


def test_an_entity_event_is_keyed_by_its_input_record():
    row, entities = event_rows(entity_event(), b"k", "entities-out", 0, 7)
    assert (row.source_topic, row.source_partition, row.source_offset) == ("texts", 3, 41)
    assert (row.kind, row.event_id, row.key, row.model, row.topic, row.offset) == ("entities", "a1", b"k", "m",
                                                                                   "entities-out", 7)
    assert row.source_time.timestamp() == 1_764_000_000 and row.processed_at.timestamp() == 1_764_000_000.5
    assert [(e.ordinal, e.label, e.text, e.start, e.end, e.score) for e in entities] == [
        (0, "person", "Ada", 0, 3, 0.9), (1, "city", "London", 13, 19, 0.7)]


def test_an_extraction_event_gives_its_entities_with_offsets_and_plain_ones():
    value = orjson.dumps({"schema_version": 1, "id": 5, "source": SOURCE, "model": MODEL, "processing": {},
                          "result": {"entities": {"person": [{"text": "Ada", "confidence": 0.8, "start": 0, "end": 3}],
                                                  "city": "London", "date": None},
                                     "product": [{"name": "Orion"}], "sentiment": "positive"}})
    row, entities = event_rows(value, None, "x", 1, 2)
    assert row.kind == "extraction" and row.event_id == "5" and row.processed_at is None
    assert [(e.label, e.text, e.start, e.score) for e in entities] == [("person", "Ada", 0, 0.8),
                                                                       ("city", "London", None, None)]


def test_a_joint_extraction_event_gives_its_typed_entities():
    value = orjson.dumps({"schema_version": 1, "id": 6, "source": SOURCE, "model": MODEL, "processing": {},
                          "result": {"joint": {"entities": [
                              {"id": "e1", "type": "person", "text": "Ada", "start": 0, "end": 3, "confidence": 0.8},
                              {"id": "e2", "type": "organization", "text": "Acme"}],
                              "relations": [{"type": "works_for", "head": "e1", "tail": "e2"}]}}})
    _, entities = event_rows(value, None, "x", 1, 2)
    assert [(e.label, e.text, e.start, e.score) for e in entities] == [("person", "Ada", 0, 0.8),
                                                                       ("organization", "Acme", None, None)]


@pytest.mark.parametrize("value", [None, b"not json", b"[1]", b'{"id": 1}',
                                   orjson.dumps({"id": 1, "entities": [], "model": MODEL}),
                                   orjson.dumps({"id": 1, "entities": [{"label": "x"}], "source": SOURCE,
                                                 "model": MODEL})])
def test_what_is_not_an_event_is_refused_with_a_reason(value):
    with pytest.raises(RowError) as err:
        event_rows(value, None, "x", 0, 0)
    assert err.value.reason == "invalid_event"
