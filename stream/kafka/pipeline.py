"""One pipeline's take → infer → publish → ack, pipelined: batches overlap, offsets stay safe.

``feed`` decodes a batch of taken records and admits its valid texts into the inference queue
(waiting for room: that pauses consumption) and returns at once, so the agent takes the next
batch while this one is inferred. Two ordered loops finish the batches, in the order they were
fed:

1. **publish**: wait for the batch's outcomes, encode entity events and dead letters, hand them
   to the producer (without waiting for delivery) and pass the batch on;
2. **ack**: wait for every delivery of the batch, apply the failure policy (``kafka.policy``) to
   records the broker refused, then ack the batch's events — faust commits an offset only when
   every offset before it is acked, so nothing is committed before its output is durable.

At most ``max_unacked_events`` records, and ``max_unacked_bytes`` of their values, are between take
and ack (a record larger than the byte bound is taken alone). Anything the policy calls fatal
ends the process without acking (``fatal``): Kafka redelivers from the last commit. ``drain``
waits until every fed record is acked (SIGTERM, rebalance).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from stream.config import PipelineConfig
from stream.engine import DecodeParams, ModelInfo
from stream.engine.gliner2.decode import Options
from stream.engine.gliner2.schema import Schema, parse_schema
from stream.errors import PublishError
from stream.kafka.codec import (
    decode_input,
    encode_entity_event,
    encode_extraction_event,
    fit_dead_letter,
)
from stream.kafka.policy import Action, Stage, decide
from stream.kafka.publisher import DEFAULT_RECORD_LIMIT, OutRecord, Publisher
from stream.kafka.records import DeadLetter, RecordRef, TextItem, now_ms
from stream.metrics import Metrics
from stream.serving import InferenceQueue, Outcome

log = logging.getLogger(__name__)
FATAL_EXIT_CODE = 70

Ack = Callable[[Any], Awaitable[Any]]


def fatal(message: str) -> None:
    """Stop now, without running ``finally`` blocks that could ack or commit anything."""
    log.critical("%s; exiting without committing", message)
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stderr.flush()
    os._exit(FATAL_EXIT_CODE)


@dataclass
class _Batch:
    events: list[Any]
    refs: list[RecordRef]
    decoded: list[TextItem | DeadLetter]
    outcomes: asyncio.Future
    ack: Ack
    nbytes: int
    "Bytes of the taken records' values: what the batch holds until it is acked."
    records: list[OutRecord] = field(default_factory=list)
    "One output per input record (entity event or dead letter), in input order."
    deliveries: list[asyncio.Future] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)


class StreamPipeline:
    def __init__(self, cfg: PipelineConfig, queue: InferenceQueue, publisher: Publisher, metrics: Metrics, *,
                 model_version: str = "1", max_unacked_events: int = 1024, max_unacked_bytes: int = 256 * 2**20,
                 publish_timeout_s: float = 120.0, drain_timeout_s: float = 50.0,
                 dead_letter_max_bytes: int = DEFAULT_RECORD_LIMIT):
        self.cfg = cfg
        self.queue = queue
        self.publisher = publisher
        self.metrics = metrics
        self.model_version = model_version
        self.max_unacked_events = max_unacked_events
        self.max_unacked_bytes = max_unacked_bytes
        self.dead_letter_max_bytes = dead_letter_max_bytes
        """The largest record the dead-letter topic takes (its max.message.bytes, the producer's
        max_request_size); set by the worker at start from ``kafka.topics.check_output_topics``."""
        self.publish_timeout_s = publish_timeout_s
        self.drain_timeout_s = drain_timeout_s
        self._params_by_threshold: dict[float, DecodeParams | Options] = {}
        self.schema: Schema | None = parse_schema(cfg.extraction_schema) if cfg.extraction_schema else None
        self._unacked = 0
        self._unacked_bytes = 0
        self._room: asyncio.Condition | None = None
        self._to_publish: asyncio.Queue[_Batch] | None = None
        self._to_ack: asyncio.Queue[_Batch] | None = None
        self._tasks: list[asyncio.Task] = []

    @property
    def info(self) -> ModelInfo:
        return self.queue.engine.info

    def _params(self, threshold: float) -> DecodeParams | Options:
        """One validated DecodeParams (labels) or Options (schema) per distinct threshold, not one per event."""
        params = self._params_by_threshold.get(threshold)
        if params is None:
            c = self.cfg
            params = Options(threshold, c.include_confidence, c.include_spans, c.overlap_policy) if self.schema \
                else DecodeParams(threshold, c.flat_ner, c.multi_label, c.label_thresholds)
            self._params_by_threshold[threshold] = params
        return params

    def decode(self, ref: RecordRef) -> TextItem | DeadLetter:
        c = self.cfg
        try:
            item = decode_input(ref, input_format=c.input_format, default_labels=tuple(c.labels),
                                default_threshold=c.threshold, allow_label_override=c.allow_label_override,
                                max_labels=c.max_labels, max_text_chars=c.max_text_chars,
                                max_record_bytes=c.max_record_bytes, default_schema=self.schema)
            if item.schema is not None:
                self.queue.engine.check_schema(item.schema)
            else:
                self.queue.check_labels(item.labels)
            return item
        except Exception as exc:  # whatever fails here is this record's, and only its, dead letter
            message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
            return DeadLetter(ref, decide(exc, Stage.DECODE).reason, message)

    def _start(self) -> None:
        if not self._tasks:
            self._room = asyncio.Condition()
            self._to_publish = asyncio.Queue()
            self._to_ack = asyncio.Queue()
            self._tasks = [asyncio.get_running_loop().create_task(_fatal_on_error(loop(), name), name=name)
                           for loop, name in ((self._publish_loop, f"{self.cfg.name}-publish"),
                                              (self._ack_loop, f"{self.cfg.name}-ack"))]

    async def feed(self, events: list[Any], refs: list[RecordRef], ack: Ack) -> None:
        """Take responsibility for ``events`` (acked by ``ack`` once their outputs are durable)."""
        self._start()
        n = len(events)
        nbytes = sum(len(r.value or b"") + len(r.key or b"") for r in refs)
        async with self._room:
            await self._room.wait_for(lambda: self._unacked == 0 or (
                self._unacked + n <= self.max_unacked_events and
                self._unacked_bytes + nbytes <= self.max_unacked_bytes))
            self._unacked += n
            self._unacked_bytes += nbytes
        try:
            for topic, count in Counter(ref.topic for ref in refs).items():
                self.metrics.events_consumed.labels(self.cfg.name, topic).inc(count)
            decoded = [self.decode(ref) for ref in refs]
            items = [d for d in decoded if isinstance(d, TextItem)]
            outcomes = await self.queue.admit([i.text for i in items],
                                              [i.labels if i.schema is None else i.schema for i in items],
                                              [self._params(i.threshold) for i in items])
        except BaseException:  # cancelled while waiting for queue room (SIGTERM, rebalance): give the room back
            await self._release(n, nbytes)
            raise
        self._to_publish.put_nowait(_Batch(events, refs, decoded, outcomes, ack, nbytes))

    async def _release(self, n: int, nbytes: int) -> None:
        async with self._room:
            self._unacked -= n
            self._unacked_bytes -= nbytes
            self._room.notify_all()

    async def drain(self) -> None:
        """Wait until every fed record is acked, within ``drain_timeout_s``; past it, exit without
        acking (nothing is committed for them: Kafka redelivers) rather than be killed mid-commit."""
        if self._room is None:
            return
        try:
            async with asyncio.timeout(self.drain_timeout_s):
                async with self._room:
                    await self._room.wait_for(lambda: self._unacked == 0)
        except TimeoutError:
            fatal(f"{self._unacked} taken records were not published and acked within drain_timeout_s="
                  f"{self.drain_timeout_s:g} (Kafka redelivers them)")

    async def _publish_loop(self) -> None:
        while True:
            batch = await self._to_publish.get()
            outcomes = iter(await batch.outcomes)
            for d in batch.decoded:
                outcome: Outcome | None = next(outcomes) if isinstance(d, TextItem) else None
                if outcome is not None and outcome.error is not None:
                    decision = decide(outcome.error, Stage.INFER)
                    if decision.action is not Action.DEAD_LETTER:  # not this record's fault: exit, redeliver
                        fatal(f"inference failed for {d.ref.topic}[{d.ref.partition}]@{d.ref.offset}: "
                              f"{outcome.error}")
                    d = DeadLetter(d.ref, decision.reason, str(outcome.error))
                if isinstance(d, DeadLetter):
                    batch.dead.append(d)
                    batch.records.append(self._dead_letter_record(d))
                    continue
                encode = encode_entity_event if d.schema is None else encode_extraction_event
                try:
                    value = encode(d, outcome.extraction, self.info, self.model_version,
                                   outcome.inference_seconds * 1000, max(1, outcome.batch_rows))
                except Exception as exc:  # e.g. metadata nested deeper than orjson writes (254 levels)
                    dead = DeadLetter(d.ref, decide(exc, Stage.ENCODE).reason,
                                      f"cannot encode the output event: {type(exc).__name__}: {exc}")
                    batch.dead.append(dead)
                    batch.records.append(self._dead_letter_record(dead))
                    continue
                batch.records.append(OutRecord(self.cfg.output_topic, value, d.ref.key, d.ref.headers,
                                               d.ref.partition))
            batch.deliveries = await self.publisher.send(batch.records)
            self._to_ack.put_nowait(batch)

    def _dead_letter_record(self, dead: DeadLetter, max_bytes: int | None = None) -> OutRecord:
        """The dead letter as a record that fits the dead-letter topic (``codec.fit_dead_letter``)."""
        letter = fit_dead_letter(dead, self.cfg.name, max_bytes or self.dead_letter_max_bytes)
        return OutRecord(self.cfg.dead_letter_topic, letter.value, letter.key, letter.headers, dead.ref.partition,
                         dead)

    async def _ack_loop(self) -> None:
        while True:
            batch = await self._to_ack.get()
            await self._settle(batch)
            for event in batch.events:
                await batch.ack(event)
            self._account(batch)
            await self._release(len(batch.events), batch.nbytes)

    async def _settle(self, batch: _Batch) -> None:
        """Until every output of the batch is durable, as the failure policy says."""
        pending = list(zip(batch.records, batch.refs))
        errors = await self.publisher.outcomes(batch.deliveries)
        deadline = time.monotonic() + self.publish_timeout_s
        delay = 0.2
        while True:
            retry, rejected = [], []
            for (record, source), error in zip(pending, errors):
                if error is None:
                    continue
                decision = decide(error, Stage.PUBLISH)
                if decision.action is Action.RETRY:
                    retry.append((record, source))
                elif decision.action is Action.DEAD_LETTER:
                    # The broker refuses whole record batches: was it this record, or its batch-mates?
                    if await self.publisher.send_alone(record) is None:
                        continue
                    if record.topic == self.cfg.dead_letter_topic:  # the topic's limit is below what we read
                        if record.letter is not None:
                            log.warning("the dead-letter topic refused a dead letter of %s[%d]@%d (%r); sending it "
                                        "without the original bytes", source.topic, source.partition, source.offset,
                                        error)
                            bare = self._dead_letter_record(record.letter, max_bytes=1)
                            rejected.append((bare._replace(letter=None), source))
                            continue
                        fatal(f"the dead-letter topic {record.topic} refuses even a dead letter without the "
                              f"record's bytes: {type(error).__name__}: {error}")
                    log.warning("broker refused the output of %s[%d]@%d: %r; dead-lettering it", source.topic,
                                source.partition, source.offset, error)
                    dead = DeadLetter(source._replace(value=None), decision.reason,
                                      f"{type(error).__name__}: {error} (input value omitted)")
                    batch.dead.append(dead)
                    rejected.append((self._dead_letter_record(dead), source))
                else:
                    fatal(f"cannot publish to {record.topic} ({decision.reason}): {type(error).__name__}: {error}")
            if not retry and not rejected:
                return
            if retry and time.monotonic() + delay > deadline:
                fatal(str(PublishError(f"could not deliver {len(retry)} records within publish_timeout_s="
                                       f"{self.publish_timeout_s}")))
            if retry:
                log.warning("publish failed for %d records; retrying in %.1fs", len(retry), delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            pending = retry + rejected
            errors = await self.publisher.deliver([record for record, _ in pending])

    def _account(self, batch: _Batch) -> None:
        cfg = self.cfg
        for dead in batch.dead:
            self.metrics.dead_letters.labels(cfg.name, dead.ref.topic, dead.reason).inc()
            log.info("dead-lettered %s[%d]@%d: %s (%s)", dead.ref.topic, dead.ref.partition, dead.ref.offset,
                     dead.reason, dead.message[:200])
        produced = len(batch.records) - len(batch.dead)
        if produced:
            self.metrics.events_produced.labels(cfg.name, cfg.output_topic).inc(produced)
        done = now_ms()
        for ref in batch.refs:
            if ref.timestamp:
                self.metrics.end_to_end_seconds.labels(cfg.name).observe(max(0.0, (done - ref.timestamp) / 1000))


async def _fatal_on_error(work: Awaitable[None], name: str) -> None:
    try:
        await work
    except asyncio.CancelledError:
        raise
    except BaseException as exc:
        fatal(f"{name} failed: {type(exc).__name__}: {exc}")
