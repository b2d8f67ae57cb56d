"""`spanstream sink` processes against the real broker and a real PostgreSQL, with full accounting:
every input event produced is stored exactly once (one ``spanstream_events`` row per input record's
coordinates, its entity rows matching the event), whatever is killed or restarted; what cannot be
stored is a dead letter with its reason.

Workers replay (the stream is at-least-once), so the produced events include replays: the same
input coordinates published twice. Those must still be one row."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import psycopg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from devtools.localkafka import free_port
from tests.worker_harness import ROOT, http_request

MODEL = {"name": "m", "version": "1", "variant": "fp32"}


def entity_event(partition: int, offset: int) -> bytes:
    n = offset % 3 + 1
    return orjson.dumps({
        "schema_version": 1, "id": f"in-{partition}-{offset}",
        "source": {"topic": "texts", "partition": partition, "offset": offset, "timestamp": 1_764_000_000_000 + offset},
        "model": MODEL, "labels": ["person"], "windowed": False,
        "processing": {"received_at": 1, "processed_at": 2, "inference_ms": 1.0, "batch_size": 1},
        "entities": [{"text": f"name{k} of {offset}", "label": "person", "start": 0, "end": 5, "score": 0.5}
                     for k in range(n)]})


@dataclass
class SinkProc:
    workdir: Path
    bootstrap: str
    dsn: str
    topics: str
    dead_letters: str
    group: str
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    def start(self) -> "SinkProc":
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log = self.workdir / f"sink-{self.port}-{time.monotonic_ns()}.log"
        env = {**os.environ, "SPANSTREAM_SINK_DSN": self.dsn, "SPANSTREAM_SINK_BATCH_ROWS": "50",
               "SPANSTREAM_SINK_LINGER_MS": "20", "SPANSTREAM_SESSION_TIMEOUT_S": "6",
               "SPANSTREAM_HEARTBEAT_INTERVAL_S": "1", "SPANSTREAM_SINK_RETRY_MAX_S": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "stream", "sink", "--bootstrap", self.bootstrap, "--topics", self.topics,
             "--dead-letter-topic", self.dead_letters, "--group-id", self.group, "--http-port", str(self.port)],
            stdout=open(self.log, "wb"), stderr=subprocess.STDOUT, cwd=ROOT, env=env)
        return self

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sink exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                if http_request(self.port, "/readyz")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"sink not ready after {timeout}s:\n{self.tail()}")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def terminate(self, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            return self.proc.wait(timeout)
        return self.proc.returncode

    def tail(self, n: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])


async def produce(bootstrap: str, topic: str, records: list[tuple[int, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for partition, value in records:
            await producer.send(topic, value, partition=partition)
        await producer.flush()
    finally:
        await producer.stop()


async def read_all(bootstrap: str, topic: str, timeout: float = 5) -> list:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False, group_id=None)
    await consumer.start()
    out = []
    try:
        while True:
            got = await consumer.getmany(timeout_ms=int(timeout * 1000))
            if not got:
                return out
            for batch in got.values():
                out.extend(batch)
    finally:
        await consumer.stop()


def account(dsn: str, expected: dict[tuple[int, int], int]) -> list[str]:
    """Problems with what is stored against the input events produced ({(partition, offset):
    entities}): a missing or extra event, an event stored twice, entity rows not matching."""
    with psycopg.connect(dsn) as conn:
        events = conn.execute("SELECT source_partition, source_offset, count(*) FROM spanstream_events "
                              "WHERE source_topic = 'texts' GROUP BY 1, 2").fetchall()
        entities = dict(((p, o), n) for p, o, n in conn.execute(
            "SELECT source_partition, source_offset, count(*) FROM spanstream_entities "
            "WHERE source_topic = 'texts' GROUP BY 1, 2").fetchall())
    problems = []
    stored = {(p, o): n for p, o, n in events}
    problems += [f"stored {n} times: {k}" for k, n in stored.items() if n != 1]
    problems += [f"missing: {k}" for k in expected if k not in stored]
    problems += [f"not produced: {k}" for k in stored if k not in expected]
    problems += [f"{entities.get(k, 0)} entity rows for {n} entities: {k}" for k, n in expected.items()
                 if k in stored and entities.get(k, 0) != n]
    return problems


def wait_stored(dsn: str, expected: dict, sinks: list[SinkProc], timeout: float = 120) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for s in sinks:
            if s.proc.poll() is not None:
                raise RuntimeError(f"sink exited with {s.proc.returncode}:\n{s.tail()}")
        try:
            problems = account(dsn, expected)
        except psycopg.errors.UndefinedTable:
            problems = ["no tables yet"]
        if not problems:
            return []
        time.sleep(0.5)
    return problems


@pytest.fixture
def topics(topic_factory):
    return asyncio.run(topic_factory(partitions=4, prefix="events")), asyncio.run(topic_factory(prefix="sink-dlq"))


def test_kill_nine_five_times_mid_stream_stores_every_event_exactly_once(kafka_bootstrap, database, topics,
                                                                         tmp_path):
    events, dlq = topics
    rng = random.Random(5)
    expected: dict[tuple[int, int], int] = {}
    records = []
    for i in range(1500):
        p, o = i % 4, i // 4
        records.append((p, entity_event(p, o)))
        expected[(p, o)] = o % 3 + 1
    replays = rng.sample(records, 200)  # a worker's replays: the same input coordinates again
    bad = [(0, b"not json"), (1, entity_event(1, 10_000).replace(b"name0", b"na\\u0000me"))]
    chunks = [records[i:i + 300] for i in range(0, 1500, 300)]
    chunks[2] = chunks[2] + replays + bad
    sink = SinkProc(tmp_path, kafka_bootstrap, database, events, dlq, "sink-" + uuid.uuid4().hex[:6]).start()
    sink.wait_ready()
    with psycopg.connect(database, autocommit=True) as conn:  # 3 ms per event: the kills land mid-batch
        conn.execute("CREATE FUNCTION slow() RETURNS trigger AS $$ BEGIN PERFORM pg_sleep(0.003); RETURN NEW; "
                     "END $$ LANGUAGE plpgsql")
        conn.execute("CREATE TRIGGER slow BEFORE INSERT ON spanstream_events FOR EACH ROW EXECUTE FUNCTION slow()")
    for k, chunk in enumerate(chunks):
        asyncio.run(produce(kafka_bootstrap, events, chunk))
        time.sleep(rng.uniform(0.2, 0.8))  # mid-batch: the sink is writing and committing
        sink.kill()
        sink = SinkProc(tmp_path, kafka_bootstrap, database, events, dlq, sink.group).start()
        sink.wait_ready()
    problems = wait_stored(database, expected, [sink])
    assert sink.terminate() == 0, sink.tail()
    assert not problems, problems[:10]
    letters = [json.loads(m.value) for m in asyncio.run(read_all(kafka_bootstrap, dlq))]
    seen = {(letter["reason"], letter["value"]["data"].encode()) for letter in letters}
    assert {reason for reason, _ in seen} == {"invalid_event", "database_refused"}, letters
    assert {value for _, value in seen} <= {v for _, v in bad}, seen  # only the bad records (a replay may repeat one)
    with psycopg.connect(database) as conn:
        total = conn.execute("SELECT count(*) FROM spanstream_events").fetchone()[0]
        found = conn.execute("SELECT count(*) FROM spanstream_entities WHERE label = 'person' AND "
                             "to_tsvector('simple', text) @@ plainto_tsquery('simple', 'name2')").fetchone()[0]
    assert total == 1500 and found == sum(1 for n in expected.values() if n == 3)


def test_the_accounting_catches_a_duplicate_and_a_missing_event(database):
    """Negative control: the same accounting reports an event stored twice (written past the primary
    key, as a sink without one would) and an entity row too many."""
    from stream.sink import database as db
    from stream.sink.rows import event_rows

    async def store():
        conn = await db.connect(database)
        await db.migrate(conn)
        await db.write(conn, [event_rows(entity_event(0, o), None, "events", 0, o) for o in range(3)])
        await conn.close()
    asyncio.run(store())
    expected = {(0, o): o % 3 + 1 for o in range(4)}
    assert account(database, expected) == ["missing: (0, 3)"]
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute("ALTER TABLE spanstream_entities DROP CONSTRAINT spanstream_entities_event")
        conn.execute("ALTER TABLE spanstream_events DROP CONSTRAINT spanstream_events_pkey")
        conn.execute("INSERT INTO spanstream_events SELECT * FROM spanstream_events WHERE source_offset = 1")
        conn.execute("INSERT INTO spanstream_entities (source_topic, source_partition, source_offset, ordinal, label, "
                     "text) VALUES ('texts', 0, 2, 99, 'person', 'x')")
    problems = account(database, {(0, o): o % 3 + 1 for o in range(3)})
    assert problems == ["stored 2 times: (0, 1)", "4 entity rows for 3 entities: (0, 2)"], problems


def test_postgres_restarted_mid_stream_stores_every_event_exactly_once(kafka_bootstrap, postgres, database,
                                                                       topics, tmp_path):
    events, dlq = topics
    expected = {}
    records = []
    for i in range(1200):
        p, o = i % 4, i // 4
        records.append((p, entity_event(p, o)))
        expected[(p, o)] = o % 3 + 1
    sink = SinkProc(tmp_path, kafka_bootstrap, database, events, dlq, "sink-" + uuid.uuid4().hex[:6]).start()
    sink.wait_ready()
    asyncio.run(produce(kafka_bootstrap, events, records[:400]))
    time.sleep(0.5)
    postgres.stop("immediate")  # a crash: the sink's writes fail, it retries
    asyncio.run(produce(kafka_bootstrap, events, records[400:800]))
    time.sleep(3)
    assert sink.proc.poll() is None, sink.tail()
    postgres.start()
    asyncio.run(produce(kafka_bootstrap, events, records[800:]))
    problems = wait_stored(database, expected, [sink])
    assert sink.terminate() == 0, sink.tail()
    assert not problems, problems[:10]
    body = sink.log.read_text()
    assert "retrying" in body  # the outage was seen and ridden out


def test_two_sink_replicas_sharing_the_partitions_store_every_event_exactly_once(kafka_bootstrap, database, topics,
                                                                                tmp_path):
    """A rebalance between two replicas (the second joins mid-stream, the first leaves): the
    partitions move with batches in flight, and nothing is stored twice or lost."""
    events, dlq = topics
    expected, records = {}, []
    for i in range(1600):
        p, o = i % 4, i // 4
        records.append((p, entity_event(p, o)))
        expected[(p, o)] = o % 3 + 1
    group = "sink-" + uuid.uuid4().hex[:6]
    first = SinkProc(tmp_path, kafka_bootstrap, database, events, dlq, group).start()
    first.wait_ready()
    asyncio.run(produce(kafka_bootstrap, events, records[:600]))
    second = SinkProc(tmp_path, kafka_bootstrap, database, events, dlq, group).start()
    second.wait_ready()
    asyncio.run(produce(kafka_bootstrap, events, records[600:1100]))
    assert first.terminate() == 0, first.tail()
    asyncio.run(produce(kafka_bootstrap, events, records[1100:]))
    problems = wait_stored(database, expected, [second])
    assert second.terminate() == 0, second.tail()
    assert not problems, problems[:10]
