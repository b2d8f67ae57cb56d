"""StreamPipeline without a broker: an in-memory publisher sink stands in for Kafka delivery
(the real-broker behaviour is in test_worker_e2e / test_worker_group); the queue and model are real."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest
from aiokafka import errors
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError

from stream.config import PipelineConfig
from stream.engine import load_engine
from stream.errors import EngineError, InvalidInput
from stream.kafka.pipeline import StreamPipeline
from stream.kafka.policy import Action, Stage, decide
from stream.kafka.publisher import Publisher
from stream.kafka.records import RecordRef
from stream.metrics import Metrics
from stream.serving import InferenceQueue, QueueLimits

MODEL = Path(__file__).resolve().parents[1] / "fixtures" / "tiny-gliner"
CFG = PipelineConfig(name="p", input_topics=["in"], output_topic="out", dead_letter_topic="dlq",
                     labels=["person", "location"])


class MemorySink:
    """Publisher stand-in: deliveries complete when ``gate`` opens; ``reject`` picks records the
    broker refuses (non-retriable)."""

    outcomes = staticmethod(Publisher.outcomes)

    def __init__(self, reject=lambda record: False):
        self.gate = asyncio.Event()
        self.sent: list = []
        self.reject = reject

    async def send(self, records):
        futures = []
        for r in records:
            self.sent.append(r)
            futures.append(asyncio.ensure_future(self._deliver(r)))
        return futures

    async def _deliver(self, record):
        await self.gate.wait()
        if self.reject(record):
            raise MessageSizeTooLargeError()

    async def deliver(self, records):
        return await self.outcomes(await self.send(records))

    async def send_alone(self, record):
        self.sent.append(record)
        return MessageSizeTooLargeError() if self.reject(record) else None


def _refs(ids: list[str], start: int = 0) -> list[RecordRef]:
    return [RecordRef("in", 0, start + i, None, None, orjson.dumps({"id": x, "text": f"{x} lives in Paris."}), (),
                      0) for i, x in enumerate(ids)]


def _pipeline(sink) -> StreamPipeline:
    queue = InferenceQueue(load_engine(MODEL, "fp32"), Metrics.create(), QueueLimits(max_batch_wait_s=0))
    return StreamPipeline(CFG, queue, sink, queue.metrics)


async def test_batches_overlap_and_acks_follow_delivery_in_order():
    sink = MemorySink()
    pipeline = _pipeline(sink)
    acked: list = []

    async def ack(event):
        acked.append(event)

    first, second = _refs(["a", "b", "c"]), _refs(["d", "e"], start=3)
    await pipeline.feed(["ev0", "ev1", "ev2"], first, ack)  # returns before its outputs exist
    await pipeline.feed(["ev3", "ev4"], second, ack)
    for _ in range(200):  # both batches are inferred and handed to the producer, none delivered yet
        if len(sink.sent) == 5:
            break
        await asyncio.sleep(0.02)
    assert len(sink.sent) == 5 and acked == []
    assert [orjson.loads(r.value)["id"] for r in sink.sent] == ["a", "b", "c", "d", "e"]
    sink.gate.set()
    await pipeline.drain()
    assert acked == ["ev0", "ev1", "ev2", "ev3", "ev4"]
    await pipeline.queue.close()


async def test_a_record_the_broker_refuses_is_dead_lettered_and_the_partition_moves_on():
    sink = MemorySink(reject=lambda r: r.topic == "out" and b'"id":"big"' in r.value)
    sink.gate.set()
    pipeline = _pipeline(sink)
    acked: list = []

    async def ack(event):
        acked.append(event)

    await pipeline.feed([0, 1, 2], _refs(["x", "big", "y"]), ack)
    await pipeline.drain()
    assert acked == [0, 1, 2]
    (letter,) = [orjson.loads(r.value) for r in sink.sent if r.topic == "dlq"]
    assert letter["reason"] == "publish_rejected" and letter["source"]["offset"] == 1 and letter["value"] is None
    await pipeline.queue.close()


async def test_an_event_whose_labels_cannot_fit_is_dead_lettered_before_inference():
    sink = MemorySink()
    sink.gate.set()
    queue = InferenceQueue(load_engine(MODEL, "fp32"), Metrics.create(), QueueLimits(max_batch_wait_s=0))
    pipeline = StreamPipeline(CFG.model_copy(update={"allow_label_override": True}), queue, sink, queue.metrics)
    long_labels = [" ".join(f"word{i}x{j}" for j in range(10)) for i in range(50)]
    refs = _refs(["x", "y"])
    refs.insert(1, RecordRef("in", 0, 9, None, None, orjson.dumps({"id": "long", "text": "Paris.",
                                                                    "labels": long_labels}), (), 0))
    acked: list = []

    async def ack(event):
        acked.append(event)

    await pipeline.feed([0, 1, 2], refs, ack)
    await pipeline.drain()
    assert acked == [0, 1, 2]
    (letter,) = [orjson.loads(r.value) for r in sink.sent if r.topic == "dlq"]
    assert letter["reason"] == "labels_too_long" and letter["source"]["offset"] == 9
    assert [orjson.loads(r.value)["id"] for r in sink.sent if r.topic == "out"] == ["x", "y"]
    await queue.close()


def test_the_failure_table():
    assert decide(InvalidInput("invalid_json", "x"), Stage.DECODE) == (Action.DEAD_LETTER, "invalid_json")
    assert decide(RecursionError("deep"), Stage.DECODE) == (Action.DEAD_LETTER, "decode_error")
    assert decide(orjson.JSONEncodeError("depth"), Stage.ENCODE) == (Action.DEAD_LETTER, "encode_error")
    assert decide(EngineError("boom"), Stage.INFER) == (Action.DEAD_LETTER, "engine_error")
    assert decide(EngineError("busy", retriable=True), Stage.INFER).action is Action.FATAL
    assert decide(RuntimeError("bug"), Stage.INFER).action is Action.FATAL
    assert decide(KafkaConnectionError(), Stage.PUBLISH).action is Action.RETRY
    assert decide(MessageSizeTooLargeError(), Stage.PUBLISH) == (Action.DEAD_LETTER, "publish_rejected")
    assert decide(RuntimeError("bug"), Stage.PUBLISH).action is Action.FATAL


@pytest.mark.parametrize("error", [errors.KafkaTimeoutError(), errors.RequestTimedOutError(),
                                   errors.NotLeaderForPartitionError(), errors.LeaderNotAvailableError(),
                                   errors.NotEnoughReplicasError(), errors.NotEnoughReplicasAfterAppendError()])
def test_a_broker_that_is_away_or_slow_is_retried_never_dead_lettered(error):
    """aiokafka marks KafkaTimeoutError non-retriable; dead-lettering it (value omitted) would
    commit inputs with no output while a leader is away."""
    assert decide(error, Stage.PUBLISH).action is Action.RETRY


@pytest.mark.parametrize("error", [errors.TopicAuthorizationFailedError(), errors.ClusterAuthorizationFailedError(),
                                   errors.ProducerFenced(), errors.UnknownTopicOrPartitionError(),
                                   errors.InvalidTopicError(), errors.TransactionalIdAuthorizationFailed()])
def test_configuration_errors_are_fatal_not_the_records_fault(error):
    assert decide(error, Stage.PUBLISH).action is Action.FATAL


@pytest.mark.parametrize("error", [errors.MessageSizeTooLargeError(), errors.RecordListTooLargeError(),
                                   errors.CorruptRecordException(), errors.PolicyViolationError(),
                                   errors.RecordTooLargeError(), errors.InvalidTimestampError()])
def test_size_and_validity_refusals_dead_letter_the_record(error):
    assert decide(error, Stage.PUBLISH) == (Action.DEAD_LETTER, "publish_rejected")


def test_a_pipeline_whose_labels_cannot_fit_fails_at_start_naming_the_key():
    from stream.config import load_settings
    from stream.errors import ConfigError
    from stream.runtime import build_runtime

    settings = load_settings(model_path=str(MODEL), model_variant="fp32", http_enabled=False)
    long_labels = [" ".join(f"word{i}x{j}" for j in range(10)) for i in range(50)]
    try:
        build_runtime(settings, [CFG.model_copy(update={"labels": long_labels})])
    except ConfigError as exc:
        assert "pipelines[0].labels" in str(exc) and "512" in str(exc)
    else:
        raise AssertionError("a pipeline whose labels cannot fit the model started")


def test_a_dead_inference_loop_is_fatal_for_streams_not_a_dead_letter():
    from stream.errors import EngineStopped

    assert decide(EngineStopped(), Stage.INFER).action is Action.FATAL


async def test_a_drain_that_cannot_finish_within_its_budget_exits_without_acking(monkeypatch):
    """A broker that never confirms: SIGTERM's drain must not outlive the grace period."""
    import stream.kafka.pipeline as pipeline_module

    class Exited(Exception):
        pass

    def fake_fatal(message):
        raise Exited(message)

    monkeypatch.setattr(pipeline_module, "fatal", fake_fatal)
    sink = MemorySink()  # the gate never opens: nothing is ever delivered
    queue = InferenceQueue(load_engine(MODEL, "fp32"), Metrics.create(), QueueLimits(max_batch_wait_s=0))
    pipeline = StreamPipeline(CFG, queue, sink, queue.metrics, drain_timeout_s=0.5)
    acked: list = []

    async def ack(event):
        acked.append(event)

    await pipeline.feed([0, 1], _refs(["a", "b"]), ack)
    try:
        await asyncio.wait_for(pipeline.drain(), 10)
    except Exited as exc:
        assert "drain_timeout_s=0.5" in str(exc)
    else:
        raise AssertionError("the drain finished although nothing was delivered")
    assert acked == []
    await queue.close()


def test_a_utf8_bom_before_a_json_event_is_tolerated():
    """RFC 8259 lets parsers ignore a byte order mark, and .NET/PowerShell producers write one;
    orjson refuses it, so the codec drops it rather than dead-lettering the event."""
    from stream.kafka.codec import decode_input

    ref = RecordRef("t", 0, 0, 0, None, b'\xef\xbb\xbf{"text": "Paris", "id": "bom"}', (), 0)
    item = decode_input(ref, input_format="json", default_labels=("city",), default_threshold=0.5,
                        allow_label_override=True, max_labels=5, max_text_chars=500, max_record_bytes=2000)
    assert (item.text, item.id) == ("Paris", "bom")


class PoisonEngine:
    """The real engine, except that any batch holding a row of a text with "POISON" raises."""

    def __init__(self, engine):
        self._engine, self._poison = engine, set()

    def __getattr__(self, name):
        return getattr(self._engine, name)

    def prepare(self, texts, labels):
        prepared = self._engine.prepare(texts, labels)
        for text, p in zip(texts, prepared):
            if "POISON" in text:
                self._poison.update(id(row) for row in p.rows)
        return prepared

    def run(self, rows):
        if any(id(row) in self._poison for row in rows):
            raise RuntimeError("onnxruntime: poisoned row")
        return self._engine.run(rows)


async def test_an_engine_failure_on_one_record_dead_letters_it_and_its_batch_mates_are_published(caplog):
    sink = MemorySink()
    sink.gate.set()
    queue = InferenceQueue(PoisonEngine(load_engine(MODEL, "fp32")), Metrics.create(),
                           QueueLimits(max_batch_wait_s=0.05))
    pipeline = StreamPipeline(CFG, queue, sink, queue.metrics)
    acked: list = []

    async def ack(event):
        acked.append(event)

    await pipeline.feed([0, 1, 2, 3], _refs(["a", "POISON", "b", "c"]), ack)
    await pipeline.drain()
    assert acked == [0, 1, 2, 3]
    (letter,) = [orjson.loads(r.value) for r in sink.sent if r.topic == "dlq"]
    assert letter["reason"] == "engine_error" and letter["source"]["offset"] == 1
    assert "poisoned row" in letter["message"]
    assert [orjson.loads(r.value)["id"] for r in sink.sent if r.topic == "out"] == ["a", "b", "c"]
    assert "engine failed on a batch of 4 rows" in caplog.text  # they shared a batch, then ran alone
    await queue.close()


async def test_the_lag_gauge_skips_a_partition_revoked_while_it_runs():
    """Seen in the SIGSTOP fault test: a rebalance revoked a partition between ``assignment()``
    and ``position()``, aiokafka raised IllegalStateError inside faust's timer, and the
    surviving worker crashed."""
    from aiokafka.errors import IllegalStateError
    from aiokafka.structs import TopicPartition

    from stream.kafka.lag import current_lag

    kept, revoked = TopicPartition("in", 0), TopicPartition("in", 1)

    class Consumer:
        _committed_offset: dict = {}

        def assignment(self):
            return {kept, revoked}

        async def highwaters(self, *tps):
            return {kept: 10, revoked: 20}

        async def position(self, tp):
            if tp == revoked:
                raise IllegalStateError(f"Partition {tp} is not assigned")
            return 4

    assert await current_lag(Consumer()) == {("in", 0): 6}
