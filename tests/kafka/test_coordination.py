"""A replica whose group coordination died exits instead of holding its partitions idle."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from stream.kafka.coordination import coordination_error


def _faust_consumer(task) -> SimpleNamespace:
    """faust's consumer → its consumer thread → aiokafka's consumer → the group coordinator."""
    return SimpleNamespace(_thread=SimpleNamespace(_consumer=SimpleNamespace(
        _coordinator=SimpleNamespace(_coordination_task=task))))


def test_a_coordination_task_that_raised_is_reported_and_a_running_or_stopped_one_is_not():
    async def scenario():
        async def dies():
            raise AssertionError("assignment for another member")

        async def runs():
            await asyncio.sleep(60)

        died, running, stopped = (asyncio.ensure_future(dies()), asyncio.ensure_future(runs()),
                                  asyncio.ensure_future(runs()))
        await asyncio.sleep(0)
        stopped.cancel()
        await asyncio.gather(died, stopped, return_exceptions=True)
        found = [coordination_error(_faust_consumer(t)) for t in (died, running, stopped)]
        running.cancel()
        return found

    died, running, stopped = asyncio.run(scenario())
    assert isinstance(died, AssertionError) and "another member" in str(died)
    assert running is None and stopped is None


def test_a_consumer_not_started_yet_has_no_coordination_error():
    assert coordination_error(SimpleNamespace()) is None
    assert coordination_error(_faust_consumer(None)) is None
