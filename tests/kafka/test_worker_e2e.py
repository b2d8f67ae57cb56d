"""The worker against a real broker: events in, entity events out, bad input dead-lettered."""

from __future__ import annotations

import asyncio
import base64

import orjson
import pytest

from stream.schemas import DEAD_LETTER, ENTITY_EVENT, validator
from tests.worker_harness import consume, pipeline_toml, produce

pytestmark = pytest.mark.kafka

SENTENCES = ["Angela Merkel met Emmanuel Macron in Paris.", "Apple hired engineers from Google in Austin.",
             "The Nile flows through Egypt.", "Serena Williams won Wimbledon in 2002."]


@pytest.fixture
async def topics(topic_factory):
    return {"in": await topic_factory(partitions=2, prefix="in"), "out": await topic_factory(partitions=2, prefix="out"),
            "dlq": await topic_factory(partitions=1, prefix="dlq")}


async def test_events_in_entity_events_out(kafka_bootstrap, topics, worker_factory):
    worker = worker_factory(pipeline_toml("e2e", topics["in"], topics["out"], topics["dlq"], threshold=0.5))
    worker.wait_ready()
    records = []
    for i in range(40):
        event = {"id": f"doc-{i}", "text": SENTENCES[i % 4], "metadata": {"n": i}}
        if i % 5 == 0:
            event["labels"] = ["city", "country"]
        key = f"key-{i % 7}".encode() if i % 3 else None
        records.append((key, orjson.dumps(event), [("trace", f"t{i}".encode())]))
    coords = await produce(kafka_bootstrap, topics["in"], records)
    out = await consume(kafka_bootstrap, [topics["out"]], 40)
    assert len(out) == 40, worker.tail()
    by_source = {}
    for rec in out:
        event = orjson.loads(rec.value)
        validator(ENTITY_EVENT).validate(event)
        by_source[(event["source"]["partition"], event["source"]["offset"])] = (rec, event)
    assert set(by_source) == set(coords)
    for (key, value, headers), coord in zip(records, coords):
        rec, event = by_source[coord]
        sent = orjson.loads(value)
        assert event["id"] == sent["id"] and event["metadata"] == sent["metadata"]
        assert event["labels"] == sent.get("labels", ["person", "location", "organization"])
        assert rec.key == key and (("trace", headers[0][1]) in list(rec.headers))
        if key is None:
            assert rec.partition == coord[0] % 2  # key-less: same partition as the input
        for ent in event["entities"]:
            assert sent["text"][ent["start"]:ent["end"]] == ent["text"]
            assert ent["label"] in event["labels"]
    # order per input partition is kept in the output
    for partition in (0, 1):
        offsets = [orjson.loads(r.value)["source"]["offset"] for r in out
                   if orjson.loads(r.value)["source"]["partition"] == partition and r.key is None]
        assert offsets == sorted(offsets)
    assert worker.metric("spanstream_events_produced_total") == 40
    # consumer lag is exported per partition and drains to zero once everything is committed
    lag_lines = []
    for _ in range(40):
        body = worker.http("/metrics")[1].decode()
        lag_lines = [line for line in body.splitlines()
                     if line.startswith("spanstream_consumer_lag{") and topics["in"] in line]
        if len(lag_lines) == 2 and all(float(line.rsplit(" ", 1)[1]) == 0 for line in lag_lines):
            break
        await asyncio.sleep(0.5)
    assert len(lag_lines) == 2 and all(float(line.rsplit(" ", 1)[1]) == 0 for line in lag_lines), lag_lines
    assert worker.terminate() == 0


BAD_INPUTS = [
    # (value, headers, expected reason)
    (None, [], "null_value"),
    (b"x" * 5000, [], "record_too_large"),
    (b"\xff\xfe not utf-8 \xc3\x28", [], "invalid_utf8"),
    (b"{not json", [], "invalid_json"),
    (b"", [], "invalid_json"),
    (b"[1, 2, 3]", [], "schema_violation"),
    (b'"just a string"', [], "schema_violation"),
    (b'{"id": "no-text"}', [], "schema_violation"),
    (b'{"text": 42}', [], "schema_violation"),
    (b'{"text": ""}', [], "empty_text"),
    (b'{"text": "   \\n\\t  "}', [], "empty_text"),
    (orjson.dumps({"text": "word " * 200}), [], "text_too_long"),
    (orjson.dumps({"text": "ok", "labels": [f"l{i}" for i in range(9)]}), [], "too_many_labels"),
    (b'{"text": "ok", "labels": "person"}', [], "schema_violation"),
    (b'{"text": "ok", "labels": [""]}', [], "schema_violation"),
    (b'{"text": "ok", "labels": []}', [], "schema_violation"),
    (b'{"text": "ok", "threshold": 7}', [], "schema_violation"),
    (b'{"text": "ok", "threshold": "high"}', [], "schema_violation"),
    (b'{"text": "ok", "id": {"nested": true}}', [], "schema_violation"),
    (b'{"text": "ok"} trailing', [("h", b"\x00\xff")], "invalid_json"),
    (orjson.dumps({"text": "ok", "labels": ["person", "\u200b"]}), [], "invalid_label"),
    (orjson.dumps({"text": "ok", "labels": [" ".join(f"w{i}x{j}" for j in range(30)) for i in range(5)]}), [],
     "labels_too_long"),
    (b"null", [], "schema_violation"),
    (b"true", [], "schema_violation"),
    (b'{"TEXT": "ok"}', [], "schema_violation"),
    (b'{"text": ["ok"]}', [], "schema_violation"),
    (b'{"text": "ok", "labels": [42]}', [], "schema_violation"),
    (orjson.dumps({"text": "ok", "labels": ["x" * 201]}), [], "schema_violation"),
    (b'{"text": "ok", "id": 1.5}', [], "schema_violation"),
    (b'{"text": "ok", "threshold": -0.1}', [], "schema_violation"),
    (b'{"text": "ok", "schema": 5}', [], "schema_violation"),
    (b'{"text": "ok", "threshold": NaN}', [], "invalid_json"),
    (b'{"text": "ok"', [], "invalid_json"),
    (b"\x00\x00\x00", [], "invalid_json"),
    (b'{"text": "\\ud800 lone surrogate"}', [], "invalid_json"),
    (b'{"text": "caf\xe9"}', [], "invalid_utf8"),
    (orjson.dumps({"text": "\u00e9" * 501}), [], "text_too_long"),  # characters, not bytes
    (orjson.dumps({"text": "\u3000\u2003\u00a0"}), [], "empty_text"),  # Unicode spaces only
]


async def test_bad_input_is_dead_lettered_and_neighbours_processed(kafka_bootstrap, topics, worker_factory):
    worker = worker_factory(pipeline_toml("bad", topics["in"], topics["out"], topics["dlq"], max_text_chars=500,
                                          max_labels=5, max_record_bytes=2000))
    worker.wait_ready()
    records, expected = [], {}
    for i, (value, headers, reason) in enumerate(BAD_INPUTS):
        records.append((b"good-%d" % i, orjson.dumps({"id": f"good-{i}", "text": SENTENCES[i % 4]}), []))
        records.append((b"bad-%d" % i, value, headers))
        expected[f"bad-{i}"] = reason
    coords = await produce(kafka_bootstrap, topics["in"], records, partition=0)
    out = await consume(kafka_bootstrap, [topics["out"], topics["dlq"]], len(records))
    assert len(out) == len(records), worker.tail()
    dead = [r for r in out if r.topic == topics["dlq"]]
    good = [r for r in out if r.topic == topics["out"]]
    assert sorted(orjson.loads(r.value)["id"] for r in good) == sorted(f"good-{i}" for i in range(len(BAD_INPUTS)))
    got = {}
    for rec in dead:
        letter = orjson.loads(rec.value)
        validator(DEAD_LETTER).validate(letter)
        key = rec.key.decode()
        got[key] = letter["reason"]
        i = int(key.split("-")[1])
        value = BAD_INPUTS[i][0]
        assert letter["key"] == {"encoding": "utf8", "data": key}
        assert (letter["source"]["partition"], letter["source"]["offset"]) == coords[2 * i + 1]
        if value is None:
            assert letter["value"] is None
        elif letter["value"]["encoding"] == "base64":
            assert base64.b64decode(letter["value"]["data"]) == value
        else:
            assert letter["value"]["data"].encode() == value
    assert got == expected
    assert len({reason for _, _, reason in BAD_INPUTS}) >= 9 and len(BAD_INPUTS) >= 38
    assert worker.metric("spanstream_dead_letters_total") == len(BAD_INPUTS)
    assert worker.terminate() == 0


async def test_an_output_the_broker_refuses_is_dead_lettered_and_the_partition_moves_on(
        kafka_bootstrap, topic_factory, worker_factory):
    """The output topic's max.message.bytes is smaller than one output: before, the worker
    retried it for publish_timeout_s and exited, then crash-looped on the same record."""
    topics = {"in": await topic_factory(partitions=1, prefix="in"),
              "out": await topic_factory(partitions=1, prefix="out", config={"max.message.bytes": "2000"}),
              "dlq": await topic_factory(partitions=1, prefix="dlq")}
    worker = worker_factory(pipeline_toml("small", topics["in"], topics["out"], topics["dlq"]))
    worker.wait_ready()
    records = [(None, orjson.dumps({"id": f"ok-{i}", "text": SENTENCES[i % 4]}), []) for i in range(6)]
    records.insert(3, (None, orjson.dumps({"id": "big", "text": "Paris", "metadata": {"pad": "x" * 3000}}), []))
    coords = await produce(kafka_bootstrap, topics["in"], records)
    out = await consume(kafka_bootstrap, [topics["out"], topics["dlq"]], len(records))
    assert len(out) == len(records), worker.tail()
    letters = [orjson.loads(r.value) for r in out if r.topic == topics["dlq"]]
    assert len(letters) == 1, ([(x["source"]["offset"], x["message"]) for x in letters], worker.tail())
    (letter,) = letters
    validator(DEAD_LETTER).validate(letter)
    assert letter["reason"] == "publish_rejected" and letter["value"] is None
    assert (letter["source"]["partition"], letter["source"]["offset"]) == coords[3]
    assert sorted(orjson.loads(r.value)["id"] for r in out if r.topic == topics["out"]) == \
        sorted(f"ok-{i}" for i in range(6))
    assert worker.terminate() == 0


async def test_per_event_labels_can_be_refused(kafka_bootstrap, topics, worker_factory):
    worker = worker_factory(pipeline_toml("strict", topics["in"], topics["out"], topics["dlq"],
                                          allow_label_override=False))
    worker.wait_ready()
    await produce(kafka_bootstrap, topics["in"], [(None, b'{"text": "ok", "labels": ["x"]}', [])])
    (rec,) = await consume(kafka_bootstrap, [topics["dlq"]], 1)
    assert orjson.loads(rec.value)["reason"] == "labels_not_allowed"
    worker.terminate()


def test_invalid_config_fails_at_start_naming_the_key(tmp_path):
    import subprocess
    import sys

    cfg = tmp_path / "bad.toml"
    cfg.write_text(pipeline_toml("x", "a", "b", "c", max_events=0))
    proc = subprocess.run([sys.executable, "-m", "stream", "worker", "--config", str(cfg)], capture_output=True,
                          timeout=60)
    assert proc.returncode == 2 and b"pipelines[0].max_events" in proc.stderr
    cfg.write_text(pipeline_toml("x", "a", "a", "c"))
    proc = subprocess.run([sys.executable, "-m", "stream", "worker", "--config", str(cfg)], capture_output=True,
                          timeout=60)
    assert proc.returncode == 2 and b"pipelines[0]" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "stream", "worker", "--config", str(cfg)], capture_output=True,
                          timeout=60, env={"PATH": "/usr/bin", "SPANSTREAM_HTTP_PORT": "not-a-port"})
    assert proc.returncode == 2 and b"SPANSTREAM_HTTP_PORT" in proc.stderr


async def test_the_worker_http_server_closes_a_request_head_that_never_completes(topics, worker_factory):
    from tests.http.test_body_reads import held_open

    worker = worker_factory(pipeline_toml("slow", topics["in"], topics["out"], topics["dlq"]),
                            env={"SPANSTREAM_HTTP_HEADER_TIMEOUT_S": "1.5"})
    worker.wait_ready()
    held, data = await asyncio.to_thread(held_open, worker.port, [b"GET /healthz HTTP/1.1\r\n", b"Host: x\r\n"])
    assert held < 8 and data.startswith(b"HTTP/1.1 408"), (held, data[:200])
    assert worker.http("/healthz")[0] == 200
    assert worker.terminate() == 0
