"""Every Prometheus metric, built on an injected registry (tests use a fresh one)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
TOKEN_BUCKETS = (64, 256, 1024, 2048, 4096, 8192, 16384, 32768, 65536)


@dataclass(frozen=True)
class Metrics:
    registry: CollectorRegistry
    events_consumed: Counter
    events_produced: Counter
    dead_letters: Counter
    batch_size: Histogram
    batch_tokens: Histogram
    inference_seconds: Histogram
    queue_wait_seconds: Histogram
    end_to_end_seconds: Histogram
    inflight_batches: Gauge
    queue_depth: Gauge
    queue_tokens: Gauge
    http_requests: Counter
    http_request_seconds: Histogram
    consumer_lag: Gauge
    model_info: Gauge
    labels_over_max_types: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry | None = None) -> "Metrics":
        r = registry if registry is not None else CollectorRegistry()
        return cls(
            registry=r,
            events_consumed=Counter("spanstream_events_consumed_total", "Input records read.",
                                    ["pipeline", "topic"], registry=r),
            events_produced=Counter("spanstream_events_produced_total", "Entity events delivered.",
                                    ["pipeline", "topic"], registry=r),
            dead_letters=Counter("spanstream_dead_letters_total", "Records dead-lettered, by reason.",
                                 ["pipeline", "topic", "reason"], registry=r),
            batch_size=Histogram("spanstream_batch_size", "Model rows per engine call (texts and windows of streams and HTTP, coalesced).",
                                 buckets=BATCH_BUCKETS, registry=r),
            batch_tokens=Histogram("spanstream_batch_tokens", "Padded tokens per engine call (rows x longest row).",
                                   buckets=TOKEN_BUCKETS, registry=r),
            inference_seconds=Histogram("spanstream_inference_seconds", "Engine time per call.",
                                        buckets=LATENCY_BUCKETS, registry=r),
            queue_wait_seconds=Histogram("spanstream_queue_wait_seconds", "Time a request waited for its batch.",
                                         buckets=LATENCY_BUCKETS, registry=r),
            end_to_end_seconds=Histogram("spanstream_end_to_end_seconds",
                                         "Record timestamp to delivered entity event.", ["pipeline"],
                                         buckets=LATENCY_BUCKETS, registry=r),
            inflight_batches=Gauge("spanstream_inflight_batches", "Engine calls running now.", registry=r),
            queue_depth=Gauge("spanstream_queue_depth", "Texts admitted and not yet done.", registry=r),
            queue_tokens=Gauge("spanstream_queue_tokens", "Real tokens (prompt and windows) admitted and not yet "
                               "run: what the queue bound counts.", registry=r),
            http_requests=Counter("spanstream_http_requests_total", "HTTP requests by route and status.",
                                  ["route", "status"], registry=r),
            http_request_seconds=Histogram("spanstream_http_request_seconds", "HTTP request latency.", ["route"],
                                           buckets=LATENCY_BUCKETS, registry=r),
            consumer_lag=Gauge("spanstream_consumer_lag", "Records behind the partition end.",
                               ["topic", "partition"], registry=r),
            model_info=Gauge("spanstream_model_info", "The loaded model (value 1).",
                             ["name", "family", "variant", "version"], registry=r),
            labels_over_max_types=Counter("spanstream_labels_over_max_types_total",
                                          "Requests and events asking for more labels than the model's max_types "
                                          "(served, but the model was not trained on that many).", registry=r),
        )
