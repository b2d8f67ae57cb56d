"""Records that used to stop a partition, and reservations that used to leak: StreamPipeline with
an in-memory broker stand-in that enforces a record size limit (the real-broker versions are in
test_worker_hardening.py)."""

from __future__ import annotations

import asyncio
import threading

import orjson
import pytest
from aiokafka.errors import MessageSizeTooLargeError
from aiokafka.record.default_records import DefaultRecordBatchBuilder

import stream.kafka.pipeline as pipeline_module
from stream.engine import load_engine
from stream.kafka.codec import decode_input, encode_entity_event
from stream.kafka.pipeline import StreamPipeline
from stream.kafka.publisher import Publisher
from stream.kafka.records import RecordRef
from stream.metrics import Metrics
from stream.serving import InferenceQueue, QueueLimits
from tests.kafka.test_pipeline import CFG, MODEL

LIMIT = 1_048_588  # Kafka's default message.max.bytes


class Exited(Exception):
    pass


@pytest.fixture(autouse=True)
def no_exit(monkeypatch):
    """``fatal`` raises instead of ending the test process (it is what a crash loop starts with)."""
    def fake_fatal(message):
        raise Exited(message)
    monkeypatch.setattr(pipeline_module, "fatal", fake_fatal)


class SizedSink:
    """A broker stand-in that refuses records over ``limit`` bytes, as Kafka does."""

    outcomes = staticmethod(Publisher.outcomes)

    def __init__(self, limit: int = LIMIT):
        self.limit = limit
        self.sent: list = []

    def _check(self, r) -> BaseException | None:
        size = DefaultRecordBatchBuilder.estimate_size_in_bytes(r.key, r.value, list(r.headers))
        return MessageSizeTooLargeError(f"{size} bytes") if size > self.limit else None

    async def send(self, records):
        futures = []
        for r in records:
            future = asyncio.get_running_loop().create_future()
            error = self._check(r)
            if error is None:
                self.sent.append(r)
                future.set_result(None)
            else:
                future.set_exception(error)
            futures.append(future)
        return futures

    async def deliver(self, records):
        return await self.outcomes(await self.send(records))

    async def send_alone(self, record):
        error = self._check(record)
        if error is None:
            self.sent.append(record)
        return error


def _pipeline(sink, engine=None, limits=QueueLimits(max_batch_wait_s=0), **kw) -> StreamPipeline:
    queue = InferenceQueue(engine or load_engine(MODEL, "fp32"), Metrics.create(), limits)
    return StreamPipeline(CFG, queue, sink, queue.metrics, drain_timeout_s=10, **kw)


def _ref(offset: int, value: bytes, headers=(), key=None) -> RecordRef:
    return RecordRef("in", 0, offset, None, key, value, tuple(headers), 0)


def _good(offset: int, ident: str) -> RecordRef:
    return _ref(offset, orjson.dumps({"id": ident, "text": f"{ident} lives in Paris."}))


async def _run(pipeline, refs) -> list:
    acked: list = []

    async def ack(event):
        acked.append(event)

    await pipeline.feed([r.offset for r in refs], refs, ack)
    await pipeline.drain()
    await pipeline.queue.close()
    return acked


def _letters(sink) -> list[dict]:
    return [orjson.loads(r.value) for r in sink.sent if r.topic == "dlq"]


async def test_the_dead_letter_of_a_5mb_record_fits_the_dead_letter_topic():
    """Seen on main: the letter copied the whole 5 MB value, the broker refused it, exit 70, and
    the same record on restart — forever."""
    sink = SizedSink()
    big = _ref(1, orjson.dumps({"id": "big", "text": "x " * 2_600_000}))
    acked = await _run(_pipeline(sink), [_good(0, "a"), big, _good(2, "b")])
    assert acked == [0, 1, 2]
    (letter,) = _letters(sink)
    assert letter["reason"] == "record_too_large" and letter["source"]["offset"] == 1
    assert letter["value"] is None and letter["omitted"] == {"value": len(big.value)}
    assert [orjson.loads(r.value)["id"] for r in sink.sent if r.topic == "out"] == ["a", "b"]


async def test_a_letter_keeps_the_value_when_it_fits_and_says_nothing_was_omitted():
    sink = SizedSink()
    bad = _ref(0, b'{"id": 1, "text": ""}')
    await _run(_pipeline(sink), [bad])
    (letter,) = _letters(sink)
    assert letter["reason"] == "empty_text" and letter["value"]["data"] == bad.value.decode()
    assert "omitted" not in letter


async def test_a_non_utf8_record_whose_base64_copy_would_not_fit_is_lettered_without_it():
    """Not UTF-8: the letter's copy is base64, 1.33x the record: a 0.9 MB record fits the topic, its copy not."""
    sink = SizedSink()
    raw = _ref(0, b"\xff" * 900_000)
    await _run(_pipeline(sink), [raw])
    (letter,) = _letters(sink)
    assert letter["reason"] == "invalid_utf8" and letter["omitted"] == {"value": 900_000}


async def test_a_record_with_over_1mib_of_headers_is_lettered_without_them():
    """The letter is a record with the input's key and headers (so it partitions alike): 1.2 MB of
    headers cannot go to a 1 MiB topic, in the letter's body or on the record."""
    sink = SizedSink()
    heavy = _ref(0, orjson.dumps({"id": "h", "text": "Paris"}), headers=[("trace", b"t" * 1_200_000)])
    acked = await _run(_pipeline(sink, max_unacked_bytes=2**30), [heavy])
    assert acked == [0]
    (out,) = sink.sent
    if out.topic == "out":  # the output event carries the input's headers too: refused, so dead-lettered
        raise AssertionError("a 1.2 MB-header record was published to a 1 MiB topic")
    letter = orjson.loads(out.value)
    assert letter["reason"] == "publish_rejected" and out.headers == ()
    assert letter["omitted"]["headers"] == 5 + 1_200_000


async def test_a_dead_letter_the_topic_still_refuses_is_sent_without_the_records_bytes():
    """The topic's real limit may be below what we read at start (changed since): the letter is
    sent again without the original bytes rather than ending the worker."""
    sink = SizedSink(limit=60_000)
    bad = _ref(0, b'{"id": 1, "text": ""' + b" " * 100_000 + b"}")
    acked = await _run(_pipeline(sink, dead_letter_max_bytes=LIMIT), [bad])
    assert acked == [0]
    (letter,) = _letters(sink)
    assert letter["reason"] == "empty_text" and letter["value"] is None


async def test_an_output_that_cannot_be_encoded_is_dead_lettered_and_its_batch_mates_published():
    """orjson reads 1,024 nesting levels and writes 254: metadata nested 300 deep decoded, passed
    validation, then made the publish loop raise — exit 70 and a crash loop."""
    sink = SizedSink()
    nested = _ref(1, b'{"id": "deep", "text": "Paris", "metadata": ' + _nest(300) + b"}")
    acked = await _run(_pipeline(sink), [_good(0, "a"), nested, _good(2, "b")])
    assert acked == [0, 1, 2]
    (letter,) = _letters(sink)
    assert letter["reason"] == "encode_error" and letter["source"]["offset"] == 1
    assert [orjson.loads(r.value)["id"] for r in sink.sent if r.topic == "out"] == ["a", "b"]


def _nest(depth: int) -> bytes:
    return b'{"d":' * depth + b'"bottom"' + b"}" * depth


class BuggyLabels:
    """The real engine, except that checking the label "BUG" raises an unexpected error."""

    def __init__(self, engine):
        self._engine = engine

    def __getattr__(self, name):
        return getattr(self._engine, name)

    def check_labels(self, labels):
        if "BUG" in labels:
            raise KeyError("a bug in label checking")
        return self._engine.check_labels(labels)


async def test_any_exception_decoding_one_record_is_that_records_dead_letter():
    sink = SizedSink()
    odd = _ref(1, orjson.dumps({"id": "odd", "text": "Paris", "labels": ["BUG"]}))
    acked = await _run(_pipeline(sink, engine=BuggyLabels(load_engine(MODEL, "fp32"))),
                       [_good(0, "a"), odd, _good(2, "b")])
    assert acked == [0, 1, 2]
    (letter,) = _letters(sink)
    assert letter["reason"] == "decode_error" and "KeyError" in letter["message"]


class GatedEngine:
    """The real engine, except that ``run`` waits until ``gate`` is set (a busy engine)."""

    def __init__(self, engine):
        self._engine = engine
        self.gate = threading.Event()

    def __getattr__(self, name):
        return getattr(self._engine, name)

    def run(self, rows):
        self.gate.wait(30)
        return self._engine.run(rows)


async def test_cancelling_a_feed_that_waits_for_queue_room_gives_its_reservation_back():
    """SIGTERM under backpressure: feed() had reserved room for its records, then was cancelled
    while waiting for queue room; the reservation stayed, and the drain waited for it until it
    exited 70."""
    engine = GatedEngine(load_engine(MODEL, "fp32"))
    pipeline = _pipeline(SizedSink(), engine=engine,
                         limits=QueueLimits(max_batch_wait_s=0, max_batch_rows=1, max_queue_texts=1))
    acked: list = []

    async def ack(event):
        acked.append(event)

    await pipeline.feed([0], [_good(0, "a")], ack)  # admitted; the engine holds it
    waiting = asyncio.ensure_future(pipeline.feed([1], [_good(1, "b")], ack))
    await asyncio.sleep(0.3)
    assert not waiting.done()  # waiting for queue room
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    engine.gate.set()
    await asyncio.wait_for(pipeline.drain(), 15)
    assert acked == [0]  # the cancelled record was never acked: Kafka redelivers it
    await pipeline.queue.close()


async def test_records_taken_are_bounded_by_bytes_not_only_by_count():
    """Ten records of 300 kB against a 1 MB bound: at most 3 are held between take and ack."""
    engine = GatedEngine(load_engine(MODEL, "fp32"))
    sink = SizedSink(limit=10 * LIMIT)
    pipeline = _pipeline(sink, engine=engine, max_unacked_events=1024, max_unacked_bytes=1_000_000)
    acked: list = []

    async def ack(event):
        acked.append(event)

    refs = [_ref(i, orjson.dumps({"id": i, "text": "Paris.", "metadata": "m" * 300_000})) for i in range(10)]
    feeding = asyncio.ensure_future(_feed_each(pipeline, refs, ack))
    await asyncio.sleep(0.5)
    held = pipeline._unacked_bytes
    assert 0 < held <= 1_000_000 and not feeding.done()
    engine.gate.set()
    await asyncio.wait_for(feeding, 30)
    await pipeline.drain()
    assert acked == list(range(10))
    await pipeline.queue.close()


async def _feed_each(pipeline, refs, ack):
    for ref in refs:
        await pipeline.feed([ref.offset], [ref], ack)


@pytest.mark.parametrize("literal", [b"123456789012345678901234567890", b"-9223372036854775809",
                                     b"18446744073709551615", b"1e3", b"42"])
def test_an_integer_id_of_any_size_round_trips_exactly(literal):
    """Ids are how users join results back: 123456789012345678901234567890 came back as
    1.2345678901234568e+29."""
    from stream.engine import Extraction, ModelInfo

    ref = _ref(0, b'{"id": ' + literal + b', "text": "Paris"}')
    item = decode_input(ref, input_format="json", default_labels=("city",), default_threshold=0.5,
                        allow_label_override=True, max_labels=5, max_text_chars=500, max_record_bytes=2000)
    info = ModelInfo(name="m", family="gliner", variant="fp32", max_width=12, max_len=384, path="m")
    event = encode_entity_event(item, Extraction([], False), info, "1", 1.0, 1)
    assert b'"id":' + literal + b"," in event
