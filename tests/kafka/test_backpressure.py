"""Backpressure through a real broker: when the engine is the bottleneck the worker stops taking
records (at most SPANSTREAM_MAX_UNACKED_EVENTS between take and ack) instead of buffering the
topic in memory, and still delivers every record."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest

from tests.worker_harness import consume, pipeline_toml, produce

pytestmark = pytest.mark.kafka

PARAGRAPH = " ".join(["Angela Merkel met Emmanuel Macron in Paris to discuss the European Union budget."] * 12)


async def test_a_busy_engine_pauses_consumption_and_nothing_is_lost(kafka_bootstrap, topic_factory, worker_factory):
    topics = {k: await topic_factory(partitions=2, prefix=k) for k in ("in", "out", "dlq")}
    worker = worker_factory(pipeline_toml("bp", topics["in"], topics["out"], topics["dlq"]),
                            env={"SPANSTREAM_MAX_UNACKED_EVENTS": "64", "SPANSTREAM_MAX_QUEUE_WAIT_S": "0"})
    worker.wait_ready()
    n = 1200
    await produce(kafka_bootstrap, topics["in"],
                  [(None, orjson.dumps({"id": f"e{i}", "text": PARAGRAPH}), []) for i in range(n)])
    reading = asyncio.ensure_future(consume(kafka_bootstrap, [topics["out"], topics["dlq"]], n, timeout=300))
    depths = []
    started = time.monotonic()
    while not reading.done():
        depths.append(await asyncio.to_thread(worker.metric, "spanstream_queue_depth"))
        await asyncio.sleep(0.1)
    out = reading.result()
    seconds = time.monotonic() - started
    print(f"BACKPRESSURE: {n} events in {seconds:.1f} s, queue depth sampled {len(depths)}x, max {max(depths):.0f}")
    assert len(out) == n, worker.tail()
    assert all(r.topic == topics["out"] for r in out)
    assert len(depths) >= 10 and max(depths) >= 16  # the engine was busy while it was sampled
    assert max(depths) <= 64  # at most max_unacked_events taken: the rest waited in Kafka
    assert worker.terminate() == 0
