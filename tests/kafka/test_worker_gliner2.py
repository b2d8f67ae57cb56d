"""A worker on a GLiNER2 model through the real broker: text events in, extraction events out
(entities, a structure, a classification and relations from one schema), bad schemas dead-lettered,
a schema on a span model refused at start naming the key."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from stream.engine.gliner2.engine import Gliner2Engine
from stream.schemas import DEAD_LETTER, EXTRACTION_EVENT, validator
from tests.engine.test_gliner2_parity import compare
from tests.worker_harness import ROOT, TINY_MODEL, consume, produce

pytestmark = pytest.mark.kafka

MODEL = ROOT / "tests" / "fixtures" / "tiny-gliner2" / "bert" / "spanstream"
SCHEMA = {"entities": {"person": "a human", "organization": ""},
          "structures": {"product": {"fields": [{"name": "name", "dtype": "str"}, "price::str"]}},
          "classifications": [{"task": "sentiment", "labels": ["positive", "negative"]}],
          "relations": ["works_for"]}
TEXTS = ["Sarah Chen, CEO of Nimbus Labs, announced the Orion phone for $999.", "Ann works for Acme in Rome.",
         "The service was bad but the food was excellent.", "Bill Gates founded Microsoft"]


def _toml(inp, out, dlq, schema_file: Path) -> str:
    return (f'[[pipelines]]\nname = "g2"\ninput_topics = ["{inp}"]\noutput_topic = "{out}"\n'
            f'dead_letter_topic = "{dlq}"\nschema = "{schema_file.name}"\nthreshold = 0.4\n')


@pytest.fixture
async def topics(topic_factory):
    return {"in": await topic_factory(partitions=2, prefix="in"), "out": await topic_factory(partitions=2, prefix="out"),
            "dlq": await topic_factory(partitions=1, prefix="dlq")}


async def test_text_events_become_extraction_events(kafka_bootstrap, topics, worker_factory, tmp_path):
    engine = Gliner2Engine(MODEL, threads=1)
    worker_dir = tmp_path / "w0"  # the worker harness puts pipelines.toml here; the schema path is relative to it
    worker_dir.mkdir()
    (worker_dir / "schema.json").write_text(json.dumps(SCHEMA))
    worker = worker_factory(_toml(topics["in"], topics["out"], topics["dlq"], worker_dir / "schema.json"),
                            model=MODEL)
    worker.wait_ready()
    override = {"relations": ["founded"]}
    records = [(None, orjson.dumps({"id": f"d{i}", "text": TEXTS[i % 4], "metadata": {"n": i},
                                    **({"schema": override} if i % 5 == 4 else {})}), []) for i in range(20)]
    bad = [(b"bad-schema", orjson.dumps({"text": "x", "schema": {"entities": []}}), []),
           (b"too-long", orjson.dumps({"text": "x", "schema": {"entities": {"a": "word " * 400}}}), [])]
    await produce(kafka_bootstrap, topics["in"], records + bad, partition=0)
    out = await consume(kafka_bootstrap, [topics["out"], topics["dlq"]], len(records) + len(bad))
    assert len(out) == len(records) + len(bad), worker.tail()
    events = {orjson.loads(r.value)["id"]: orjson.loads(r.value) for r in out if r.topic == topics["out"]}
    for i in range(20):
        event = events[f"d{i}"]
        validator(EXTRACTION_EVENT).validate(event)
        assert event["metadata"] == {"n": i}
        schema = override if i % 5 == 4 else SCHEMA
        want = json.loads(json.dumps(engine.extract([TEXTS[i % 4]], schema, threshold=0.4, include_confidence=True,
                                                    include_spans=True)[0]))
        assert compare(event["result"], want, deltas=[]) is None, (event["result"], want)
    assert set(events["d0"]["result"]) == {"entities", "product", "sentiment", "relation_extraction"}
    letters = {r.key: orjson.loads(r.value) for r in out if r.topic == topics["dlq"]}
    for letter in letters.values():
        validator(DEAD_LETTER).validate(letter)
    assert letters[b"bad-schema"]["reason"] == "invalid_schema" and "schema.entities" in letters[b"bad-schema"]["message"]
    assert letters[b"too-long"]["reason"] == "schema_too_long"
    assert worker.terminate() == 0


def test_a_schema_on_a_span_model_fails_at_start_naming_the_key(tmp_path):
    cfg = tmp_path / "p.toml"
    cfg.write_text('[[pipelines]]\nname = "g2"\ninput_topics = ["a"]\noutput_topic = "b"\ndead_letter_topic = "c"\n'
                   '[pipelines.schema]\nentities = ["person"]\n')
    proc = subprocess.run([sys.executable, "-m", "stream", "worker", "--config", str(cfg), "--model", str(TINY_MODEL),
                           "--bootstrap", "127.0.0.1:1"], capture_output=True, timeout=120, cwd=ROOT)
    assert proc.returncode != 0
    assert b"pipelines[0].schema" in proc.stderr and b"GLiNER2" in proc.stderr, proc.stderr[-2000:]
    cfg.write_text('[[pipelines]]\nname = "g2"\ninput_topics = ["a"]\noutput_topic = "b"\ndead_letter_topic = "c"\n'
                   '[pipelines.schema]\nentities = []\n')
    proc = subprocess.run([sys.executable, "-m", "stream", "worker", "--config", str(cfg), "--model", str(MODEL),
                           "--bootstrap", "127.0.0.1:1"], capture_output=True, timeout=120, cwd=ROOT)
    assert proc.returncode != 0 and b"pipelines[0].schema" in proc.stderr, proc.stderr[-2000:]
