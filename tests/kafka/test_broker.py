"""The launcher gives us a real broker: produce, consume, and survive a node crash."""

from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from tests.kafka_fixtures import create_topic

pytestmark = pytest.mark.kafka


async def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True,
                                request_timeout_ms=30_000)
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value)
    finally:
        await producer.stop()


async def _consume(bootstrap: str, topic: str, count: int) -> list[bytes]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                group_id=f"g-{uuid.uuid4().hex[:6]}", enable_auto_commit=False)
    await consumer.start()
    out: list[bytes] = []
    try:
        for _ in range(30):
            batch = await consumer.getmany(timeout_ms=1000)
            out += [r.value for recs in batch.values() for r in recs]
            if len(out) >= count:
                break
    finally:
        await consumer.stop()
    return out


async def test_produce_consume_roundtrip(kafka_bootstrap, topic_factory):
    topic = await topic_factory(partitions=2)
    values = [f"event-{i}".encode() for i in range(50)]
    await _produce(kafka_bootstrap, topic, values)
    got = await _consume(kafka_bootstrap, topic, len(values))
    assert sorted(got) == sorted(values)


@pytest.mark.cluster
async def test_three_nodes_survive_a_killed_broker(kafka_cluster3):
    bootstrap = kafka_cluster3.bootstrap
    topic = await create_topic(bootstrap, f"rf3-{uuid.uuid4().hex[:8]}", partitions=3, replication=3,
                               config={"min.insync.replicas": "2"})
    before = [f"before-{i}".encode() for i in range(30)]
    await _produce(bootstrap, topic, before)

    kafka_cluster3.kill_node(2)  # SIGKILL: a crash, not a clean shutdown
    assert not kafka_cluster3.node(2).is_running()
    survivors = ",".join(n.bootstrap for n in kafka_cluster3.nodes if n.node_id != 2)
    after = [f"after-{i}".encode() for i in range(30)]
    await _produce(survivors, topic, after)
    got = await _consume(survivors, topic, 60)
    assert sorted(got) == sorted(before + after)

    kafka_cluster3.restart_node(2)
    assert kafka_cluster3.node(2).is_running()
    got = await _consume(bootstrap, topic, 60)
    assert sorted(got) == sorted(before + after)


def test_launcher_refuses_a_port_already_in_use(tmp_path):
    import socket

    from devtools.localkafka import KafkaCluster

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        cluster = KafkaCluster.create(tmp_path, 1, ports=[(port, port + 1)])
        with pytest.raises(RuntimeError, match="already in use"):
            cluster.start()


def test_cluster_ids_are_valid_for_the_storage_tool():
    from devtools.localkafka import _random_cluster_id

    ids = [_random_cluster_id() for _ in range(5000)]
    assert all(len(i) == 22 and not i.startswith("-") for i in ids)
