"""`spanstream tail` and the demo print events one line each, as a reader wants them."""

from __future__ import annotations

import orjson

from stream.cli.kafka_io import format_event


def test_entity_event_lists_entities():
    event = {"id": "a", "entities": [{"text": "Paris", "label": "city", "score": 0.91, "start": 0, "end": 5}]}
    assert format_event(orjson.dumps(event)) == "a: Paris (city 0.91)"


def test_extraction_event_shows_every_task():
    result = {"entities": {"person": [{"text": "Ada", "confidence": 0.9, "start": 0, "end": 3}], "city": []},
              "sentiment": {"label": "positive", "confidence": 0.8},
              "job": [{"employee": {"text": "Ada", "confidence": 0.7, "start": 0, "end": 3},
                       "skills": [{"text": "math", "confidence": 0.6, "start": 9, "end": 13}]}],
              "relation_extraction": {"works_for": [{"head": {"text": "Ada", "confidence": 0.7},
                                                     "tail": {"text": "IBM", "confidence": 0.6}}],
                                      "lives_in": []}}
    line = format_event(orjson.dumps({"id": 7, "result": result}))
    assert line == ("7: entities: Ada (person 0.90) | sentiment: positive (0.80) | "
                    "job: {employee: Ada, skills: [math]} | relations: works_for(Ada, IBM)")


def test_extraction_event_without_confidences():
    result = {"entities": {"person": ["Ada"]}, "topic": ["science", "tech"], "rel": [],
              "relation_extraction": {"knows": [["Ada", "Bob"]]}}
    line = format_event(orjson.dumps({"id": "x", "result": result}))
    assert line == "x: entities: Ada (person) | topic: science, tech | rel: (none) | relations: knows(Ada, Bob)"
