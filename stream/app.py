"""The faust application: one agent per pipeline. Wiring only; batch logic is in pipeline.py.

Ack discipline: ``Stream.take_events`` acks its batch in a ``finally`` once the loop body
returns — also when the body raises or is cancelled. So the body returns only after every
output of the batch is delivered; a shutdown or rebalance that cancels the agent waits for the
in-flight batch (drain); and an unrecoverable error ends the process *without* unwinding
(``os._exit``), so nothing unpublished is ever acked or committed. Redelivery after restart
gives at-least-once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Awaitable, Mapping
from typing import Any

from stream.codec import now_ms
from stream.config import PipelineConfig, Settings
from stream.pipeline import BatchProcessor
from stream.records import RecordRef

log = logging.getLogger(__name__)
FATAL_EXIT_CODE = 70


def fatal(message: str) -> None:
    """Stop now, without running ``finally`` blocks that would ack the current batch."""
    log.critical("%s; exiting without committing the current batch", message)
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stderr.flush()
    os._exit(FATAL_EXIT_CODE)


async def complete_before_ack(work: Awaitable[None]) -> None:
    """Await ``work`` to the end even if we are cancelled meanwhile; die if it fails."""
    task = asyncio.ensure_future(work)
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if not task.done():
                cancelled = True  # shutdown or rebalance: drain the in-flight batch first
        except Exception:
            break
    if task.cancelled():
        fatal("batch task was cancelled before its outputs were delivered")
    if task.exception() is not None:
        exc = task.exception()
        fatal(f"batch failed: {type(exc).__name__}: {exc}")
    if cancelled:
        raise asyncio.CancelledError()


def record_ref(message: Any) -> RecordRef:
    headers = message.headers or []
    if isinstance(headers, Mapping):
        headers = headers.items()
    ts = message.timestamp
    return RecordRef(topic=message.topic, partition=message.partition, offset=message.offset,
                     timestamp=int(ts * 1000) if ts else None, key=message.key, value=message.value,
                     headers=tuple((str(k), bytes(v) if v is not None else b"") for k, v in headers),
                     received_at=now_ms())


def _broker_url(bootstrap: str) -> str:
    return ";".join(f"kafka://{h.strip()}" for h in bootstrap.split(",") if h.strip())


def build_app(settings: Settings, processors: list[BatchProcessor]):
    import faust
    from faust.auth import SASLCredentials, SSLCredentials

    credentials = None
    if settings.kafka_security_protocol.startswith("SASL"):
        credentials = SASLCredentials(
            username=settings.kafka_sasl_username,
            password=settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else None,
            mechanism=settings.kafka_sasl_mechanism)
    elif settings.kafka_security_protocol == "SSL":
        from aiokafka.helpers import create_ssl_context

        credentials = SSLCredentials(create_ssl_context(cafile=str(settings.kafka_ssl_cafile)
                                                        if settings.kafka_ssl_cafile else None))
    (settings.data_dir / settings.group_id).mkdir(parents=True, exist_ok=True)
    app = faust.App(
        settings.group_id,
        broker=_broker_url(settings.kafka_bootstrap),
        broker_credentials=credentials,
        broker_client_id=settings.client_id,
        broker_commit_interval=settings.commit_interval_s,
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=settings.heartbeat_interval_s,
        web_application_options={"client_max_size": 8 * 1024 * 1024},
        consumer_auto_offset_reset=settings.auto_offset_reset,
        consumer_group_instance_id=settings.group_instance_id,
        value_serializer="raw",
        key_serializer="raw",
        web_enabled=settings.http_enabled,
        web_bind=settings.http_host,
        web_port=settings.http_port,
        web_in_thread=False,
        topic_disable_leader=True,
        topic_allow_declare=False,
        producer_acks=-1,
        datadir=str(settings.data_dir / settings.group_id),
        store="memory://",
        autodiscover=False,
    )
    for processor in processors:
        _register(app, processor)
    if processors:
        _register_lag_gauge(app, processors[0].metrics)
    return app


def _register_lag_gauge(app, metrics, interval: float = 5.0) -> None:
    """spanstream_consumer_lag{topic,partition}: log-end offset minus committed offset."""

    @app.timer(interval=interval, name="spanstream.consumer_lag")
    async def update_lag() -> None:
        consumer = app.consumer
        assigned = list(consumer.assignment())
        if not assigned:
            metrics.consumer_lag.clear()
            return
        try:
            ends = await consumer.highwaters(*assigned)
        except Exception as exc:  # metadata hiccup: keep the last values
            log.debug("consumer lag not updated: %r", exc)
            return
        metrics.consumer_lag.clear()
        for tp in assigned:
            # faust keeps the committed offset per partition (the next offset to read)
            committed = consumer._committed_offset.get(tp) or await consumer.position(tp) or 0
            end = ends.get(tp)
            if end is not None:
                metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(max(0, end - committed))


def _register(app, processor: BatchProcessor) -> None:
    cfg: PipelineConfig = processor.cfg
    topic = app.topic(*cfg.input_topics, value_serializer="raw", key_serializer="raw", allow_empty=True)

    async def pipeline_agent(stream) -> None:
        async for events in stream.take_events(cfg.max_events, within=cfg.max_wait_ms / 1000):
            refs = [record_ref(event.message) for event in events]
            await complete_before_ack(processor.process(refs))

    pipeline_agent.__name__ = f"pipeline_{cfg.name.replace('-', '_').replace('.', '_')}"
    app.agent(topic, name=f"spanstream.pipeline.{cfg.name}", concurrency=1)(pipeline_agent)
