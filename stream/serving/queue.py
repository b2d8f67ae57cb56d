"""The inference queue: the one owner of engine batches, shared by every stream and the HTTP API.

A request's texts are prepared (split, tokenized, windowed) in a tokenizer thread, admitted
against the queue's bound on **real tokens** (prompt and windows included) and texts — streams
wait for room, HTTP callers get ``EngineOverloaded`` — and their rows join the pending queue.
One owner task takes a lookahead window of pending rows (first come, first taken), cuts it with
``engine.batching.plan_batches`` (sorted by length, within ``max_batch_rows`` and
``max_batch_tokens`` padded tokens) and runs each batch in the inference thread, never on the
event loop. A text is decoded when its last row is done; a request resolves when all its texts
are. While one batch runs, the next requests are prepared and admitted.

Failures stay with their owner: when a batch fails, its rows run one by one and only the texts
whose own rows fail get an error (``Outcome.error``); rows of requests whose caller has gone are
dropped before compute.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from stream.engine import DecodeParams, Extraction, ModelEngine, Prepared, plan_batches
from stream.engine.batching import (
    DEFAULT_LOOKAHEAD,
    DEFAULT_MAX_ROWS,
    DEFAULT_MAX_TOKENS,
    padded_tokens,
)
from stream.errors import (
    EngineError,
    EngineOverloaded,
    EngineStopped,
    InvalidInput,
    SpanstreamError,
)
from stream.metrics import Metrics

log = logging.getLogger(__name__)

__all__ = ["InferenceQueue", "Outcome", "QueueLimits", "coalescing_wait"]


@dataclass(frozen=True)
class QueueLimits:
    """How the queue cuts batches and how much it holds (see ``Settings`` for the trade-offs)."""

    max_batch_rows: int = DEFAULT_MAX_ROWS
    max_batch_tokens: int = DEFAULT_MAX_TOKENS
    max_batch_wait_s: float = 0.005
    lookahead_rows: int = DEFAULT_LOOKAHEAD
    max_queue_texts: int = 2048
    max_queue_tokens: int = 262_144
    max_queue_wait_s: float = 0.0
    "Admit no more real tokens than the engine runs in this long at its measured rate (0: off)."
    adaptive_wait: bool = False
    "Wait to coalesce only when rows arrive fast enough to join (``coalescing_wait``); else always."


def coalescing_wait(pending_rows: int, rows_per_s: float, limits: QueueLimits) -> float:
    """Seconds to wait for more rows before cutting the next batch.

    Fixed: ``max_batch_wait_s`` whenever the batch is not full. Adaptive: no wait when fewer than one
    row is expected within it at the recent arrival rate (idle or light load: the wait would only
    add latency, and on CPU a batch of one costs about what one row of a batch does), otherwise at
    most the time the expected arrivals take to fill the batch (``bench/LATENCY.md`` measures both).
    """
    wait = limits.max_batch_wait_s
    if pending_rows >= limits.max_batch_rows or wait <= 0:
        return 0.0
    if not limits.adaptive_wait:
        return wait
    if rows_per_s * wait < 1.0:
        return 0.0
    return min(wait, (limits.max_batch_rows - pending_rows) / rows_per_s)


class ArrivalRate:
    """Rows admitted per second, as an exponentially decayed count (time constant ``tau`` seconds)."""

    def __init__(self, tau: float = 1.0):
        self.tau = tau
        self._count = 0.0
        self._at = 0.0

    def observe(self, rows: int, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self._count = self._decayed(now) + rows
        self._at = now

    def rows_per_s(self, now: float | None = None) -> float:
        return self._decayed(time.monotonic() if now is None else now) / self.tau

    def _decayed(self, now: float) -> float:
        return self._count * math.exp(-max(0.0, now - self._at) / self.tau) if self._count else 0.0


class Throughput:
    """The engine's real tokens per second, as an exponentially weighted mean over batches."""

    def __init__(self, weight: float = 0.2):
        self.weight = weight
        self.tokens_per_s: float | None = None

    def observe(self, tokens: int, seconds: float) -> None:
        if seconds <= 0 or tokens <= 0:
            return
        rate = tokens / seconds
        self.tokens_per_s = rate if self.tokens_per_s is None else \
            (1 - self.weight) * self.tokens_per_s + self.weight * rate


class Outcome(NamedTuple):
    """One text's result, or the engine error that only this text met."""

    extraction: Extraction | None
    error: SpanstreamError | None
    "``InvalidInput`` (the text or its labels cannot be processed) or ``EngineError``."
    inference_seconds: float
    "Engine time of the batches that carried this text's rows."
    batch_rows: int
    "Rows in the largest batch that carried this text's rows (0: the text had no words)."


@dataclass(eq=False)
class _Text:
    """A text in flight; its fields change only in the inference thread."""

    prepared: Prepared | None
    "None when preparing the text failed (``error`` says why)."
    params: DecodeParams
    request: "_Request"
    outputs: list[Any] = field(default_factory=list)
    remaining: int = 0
    seconds: float = 0.0
    batch_rows: int = 0
    error: SpanstreamError | None = None


@dataclass(eq=False)
class _Request:
    texts: list[_Text]
    tokens: int
    future: asyncio.Future
    remaining: int
    enqueued: float = field(default_factory=time.perf_counter)
    waited: bool = False


class _Row(NamedTuple):
    text: _Text
    window: int
    length: int


class InferenceQueue:
    def __init__(self, engine: ModelEngine, metrics: Metrics, limits: QueueLimits = QueueLimits()):
        self.engine = engine
        self.metrics = metrics
        self.limits = limits
        self._infer_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spanstream-infer")
        self._prepare_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spanstream-prepare")
        self._pending: deque[_Row] = deque()
        self._rows_ready: asyncio.Event | None = None
        self._room: asyncio.Condition | None = None
        self._queued_texts = 0
        self._queued_tokens = 0
        self._task: asyncio.Task | None = None
        self._warned_label_sets: set[tuple[str, ...]] = set()
        self._live: set[_Request] = set()
        self.throughput = Throughput()
        self.arrivals = ArrivalRate()

    def check_labels(self, labels: tuple[str, ...]) -> None:
        """Before queueing: raise ``InvalidInput`` for a label set the model cannot take; count and
        log (once per label set) one that has more labels than the model was trained with."""
        self.engine.check_labels(labels)
        max_types = self.engine.info.max_types
        if max_types is not None and len(labels) > max_types:
            self.metrics.labels_over_max_types.inc()
            if labels not in self._warned_label_sets and len(self._warned_label_sets) < 1024:
                self._warned_label_sets.add(labels)
                log.warning("%d labels asked for; the model was trained with at most max_types=%d, so accuracy "
                            "with more is untested (labels: %s)", len(labels), max_types, ", ".join(labels[:8]))

    @property
    def queued_texts(self) -> int:
        return self._queued_texts

    @property
    def healthy(self) -> bool:
        """False once the owner task has died (a bug): liveness probes report it."""
        return self._task is None or not self._task.done()

    def _ensure_started(self) -> None:
        if self._task is None:
            self._rows_ready = asyncio.Event()
            self._room = asyncio.Condition()
            self._task = asyncio.get_running_loop().create_task(self._run(), name="spanstream-inference-queue")

    async def submit(self, texts: list[str], labels: list[tuple[str, ...]], params: list[DecodeParams], *,
                     wait: bool = True) -> list[Outcome]:
        """Outcomes for ``texts``, in order; see ``admit``."""
        return await (await self.admit(texts, labels, params, wait=wait))

    async def admit(self, texts: list[str], labels: list[tuple[str, ...]], params: list[DecodeParams], *,
                    wait: bool = True) -> asyncio.Future:
        """Prepare and queue ``texts``; return the future of their outcomes.

        With ``wait=False`` a full queue raises ``EngineOverloaded`` (HTTP: 429) — before the texts
        are tokenized when the queue is already full, so a flood that will be refused costs no
        tokenizer time (the one prepare thread is shared with the streams); with ``wait=True`` the
        caller waits for room (streams: consumption pauses). A request larger than the whole bound
        is admitted alone into an empty queue.
        """
        self._ensure_started()
        if not self.healthy:
            raise EngineStopped()
        if not wait and self._full_for(len(texts)):
            raise EngineOverloaded(retry_after=self.retry_after())
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        if not texts:
            future.set_result([])
            return future
        prepared = await loop.run_in_executor(self._prepare_pool, self._prepare, texts, labels)
        request = _Request([], 0, future, len(texts))
        for p, prm in zip(prepared, params):
            text = _Text(None if isinstance(p, SpanstreamError) else p, prm, request)
            if isinstance(p, SpanstreamError):
                text.error = p
            else:
                text.outputs = [None] * len(p.rows)
                text.remaining = len(p.rows)
                request.tokens += p.tokens
            request.texts.append(text)
        await self._make_room(len(texts), request.tokens, wait)  # a refusal leaves no reference behind
        self._live.add(request)
        future.add_done_callback(lambda _: self._live.discard(request))
        finished = [t for t in request.texts if t.remaining == 0]
        self._queued_texts += len(texts) - len(finished)
        self._queued_tokens += request.tokens
        self._gauges()
        before = len(self._pending)
        for text in request.texts:
            for window, length in enumerate(text.prepared.lengths if text.prepared else ()):
                self._pending.append(_Row(text, window, length))
        self.arrivals.observe(len(self._pending) - before)
        if finished:  # texts with no words, or that failed to prepare: done already
            for t in finished:
                self._finish(t)
            self._resolve(finished)
        self._rows_ready.set()
        return future

    def _prepare(self, texts: list[str], labels: list[tuple[str, ...]]) -> list[Prepared | SpanstreamError]:
        try:
            return self.engine.prepare(texts, labels)
        except Exception:  # find the text(s) at fault; the others go on
            out: list[Prepared | SpanstreamError] = []
            for text, lab in zip(texts, labels):
                try:
                    out.extend(self.engine.prepare([text], [lab]))
                except InvalidInput as exc:
                    out.append(exc)
                except Exception as exc:
                    out.append(EngineError(f"prepare failed: {type(exc).__name__}: {exc}"))
            return out

    @property
    def token_bound(self) -> int:
        """Real tokens the queue admits: ``max_queue_tokens``, and no more than the engine runs in
        ``max_queue_wait_s`` at its measured rate (so an admitted request waits about that long at most)."""
        rate, wait = self.throughput.tokens_per_s, self.limits.max_queue_wait_s
        if wait <= 0:
            return self.limits.max_queue_tokens
        if rate is None:  # nothing measured yet: one batch's worth, until the first batch says more
            return min(self.limits.max_queue_tokens, self.limits.max_batch_tokens)
        return max(1, min(self.limits.max_queue_tokens, int(rate * wait)))

    def retry_after(self) -> float:
        """Seconds until what is queued now has run (at the measured rate), at least 1."""
        rate = self.throughput.tokens_per_s
        return max(1.0, self._queued_tokens / rate) if rate else 1.0

    def _full_for(self, texts: int) -> bool:
        """No room for ``texts`` more, whatever their tokens: known before tokenizing them."""
        return self._queued_texts > 0 and (self._queued_texts + texts > self.limits.max_queue_texts
                                           or self._queued_tokens >= self.token_bound)

    async def _make_room(self, texts: int, tokens: int, wait: bool) -> None:
        lim = self.limits

        def fits() -> bool:
            return not self.healthy or self._queued_texts == 0 or (self._queued_texts + texts <= lim.max_queue_texts
                                                                   and self._queued_tokens + tokens <= self.token_bound)
        if fits():
            return
        if not wait:
            raise EngineOverloaded(retry_after=self.retry_after())
        async with self._room:
            await self._room.wait_for(fits)
        if not self.healthy:
            raise EngineStopped()

    def _gauges(self) -> None:
        self.metrics.queue_depth.set(self._queued_texts)
        self.metrics.queue_tokens.set(self._queued_tokens)

    async def _window(self) -> list[_Row]:
        """The next rows to batch: up to ``lookahead_rows``, after a short wait to coalesce."""
        lim = self.limits
        while not self._pending:
            self._rows_ready.clear()
            await self._rows_ready.wait()
        wait = coalescing_wait(len(self._pending), self.arrivals.rows_per_s(), lim)
        if wait > 0 and not lim.adaptive_wait:
            await asyncio.sleep(wait)
        elif wait > 0:  # adaptive: until the batch is full or the wait is over
            deadline = time.monotonic() + wait
            while len(self._pending) < lim.max_batch_rows and (left := deadline - time.monotonic()) > 0:
                self._rows_ready.clear()
                try:
                    await asyncio.wait_for(self._rows_ready.wait(), left)
                except asyncio.TimeoutError:
                    break
        window: list[_Row] = []
        while self._pending and len(window) < lim.lookahead_rows:
            row = self._pending.popleft()
            if row.text.request.future.done():  # caller went away: no compute for it
                self._drop(row)
            else:
                window.append(row)
        return window

    def _drop(self, row: _Row) -> None:
        self._queued_tokens -= row.length
        row.text.remaining -= 1
        if row.text.remaining == 0:
            self._queued_texts -= 1

    async def _run(self) -> None:
        try:
            await self._serve()
        except asyncio.CancelledError:
            raise
        except BaseException:
            log.critical("the inference loop died; failing every waiting request", exc_info=True)
            stopped = EngineStopped()
            for request in list(self._live):
                if not request.future.done():
                    request.future.set_exception(stopped)
            async with self._room:
                self._room.notify_all()
            raise

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            window = await self._window()
            for batch in plan_batches([r.length for r in window], self.limits.max_batch_rows,
                                      self.limits.max_batch_tokens):
                rows = [window[i] for i in batch if not window[i].text.request.future.done()]
                for row in (window[i] for i in batch if window[i].text.request.future.done()):
                    self._drop(row)
                if not rows:
                    continue
                now = time.perf_counter()
                for row in rows:
                    if not row.text.request.waited:
                        row.text.request.waited = True
                        self.metrics.queue_wait_seconds.observe(now - row.text.request.enqueued)
                self.metrics.inflight_batches.inc()
                try:
                    finished = await loop.run_in_executor(self._infer_pool, self._infer, rows)
                finally:
                    self.metrics.inflight_batches.dec()
                self.metrics.batch_size.observe(len(rows))
                self.metrics.batch_tokens.observe(padded_tokens([r.length for r in rows]))
                self.metrics.inference_seconds.observe(time.perf_counter() - now)
                self.throughput.observe(sum(r.length for r in rows), time.perf_counter() - now)
                self._queued_tokens -= sum(r.length for r in rows)
                self._queued_texts -= len(finished)
                self._resolve(finished)
                self._gauges()
                async with self._room:
                    self._room.notify_all()

    def _infer(self, rows: list[_Row]) -> list[_Text]:
        """Inference thread: run one batch, store each row's output, decode finished texts."""
        started = time.perf_counter()
        try:
            outputs: list[Any] = self.engine.run([r.text.prepared.rows[r.window] for r in rows])
        except Exception as exc:
            log.warning("engine failed on a batch of %d rows (%r); running them one by one", len(rows), exc)
            outputs = []
            for r in rows:
                try:
                    outputs.extend(self.engine.run([r.text.prepared.rows[r.window]]))
                except Exception as row_exc:
                    outputs.append(EngineError(f"{type(row_exc).__name__}: {row_exc}"))
        seconds = time.perf_counter() - started
        finished = []
        for row, out in zip(rows, outputs):
            text = row.text
            text.outputs[row.window] = out
            text.seconds += seconds
            text.batch_rows = max(text.batch_rows, len(rows))
            if isinstance(out, EngineError) and text.error is None:
                text.error = out
            text.remaining -= 1
            if text.remaining == 0:
                self._finish(text)
                finished.append(text)
        return finished

    def _finish(self, text: _Text) -> None:
        """Decode a text whose rows are all done (inference thread, or at admission)."""
        if text.error is None:
            try:
                text.outputs = [self.engine.decode(text.prepared, text.outputs, text.params)]
            except InvalidInput as exc:  # this text's own answer (an infeasible constrained classification)
                text.error = exc
            except Exception as exc:
                text.error = EngineError(f"decode failed: {type(exc).__name__}: {exc}")

    def _resolve(self, finished: list[_Text]) -> None:
        for text in finished:
            request = text.request
            request.remaining -= 1
            if request.remaining == 0 and not request.future.done():
                request.future.set_result([
                    Outcome(None if t.error else t.outputs[0], t.error, t.seconds, t.batch_rows)
                    for t in request.texts])

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            except Exception:  # the loop had died; /healthz has been reporting it
                log.exception("the inference loop had stopped")
        self._infer_pool.shutdown(wait=True)
        self._prepare_pool.shutdown(wait=True)
