"""`spanstream demo`: show records flowing through the broker (what `make run` runs)."""

from __future__ import annotations

import argparse
import asyncio
import os
import uuid

import orjson


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="produce sample text events through Kafka and print what comes out")
    p.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092"))
    p.set_defaults(func=run)


SAMPLE = [
    "Angela Merkel met Emmanuel Macron in Paris on Tuesday to discuss the European Union budget.",
    "Apple opened a new office in Austin, Texas, hiring 500 engineers from Google and Microsoft.",
    "The Nile flows through Egypt and Sudan before reaching the Mediterranean Sea.",
]


async def _roundtrip(bootstrap: str) -> int:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    topic = f"spanstream-demo-{uuid.uuid4().hex[:8]}"
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for i, text in enumerate(SAMPLE):
            await producer.send_and_wait(topic, orjson.dumps({"id": f"demo-{i}", "text": text}))
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                group_id=f"{topic}-reader")
    await consumer.start()
    seen = 0
    try:
        while seen < len(SAMPLE):
            batch = await consumer.getmany(timeout_ms=10_000)
            if not batch:
                break
            for records in batch.values():
                for rec in records:
                    print(f"{rec.topic}[{rec.partition}]@{rec.offset}: {rec.value.decode()}")
                    seen += 1
    finally:
        await consumer.stop()
    return 0 if seen == len(SAMPLE) else 1


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_roundtrip(args.bootstrap))
