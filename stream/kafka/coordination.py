"""A replica whose consumer-group coordination died exits, so it restarts and rejoins.

aiokafka runs the group protocol (join, sync, heartbeats) in one background task. If that task
ends on an unexpected error — seen with faust's assignor assertion when a static member was
handed an assignment made for another URL — aiokafka logs it once and the replica keeps its
HTTP server, its readiness and its partitions, but never fetches again: a silent stall that no
probe sees. ``watch_coordination`` checks the task every few seconds and exits through the
pipeline's ``fatal`` (nothing more is acked or committed; Kafka redelivers what was in flight).
"""

from __future__ import annotations


def _coordination_task(consumer):
    aiokafka_consumer = getattr(getattr(consumer, "_thread", None), "_consumer", None)
    return getattr(getattr(aiokafka_consumer, "_coordinator", None), "_coordination_task", None)


def coordinating(consumer) -> bool:
    """Whether aiokafka's coordination task behind faust's ``consumer`` exists and runs."""
    task = _coordination_task(consumer)
    return task is not None and not task.done()


def coordination_error(consumer) -> BaseException | None:
    """The exception that ended aiokafka's coordination task behind faust's ``consumer``; None
    while it runs, after a clean stop (cancelled), or before the consumer has started."""
    task = _coordination_task(consumer)
    if task is None or not task.done() or task.cancelled():
        return None
    return task.exception()


async def watch_coordination(app, interval: float = 5.0) -> None:
    """Exit (``fatal``) once the group coordination of ``app``'s consumer has died. Runs as a
    plain task from the worker's start: faust's timers only start once the first assignment is
    done, which a coordination that died while joining never reaches."""
    import asyncio

    from stream.kafka.pipeline import fatal

    while True:
        await asyncio.sleep(interval)
        if app.should_stop:
            continue
        error = coordination_error(app.consumer)
        if error is not None:
            fatal(f"Kafka group coordination stopped ({error!r}); exiting so the replica restarts and rejoins")
