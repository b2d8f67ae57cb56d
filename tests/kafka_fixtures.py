"""Real-broker fixtures: one broker per test session, unique topics per test.

Order of preference: ``KAFKA_BOOTSTRAP`` (an external cluster), testcontainers when
``SPANSTREAM_TEST_DOCKER=1`` and Docker works, else the Maven-jar launcher. Failing to get a
broker is an error, never a skip.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.localkafka import KafkaCluster, wait_for_metadata


def _testcontainers_bootstrap() -> Iterator[str]:
    from testcontainers.kafka import KafkaContainer  # optional `docker` extra

    with KafkaContainer().with_kraft() as container:
        yield container.get_bootstrap_server()


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    external = os.environ.get("KAFKA_BOOTSTRAP")
    if external:
        wait_for_metadata(external, timeout=30)
        yield external
        return
    if os.environ.get("SPANSTREAM_TEST_DOCKER") == "1":
        yield from _testcontainers_bootstrap()
        return
    cluster = KafkaCluster.create(tmp_path_factory.mktemp("kafka"), size=1)
    try:
        cluster.start()
    except Exception as exc:
        raise RuntimeError(f"could not start the test broker: {exc}\n{cluster.log_tail()}") from exc
    try:
        yield cluster.bootstrap
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def kafka_cluster3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    """A three-node cluster of our own (fault tests kill and restart its nodes)."""
    cluster = KafkaCluster.create(Path(tmp_path_factory.mktemp("kafka3")), size=3)
    try:
        cluster.start()
    except Exception as exc:
        raise RuntimeError(f"could not start the 3-node cluster: {exc}\n{cluster.log_tail()}") from exc
    try:
        yield cluster
    finally:
        cluster.stop()


async def create_topic(bootstrap: str, name: str, partitions: int = 1, replication: int = 1,
                       config: dict[str, str] | None = None) -> str:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, replication, topic_configs=config or {})])
    finally:
        await admin.close()
    # Wait until metadata shows a leader for every partition.
    from aiokafka import AIOKafkaClient

    client = AIOKafkaClient(bootstrap_servers=bootstrap)
    await client.bootstrap()
    try:
        for _ in range(100):
            await client.force_metadata_update()
            parts = client.cluster.partitions_for_topic(name)
            if parts and len(parts) == partitions and all(
                client.cluster.leader_for_partition(_tp(name, p)) not in (None, -1) for p in parts
            ):
                return name
            await asyncio.sleep(0.1)
    finally:
        await client.close()
    raise TimeoutError(f"topic {name} has no leaders")


def _tp(topic: str, partition: int):
    from aiokafka.structs import TopicPartition

    return TopicPartition(topic, partition)


@pytest.fixture
def topic_factory(kafka_bootstrap: str, request: pytest.FixtureRequest):
    """``await topic_factory(partitions=4)`` → a fresh, uniquely named topic."""

    async def make(partitions: int = 1, prefix: str | None = None, **kwargs) -> str:
        name = f"{prefix or request.node.name[:40]}-{uuid.uuid4().hex[:8]}"
        name = "".join(c if c.isalnum() or c in "-_." else "-" for c in name)
        return await create_topic(kafka_bootstrap, name, partitions, **kwargs)

    return make
