"""`spanstream sink` throughput: rows/s into PostgreSQL, and the sink's CPU per event next to a
worker's, in one run.

    python -m bench.sink [--events 20000]

A private broker (Maven jars) and a private PostgreSQL (Debian's package) on this machine; the
events are entity events as a worker publishes them, for short texts (a tweet: 3 entities) and
paragraphs (15 entities), produced before the sink starts. The sink runs as its own process with
its defaults (500 rows per transaction); the figure is the time from its first stored row to its
last, and the CPU seconds its process used (user + system, /proc) per 1,000 events. A worker's
CPU per event on the same machine is `python -m bench.worker`'s (bench/WORKER.md): the sink's
share must stay small next to it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
import psycopg

ROOT = Path(__file__).resolve().parent.parent


def event(i: int, entities: int, words: int) -> bytes:
    text = " ".join(f"word{k}" for k in range(words))
    return orjson.dumps({
        "schema_version": 1, "id": f"e{i}", "source": {"topic": "texts", "partition": i % 4, "offset": i // 4,
                                                      "timestamp": 1_764_000_000_000 + i},
        "model": {"name": "spanstream-minilm-gliner2", "version": "1", "variant": "fp32"},
        "labels": ["person", "organization", "location"], "windowed": False,
        "processing": {"received_at": 1, "processed_at": 2, "inference_ms": 3.5, "batch_size": 16},
        "metadata": {"text": text},
        "entities": [{"text": f"Entity {k} of {i}", "label": ("person", "organization", "location")[k % 3],
                      "start": k * 10, "end": k * 10 + 8, "score": 0.87} for k in range(entities)]})


async def produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20)
    await producer.start()
    try:
        for i, v in enumerate(values):
            await producer.send(topic, v, partition=i % 4)
        await producer.flush()
    finally:
        await producer.stop()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(bootstrap: str, dsn: str, name: str, values: list[bytes]) -> tuple[float, float]:
    from tests.kafka_fixtures import create_topic

    topic = asyncio.run(create_topic(bootstrap, f"bench-{name}-{time.monotonic_ns()}", 4))
    asyncio.run(produce(bootstrap, topic, values))
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS spanstream_entities, spanstream_events, spanstream_schema")
    env = {**os.environ, "SPANSTREAM_SINK_DSN": dsn}
    proc = subprocess.Popen([sys.executable, "-m", "stream", "sink", "--bootstrap", bootstrap, "--topics", topic,
                             "--group-id", f"g-{topic}", "--no-http"], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = None
    try:
        while True:
            try:
                with psycopg.connect(dsn) as conn:
                    n = conn.execute("SELECT count(*) FROM spanstream_events").fetchone()[0]
            except psycopg.errors.UndefinedTable:
                n = 0
            if n and first is None:
                first, first_n, cpu0 = time.perf_counter(), n, cpu_seconds(proc.pid)
            if n >= len(values):
                took = time.perf_counter() - first
                cpu = cpu_seconds(proc.pid) - cpu0
                return (n - first_n) / took, 1000 * cpu / (n - first_n)
            time.sleep(0.05)
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> int:
    from devtools.localkafka import KafkaCluster
    from devtools.localpostgres import LocalPostgres, scratch

    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=20000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cluster = KafkaCluster.create(Path(tmp) / "kafka", size=1)
        cluster.start()
        pg = LocalPostgres(scratch()).start()
        try:
            print(f"{args.events} entity events per row of the table, 4 partitions, sink defaults "
                  "(500 rows per transaction, 200 ms linger), PostgreSQL 'fsync=on'\n")
            print("| events | entities each | event bytes | rows/s (events) | entity rows/s | sink CPU s per 1,000 events |")
            print("|---|---|---|---|---|---|")
            for name, entities, words in (("tweet", 3, 25), ("paragraph", 15, 150)):
                values = [event(i, entities, words) for i in range(args.events)]
                rate, cpu = run(cluster.bootstrap, pg.dsn, name, values)
                print(f"| {name} | {entities} | {len(values[0])} | {rate:.0f} | {rate * entities:.0f} | {cpu:.3f} |",
                      flush=True)
        finally:
            pg.remove()
            cluster.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
