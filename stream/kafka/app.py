"""The faust application: one agent per pipeline. Wiring only; the batch flow is in pipeline.py.

Ack discipline: the agent takes records with ``noack_take`` and hands each batch to its
``StreamPipeline``, which acks a record only once its output is durable; faust commits an offset
only when every offset before it is acked. So batches overlap (take, inference and publishing run
at once) while commits stay behind delivery. When the agent is stopped (SIGTERM) or its partitions
are revoked, it first drains: every record it took is published and acked, then faust commits.

Rebalances: faust's consumer forgets the acks of revoked partitions *before* it waits for the
streams and commits (faust-streaming 0.11: ``Consumer.on_partitions_revoked`` pops ``_acked``,
then calls the app's handler), so on its own every record acked since the last periodic commit
is replayed after a rebalance. ``commit_before_revocation`` runs faust's own drain first —
stop taking records, clear the buffers, wait until every record taken is acked, commit — while
the acks are still known: a scale-up or scale-down replays nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable

from stream.config import PipelineConfig, Settings
from stream.kafka.client import faust_credentials
from stream.kafka.lag import register_lag_gauge
from stream.kafka.pipeline import StreamPipeline
from stream.kafka.records import now_ms, record_ref

log = logging.getLogger(__name__)


async def finish_despite_cancellation(work: Awaitable[None]) -> None:
    """Await ``work`` to the end even if we are cancelled meanwhile, then re-raise the cancel."""
    task = asyncio.ensure_future(work)
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            cancelled = True
    task.result()
    if cancelled:
        raise asyncio.CancelledError()


def _broker_url(bootstrap: str) -> str:
    return ";".join(f"kafka://{h.strip()}" for h in bootstrap.split(",") if h.strip())


def prefetch_records(settings: Settings, pipelines: list[StreamPipeline]) -> int:
    """faust's per-stream buffer (``stream_buffer_maxsize``, 4,096 records by default) bounded by
    bytes: half of ``max_inflight_bytes`` in records of the largest size a pipeline accepts."""
    largest = max((p.cfg.max_record_bytes for p in pipelines), default=1_048_576)
    return max(1, settings.inflight_bytes // 2 // largest)


def _identity(settings: Settings) -> dict:
    """faust identifies a group member to its assignor by ``canonical_url`` (default: this host and
    HTTP port) and asserts, on every assignment, that the URL inside equals its own. A static
    member restarted within the session timeout is handed its previous assignment as stored,
    carrying the previous process's URL; with another host name or port the assertion kills
    aiokafka's coordinator task and the replica holds its partitions without consuming. With
    static membership the member's identity is its ``group_instance_id``, so it is the URL too."""
    if settings.group_instance_id is None:
        return {}
    return {"canonical_url": f"http://{settings.group_instance_id}"}


def build_app(settings: Settings, pipelines: list[StreamPipeline]):
    import faust

    credentials = faust_credentials(settings)
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
        stream_buffer_maxsize=prefetch_records(settings, pipelines),
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
        **_identity(settings),
    )
    commit_before_revocation(app)
    for pipeline in pipelines:
        _register(app, pipeline)
    if pipelines:
        register_lag_gauge(app, pipelines[0].metrics)
    return app


def commit_before_revocation(app) -> None:
    """Make every consumer this app creates drain and commit when partitions are revoked, before
    faust drops the revoked partitions' acks (see the module docstring)."""
    new_consumer = app._new_consumer

    def consumer_committing_before_revocation():
        consumer = new_consumer()
        faust_revoked = consumer.on_partitions_revoked

        async def on_partitions_revoked(revoked) -> None:
            assignment = consumer.assignment()
            if assignment and not app.should_stop:
                consumer.stop_flow()  # faust's own sequence (App._on_partitions_revoked), run earlier
                app.flow_control.suspend()
                consumer.pause_partitions(assignment)
                app.flow_control.clear()
                try:
                    await consumer.wait_empty()  # every taken record acked, then committed
                except Exception as exc:  # e.g. the generation already expired: Kafka redelivers
                    log.warning("commit before revoking %d partitions failed: %r", len(revoked), exc)
            await faust_revoked(revoked)

        consumer.on_partitions_revoked = on_partitions_revoked
        return consumer

    app._new_consumer = consumer_committing_before_revocation


def _register(app, pipeline: StreamPipeline) -> None:
    cfg: PipelineConfig = pipeline.cfg
    topic = app.topic(*cfg.input_topics, value_serializer="raw", key_serializer="raw", allow_empty=True)

    async def pipeline_agent(stream) -> None:
        try:
            async for events in stream.noack_take(cfg.max_events, within=cfg.max_wait_ms / 1000):
                received_at = now_ms()
                await pipeline.feed(events, [record_ref(event.message, received_at) for event in events], stream.ack)
        finally:  # stop or rebalance: what was taken is published and acked before faust commits
            await finish_despite_cancellation(pipeline.drain())

    pipeline_agent.__name__ = f"pipeline_{cfg.name.replace('-', '_').replace('.', '_')}"
    app.agent(topic, name=f"spanstream.pipeline.{cfg.name}", concurrency=1)(pipeline_agent)
