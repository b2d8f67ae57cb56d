"""One batch of input records → entity events and dead letters, published before returning.

Kafka-agnostic (records in, ``Publisher`` out), so it is testable without faust. Failure policy:
- bad input → dead letter with a reason, never an exception;
- an engine failure on a batch → each event retried alone; those that still fail are
  dead-lettered (``engine_error``), so one poison record cannot sink its batch-mates;
- a publish failure → ``PublishError`` propagates: the caller must not ack the batch.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from stream.batcher import approx_tokens, split_by_budget
from stream.codec import decode_input, encode_dead_letter, encode_entity_event, now_ms
from stream.config import PipelineConfig
from stream.engine import DecodeParams, Extraction
from stream.errors import InvalidRecord
from stream.metrics import Metrics
from stream.publish import OutRecord, Publisher
from stream.records import DeadLetter, RecordRef, TextItem
from stream.runner import InferenceQueue

log = logging.getLogger(__name__)


@dataclass
class BatchProcessor:
    cfg: PipelineConfig
    queue: InferenceQueue
    publisher: Publisher
    metrics: Metrics
    model_version: str = "1"
    _params_by_threshold: dict[float, DecodeParams] = field(default_factory=dict, repr=False)

    def _params(self, threshold: float) -> DecodeParams:
        """One validated DecodeParams per distinct threshold, not one per event."""
        params = self._params_by_threshold.get(threshold)
        if params is None:
            params = DecodeParams(threshold, self.cfg.flat_ner, self.cfg.multi_label, self.cfg.label_thresholds)
            self._params_by_threshold[threshold] = params
        return params

    def decode(self, ref: RecordRef) -> TextItem | DeadLetter:
        c = self.cfg
        try:
            return decode_input(ref, input_format=c.input_format, default_labels=tuple(c.labels),
                                default_threshold=c.threshold, allow_label_override=c.allow_label_override,
                                max_labels=c.max_labels, max_text_chars=c.max_text_chars,
                                max_record_bytes=c.max_record_bytes)
        except InvalidRecord as exc:
            return DeadLetter(ref, exc.reason, exc.message)

    async def _infer(self, items: list[TextItem]) -> tuple[list[Extraction], float]:
        results, timing = await self.queue.submit([i.text for i in items], [i.labels for i in items],
                                                  [self._params(i.threshold) for i in items])
        return results, timing.inference_seconds

    async def _infer_all(self, items: list[TextItem]) -> list[tuple[Extraction, float, int] | DeadLetter]:
        """One outcome per item, in order; engine failures become dead letters."""
        out: list[tuple[Extraction, float, int] | DeadLetter | None] = [None] * len(items)
        indexed = list(enumerate(items))
        for chunk in split_by_budget(indexed, lambda p: approx_tokens(p[1].text), self.cfg.max_tokens):
            try:
                results, seconds = await self._infer([it for _, it in chunk])
                for (idx, _), res in zip(chunk, results):
                    out[idx] = (res, seconds * 1000, len(chunk))
            except Exception as batch_exc:  # isolate the poison record(s)
                log.warning("engine failed on a batch of %d (%r); retrying one by one", len(chunk), batch_exc)
                for idx, item in chunk:
                    try:
                        (res,), seconds = await self._infer([item])
                        out[idx] = (res, seconds * 1000, 1)
                    except Exception as exc:
                        out[idx] = DeadLetter(item.ref, "engine_error", f"{type(exc).__name__}: {exc}")
        return out

    async def process(self, refs: list[RecordRef]) -> None:
        """Decode, infer, publish every output (in input order), then return."""
        cfg = self.cfg
        decoded = [self.decode(ref) for ref in refs]
        for ref in refs:
            self.metrics.events_consumed.labels(cfg.name, ref.topic).inc()
        items = [d for d in decoded if isinstance(d, TextItem)]
        outcomes = iter(await self._infer_all(items))
        records: list[OutRecord] = []
        dead: list[DeadLetter] = []
        for d in decoded:
            outcome = next(outcomes) if isinstance(d, TextItem) else d
            if isinstance(outcome, DeadLetter):
                dead.append(outcome)
                records.append(OutRecord(cfg.dead_letter_topic, encode_dead_letter(outcome, cfg.name),
                                         outcome.ref.key, outcome.ref.headers, outcome.ref.partition))
            else:
                extraction, ms, size = outcome
                value = encode_entity_event(d, extraction, self.queue.engine.info, self.model_version, ms, size)
                records.append(OutRecord(cfg.output_topic, value, d.ref.key, d.ref.headers, d.ref.partition))
        await self.publisher.publish(records)
        done = now_ms()
        for d in dead:
            self.metrics.dead_letters.labels(cfg.name, d.ref.topic, d.reason).inc()
            log.info("dead-lettered %s[%d]@%d: %s (%s)", d.ref.topic, d.ref.partition, d.ref.offset, d.reason,
                     d.message[:200])
        produced = len(records) - len(dead)
        if produced:
            self.metrics.events_produced.labels(cfg.name, cfg.output_topic).inc(produced)
        for ref in refs:
            if ref.timestamp:
                self.metrics.end_to_end_seconds.labels(cfg.name).observe(max(0.0, (done - ref.timestamp) / 1000))
