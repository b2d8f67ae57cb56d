"""`make bench-scale`: one pinned worker against two, tweet-length texts, with CPU accounting.

    python -m bench.scale [--n 6000] [--partitions 8] [--model DIR] [--variant auto] [--py-spy FILE]

Each worker is a real `spanstream worker` process pinned to one core (``taskset -c i``), so its
ONNX Runtime uses one thread (the engine's default is the CPU quota); the broker (one KRaft node)
and this harness are not pinned and share the same cores, as on a small node. For each worker
count the workers start on an empty 8-partition topic, the harness waits until the consumer group
is stable with every worker in it, then produces all events at once and only polls the output
topic's end offsets until every output is there (so its own CPU stays out of the measured span).

Rate: outputs between the 10th and 90th percentile of their broker timestamps over that span
(start-up and the last partitions' tail are left out). CPU: user+system seconds of each worker,
the broker JVM, the harness and the whole machine (/proc/stat) over the same span, per 1,000
events. The raw engine is `spanstream extract`'s loop pinned to one core on the same texts (its
process CPU counted too). A round is the engine, one worker, two workers back to back; rounds
repeat it (this VM's GEMM speed drifts by ±5% between minutes) and ratios are taken within a round.

Uses ``KAFKA_BOOTSTRAP`` when set (then the broker's CPU is not accounted); otherwise starts a
single-node broker from the Maven jars. Writes bench/out/scale.json and prints Markdown tables.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import orjson

from bench.worker import LABELS, _entities

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TICK = os.sysconf("SC_CLK_TCK")


def tweets(n: int) -> list[dict]:
    """The built-in short sample (one news sentence, 89 characters on average), cycled; unique ids."""
    from stream.serving.sample_texts import SENTENCES

    return [{"id": f"t{i}", "text": SENTENCES[i % len(SENTENCES)]} for i in range(n)]


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the machine so far, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    total = sum(values[:8])
    return (total - idle) / TICK, total / TICK


class CpuSampler(threading.Thread):
    """Samples the CPU seconds of named processes and the machine every ``period`` seconds."""

    def __init__(self, pids: dict[str, int], period: float = 0.2):
        super().__init__(daemon=True)
        self.pids, self.period = pids, period
        self.samples: list[tuple[float, dict[str, float]]] = []
        self._done = threading.Event()

    def sample(self) -> None:
        row = {}
        for name, pid in self.pids.items():
            try:
                row[name] = process_cpu(pid)
            except OSError:
                row[name] = float("nan")
        row["machine_busy"], row["machine_total"] = machine_cpu()
        self.samples.append((time.time(), row))

    def run(self) -> None:
        while not self._done.is_set():
            self.sample()
            self._done.wait(self.period)

    def stop(self) -> None:
        self._done.set()
        self.join()
        self.sample()

    def between(self, start: float, end: float) -> dict[str, float]:
        """CPU seconds spent by each name between two wall-clock times (nearest samples inside)."""
        inside = [s for s in self.samples if start <= s[0] <= end] or self.samples[-2:]
        (t0, a), (t1, b) = inside[0], inside[-1]
        return {"seconds": t1 - t0, **{k: b[k] - a[k] for k in a}}


async def _topics(bootstrap: str, partitions: int) -> tuple[str, str, str]:
    from bench.worker import _topics as create

    return await create(bootstrap, partitions, prefix="scale")


async def _wait_group(bootstrap: str, group: str, members: int, timeout: float = 120.0) -> None:
    """Until ``group`` is Stable with ``members`` members that each hold partitions."""
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.errors import KafkaError

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                responses = await admin.describe_consumer_groups([group])
            except KafkaError:  # the group coordinator is not up yet (offsets topic being created)
                responses = []
            for response in responses:
                for g in response.groups:
                    state, group_members = g[2], g[5]
                    if state == "Stable" and len(group_members) == members and all(m[-1] for m in group_members):
                        return
            await asyncio.sleep(0.5)
        raise SystemExit(f"consumer group {group} did not become stable with {members} members in {timeout:g}s")
    finally:
        await admin.close()


async def _produce(bootstrap: str, topic: str, events: list[dict]) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=20)
    await producer.start()
    try:
        futures = [await producer.send(topic, orjson.dumps(e), key=e["id"].encode()) for e in events]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def _wait_outputs(bootstrap: str, topics: list[str], n: int, timeout: float) -> None:
    """Poll end offsets (cheap) until ``topics`` hold ``n`` records."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        parts = [TopicPartition(t, p) for t in topics for p in (consumer.partitions_for_topic(t) or
                                                                 await _partitions(consumer, t))]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if sum((await consumer.end_offsets(parts)).values()) >= n:
                return
            await asyncio.sleep(1.0)
        raise SystemExit(f"fewer than {n} outputs after {timeout:g}s")
    finally:
        await consumer.stop()


async def _partitions(consumer, topic: str) -> set[int]:
    await consumer._client.force_metadata_update()
    return consumer.partitions_for_topic(topic) or {0}


async def _read_all(bootstrap: str, topics: list[str], n: int) -> list:
    from bench.worker import _collect

    return await _collect(bootstrap, topics, n, 120)


def _spawn_workers(args, bootstrap: str, count: int, inp: str, out: str, dlq: str, workdir: Path):
    from devtools.localkafka import free_port

    config = workdir / f"pipelines-{count}.toml"
    config.write_text(f'[[pipelines]]\nname = "scale"\ninput_topics = ["{inp}"]\noutput_topic = "{out}"\n'
                      f'dead_letter_topic = "{dlq}"\nlabels = {json.dumps(LABELS)}\nthreshold = 0.5\n')
    group = f"scale-{uuid.uuid4().hex[:8]}"
    workers = []
    for i in range(count):
        cmd = ["taskset", "-c", str(i), sys.executable, "-m", "stream", "worker", "--config", str(config),
               "--bootstrap", bootstrap, "--group-id", group, "--http-port", str(free_port()),
               "--data-dir", str(workdir / f"data-{count}-{i}"), "--loglevel", "warning", "--variant", args.variant]
        if args.model:
            cmd += ["--model", str(args.model)]
        log = open(workdir / f"worker-{count}-{i}.log", "wb")
        workers.append(subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT))
    return group, workers


def run(args, count: int, events: list[dict], bootstrap: str, broker_pid: int | None, workdir: Path) -> dict:
    inp, out, dlq = asyncio.run(_topics(bootstrap, args.partitions))
    group, workers = _spawn_workers(args, bootstrap, count, inp, out, dlq, workdir)
    spies = []
    try:
        asyncio.run(_wait_group(bootstrap, group, count))
        if args.py_spy:
            spies = [subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "--format", "raw",
                                       "--rate", "50", "-o", f"{args.py_spy}.{count}.{i}", "--pid", str(w.pid)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                     for i, w in enumerate(workers)]
        pids = {f"worker{i}": w.pid for i, w in enumerate(workers)} | {"harness": os.getpid()}
        if broker_pid:
            pids["broker"] = broker_pid
        sampler = CpuSampler(pids)
        sampler.start()
        asyncio.run(_produce(bootstrap, inp, events))
        asyncio.run(_wait_outputs(bootstrap, [out, dlq], len(events), args.timeout))
        sampler.stop()
    finally:
        for spy in spies:
            spy.send_signal(signal.SIGINT)
            spy.wait(60)
        for w in workers:
            w.send_signal(signal.SIGTERM)
        for w in workers:
            try:
                w.wait(60)
            except subprocess.TimeoutExpired:
                w.kill()
    records = asyncio.run(_read_all(bootstrap, [out, dlq], len(events)))
    stamps = sorted(r.timestamp / 1000 for r in records)
    lo, hi = stamps[len(stamps) // 10], stamps[len(stamps) * 9 // 10]
    counted = sum(lo <= s <= hi for s in stamps)
    cpu = sampler.between(lo, hi)
    events_in_span = counted * cpu["seconds"] / (hi - lo) if hi > lo else counted
    per_k = {k: 1000 * v / events_in_span for k, v in cpu.items() if k not in ("seconds", "machine_total")}
    per_k["workers"] = sum(v for k, v in per_k.items() if k.startswith("worker"))
    return {
        "workers": count, "events_per_s": counted / (hi - lo), "dead_letters": sum(r.topic == dlq for r in records),
        "cpu_seconds_per_1000_events": per_k,
        "machine_busy_share": cpu["machine_busy"] / cpu["machine_total"],
        "outputs": [orjson.loads(r.value) for r in records if r.topic == out],
    }


def engine_rate(args, events: list[dict], workdir: Path) -> dict:
    jsonl = workdir / "texts.jsonl"
    jsonl.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    cmd = ["taskset", "-c", "0", sys.executable, "-m", "bench.worker", "--engine", str(jsonl),
           "--engine-out", str(workdir / "e.jsonl"), "--variant", args.variant]
    if args.model:
        cmd += ["--model", str(args.model)]
    engine = json.loads(subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True).stdout.splitlines()[-1])
    engine["events_per_s"] = len(events) / engine["seconds"]
    engine["outputs"] = _entities([orjson.loads(line) for line in (workdir / "e.jsonl").read_bytes().splitlines()])
    return engine


def _round(args, events: list[dict], workdir: Path, bootstrap: str, broker_pid: int | None) -> dict:
    """The engine, then one worker, then two, back to back (a round shares the machine's speed)."""
    engine = engine_rate(args, events, workdir)
    runs = [run(args, count, events, bootstrap, broker_pid, workdir) for count in (1, 2)]
    for r in runs:
        worker_out = _entities(r.pop("outputs"))
        r["same_entities"] = sum(engine["outputs"].get(k) == v for k, v in worker_out.items())
        r["compared"] = len(worker_out)
    engine.pop("outputs")
    engine["cpu_seconds_per_1000_events"] = 1000 * engine["cpu_seconds"] / len(events)
    one, two = runs
    return {"engine": engine, "runs": runs, "speedup": two["events_per_s"] / one["events_per_s"],
            "worker_over_engine": one["events_per_s"] / engine["events_per_s"]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=6000)
    p.add_argument("--rounds", type=int, default=2, help="engine, one worker, two workers: this many times")
    p.add_argument("--partitions", type=int, default=8)
    p.add_argument("--model", default=None, help="model folder (default: the embedded model)")
    p.add_argument("--variant", choices=["auto", "fp32", "int8"], default="auto")
    p.add_argument("--timeout", type=float, default=900)
    p.add_argument("--py-spy", default=None, help="record each worker with py-spy (raw stacks) into FILE.<workers>.<i>")
    args = p.parse_args(argv)
    if len(os.sched_getaffinity(0)) < 2:
        raise SystemExit("needs two CPUs to pin two workers")
    events = tweets(args.n)
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        workdir = Path(tmp)
        bootstrap, cluster = os.environ.get("KAFKA_BOOTSTRAP"), None
        if not bootstrap:
            from devtools.localkafka import KafkaCluster

            cluster = KafkaCluster.create(workdir / "kafka", size=1)
            cluster.start()
            bootstrap = cluster.bootstrap
        try:
            broker_pid = cluster.nodes[0].process.pid if cluster else None
            rounds = [_round(args, events, workdir, bootstrap, broker_pid) for _ in range(args.rounds)]
        finally:
            if cluster is not None:
                cluster.stop()
    result = {
        "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                 text=True).stdout.strip(),
        "texts": len(events), "partitions": args.partitions, "rounds": rounds,
        "speedup": sum(r["speedup"] for r in rounds) / len(rounds),
        "worker_over_engine": sum(r["worker_over_engine"] for r in rounds) / len(rounds),
    }
    (HERE / "out").mkdir(exist_ok=True)
    (HERE / "out" / "scale.json").write_text(json.dumps(result, indent=2))
    print("| round | workers | events/s | vs 1 worker | per worker / engine | CPU s per 1,000 events: workers "
          "| broker | harness | machine busy | same entities |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for k, rnd in enumerate(rounds, 1):
        e = rnd["engine"]
        print(f"| {k} | engine ({e['variant']}) | {e['events_per_s']:.1f} | | | {e['cpu_seconds_per_1000_events']:.2f} "
              "| | | | |")
        one = rnd["runs"][0]
        for r in rnd["runs"]:
            c = r["cpu_seconds_per_1000_events"]
            print(f"| {k} | {r['workers']} | {r['events_per_s']:.1f} | {r['events_per_s'] / one['events_per_s']:.2f}x "
                  f"| {r['events_per_s'] / r['workers'] / e['events_per_s']:.2f} | {c['workers']:.2f} "
                  f"| {c.get('broker', float('nan')):.2f} | {c['harness']:.2f} "
                  f"| {c['machine_busy']:.2f} ({100 * r['machine_busy_share']:.0f}%) "
                  f"| {r['same_entities']}/{r['compared']} |")
    print(f"\nmean over {len(rounds)} rounds: 2 workers / 1 = **{result['speedup']:.2f}x**, 1 worker / engine = "
          f"**{result['worker_over_engine']:.2f}** (commit {result['commit']}; {len(events)} texts, "
          f"{args.partitions} partitions)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
