"""Dynamic batching in front of the engine, shared by every stream and the HTTP API.

One owner task per engine takes requests from a queue, fills a batch until the text cap, the
token budget or ``max_wait`` is reached (TEI's queue), runs it in a worker thread — never on the
event loop — and hands each request its slice of the results. While one batch runs, the next one
fills. The queue is bounded: streams wait for room (which pauses consumption: backpressure),
HTTP callers get ``EngineOverloaded`` at once.

The loaded-engine registry also lives here: the one piece of process-wide state.
"""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from stream.batcher import approx_tokens
from stream.engine import DecodeParams, Extraction, ModelEngine, load_engine
from stream.errors import EngineOverloaded
from stream.metrics import Metrics

_ENGINES: dict[tuple[str, str], ModelEngine] = {}
_ENGINES_LOCK = threading.Lock()


def get_engine(path: Path | str | None, variant: str = "auto", threads: int | None = None) -> ModelEngine:
    """Load once per (folder, variant); later calls share it."""
    key = (str(Path(path).resolve()) if path else "", variant)
    with _ENGINES_LOCK:
        if key not in _ENGINES:
            _ENGINES[key] = load_engine(path, variant, threads)
        return _ENGINES[key]


@dataclass
class _Request:
    texts: list[str]
    labels: list[tuple[str, ...]]
    params: list[DecodeParams]
    tokens: int
    future: asyncio.Future
    enqueued: float = field(default_factory=time.perf_counter)


@dataclass(frozen=True)
class BatchTiming:
    """What one request experienced."""

    inference_seconds: float
    batch_size: int


class InferenceQueue:
    def __init__(self, engine: ModelEngine, metrics: Metrics, *, max_batch_texts: int = 64,
                 max_batch_tokens: int = 16_384, max_wait_s: float = 0.005, max_queue_texts: int = 2048,
                 engine_batch_size: int = 32):
        self.engine = engine
        self.metrics = metrics
        self.max_batch_texts = max_batch_texts
        self.max_batch_tokens = max_batch_tokens
        self.max_wait_s = max_wait_s
        self.max_queue_texts = max_queue_texts
        self.engine_batch_size = engine_batch_size
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spanstream-infer")
        self._queue: asyncio.Queue[_Request] | None = None
        self._room: asyncio.Condition | None = None
        self._queued_texts = 0
        self._task: asyncio.Task | None = None
        self._carry: _Request | None = None

    @property
    def queued_texts(self) -> int:
        return self._queued_texts

    def _ensure_started(self) -> None:
        if self._task is None or self._task.done():
            self._queue = self._queue or asyncio.Queue()
            self._room = self._room or asyncio.Condition()
            self._task = asyncio.get_running_loop().create_task(self._run(), name="spanstream-inference-queue")

    async def submit(self, texts: list[str], labels: list[tuple[str, ...]], params: list[DecodeParams], *,
                     wait: bool = True) -> tuple[list[Extraction], BatchTiming]:
        """Extract for ``texts``; with ``wait=False`` raise EngineOverloaded when the queue is full."""
        if not texts:
            return [], BatchTiming(0.0, 0)
        self._ensure_started()
        n = len(texts)
        if self._queued_texts + n > self.max_queue_texts and self._queued_texts > 0:
            if not wait:
                raise EngineOverloaded(retry_after=1.0)
            async with self._room:
                await self._room.wait_for(lambda: self._queued_texts + n <= self.max_queue_texts
                                          or self._queued_texts == 0)
        request = _Request(texts, labels, params, sum(approx_tokens(t) for t in texts),
                           asyncio.get_running_loop().create_future())
        self._queued_texts += n
        self.metrics.queue_depth.set(self._queued_texts)
        await self._queue.put(request)
        return await request.future

    async def _next_batch(self) -> list[_Request]:
        first = self._carry or await self._queue.get()
        self._carry = None
        batch, texts, tokens = [first], len(first.texts), first.tokens
        deadline = time.perf_counter() + self.max_wait_s
        while texts < self.max_batch_texts and tokens < self.max_batch_tokens:
            remaining = deadline - time.perf_counter()
            try:
                nxt = self._queue.get_nowait() if remaining <= 0 else await asyncio.wait_for(self._queue.get(),
                                                                                             remaining)
            except (asyncio.QueueEmpty, asyncio.TimeoutError):
                break
            if texts + len(nxt.texts) > self.max_batch_texts or tokens + nxt.tokens > self.max_batch_tokens:
                self._carry = nxt  # first in line for the next batch; order is kept
                break
            batch.append(nxt)
            texts += len(nxt.texts)
            tokens += nxt.tokens
        return batch

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._next_batch()
            texts = [t for r in batch for t in r.texts]
            labels = [lab for r in batch for lab in r.labels]
            params = [p for r in batch for p in r.params]
            started = time.perf_counter()
            self.metrics.inflight_batches.inc()
            try:
                results = await loop.run_in_executor(self._pool, self.engine.extract, texts, labels, params,
                                                     self.engine_batch_size)
                error = None
            except Exception as exc:  # handed to every caller; streams then retry one by one
                results, error = None, exc
            finally:
                self.metrics.inflight_batches.dec()
            elapsed = time.perf_counter() - started
            self.metrics.batch_size.observe(len(texts))
            self.metrics.batch_tokens.observe(sum(r.tokens for r in batch))
            self.metrics.inference_seconds.observe(elapsed)
            offset = 0
            for r in batch:
                self.metrics.queue_wait_seconds.observe(started - r.enqueued)
                if r.future.done():  # caller went away
                    pass
                elif error is not None:
                    r.future.set_exception(error)
                else:
                    r.future.set_result((results[offset:offset + len(r.texts)], BatchTiming(elapsed, len(texts))))
                offset += len(r.texts)
            self._queued_texts -= len(texts)
            self.metrics.queue_depth.set(self._queued_texts)
            async with self._room:
                self._room.notify_all()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self._pool.shutdown(wait=True)
