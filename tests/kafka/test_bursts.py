"""Memory under a burst: 100,000 events land on the input topic at once. The worker takes at most
``SPANSTREAM_MAX_UNACKED_EVENTS`` between take and ack, so the rest waits in Kafka, not in the
worker's memory; every event comes out. Peak and settled RSS (sampled from /proc) are printed."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from tests.kafka.test_worker_e2e import SENTENCES
from tests.worker_harness import consume, pipeline_toml

pytestmark = pytest.mark.kafka

BURST = 100_000


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def _produce_fast(bootstrap: str, topic: str, n: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20, max_batch_size=1 << 20)
    await producer.start()
    try:
        pending = []
        for i in range(n):
            value = orjson.dumps({"id": i, "text": SENTENCES[i % 4], "metadata": {"seq": i}})
            pending.append(await producer.send(topic, value))
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


async def test_a_100k_event_burst_is_processed_with_bounded_memory(kafka_bootstrap, topic_factory, worker_factory):
    topics = {k: await topic_factory(partitions=4 if k != "dlq" else 1, prefix=k) for k in ("in", "out", "dlq")}
    worker = worker_factory(pipeline_toml("burst", topics["in"], topics["out"], topics["dlq"], max_events=64),
                            env={"SPANSTREAM_MAX_UNACKED_EVENTS": "512"})
    worker.wait_ready()
    await worker_warm(worker)
    steady = rss_mb(worker.proc.pid)
    samples = []
    sampling = True

    async def sample() -> None:
        while sampling:
            samples.append(rss_mb(worker.proc.pid))
            await asyncio.sleep(0.2)

    sampler = asyncio.ensure_future(sample())
    started = time.monotonic()
    await _produce_fast(kafka_bootstrap, topics["in"], BURST)
    produced_in = time.monotonic() - started
    out = await consume(kafka_bootstrap, [topics["out"], topics["dlq"]], BURST, timeout=600)
    seconds = time.monotonic() - started
    await asyncio.sleep(3)
    sampling = False
    await sampler
    settled = rss_mb(worker.proc.pid)
    seen = {orjson.loads(r.value)["metadata"]["seq"] for r in out if r.topic == topics["out"]}
    print(f"BURST: {BURST} events (produced in {produced_in:.0f} s) all out in {seconds:.0f} s; worker RSS "
          f"steady {steady:.0f} MB, peak {max(samples):.0f} MB, settled {settled:.0f} MB")
    assert len(seen) == BURST and len(out) == BURST, worker.tail()
    assert max(samples) < steady + 300, (steady, max(samples))  # the backlog stayed in Kafka
    assert worker.terminate() == 0


async def worker_warm(worker) -> None:
    """One request through the engine so the steady size includes its arenas."""
    await asyncio.to_thread(worker.http, "/v1/extract", {"text": SENTENCES[0], "labels": ["person"]})
