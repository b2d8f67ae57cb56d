"""Sends entity events and dead letters, and reports, record by record, what the broker did.

acks=all and an idempotent producer: a record whose delivery future succeeded is durable. The
producer retries leader changes, timeouts and lost connections itself, in order, for the whole
publish budget (its ``request_timeout_ms`` is ``publish_timeout_s``: aiokafka expires a batch, and
gives up waiting for buffer room, only after that long); what reaches the pipeline after it is
fatal or a record the broker refuses (``kafka.policy``).
Records keep their input key (so per-key order holds downstream); key-less records go to the
output partition matching their input partition, so per-partition order holds too. ``send``
only hands records to the producer (in order) and returns their delivery futures, so the next
batch can be sent while this one is in flight; ``deliver`` sends and waits.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, NamedTuple

from aiokafka import AIOKafkaProducer

from stream.config import Settings
from stream.kafka.client import kafka_client_kwargs

log = logging.getLogger(__name__)


MAX_REQUEST_SIZE = 4 * 1024 * 1024
"The producer's max_request_size: no record larger than this is sent."
DEFAULT_RECORD_LIMIT = 1_048_588
"Kafka's default message.max.bytes, used where a topic's own limit could not be read."


class OutRecord(NamedTuple):
    topic: str
    value: bytes
    key: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    source_partition: int
    letter: Any = None
    """Dead-letter records: the ``DeadLetter`` they carry, to send again without the record's bytes if
    the topic refuses them (None once sent that way)."""


class Publisher:
    def __init__(self, settings: Settings):
        self._settings = settings
        self._producer: AIOKafkaProducer | None = None
        self._alone: AIOKafkaProducer | None = None
        self._partitions: dict[str, int] = {}
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        async with self._lock:
            if self._producer is None:
                producer = AIOKafkaProducer(**kafka_client_kwargs(self._settings), acks="all",
                                            enable_idempotence=True, linger_ms=5,
                                            request_timeout_ms=int(self._settings.publish_timeout_s * 1000),
                                            max_request_size=MAX_REQUEST_SIZE)
                await producer.start()
                self._producer = producer

    async def stop(self) -> None:
        if self._alone is not None:
            await self._alone.stop()
            self._alone = None
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def _partition_count(self, topic: str) -> int:
        if topic not in self._partitions:
            parts = await self._producer.partitions_for(topic)
            self._partitions[topic] = len(parts)
        return self._partitions[topic]

    async def send(self, records: list[OutRecord]) -> list[asyncio.Future]:
        """Hand ``records`` to the producer in order; one delivery future each. A record the
        producer refuses at once (too large, unknown topic…) gets a future holding that error."""
        await self.start()
        futures = []
        for r in records:
            try:
                partition = None
                if r.key is None:
                    partition = r.source_partition % await self._partition_count(r.topic)
                futures.append(await self._producer.send(r.topic, r.value, key=r.key, partition=partition,
                                                         headers=list(r.headers)))
            except Exception as exc:
                self._partitions.pop(r.topic, None)
                failed = asyncio.get_running_loop().create_future()
                failed.set_exception(exc)
                futures.append(failed)
        return futures

    async def send_alone(self, r: OutRecord) -> BaseException | None:
        """Send one record in a batch of its own and wait: the broker's size and validity checks
        apply to whole batches, so a refused batch may hold records that are fine on their own.
        Uses a second producer without idempotence: after a refused batch the idempotent one's
        sequence for that partition no longer matches the broker's, and it would refuse the
        record too. Records re-sent this way (a refused batch's good records, and the dead letters
        of the refused ones) may land after records of a later batch of the same partition: the
        one place where the first delivery of an output can be out of input order.)"""
        await self.start()
        try:
            if self._alone is None:
                self._alone = AIOKafkaProducer(**kafka_client_kwargs(self._settings), acks="all",
                                               enable_idempotence=False, linger_ms=0, request_timeout_ms=30_000,
                                               max_request_size=MAX_REQUEST_SIZE)
                await self._alone.start()
            partitions = sorted(await self._alone.partitions_for(r.topic))
            partition = partitions[r.source_partition % len(partitions)] if r.key is None else None
            await self._alone.send_and_wait(r.topic, r.value, key=r.key, partition=partition, headers=list(r.headers))
            return None
        except Exception as exc:
            return exc

    @staticmethod
    async def outcomes(futures: list[asyncio.Future]) -> list[BaseException | None]:
        """Wait for every delivery; ``None`` where the broker has the record, else its error."""
        results = await asyncio.gather(*futures, return_exceptions=True)
        return [r if isinstance(r, BaseException) else None for r in results]

    async def deliver(self, records: list[OutRecord]) -> list[BaseException | None]:
        return await self.outcomes(await self.send(records))
