"""Several workers in one consumer group: sharing, failover after kill -9, drain on SIGTERM."""

from __future__ import annotations

import asyncio
import collections
import json
import time
import uuid

import orjson
import pytest

from tests.kafka.test_worker_e2e import SENTENCES
from tests.worker_harness import consume, pipeline_toml, produce

pytestmark = pytest.mark.kafka


def _sources(records) -> collections.Counter:
    """(partition, offset) of the input behind each output or dead letter."""
    return collections.Counter((orjson.loads(r.value)["source"]["partition"], orjson.loads(r.value)["source"]["offset"])
                               for r in records)


def _events(n: int, prefix: str) -> list:
    return [(f"k{i}".encode(), orjson.dumps({"id": f"{prefix}-{i}", "text": SENTENCES[i % 4]}), []) for i in range(n)]


async def _topics(topic_factory, partitions: int):
    return (await topic_factory(partitions=partitions, prefix="in"), await topic_factory(partitions=4, prefix="out"),
            await topic_factory(partitions=1, prefix="dlq"))


async def test_two_workers_split_partitions_and_process_each_event_once(kafka_bootstrap, topic_factory,
                                                                        worker_factory):
    inp, out, dlq = await _topics(topic_factory, 4)
    config = pipeline_toml("group", inp, out, dlq)
    group = f"g-{uuid.uuid4().hex[:8]}"
    a = worker_factory(config, group)
    b = worker_factory(config, group)
    a.wait_ready()
    b.wait_ready()
    # both own partitions once the group settles
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (a.partitions() and b.partitions()):
        await asyncio.sleep(0.5)
    coords = await produce(kafka_bootstrap, inp, _events(200, "g"))
    records = await consume(kafka_bootstrap, [out, dlq], 200)
    seen = _sources(records)
    assert set(seen) == set(coords) and max(seen.values()) == 1, (a.tail(), b.tail())
    consumed = [a.metric("spanstream_events_consumed_total"), b.metric("spanstream_events_consumed_total")]
    assert sum(consumed) == 200 and min(consumed) > 0, consumed
    print(f"GROUP split: worker A {consumed[0]:.0f} events, worker B {consumed[1]:.0f} events")
    assert a.terminate() == 0 and b.terminate() == 0


async def test_kill9_survivor_takes_over_nothing_lost(kafka_bootstrap, topic_factory, worker_factory):
    inp, out, dlq = await _topics(topic_factory, 4)
    config = pipeline_toml("failover", inp, out, dlq, max_events=8)
    group = f"g-{uuid.uuid4().hex[:8]}"
    a = worker_factory(config, group)
    b = worker_factory(config, group)
    a.wait_ready()
    b.wait_ready()
    total = 600
    coords = []
    for chunk in range(6):  # a steady stream; the kill lands in the middle of it
        coords += await produce(kafka_bootstrap, inp, _events(100, f"c{chunk}")[:100])
        if chunk == 2:
            await asyncio.sleep(0.5)
            a.kill()
        await asyncio.sleep(0.3)
    records = await consume(kafka_bootstrap, [out, dlq], total, timeout=120,
                            until=lambda recs: set(_sources(recs)) >= set(coords))
    seen = _sources(records)
    missing = set(coords) - set(seen)
    duplicates = sum(c - 1 for c in seen.values())
    print(f"KILL -9: {total} inputs, {len(missing)} lost, {duplicates} duplicates, {len(records)} outputs")
    assert not missing, (b.tail(), sorted(missing)[:10])
    assert duplicates < total  # only the uncommitted window is replayed
    # everything produced after the kill (chunks 3-5, all partitions) went through the survivor
    assert b.metric("spanstream_events_consumed_total") >= 300
    assert b.terminate() == 0


async def test_sigterm_drains_and_commits(kafka_bootstrap, topic_factory, worker_factory):
    inp, out, dlq = await _topics(topic_factory, 2)
    config = pipeline_toml("drain", inp, out, dlq, max_events=16)
    group = f"g-{uuid.uuid4().hex[:8]}"
    a = worker_factory(config, group)
    a.wait_ready()
    coords = await produce(kafka_bootstrap, inp, _events(300, "d"))
    await consume(kafka_bootstrap, [out], 1)  # processing has started
    assert a.terminate() == 0, a.tail()
    done_before = _sources(await consume(kafka_bootstrap, [out, dlq], 300, timeout=5))
    b = worker_factory(config, group)
    b.wait_ready()
    records = await consume(kafka_bootstrap, [out, dlq], 300, timeout=90,
                            until=lambda recs: set(_sources(recs)) >= set(coords))
    seen = _sources(records)
    duplicates = sum(c - 1 for c in seen.values())
    print(f"SIGTERM: first worker finished {len(done_before)} of 300 before stopping; "
          f"after restart {len(set(seen))} covered, {duplicates} duplicates")
    assert set(seen) >= set(coords)
    assert duplicates == 0  # a clean stop commits everything it published
    assert b.terminate() == 0


async def test_a_replica_without_partitions_is_ready(kafka_bootstrap, topic_factory, worker_factory):
    """Readiness must not depend on owning a partition: the replica beyond the partition count
    (and any replica during a rebalance) still serves HTTP."""
    inp, out, dlq = await _topics(topic_factory, 1)
    config = pipeline_toml("idle", inp, out, dlq)
    group = f"g-{uuid.uuid4().hex[:8]}"
    a = worker_factory(config, group)
    b = worker_factory(config, group)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and a.partitions() + b.partitions() < 1:
        await asyncio.sleep(0.5)
    await asyncio.sleep(3)  # the group has settled: one owns the partition, one is idle
    owners = [w.partitions() for w in (a, b)]
    assert sorted(owners) == [0, 1], owners
    idle = (a, b)[owners.index(0)]
    status, body = idle.http("/readyz")
    assert status == 200, body
    assert json.loads(body)["partitions"] == 0
    status, body = idle.http("/v1/extract", {"text": "Ada Lovelace was born in London.", "labels": ["person"]})
    assert status == 200, body
    assert a.terminate() == 0 and b.terminate() == 0


async def test_a_rebalance_under_a_steady_stream_loses_nothing_and_keeps_order(kafka_bootstrap, topic_factory,
                                                                               worker_factory):
    """A second replica joins while the first works through a steady stream: nothing is lost, order
    per partition holds, and nothing is replayed — the first replica stops taking records, lets
    every record it took be published and acked, and commits before faust forgets the revoked
    partitions' acks (faust alone dropped them and replayed every record acked since the last
    periodic commit: with the interval at 30 s, hundreds)."""
    from tests.kafka.test_faults import Stream

    inp, out, dlq = await _topics(topic_factory, 4)
    config = pipeline_toml("rebalance", inp, out, dlq, max_events=8)
    group = f"g-{uuid.uuid4().hex[:8]}"
    in_flight = {"SPANSTREAM_MAX_UNACKED_EVENTS": "64",  # records between take and ack, per worker
                 "SPANSTREAM_COMMIT_INTERVAL_S": "30"}  # no periodic commit lands in the test: only the revocation's
    a = worker_factory(config, group, env=in_flight)
    a.wait_ready()
    stream = Stream(kafka_bootstrap, inp, per_tick=20, tick=0.1)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and a.metric("spanstream_events_consumed_total") < 50:
        await asyncio.sleep(0.2)
    rates = _GroupRate([a])
    b = worker_factory(config, group, env=in_flight)
    b.wait_ready()
    rates.workers.append(b)
    joined = time.monotonic()
    deadline = joined + 90  # the stream flows until the newcomer owns partitions and works
    while time.monotonic() < deadline and not (b.partitions() and b.metric("spanstream_events_consumed_total") >= 20):
        await asyncio.sleep(0.2)
    join_s = time.monotonic() - joined
    await asyncio.sleep(2)
    consumed = [a.metric("spanstream_events_consumed_total"), b.metric("spanstream_events_consumed_total")]
    during_join = rates.since(joined)
    left = time.monotonic()
    assert b.terminate() == 0, b.tail()  # and a replica leaves: SIGTERM drains, commits and leaves the group
    rates.workers.remove(b)
    deadline = left + 90
    while time.monotonic() < deadline and a.partitions() < 4:
        await asyncio.sleep(0.2)
    leave_s = time.monotonic() - left
    await asyncio.sleep(2)
    during_leave = rates.since(left)
    rates.stop()
    acc = await _stop_and_account(stream, kafka_bootstrap, [out, dlq])
    print(f"REBALANCE: {acc.inputs} events, lost {acc.lost}, duplicated {acc.duplicates}, out of order "
          f"{acc.out_of_order}; first replica took {consumed[0]:.0f}, newcomer {consumed[1]:.0f}; join: newcomer "
          f"working {join_s:.1f} s after it was ready, events/s each second {during_join}; leave: the first "
          f"replica owned every partition {leave_s:.1f} s after the SIGTERM, events/s each second {during_leave} "
          f"(offered 200/s)")
    assert consumed[1] >= 20, "the newcomer never got partitions"
    assert a.partitions() == 4, "the leaver's partitions never came back"
    assert acc.lost == 0 and acc.out_of_order == 0, acc
    assert acc.duplicates == 0, acc
    assert a.terminate() == 0


async def _stop_and_account(stream, bootstrap: str, topics: list[str]):
    """Stop the steady stream, read every output and dead letter back, and account for them."""
    from tests.kafka.test_faults import account

    coords = await stream.stop()
    records = await consume(bootstrap, topics, len(coords), timeout=120,
                            until=lambda recs: set(_sources(recs)) >= set(coords))
    return account(coords, records)


class _GroupRate:
    """Events consumed by the group's live workers, sampled each second in a background thread."""

    def __init__(self, workers: list) -> None:
        import threading

        self.workers = workers
        self.samples: list[tuple[float, dict]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            counts = {}
            for w in list(self.workers):
                try:
                    counts[w.port] = w.metric("spanstream_events_consumed_total")
                except Exception:  # stopping
                    pass
            self.samples.append((time.monotonic(), counts))

    def since(self, t0: float) -> list[int]:
        """Events/s of each second from ``t0``, summed over the workers seen at both ends of it."""
        points = [c for t, c in self.samples if t >= t0 - 1.0]
        return [int(sum(c1[k] - c0[k] for k in c0.keys() & c1.keys())) for c0, c1 in zip(points, points[1:])]

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


async def test_a_static_member_restarted_within_the_session_timeout_causes_no_rebalance(kafka_bootstrap, topic_factory,
                                                                                        worker_factory):
    """Static membership (``group_instance_id``, the pod name in the chart): a replica stopped and
    started again with the same id within the session timeout gets its partitions back without a
    rebalance — the other replica keeps its partitions and never stops consuming — and nothing is
    lost or replayed. The other replica's rate over the restart is printed. The restarted process
    listens on another HTTP port, as a replica on another host would: faust's assignor compared
    the stored assignment's URL with its own, and the restarted replica hung holding its
    partitions without consuming until the old session expired and the group rebalanced."""
    from tests.kafka.test_faults import Stream

    inp, out, dlq = await _topics(topic_factory, 4)
    config = pipeline_toml("static", inp, out, dlq, max_events=8)
    group = f"g-{uuid.uuid4().hex[:8]}"
    env = {"SPANSTREAM_SESSION_TIMEOUT_S": "45", "SPANSTREAM_HEARTBEAT_INTERVAL_S": "1"}
    a = worker_factory(config, group, env={**env, "SPANSTREAM_GROUP_INSTANCE_ID": "replica-a"})
    b = worker_factory(config, group, env={**env, "SPANSTREAM_GROUP_INSTANCE_ID": "replica-b"})
    a.wait_ready(), b.wait_ready()

    def readyz(w) -> dict:
        return json.loads(w.http("/readyz")[1])

    deadline = time.monotonic() + 90  # both joined and settled: two members, every partition owned
    while time.monotonic() < deadline and not (a.partitions() + b.partitions() == 4 and a.partitions()
                                               and not readyz(a)["rebalancing"] and not readyz(b)["rebalancing"]):
        await asyncio.sleep(0.5)
    stream = Stream(kafka_bootstrap, inp, per_tick=10, tick=0.1)
    await asyncio.sleep(3)
    before = readyz(a)
    assert before["coordinating"], before  # the coordination watch finds aiokafka's group task
    owned_by_b = b.partitions()
    assert b.terminate() == 0, b.tail()
    b2 = worker_factory(config, group, env={**env, "SPANSTREAM_GROUP_INSTANCE_ID": "replica-b"})
    rates, last, started = [], a.metric("spanstream_events_consumed_total"), time.monotonic()
    while time.monotonic() - started < 40 and not (b2.proc.poll() is None and _ready(b2) and b2.partitions()
                                                   and b2.metric("spanstream_events_consumed_total") >= 20):
        await asyncio.sleep(1)
        now = a.metric("spanstream_events_consumed_total")
        rates.append(now - last)
        last = now
    took = time.monotonic() - started
    await asyncio.sleep(2)
    after = readyz(a)
    acc = await _stop_and_account(stream, kafka_bootstrap, [out, dlq])
    print(f"STATIC RESTART: replica b back with {b2.partitions()} partitions {took:.1f} s after its SIGTERM; "
          f"replica a's rebalances {before['rebalances']} -> {after['rebalances']}, partitions "
          f"{before['partitions']} -> {after['partitions']}, events/s each second meanwhile {rates}; "
          f"{acc.inputs} events, lost {acc.lost}, duplicated {acc.duplicates}")
    assert b2.partitions() == owned_by_b and b2.metric("spanstream_events_consumed_total") >= 20  # working again
    assert after["rebalances"] == before["rebalances"] and after["partitions"] == before["partitions"]
    assert min(rates) > 0, rates  # replica a never paused
    assert acc.lost == 0 and acc.duplicates == 0 and acc.out_of_order == 0, acc
    assert a.terminate() == 0 and b2.terminate() == 0


def _ready(w) -> bool:
    try:
        return w.http("/readyz")[0] == 200
    except OSError:
        return False
