"""spanstream_consumer_lag{topic,partition}: how far the group is behind, per owned partition."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def register_lag_gauge(app, metrics, interval: float = 5.0) -> None:
    """spanstream_consumer_lag{topic,partition}: log-end offset minus committed offset."""

    @app.timer(interval=interval, name="spanstream.consumer_lag")
    async def update_lag() -> None:
        consumer = app.consumer
        assigned = list(consumer.assignment())
        if not assigned:
            metrics.consumer_lag.clear()
            return
        try:
            ends = await consumer.highwaters(*assigned)
        except Exception as exc:  # metadata hiccup: keep the last values
            log.debug("consumer lag not updated: %r", exc)
            return
        metrics.consumer_lag.clear()
        for tp in assigned:
            # faust keeps the committed offset per partition (the next offset to read)
            committed = consumer._committed_offset.get(tp) or await consumer.position(tp) or 0
            end = ends.get(tp)
            if end is not None:
                metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(max(0, end - committed))
