"""spanstream_consumer_lag{topic,partition}: how far the group is behind, per owned partition."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


async def current_lag(consumer) -> dict[tuple[str, int], int] | None:
    """Log-end offset minus committed offset for each partition the consumer owns now; None when
    the log ends cannot be read. A partition revoked while this runs (a rebalance) is skipped:
    a metric must never take the worker down (``position`` of a revoked partition raises)."""
    assigned = list(consumer.assignment())
    if not assigned:
        return {}
    try:
        ends = await consumer.highwaters(*assigned)
    except Exception as exc:  # metadata hiccup: keep the last values
        log.debug("consumer lag not updated: %r", exc)
        return None
    lag = {}
    for tp in assigned:
        end = ends.get(tp)
        if end is None:
            continue
        try:
            # faust keeps the committed offset per partition (the next offset to read)
            committed = consumer._committed_offset.get(tp) or await consumer.position(tp) or 0
        except Exception as exc:  # revoked meanwhile, or the broker is away
            log.debug("lag of %s skipped: %r", tp, exc)
            continue
        lag[(tp.topic, tp.partition)] = max(0, end - committed)
    return lag


def register_lag_gauge(app, metrics, interval: float = 5.0) -> None:
    """spanstream_consumer_lag{topic,partition}: log-end offset minus committed offset."""

    @app.timer(interval=interval, name="spanstream.consumer_lag")
    async def update_lag() -> None:
        lag = await current_lag(app.consumer)
        if lag is None:
            return
        metrics.consumer_lag.clear()
        for (topic, partition), value in lag.items():
            metrics.consumer_lag.labels(topic, str(partition)).set(value)
