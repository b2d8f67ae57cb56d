"""The composition root: what `spanstream worker` and `spanstream serve` run, built in one place.

``build_runtime`` turns validated ``Settings`` (and, for the worker, its pipelines) into typed
parts: one engine and one inference queue per model, the stream pipelines and their publisher,
the HTTP API. Nothing else constructs them; the CLI modules only start and stop what this returns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from stream.config import PipelineConfig, Settings
from stream.errors import ConfigError, InvalidInput
from stream.metrics import Metrics
from stream.serving import InferenceQueue, QueueLimits, get_engine

if TYPE_CHECKING:  # kafka and http load only when a worker or HTTP is configured
    from stream.http.api import Api
    from stream.kafka.pipeline import StreamPipeline
    from stream.kafka.publisher import Publisher

__all__ = ["Runtime", "build_runtime", "http_limits", "queue_limits"]


def limit_blas_threads(threads: int | None) -> int:
    """numpy's BLAS (and any OpenMP pool) gets the threads onnxruntime gets: the CPU quota, or
    ``inference_threads``. Left alone, OpenBLAS starts one thread per core of the *node*: on a
    2-CPU pod of a 64-core node, 64 threads contend for 2 CPUs in every head's matmul."""
    from threadpoolctl import threadpool_limits

    from stream.engine.session import cpu_quota

    n = threads or cpu_quota()
    threadpool_limits(limits=n)
    return n


def queue_limits(settings: Settings) -> QueueLimits:
    return QueueLimits(max_batch_rows=settings.max_batch_rows, max_batch_tokens=settings.max_batch_tokens,
                       max_batch_wait_s=settings.max_batch_wait_ms / 1000, lookahead_rows=settings.lookahead_rows,
                       max_queue_texts=settings.max_queue_texts, max_queue_tokens=settings.max_queue_tokens,
                       max_queue_wait_s=settings.max_queue_wait_s, adaptive_wait=settings.batch_policy == "adaptive")


def http_limits(settings: Settings):
    from stream.http.requests import Limits

    return Limits(max_texts=settings.http_max_texts, max_chars=settings.http_max_chars,
                  max_labels=settings.http_max_labels, max_body_bytes=settings.http_max_body_bytes,
                  body_timeout_s=settings.http_body_timeout_s)


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    metrics: Metrics
    queues: tuple[InferenceQueue, ...]
    "One per loaded model; the first serves HTTP."
    pipelines: tuple[StreamPipeline, ...] = ()
    "Worker only."
    publisher: Publisher | None = None
    "Shared by every pipeline (worker only)."
    api: Api | None = None
    "When HTTP is enabled."

    async def close(self) -> None:
        """After the pipelines have drained: stop the producer, then the inference queues."""
        if self.publisher is not None:
            await self.publisher.stop()
        for queue in self.queues:
            await queue.close()


def build_runtime(settings: Settings, pipelines: Sequence[PipelineConfig] = (), *,
                  ready: Callable[[], tuple[bool, str]] | None = None,
                  default_labels: Sequence[str] = ()) -> Runtime:
    """Load every model (before touching Kafka or opening a port) and wire the parts."""
    metrics = Metrics.create()
    limit_blas_threads(settings.inference_threads)
    limits = queue_limits(settings)
    by_engine: dict[int, InferenceQueue] = {}

    def queue_for(model) -> InferenceQueue:
        engine = get_engine(model or settings.model_path, settings.model_variant, settings.inference_threads,
                            settings.cache_dir)
        if id(engine) not in by_engine:
            by_engine[id(engine)] = InferenceQueue(engine, metrics, limits)
            info = engine.info
            metrics.model_info.labels(info.name, info.family, info.variant, settings.model_version).set(1)
        return by_engine[id(engine)]

    publisher, streams = None, []
    if pipelines:
        from stream.kafka.pipeline import StreamPipeline
        from stream.kafka.publisher import Publisher

        publisher = Publisher(settings)
        for i, cfg in enumerate(pipelines):
            queue = queue_for(cfg.model)
            key = "schema" if cfg.extraction_schema is not None else "labels"
            try:
                if cfg.extraction_schema is None:
                    queue.check_labels(tuple(dict.fromkeys(cfg.labels)))
                elif getattr(queue.engine, "family", None) != "gliner2":
                    raise ConfigError(f"pipelines[{i}].schema (pipeline {cfg.name!r}): a schema needs a GLiNER2 "
                                      f"model; {queue.engine.info.name} is a {queue.engine.info.family} model")
                else:
                    queue.engine.check_schema(cfg.extraction_schema)
            except InvalidInput as exc:
                raise ConfigError(f"pipelines[{i}].{key} (pipeline {cfg.name!r}): {exc.message}") from None
        streams = [StreamPipeline(cfg, queue_for(cfg.model), publisher, metrics, model_version=settings.model_version,
                                  max_unacked_events=settings.max_unacked_events,
                                  max_unacked_bytes=settings.inflight_bytes // 2,
                                  publish_timeout_s=settings.publish_timeout_s,
                                  drain_timeout_s=settings.drain_timeout_s)
                   for cfg in pipelines]
    default_queue = queue_for(None) if not streams else streams[0].queue
    api = None
    if settings.http_enabled:
        from stream.http.api import Api

        api = Api(default_queue, metrics, ready=ready or (lambda: (True, "model loaded")),
                  limits=http_limits(settings), model_version=settings.model_version,
                  default_labels=list(default_labels),
                  auth_token=settings.http_auth_token.get_secret_value() if settings.http_auth_token else None)
    queues = (default_queue, *(q for q in by_engine.values() if q is not default_queue))
    return Runtime(settings, metrics, queues, tuple(streams), publisher, api)
