"""The inference queue on the real tiny model: batches by real token cost across requests,
failures stay with their own text, callers that left cost nothing, a full queue answers at once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from stream.engine import DecodeParams, Extractor, load_engine
from stream.engine.batching import padded_tokens
from stream.errors import EngineOverloaded
from stream.metrics import Metrics
from stream.serving import InferenceQueue, QueueLimits

MODEL = Path(__file__).resolve().parents[1] / "fixtures" / "tiny-gliner"
LABELS = ("person", "location")
PARAMS = DecodeParams(0.3)


class RecordingEngine:
    """The real engine, recording each batch's row lengths; rows of texts containing POISON fail."""

    def __init__(self, engine):
        self._engine = engine
        self.info = engine.info
        self.batches: list[list[int]] = []
        self._poison: set[int] = set()

    def prepare(self, texts, labels):
        prepared = self._engine.prepare(texts, labels)
        for p in prepared:
            if "POISON" in p.text:
                self._poison.update(id(r) for r in p.rows)
        return prepared

    def run(self, rows):
        self.batches.append([r.ids.size for r in rows])
        if any(id(r) in self._poison for r in rows):
            raise ValueError("poisoned row")
        return self._engine.run(rows)

    def feed(self, rows):
        return self._engine.feed(rows)

    def decode(self, prepared, outputs, params):
        return self._engine.decode(prepared, outputs, params)


@pytest.fixture(scope="module")
def engine():
    return load_engine(MODEL, "fp32")


def _texts(n: int) -> list[str]:
    base = ["Angela Merkel met Emmanuel Macron in Paris.", "The Nile flows through Egypt.",
            "Serena Williams won Wimbledon in 2002 after a long final in London."]
    return [base[i % 3] + " And more" * (i % 4) for i in range(n)]


async def test_rows_of_many_requests_share_batches_cut_by_real_token_cost(engine):
    recording = RecordingEngine(engine)
    queue = InferenceQueue(recording, Metrics.create(), QueueLimits(max_batch_rows=4, max_batch_tokens=160,
                                                                   max_batch_wait_s=0.05))
    long_text = "Ada Lovelace wrote notes in London . " * 40  # windowed: several rows
    requests = [_texts(3), [long_text], _texts(5)]
    try:
        results = await asyncio.gather(*(queue.submit(t, [LABELS] * len(t), [PARAMS] * len(t)) for t in requests))
    finally:
        await queue.close()
    for batch in recording.batches:
        assert len(batch) <= 4 and (len(batch) == 1 or padded_tokens(batch) <= 160), batch
    assert max(len(b) for b in recording.batches) > 1
    expected = Extractor(engine).extract_detailed([t for r in requests for t in r], list(LABELS), threshold=0.3)
    got = [o.extraction for r in results for o in r]
    assert [[(e.start, e.end, e.label) for e in x.entities] for x in got] == \
           [[(e.start, e.end, e.label) for e in x.entities] for x in expected]
    assert got[3].windowed and all(o.error is None for r in results for o in r)


async def test_a_failing_text_fails_alone_and_its_batch_mates_get_results(engine):
    recording = RecordingEngine(engine)
    queue = InferenceQueue(recording, Metrics.create(), QueueLimits(max_batch_wait_s=0.05))
    try:
        good, mixed = await asyncio.gather(
            queue.submit(_texts(3), [LABELS] * 3, [PARAMS] * 3),
            queue.submit(["Paris is in France.", "POISON text"], [LABELS] * 2, [PARAMS] * 2))
    finally:
        await queue.close()
    assert len(recording.batches[0]) == 5  # all five texts shared the batch that failed
    assert all(o.error is None and o.extraction is not None for o in good)
    assert mixed[0].error is None and mixed[0].extraction is not None
    assert mixed[1].extraction is None and "poisoned row" in str(mixed[1].error)


async def test_a_caller_that_went_away_costs_no_compute(engine):
    recording = RecordingEngine(engine)
    queue = InferenceQueue(recording, Metrics.create(), QueueLimits(max_batch_wait_s=0.2))
    try:
        gone = await queue.admit(["Berlin is big."], [LABELS], [PARAMS])
        gone.cancel()
        (kept,) = await queue.submit(["Paris is in France."], [LABELS], [PARAMS])
    finally:
        await queue.close()
    assert kept.extraction is not None and sum(len(b) for b in recording.batches) == 1
    assert queue.queued_texts == 0


async def test_a_full_queue_refuses_at_once_when_told_not_to_wait(engine):
    queue = InferenceQueue(RecordingEngine(engine), Metrics.create(),
                           QueueLimits(max_batch_wait_s=0.3, max_queue_tokens=40))
    try:
        first = await queue.admit(_texts(2), [LABELS] * 2, [PARAMS] * 2)  # alone, over the bound: admitted
        with pytest.raises(EngineOverloaded):
            await queue.admit(_texts(1), [LABELS], [PARAMS], wait=False)
        waiting = asyncio.ensure_future(queue.submit(_texts(1), [LABELS], [PARAMS]))  # a stream waits for room
        assert len(await first) == 2 and len(await waiting) == 1
    finally:
        await queue.close()


def _requests_alive() -> int:
    return sum(1 for o in __import__("gc").get_objects()
               if type(o).__name__ == "_Request" and type(o).__module__ == "stream.serving.queue")


async def test_a_refused_request_leaves_nothing_behind(engine):
    """A 429'd request's prepared texts are garbage once it is refused: a flood of refusals must
    not grow memory (each refusal used to stay referenced by the queue forever)."""
    import gc

    queue = InferenceQueue(RecordingEngine(engine), Metrics.create(),
                           QueueLimits(max_batch_wait_s=0.3, max_queue_tokens=40))
    try:
        first = await queue.admit(_texts(2), [LABELS] * 2, [PARAMS] * 2)
        gc.collect()
        before = _requests_alive()
        for _ in range(20):
            with pytest.raises(EngineOverloaded):
                await queue.admit(_texts(3), [LABELS] * 3, [PARAMS] * 3, wait=False)
        await first
        gc.collect()
        assert _requests_alive() - before <= 0, "refused requests are still referenced"
    finally:
        await queue.close()


async def test_requests_waiting_when_the_loop_dies_fail_instead_of_hanging(engine):
    from stream.errors import EngineStopped

    queue = InferenceQueue(engine, Metrics.create(), QueueLimits(max_batch_wait_s=0.2))
    params = [DecodeParams(0.5)]
    waiting = await queue.admit(["Ada Lovelace lived in London."], [("person",)], params)
    queue._pending.appendleft(None)  # a row no code path makes: the owner task dies on it (a bug)
    queue._rows_ready.set()
    try:
        await asyncio.wait_for(waiting, 5)
    except EngineStopped:
        pass
    else:
        raise AssertionError("the request resolved although the loop died")
    assert not queue.healthy
    try:
        await queue.admit(["x"], [("person",)], params)
    except EngineStopped:
        pass
    else:
        raise AssertionError("a dead queue admitted work")
    await queue.close()


async def test_admission_is_bounded_by_measured_throughput_times_the_wait_target(engine):
    """With max_queue_wait_s the queue holds about that much work at the engine's measured rate,
    however generous max_queue_tokens is; a refusal says how long what is queued takes to run."""
    gated = GatedEngine(engine)
    queue = InferenceQueue(gated, Metrics.create(), QueueLimits(max_batch_wait_s=0, max_queue_wait_s=0.05))
    try:
        assert queue.token_bound == queue.limits.max_batch_tokens  # nothing measured yet: one batch
        await queue.submit(_texts(64), [LABELS] * 64, [PARAMS] * 64)
        rate = queue.throughput.tokens_per_s
        assert rate and queue.token_bound == min(queue.limits.max_queue_tokens, int(rate * 0.05))
        assert queue.token_bound < queue.limits.max_queue_tokens
        gated.gate.clear()  # the engine holds the next batch: nothing drains while the flood comes
        admitted, refused = [], None
        for _ in range(2000):
            try:
                admitted.append(await queue.admit(_texts(8), [LABELS] * 8, [PARAMS] * 8, wait=False))
            except EngineOverloaded as exc:
                refused = exc
                break
        assert refused is not None, "a flood was admitted whole"
        assert refused.retry_after >= 1.0
        per_request = sum(p.tokens for p in engine.prepare(_texts(8), [LABELS] * 8))
        assert queue._queued_tokens <= queue.token_bound + per_request
        gated.gate.set()
        await asyncio.gather(*admitted)
    finally:
        gated.gate.set()
        await queue.close()


class GatedEngine(RecordingEngine):
    """``run`` waits while ``gate`` is clear: a busy engine, without depending on timing."""

    def __init__(self, engine):
        import threading

        super().__init__(engine)
        self.gate = threading.Event()
        self.gate.set()

    def run(self, rows):
        self.gate.wait(60)
        return super().run(rows)


class CountingPrepare(RecordingEngine):
    """Counts texts tokenized (``prepare``)."""

    def __init__(self, engine):
        super().__init__(engine)
        self.prepared = 0

    def prepare(self, texts, labels):
        self.prepared += len(texts)
        return super().prepare(texts, labels)


async def test_a_flood_the_queue_will_refuse_is_refused_before_tokenization(engine):
    """Every refused request used to be tokenized first, in the one prepare thread the streams
    share, and only then met the room check: a flood of 429s still cost the streams' tokenizer."""
    counting = CountingPrepare(engine)
    queue = InferenceQueue(counting, Metrics.create(), QueueLimits(max_batch_wait_s=0.3, max_queue_texts=2,
                                                                   max_batch_rows=2))
    try:
        first = await queue.admit(_texts(2), [LABELS] * 2, [PARAMS] * 2)  # the queue is full now
        before = counting.prepared
        for _ in range(50):
            with pytest.raises(EngineOverloaded):
                await queue.admit(_texts(4), [LABELS] * 4, [PARAMS] * 4, wait=False)
        assert counting.prepared == before, counting.prepared - before
        assert len(await first) == 2
    finally:
        await queue.close()


def test_adaptive_coalescing_waits_only_when_rows_are_expected_to_join():
    from stream.serving.queue import coalescing_wait

    fixed = QueueLimits(max_batch_rows=16, max_batch_wait_s=0.005)
    adaptive = QueueLimits(max_batch_rows=16, max_batch_wait_s=0.005, adaptive_wait=True)
    assert coalescing_wait(1, 20.0, fixed) == 0.005  # fixed: a lone row at light load still waits
    assert coalescing_wait(1, 20.0, adaptive) == 0.0  # 20 rows/s: 0.1 expected in 5 ms, so no wait
    assert coalescing_wait(1, 1000.0, adaptive) == 0.005  # 5 expected: wait, the batch is not yet full
    assert coalescing_wait(14, 1000.0, adaptive) == 0.002  # two to go at 1,000/s: 2 ms, not 5
    assert coalescing_wait(16, 1000.0, adaptive) == coalescing_wait(16, 1000.0, fixed) == 0.0


def test_arrival_rate_is_a_decayed_count_of_admitted_rows():
    from stream.serving.queue import ArrivalRate

    rate = ArrivalRate(tau=1.0)
    for k in range(100):
        rate.observe(1, now=k * 0.01)  # 100 rows/s for a second
    assert 55 < rate.rows_per_s(now=1.0) < 70  # 1 - e^-1 of the steady 100/s after one tau
    assert rate.rows_per_s(now=6.0) < 1  # idle for five seconds: no longer expecting rows
