"""`python -m devtools demo` (what `make run` runs): a worker on the embedded model, real sentences in,
entity events out — all through the broker at ``--bootstrap``. With ``--sink`` (`make run-sink`) a
private PostgreSQL (``devtools.localpostgres``) and `spanstream sink` store those events, and the
demo ends by querying the entities back from the database."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import orjson

from stream.cli.kafka_io import create_topics, format_event
from stream.serving.sample_texts import SENTENCES

TOPICS = ("spanstream-demo-texts", "spanstream-demo-entities", "spanstream-demo-dead-letters")
LABELS = ["person", "organization", "location", "date"]
# A GLiNER2 model also runs a schema pipeline: entities, a classification, a structure and
# relations from one schema, in one encoder pass per text.
EXTRACT_TOPICS = ("spanstream-demo-texts-for-schema", "spanstream-demo-extractions")
SCHEMA = {"entities": LABELS,
          "classifications": [{"task": "topic", "labels": ["politics", "business", "sports", "science", "health"]}],
          "structures": {"fact": {"fields": ["subject::str", "object::str"]}},
          "relations": ["employer", "member of sports team", "award received"]}

SAMPLE = list(SENTENCES[:10])  # the first sentences of spanstream bench's built-in sample


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run a worker and show entity events flowing (used by `make run`)")
    p.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092"))
    p.add_argument("--model", type=Path, default=None, help="model folder (default: the embedded model)")
    p.add_argument("--http-port", type=int, default=6066)
    p.add_argument("--sink", action="store_true",
                   help="also store the events in a private PostgreSQL with `spanstream sink` and query them back")
    p.set_defaults(func=run)


def _wait_ready(port: int, proc: subprocess.Popen, timeout: float = 120, what: str = "worker") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{what} did not become ready")


async def _produce_and_show(bootstrap: str, run_id: str, schema: bool) -> int:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    inputs = [TOPICS[0]] + ([EXTRACT_TOPICS[0]] if schema else [])
    outputs = [TOPICS[1], TOPICS[2]] + ([EXTRACT_TOPICS[1]] if schema else [])
    consumer = AIOKafkaConsumer(*outputs, bootstrap_servers=bootstrap, auto_offset_reset="latest",
                                group_id=f"spanstream-demo-reader-{run_id}", enable_auto_commit=False)
    await consumer.start()
    while not consumer.assignment():
        await asyncio.sleep(0.1)
    await consumer.seek_to_end()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for topic in inputs:
            for i, text in enumerate(SAMPLE):
                await producer.send_and_wait(topic, orjson.dumps({"id": f"{run_id}-{i}", "text": text}),
                                             key=f"doc-{i}".encode())
        shown = f"entity events from {TOPICS[1]}" + (f", extraction events from {EXTRACT_TOPICS[1]}" if schema else "")
        print(f"produced {len(SAMPLE)} text events to {', '.join(inputs)}; {shown}:\n", flush=True)
        seen, expected = 0, len(SAMPLE) * len(inputs)
        deadline = time.monotonic() + 120
        while seen < expected and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=1000)
            for records in batch.values():
                for rec in records:
                    event = orjson.loads(rec.value)
                    if not str(event.get("id", "")).startswith(run_id) and "reason" not in event:
                        continue
                    idx = int(str(event.get("id", "-0")).rsplit("-", 1)[1]) if "id" in event else -1
                    print(f"  {SAMPLE[idx] if idx >= 0 else ''}")
                    print(f"    → [{rec.topic}] {format_event(rec.value)}\n", flush=True)
                    seen += 1
    finally:
        await producer.stop()
        await consumer.stop()
    return 0 if seen == expected else 1


# The run's own events (its ids start with the run id): the broker may hold earlier demos' events.
SINK_QUERIES = {
    "entities per label": "SELECT x.label, count(*), string_agg(DISTINCT x.text, ', ') FROM spanstream_entities x "
                          "JOIN spanstream_events e USING (source_topic, source_partition, source_offset) "
                          "WHERE e.topic = %(topic)s AND e.event_id LIKE %(run)s GROUP BY 1 ORDER BY 2 DESC",
    "people mentioned": "SELECT e.event_id, x.text, round(x.score::numeric, 2) FROM spanstream_entities x "
                        "JOIN spanstream_events e USING (source_topic, source_partition, source_offset) "
                        "WHERE e.topic = %(topic)s AND e.event_id LIKE %(run)s AND x.label = 'person' "
                        "ORDER BY e.event_id",
}


def _start_sink(dsn: str, topics: list[str], bootstrap: str, port: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "stream", "sink", "--topics", ",".join(topics), "--bootstrap", bootstrap,
           "--group-id", "spanstream-demo-sink", "--dead-letter-topic", TOPICS[2], "--http-port", str(port),
           "--loglevel", os.environ.get("DEMO_SINK_LOGLEVEL", "warning")]
    print(f"starting sink: {' '.join(cmd[2:])}", flush=True)
    sink = subprocess.Popen(cmd, env={**os.environ, "SPANSTREAM_SINK_DSN": dsn, "SPANSTREAM_SINK_LINGER_MS": "100"})
    _wait_ready(port, sink, what="sink")
    return sink


def _query_back(dsn: str, topic: str, run_id: str) -> int:
    """Waits for the sink to store the run's entity events, then prints what the queries return."""
    import psycopg

    params = {"topic": topic, "run": f"{run_id}-%"}
    deadline = time.monotonic() + 60
    stored = 0
    with psycopg.connect(dsn, autocommit=True) as conn:
        while time.monotonic() < deadline:
            stored = conn.execute("SELECT count(*) FROM spanstream_events WHERE topic = %(topic)s "
                                  "AND event_id LIKE %(run)s", params).fetchone()[0]
            if stored >= len(SAMPLE):
                break
            time.sleep(0.5)
        print(f"\nPostgreSQL: {stored} of this run's {len(SAMPLE)} entity events stored from {topic} "
              "(one row per input event)")
        for title, sql in SINK_QUERIES.items():
            print(f"\n  {title}:\n  {sql % {k: repr(v) for k, v in params.items()}}")
            for row in conn.execute(sql, params):
                print("    " + " | ".join(str(v) for v in row))
    return 0 if stored == len(SAMPLE) else 1


def run(args: argparse.Namespace) -> int:
    from stream.engine import default_model_path
    from stream.engine.gliner2.engine import is_gliner2_folder

    schema = is_gliner2_folder(args.model or default_model_path())
    asyncio.run(create_topics(args.bootstrap, list(TOPICS) + (list(EXTRACT_TOPICS) if schema else []), partitions=2))
    run_id = uuid.uuid4().hex[:6]
    with tempfile.TemporaryDirectory(prefix="spanstream-demo-") as tmp:
        config = Path(tmp) / "pipelines.toml"
        text = ("[[pipelines]]\n"
                'name = "demo"\n'
                f'input_topics = ["{TOPICS[0]}"]\noutput_topic = "{TOPICS[1]}"\ndead_letter_topic = "{TOPICS[2]}"\n'
                f"labels = {LABELS!r}\n".replace("'", '"') + "threshold = 0.4\n")
        if schema:
            (Path(tmp) / "schema.json").write_bytes(orjson.dumps(SCHEMA))
            text += ("\n[[pipelines]]\n"
                     'name = "demo-schema"\n'
                     f'input_topics = ["{EXTRACT_TOPICS[0]}"]\noutput_topic = "{EXTRACT_TOPICS[1]}"\n'
                     f'dead_letter_topic = "{TOPICS[2]}"\nschema = "schema.json"\nthreshold = 0.4\n')
        config.write_text(text)
        cmd = [sys.executable, "-m", "stream", "worker", "--config", str(config), "--bootstrap", args.bootstrap,
               "--group-id", "spanstream-demo", "--http-port", str(args.http_port), "--data-dir", tmp,
               "--loglevel", os.environ.get("DEMO_SINK_LOGLEVEL", "warning")]
        if args.model:
            cmd += ["--model", str(args.model)]
        print(f"starting worker: {' '.join(cmd[2:])}", flush=True)
        worker = subprocess.Popen(cmd)
        children = [worker]
        database = None
        try:
            if args.sink:
                from devtools.localpostgres import LocalPostgres, scratch

                database = LocalPostgres(scratch()).start()
                print(f"PostgreSQL (Debian's package, private): {database.dsn}", flush=True)
                sink_topics = [TOPICS[1]] + ([EXTRACT_TOPICS[1]] if schema else [])
                children.append(_start_sink(database.dsn, sink_topics, args.bootstrap, args.http_port + 1))
            _wait_ready(args.http_port, worker)
            print(f"worker ready (metrics: http://127.0.0.1:{args.http_port}/metrics)", flush=True)
            code = asyncio.run(_produce_and_show(args.bootstrap, run_id, schema))
            if database is not None:
                code = _query_back(database.dsn, TOPICS[1], run_id) or code
        finally:
            for child in children:
                child.send_signal(signal.SIGTERM)
            for child in children:
                try:
                    child.wait(60)
                except subprocess.TimeoutExpired:
                    child.kill()
            if database is not None:
                database.remove()
    stopped = "worker and sink stopped (SIGTERM, drained), PostgreSQL removed" if args.sink else \
        "worker stopped (SIGTERM, drained)"
    print(f"demo finished; {stopped}. Broker keeps running: `make kafka-down` stops it.")
    return code
