"""Start-up checks of the topics a worker writes to: they exist, this client may see them, and the
largest record each one takes (``max.message.bytes``), so dead letters are cut to fit.

A typo in ``output_topic`` must stop the worker at start with the key named, not cost the publish
budget on every record. Write permission itself cannot be read without producing (Metadata v5 has
no authorized operations), so an ACL that forbids writes is found at the first publish, which is
fatal (``kafka.policy``: configuration) and says which topic.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Sequence

from stream.config import PipelineConfig, Settings
from stream.errors import ConfigError
from stream.kafka.client import kafka_client_kwargs
from stream.kafka.publisher import DEFAULT_RECORD_LIMIT, MAX_REQUEST_SIZE

log = logging.getLogger(__name__)

__all__ = ["check_output_topics"]


async def _inspect(settings: Settings, pipelines: Sequence[PipelineConfig]) -> dict[str, int]:
    from aiokafka import AIOKafkaClient
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    kwargs = kafka_client_kwargs(settings)
    client = AIOKafkaClient(**kwargs, request_timeout_ms=15_000)
    try:
        await client.bootstrap()
        metadata = await client.fetch_all_metadata()
    except Exception as exc:
        raise ConfigError(f"cannot read topic metadata from {settings.kafka_bootstrap}: "
                          f"{type(exc).__name__}: {exc}") from None
    finally:
        await client.close()
    existing, forbidden = metadata.topics(), metadata.unauthorized_topics
    wanted: dict[str, str] = {}
    for i, cfg in enumerate(pipelines):
        for key in ("output_topic", "dead_letter_topic"):
            topic = getattr(cfg, key)
            where = f"pipelines[{i}].{key} (pipeline {cfg.name!r})"
            if topic in forbidden:
                raise ConfigError(f"{where}: not authorized to describe topic {topic!r}")
            if topic not in existing:
                raise ConfigError(f"{where}: topic {topic!r} does not exist (topics are not created by spanstream)")
            wanted.setdefault(topic, where)
    limits = {topic: DEFAULT_RECORD_LIMIT for topic in wanted}
    admin = AIOKafkaAdminClient(**kwargs, request_timeout_ms=15_000)
    try:
        await admin.start()
        responses = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, t) for t in wanted])
        for response in responses:
            for error_code, _msg, _type, name, entries in response.resources:
                for entry in entries if error_code == 0 else ():
                    if entry[0] == "max.message.bytes" and entry[1] is not None:
                        limits[name] = int(entry[1])
    except Exception as exc:  # no DescribeConfigs permission: the broker default, said in the log
        log.warning("cannot read the topics' max.message.bytes (%s: %s); assuming Kafka's default %d",
                    type(exc).__name__, exc, DEFAULT_RECORD_LIMIT)
    finally:
        await admin.close()
    return {topic: min(limit, MAX_REQUEST_SIZE) for topic, limit in limits.items()}


def check_output_topics(settings: Settings, pipelines: Sequence[PipelineConfig]) -> dict[str, int]:
    """Raise ``ConfigError`` (naming the pipeline key) unless every output and dead-letter topic
    exists and is visible; return each one's record size limit in bytes. Runs its own event loop
    in a thread, so it can be called before faust owns the main one."""
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="spanstream-topics") as pool:
        return pool.submit(asyncio.run, _inspect(settings, pipelines)).result()
