"""Records that used to crash-loop a partition, and infrastructure errors that used to lose an
output, against real brokers and real worker processes."""

from __future__ import annotations

import asyncio
import uuid

import orjson
import pytest

from stream.schemas import DEAD_LETTER, validator
from tests.kafka.test_faults import _events, _topics, account
from tests.kafka.test_worker_e2e import SENTENCES
from tests.kafka_fixtures import create_topic
from tests.worker_harness import MemoryCgroup, WorkerProc, consume, pipeline_toml, produce

pytestmark = pytest.mark.kafka


async def test_records_whose_dead_letters_used_to_be_refused_no_longer_stop_the_partition(
        kafka_bootstrap, topic_factory, worker_factory):
    """A 5 MB record and a record with 1.2 MB of metadata: both are refused as too large, and their
    dead letters used to copy the whole value; the broker refused those too, the worker exited 70
    and met the same record on restart, forever. Now: letters without the value, the records
    after them processed, the worker alive."""
    inp = await topic_factory(partitions=1, prefix="in", config={"max.message.bytes": str(16 * 2**20)})
    out, dlq = await topic_factory(partitions=1, prefix="out"), await topic_factory(partitions=1, prefix="dlq")
    deep = b'{"d":' * 300 + b'"bottom"' + b"}" * 300
    records = [
        (None, orjson.dumps({"id": "before", "text": "Angela Merkel visited Paris."}), []),
        (None, orjson.dumps({"id": "huge", "text": "Paris " * 900_000}), []),  # ~5.4 MB
        (None, orjson.dumps({"id": "meta", "text": "Paris", "metadata": {"blob": "m" * 1_200_000}}), []),
        (None, b'{"id": "deep", "text": "Paris", "metadata": ' + deep + b"}", []),  # decodes, cannot be encoded
        (None, b'{"id": 123456789012345678901234567890, "text": "Angela Merkel visited Paris."}', []),
    ]
    coords = await produce(kafka_bootstrap, inp, records, partition=0, max_request_size=16 * 2**20)
    worker = worker_factory(pipeline_toml("big", inp, out, dlq))
    worker.wait_ready()
    outs = await consume(kafka_bootstrap, [out], 2, timeout=60)
    letters = await consume(kafka_bootstrap, [dlq], 3, timeout=30)
    assert worker.proc.poll() is None, worker.tail()
    assert sorted(rec.value.split(b'"id":')[1].split(b",")[0] for rec in outs) == \
        [b'"before"', b"123456789012345678901234567890"], worker.tail()
    by_offset = {orjson.loads(r.value)["source"]["offset"]: orjson.loads(r.value) for r in letters}
    assert sorted(by_offset) == [1, 2, 3], worker.tail()
    for letter in by_offset.values():
        validator(DEAD_LETTER).validate(letter)
    assert by_offset[1]["reason"] == by_offset[2]["reason"] == "record_too_large"
    assert by_offset[1]["value"] is None and by_offset[1]["omitted"]["value"] == len(records[1][1])
    assert by_offset[2]["value"] is None and by_offset[2]["omitted"]["value"] == len(records[2][1])
    assert by_offset[3]["reason"] == "encode_error" and by_offset[3]["value"]["data"] == records[3][1].decode()
    assert coords[-1] == (0, 4)
    assert worker.terminate() == 0, worker.tail()


async def test_a_missing_output_topic_stops_the_start_with_the_key_named(kafka_bootstrap, topic_factory, tmp_path):
    """A typo in output_topic used to cost the publish budget on every record (and, broker-side
    auto-creation aside, end in exit 70 and a restart loop)."""
    inp, dlq = await topic_factory(prefix="in"), await topic_factory(prefix="dlq")
    worker = WorkerProc(tmp_path / "w", kafka_bootstrap, pipeline_toml("typo", inp, "no-such-topic-x", dlq),
                        f"g-{uuid.uuid4().hex[:8]}").start()
    try:
        code = await asyncio.to_thread(worker.proc.wait, 60)
    finally:
        if worker.proc.poll() is None:  # it started anyway (the old behaviour): leave nothing running
            worker.kill()
    assert code == 2, worker.tail()
    assert "pipelines[0].output_topic" in worker.tail() and "'no-such-topic-x' does not exist" in worker.tail()


@pytest.mark.cluster
async def test_an_output_partition_leaderless_past_the_old_request_timeout_loses_no_output(kafka_cluster3, tmp_path):
    """The only replica of the output topic is down for 45 s, longer than the producer's request
    timeout used to be (30 s). Every input gets its entity event, in input order per partition, and
    nothing is dead-lettered. (This outage also passed on the old code: its batches expired with a
    retriable NotLeaderForPartition that the application re-sent. The loss the old table allowed —
    a KafkaTimeoutError, marked non-retriable, dead-lettered without its value — needs a producer
    that gives up waiting for buffer room, and is pinned by the failure-table tests.)"""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    cluster = kafka_cluster3
    bootstrap = cluster.bootstrap
    suffix = uuid.uuid4().hex[:8]
    inp = await create_topic(bootstrap, f"in-{suffix}", 2, 3, {"min.insync.replicas": "2"})
    dlq = await create_topic(bootstrap, f"dlq-{suffix}", 1, 3, {"min.insync.replicas": "2"})
    out = f"out-{suffix}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(out, -1, -1, replica_assignments={0: [3], 1: [3]})])
    finally:
        await admin.close()
    await asyncio.sleep(2)
    worker = WorkerProc(tmp_path / "w", bootstrap, pipeline_toml("leaderless", inp, out, dlq, max_events=16),
                        f"g-{uuid.uuid4().hex[:8]}").start()
    try:
        worker.wait_ready()
        before = await produce(bootstrap, inp, _events(100, "before"))
        await consume(bootstrap, [out], 100, timeout=60)
        cluster.kill_node(3)  # the output topic's only replica
        during = await produce(bootstrap, inp, _events(600, "during"))
        await asyncio.sleep(45)
        cluster.restart_node(3)
        coords = before + during
        outs = await consume(bootstrap, [out], len(coords), timeout=150,
                             until=lambda recs: {(orjson.loads(r.value)["source"]["partition"],
                                                  orjson.loads(r.value)["source"]["offset"]) for r in recs}
                             >= set(coords))
        letters = await consume(bootstrap, [dlq], 1, timeout=5)
        seen = {(orjson.loads(r.value)["source"]["partition"], orjson.loads(r.value)["source"]["offset"])
                for r in outs}
        lost = set(coords) - seen
        acc = account(coords, outs)
        print(f"FAULT output leader away 45 s: {len(coords)} events, {len(lost)} without an entity event, "
              f"{len(letters)} dead letters, worker {'alive' if worker.proc.poll() is None else 'exited'}")
        assert not letters, [orjson.loads(r.value)["reason"] for r in letters[:5]]
        assert not lost and acc.out_of_order == 0, (len(lost), acc, worker.tail())
        assert worker.proc.poll() is None, worker.tail()
        assert worker.terminate() == 0, worker.tail()
    finally:
        if worker.proc.poll() is None:
            worker.kill()
        if not cluster.node(3).is_running():
            cluster.restart_node(3)


POD_LIMIT = 512 * 2**20
"A pod's memory limit: the worker's default byte bound is a quarter of it (128 MiB)."
N_BURST = 500
"0.6 MB records: 300 MB, which the old worker fetched and took all at once (over the limit)."


async def test_a_burst_of_half_megabyte_records_stays_within_a_pod_memory_limit(kafka_bootstrap, worker_factory):
    """faust prefetched up to 4,096 records per stream and a pipeline took up to 1,024, whatever
    their size: a burst of 500 records of 0.6 MB (300 MB) that the engine works through slowly
    (each text ~10 kB, one row per engine call) was all taken into memory at once, and a worker in
    a 512 MiB pod was OOM-killed (then met the same burst again after its restart). Now the worker
    reads its own cgroup's limit, bounds what it prefetches and takes by a quarter of it, and the
    kernel counts no OOM kill."""
    inp, out, dlq = await _topics(kafka_bootstrap, partitions=2, config={"max.message.bytes": str(2**21)})
    pod, worker = MemoryCgroup(POD_LIMIT), None
    try:
        worker = worker_factory(pipeline_toml("burst", inp, out, dlq, max_events=16),
                                cgroup=pod, env={"MALLOC_ARENA_MAX": "2", "SPANSTREAM_MAX_BATCH_ROWS": "1",
                                                 "SPANSTREAM_INFERENCE_THREADS": "1"})
        worker.wait_ready()
        baseline = _rss(worker.proc.pid)
        sampler = _PeakRss(worker.proc.pid)
        text = (" ".join(SENTENCES) + " ") * 60  # ~10 kB
        blob = "m" * (600_000 - len(text))
        for first in range(0, N_BURST, 100):
            await produce(kafka_bootstrap, inp, [(None, orjson.dumps({"id": i, "text": text, "metadata": {"blob": blob}}), [])
                                                 for i in range(first, first + 100)], max_request_size=2**21)
        taken = 0.0
        for _ in range(20):  # while the engine works through the burst: the most ever taken and not acked
            await asyncio.sleep(0.5)
            if worker.proc.poll() is not None:
                break
            taken = max(taken, worker.metric("spanstream_events_consumed_total") -
                        worker.metric("spanstream_events_produced_total"))
        got = await consume(kafka_bootstrap, [out], N_BURST, timeout=300)
        peak = sampler.stop()
        print(f"MEMORY {N_BURST} x 0.6 MB records in a {POD_LIMIT / 2**20:.0f} MiB pod: at most {taken:.0f} taken "
              f"and not yet published, RSS {baseline / 2**20:.0f} MB -> peak {peak / 2**20:.0f} MB, the pod's peak "
              f"{pod.peak() / 2**20:.0f} MB, OOM kills {pod.oom_kills()}, exit {worker.proc.poll()}")
        assert pod.oom_kills() == 0 and worker.proc.poll() is None, worker.tail()
        assert len(got) == N_BURST, worker.tail()
        bound = POD_LIMIT // 4
        assert 0 < taken * 600_000 <= bound // 2 + 16 * 600_000, taken  # half the bound, plus one take
        assert worker.terminate() == 0, worker.tail()
    finally:
        if worker is not None and worker.proc.poll() is None:
            worker.kill()
        pod.remove()


class _PeakRss:
    """Samples a process's RSS every 20 ms in a thread until ``stop()``, which returns the peak."""

    def __init__(self, pid: int):
        import threading

        self.pid, self.peak, self._stop = pid, _rss(pid), threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, _rss(self.pid))

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0
