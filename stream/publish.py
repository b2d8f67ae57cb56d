"""Delivers entity events and dead-letter records, and waits until the broker has them.

acks=all and an idempotent producer: once ``publish`` returns, every record is durable.
Records keep their input key (so per-key order holds downstream); key-less records go to the
output partition matching their input partition, so per-partition order holds too.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import NamedTuple

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from stream.config import Settings
from stream.errors import PublishError

log = logging.getLogger(__name__)


class OutRecord(NamedTuple):
    topic: str
    value: bytes
    key: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    source_partition: int


def kafka_client_kwargs(settings: Settings) -> dict:
    """Connection settings shared by every aiokafka client we create."""
    kw: dict = {"bootstrap_servers": settings.kafka_bootstrap, "client_id": settings.client_id,
                "security_protocol": settings.kafka_security_protocol}
    if settings.kafka_sasl_mechanism:
        kw.update(sasl_mechanism=settings.kafka_sasl_mechanism, sasl_plain_username=settings.kafka_sasl_username,
                  sasl_plain_password=settings.kafka_sasl_password.get_secret_value()
                  if settings.kafka_sasl_password else None)
    if settings.kafka_security_protocol in ("SSL", "SASL_SSL"):
        from aiokafka.helpers import create_ssl_context

        kw["ssl_context"] = create_ssl_context(cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile
                                               else None)
    return kw


class Publisher:
    def __init__(self, settings: Settings):
        self._settings = settings
        self._producer: AIOKafkaProducer | None = None
        self._partitions: dict[str, int] = {}
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        async with self._lock:
            if self._producer is None:
                producer = AIOKafkaProducer(**kafka_client_kwargs(self._settings), acks="all",
                                            enable_idempotence=True, linger_ms=5, request_timeout_ms=30_000,
                                            max_request_size=4 * 1024 * 1024)
                await producer.start()
                self._producer = producer

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def _partition_count(self, topic: str) -> int:
        if topic not in self._partitions:
            parts = await self._producer.partitions_for(topic)
            self._partitions[topic] = len(parts)
        return self._partitions[topic]

    async def publish(self, records: list[OutRecord]) -> None:
        """Send in order; return once all are acknowledged. Retries for ``publish_timeout_s``,
        then raises ``PublishError`` (the caller must not ack the inputs)."""
        if not records:
            return
        await self.start()
        deadline = time.monotonic() + self._settings.publish_timeout_s
        delay = 0.2
        while True:
            try:
                futures = []
                for r in records:
                    partition = None
                    if r.key is None:
                        partition = r.source_partition % await self._partition_count(r.topic)
                    futures.append(await self._producer.send(r.topic, r.value, key=r.key, partition=partition,
                                                             headers=list(r.headers)))
                await asyncio.gather(*futures)
                return
            except KafkaError as exc:
                if time.monotonic() + delay > deadline:
                    raise PublishError(f"could not deliver {len(records)} records: {exc!r}") from exc
                log.warning("publish failed (%r); retrying %d records in %.1fs", exc, len(records), delay)
                self._partitions.clear()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
