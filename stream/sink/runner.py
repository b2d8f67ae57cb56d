"""`spanstream sink`: entity and extraction events from Kafka into PostgreSQL, exactly one row per
input event.

The loop: take records (at most ``sink_batch_rows`` / ``sink_batch_bytes``, waiting up to
``sink_linger_ms`` to fill), turn them into rows (``rows``), write them in one transaction
(``database.write``: ``ON CONFLICT DO NOTHING`` on the input record's coordinates), dead-letter
what cannot be stored, and only then commit the Kafka offsets. A crash anywhere before the commit
replays the batch, and the replay writes nothing twice. While the database is unreachable the
same batch is retried with a doubling pause (consumption stops: backpressure, memory bounded by
one batch); a permission or schema error stops the sink without committing (exit 1).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from dataclasses import dataclass

from aiohttp import web
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from stream.config import Settings
from stream.kafka.client import kafka_client_kwargs
from stream.kafka.codec import fit_dead_letter
from stream.kafka.publisher import DEFAULT_RECORD_LIMIT
from stream.kafka.records import DeadLetter, record_ref
from stream.sink import database
from stream.sink.rows import RowError, event_rows

log = logging.getLogger(__name__)
PIPELINE = "sink"
"The ``pipeline`` field of the sink's dead letters."


@dataclass(frozen=True)
class SinkMetrics:
    registry: CollectorRegistry
    rows: Counter
    batches: Histogram
    retries: Counter
    dead_letters: Counter
    lag: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry | None = None) -> "SinkMetrics":
        r = registry if registry is not None else CollectorRegistry()
        return cls(r,
                   Counter("spanstream_sink_rows_total", "Rows written (a replayed row counts once it commits, "
                           "though ON CONFLICT stores it once).", ["table"], registry=r),
                   Histogram("spanstream_sink_batch_seconds", "Time to write one batch (one transaction).",
                             buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0), registry=r),
                   Counter("spanstream_sink_retries_total", "Batches written again after a retriable database "
                           "error.", registry=r),
                   Counter("spanstream_sink_dead_letters_total", "Events not stored, by reason.", ["reason"],
                           registry=r),
                   Gauge("spanstream_sink_consumer_lag", "Records not yet stored, per partition.",
                         ["topic", "partition"], registry=r))


class Sink:
    def __init__(self, settings: Settings, metrics: SinkMetrics | None = None):
        if not settings.sink_dsn:
            raise ValueError("SPANSTREAM_SINK_DSN (or SPANSTREAM_SINK_DSN_FILE) is required")
        if not settings.sink_topics:
            raise ValueError("SPANSTREAM_SINK_TOPICS is required")
        self.settings = settings
        self.metrics = metrics or SinkMetrics.create()
        self._stopping = asyncio.Event()
        self._conn = None
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self.ready = False

    def stop(self) -> None:
        self._stopping.set()

    async def _connection(self):
        """The database connection, (re)opened and the tables checked, retrying while retriable."""
        pause = 0.5
        while self._conn is None or self._conn.closed:
            try:
                conn = await database.connect(self.settings.sink_dsn.get_secret_value())
                await database.migrate(conn)
                self._conn = conn
            except database.SinkDatabaseError as exc:
                if not exc.retriable:
                    raise
                self.ready = False
                log.warning("database unavailable (%s); retrying in %.1f s", exc, pause)
                await self._pause(pause)
                pause = min(pause * 2, self.settings.sink_retry_max_s)
        return self._conn

    async def _pause(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except asyncio.TimeoutError:
            pass
        if self._stopping.is_set():
            raise asyncio.CancelledError("stopping")

    async def _take(self) -> list:
        """Records up to the batch bounds, waiting at most ``sink_linger_ms`` for more."""
        assert self._consumer is not None
        s = self.settings
        records, size = [], 0
        deadline = time.monotonic() + s.sink_linger_ms / 1000
        while len(records) < s.sink_batch_rows and size < s.sink_batch_bytes and not self._stopping.is_set():
            wait = max(0.0, deadline - time.monotonic())
            got = await self._consumer.getmany(timeout_ms=int(wait * 1000) if records else 1000,
                                               max_records=s.sink_batch_rows - len(records))
            for batch in got.values():
                for m in batch:
                    records.append(m)
                    size += len(m.value or b"") + len(m.key or b"")
            if records and time.monotonic() >= deadline:
                break
        return records

    async def _dead_letter(self, letters: list[DeadLetter]) -> None:
        topic = self.settings.sink_dead_letter_topic
        if topic is None:
            raise RuntimeError(f"an event cannot be stored ({letters[0].reason}: {letters[0].message}) and no "
                               "SPANSTREAM_SINK_DEAD_LETTER_TOPIC is set: stopping without committing")
        assert self._producer is not None
        for letter in letters:
            record = fit_dead_letter(letter, PIPELINE, DEFAULT_RECORD_LIMIT)
            await self._producer.send_and_wait(topic, record.value, key=record.key, headers=list(record.headers))
            self.metrics.dead_letters.labels(letter.reason).inc()

    async def _store(self, records: list) -> None:
        """Rows of a batch into the database (retried while retriable), then its dead letters."""
        rows, letters, by_coords = [], [], {}
        for m in records:
            try:
                row, entities = event_rows(m.value, m.key, m.topic, m.partition, m.offset)
            except RowError as exc:
                letters.append(DeadLetter(record_ref(m), exc.reason, str(exc)))
                continue
            rows.append((row, entities))
            by_coords[(row.topic, row.partition, row.offset)] = m
        pause = 0.5
        while rows:
            conn = await self._connection()
            started = time.perf_counter()
            try:
                refused = await database.write(conn, rows)
            except database.SinkDatabaseError as exc:
                if not exc.retriable:
                    raise
                self.metrics.retries.inc()
                self.ready = False
                log.warning("writing a batch of %d events failed (%s); retrying in %.1f s", len(rows), exc, pause)
                await self._close_db()
                await self._pause(pause)
                pause = min(pause * 2, self.settings.sink_retry_max_s)
                continue
            self.ready = True
            self.metrics.batches.observe(time.perf_counter() - started)
            refused_keys = {(r.event.topic, r.event.partition, r.event.offset) for r in refused}
            self.metrics.rows.labels("spanstream_events").inc(len(rows) - len(refused))
            self.metrics.rows.labels("spanstream_entities").inc(
                sum(len(e) for r, e in rows if (r.topic, r.partition, r.offset) not in refused_keys))
            letters += [DeadLetter(record_ref(by_coords[(r.event.topic, r.event.partition, r.event.offset)]),
                                   r.reason, r.message) for r in refused]
            break
        if letters:
            await self._dead_letter(letters)

    async def _commit(self, records: list) -> None:
        assert self._consumer is not None
        offsets: dict[TopicPartition, int] = {}
        for m in records:
            tp = TopicPartition(m.topic, m.partition)
            offsets[tp] = max(offsets.get(tp, 0), m.offset + 1)
        try:
            await self._consumer.commit(offsets)
        except (CommitFailedError, KafkaError) as exc:  # a rebalance took the partitions: the next owner
            log.warning("offset commit failed (%s); the batch will be read again and not stored twice", exc)
        for tp, offset in offsets.items():
            end = self._consumer.highwater(tp)
            if end is not None:
                self.metrics.lag.labels(tp.topic, str(tp.partition)).set(max(0, end - offset))

    async def _close_db(self) -> None:
        if self._conn is not None:
            try:
                await self._conn.close()
            except Exception:  # noqa: BLE001 - the connection is being dropped anyway
                pass
            self._conn = None

    async def run(self) -> None:
        s = self.settings
        kw = kafka_client_kwargs(s)
        await self._connection()
        self._consumer = AIOKafkaConsumer(*s.sink_topics, group_id=s.sink_group_id, enable_auto_commit=False,
                                          auto_offset_reset=s.auto_offset_reset,
                                          session_timeout_ms=int(s.session_timeout_s * 1000),
                                          heartbeat_interval_ms=int(s.heartbeat_interval_s * 1000),
                                          group_instance_id=s.group_instance_id, **kw)
        if s.sink_dead_letter_topic:
            self._producer = AIOKafkaProducer(acks="all", enable_idempotence=True, **kw)
            await self._producer.start()
        await self._consumer.start()
        self.ready = True
        try:
            while not self._stopping.is_set():
                records = await self._take()
                if not records:
                    continue
                await self._store(records)
                await self._commit(records)
        except asyncio.CancelledError:
            if not self._stopping.is_set():
                raise
        finally:
            self.ready = False
            await self._consumer.stop()
            if self._producer is not None:
                await self._producer.stop()
            await self._close_db()


def probes(sink: Sink) -> web.Application:
    """/healthz (the process answers), /readyz (the database and the consumer are up), /metrics."""
    async def healthz(_):
        return web.json_response({"status": "ok"})

    async def readyz(_):
        return web.json_response({"ready": sink.ready}, status=200 if sink.ready else 503)

    async def metrics(_):
        return web.Response(body=generate_latest(sink.metrics.registry), content_type="text/plain")

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app


async def serve(settings: Settings) -> int:
    sink = Sink(settings)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, sink.stop)
    runner = None
    if settings.http_enabled:
        runner = web.AppRunner(probes(sink))
        await runner.setup()
        await web.TCPSite(runner, settings.http_host, settings.http_port).start()
    try:
        await sink.run()
        return 0
    except (database.SinkDatabaseError, RuntimeError) as exc:
        log.error("sink stopped without committing the current batch: %s", exc)
        return 1
    finally:
        if runner is not None:
            await runner.cleanup()
