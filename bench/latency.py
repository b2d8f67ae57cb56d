"""`make bench-latency`: end-to-end latency under load through Kafka and over HTTP, per batching policy.

    python -m bench.latency [--policies adaptive,take50-wait5,take5-wait0] [--fractions 0.25,0.5,0.8,1.0]
                            [--arrivals constant,poisson] [--window 5] [--model DIR] [--variant auto]

One `spanstream worker` pinned to core 0 (so ONNX Runtime runs one thread, a 1-CPU replica); the
broker (one KRaft node from the Maven jars) and this harness pinned to core 1. Per policy:

1. capacity: a backlog of ``--capacity-n`` tweet-length events, rate from the output timestamps
   (10th–90th percentile). The offered rates of every policy are fractions of the **first**
   policy's capacity, so all policies see the same load.
2. open loop, per arrival process (constant spacing, or Poisson with a fixed seed) and fraction:
   events are produced at their scheduled times whatever the worker does, each record stamped with
   its scheduled time, so a stall shows as latency (no coordinated omission). Latency = the output
   event's broker record timestamp (set when the worker produced it) − the input's scheduled time.
   perf_analyzer's method: fixed windows of ``--window`` seconds, measured until the last three
   windows' output rate and p50 agree within 10% (``stable``) or ``--max-windows`` pass; the
   percentiles are over those last three windows.

HTTP (``--http``): `spanstream serve` pinned to core 0, closed-loop clients (aiohttp) at
concurrency 1 / 8 / 64 posting one short text each, per policy (``--no-kafka``: these points and
the raw engine only). With every client waiting, the mean latency is clients / rate (Little's
law), so at a saturating concurrency the policies differ in throughput and in the spread. Raw engine: `spanstream bench`
pinned to core 0 on the same texts and labels (its own open-loop latency at the same fractions of
its own rate, through the inference queue, no Kafka and no HTTP).

Writes bench/out/latency.json and prints Markdown tables.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import orjson

from bench.scale import _partitions, _topics, _wait_group, tweets
from bench.worker import LABELS

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

# name -> (pipeline max_wait_ms: the take's wait, process env)
POLICIES: dict[str, tuple[int | None, dict[str, str]]] = {
    "adaptive": (None, {}),
    "take50-wait5": (50, {"SPANSTREAM_BATCH_POLICY": "fixed", "SPANSTREAM_MAX_BATCH_WAIT_MS": "5"}),
    "take5-wait5": (5, {"SPANSTREAM_BATCH_POLICY": "fixed", "SPANSTREAM_MAX_BATCH_WAIT_MS": "5"}),
    "take5-wait0": (5, {"SPANSTREAM_BATCH_POLICY": "fixed", "SPANSTREAM_MAX_BATCH_WAIT_MS": "0"}),
    "take1-wait0": (1, {"SPANSTREAM_BATCH_POLICY": "fixed", "SPANSTREAM_MAX_BATCH_WAIT_MS": "0"}),
    "take20-wait2": (20, {"SPANSTREAM_BATCH_POLICY": "fixed", "SPANSTREAM_MAX_BATCH_WAIT_MS": "2"}),
}


def percentiles(values: list[float]) -> dict[str, float]:
    if len(values) < 2:
        return {"p50": float("nan"), "p95": float("nan"), "p99": float("nan")}
    q = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50": q[49], "p95": q[94], "p99": q[98]}


def schedule(rate: float, seconds: float, arrival: str, seed: int) -> list[float]:
    """Send times (s from the start) for ``rate`` events/s over ``seconds``."""
    if arrival == "constant":
        return [i / rate for i in range(int(rate * seconds))]
    rng, t, out = random.Random(seed), 0.0, []
    while True:
        t += rng.expovariate(rate)
        if t >= seconds:
            return out
        out.append(t)


def _pinned(cpu: int, argv: list[str]) -> list[str]:
    return ["taskset", "-c", str(cpu), *argv]


def _spawn_worker(args, policy: str, bootstrap: str, inp: str, out: str, dlq: str, workdir: Path):
    from devtools.localkafka import free_port

    take_ms, env = POLICIES[policy]
    config = workdir / f"pipelines-{policy}.toml"
    config.write_text(f'[[pipelines]]\nname = "latency"\ninput_topics = ["{inp}"]\noutput_topic = "{out}"\n'
                      f'dead_letter_topic = "{dlq}"\nlabels = {json.dumps(LABELS)}\nthreshold = 0.5\n'
                      + (f"max_wait_ms = {take_ms}\n" if take_ms is not None else ""))
    group = f"latency-{uuid.uuid4().hex[:8]}"
    cmd = [sys.executable, "-m", "stream", "worker", "--config", str(config), "--bootstrap", bootstrap,
           "--group-id", group, "--http-port", str(free_port()), "--data-dir", str(workdir / f"data-{policy}"),
           "--loglevel", "warning", "--variant", args.variant]
    if args.model:
        cmd += ["--model", str(args.model)]
    log = open(workdir / f"worker-{policy}.log", "wb")
    worker = subprocess.Popen(_pinned(0, cmd), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                              env={**os.environ, **env})
    return group, worker


class Harness:
    """One producer and one output reader for a policy's whole run (ids carry the point's name)."""

    def __init__(self, bootstrap: str, inp: str, outs: list[str]):
        self.bootstrap, self.inp, self.outs = bootstrap, inp, outs
        self.sent: dict[str, float] = {}
        self.seen: dict[str, float] = {}
        self._reader: asyncio.Task | None = None

    async def start(self) -> None:
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

        self.producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all", enable_idempotence=True,
                                         linger_ms=0)
        await self.producer.start()
        self.consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
        await self.consumer.start()
        parts = [TopicPartition(t, p) for t in self.outs for p in await _partitions(self.consumer, t)]
        self.consumer.assign(parts)
        await self.consumer.seek_to_end(*parts)
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        while True:
            for records in (await self.consumer.getmany(timeout_ms=200)).values():
                for r in records:
                    self.seen[str(orjson.loads(r.value).get("id", ""))] = r.timestamp / 1000

    async def stop(self) -> None:
        self._reader.cancel()
        await self.producer.stop()
        await self.consumer.stop()

    async def backlog(self, prefix: str, n: int, timeout: float) -> float:
        """Produce ``n`` events at once; the output rate between the 10th and 90th percentile."""
        ids = [f"{prefix}-{i}" for i in range(n)]
        futures = []
        for i, event in zip(ids, tweets(n)):
            futures.append(await self.producer.send(self.inp, orjson.dumps({**event, "id": i}), key=i.encode()))
        await asyncio.gather(*futures)
        await self._until(ids, timeout)
        stamps = sorted(self.seen[i] for i in ids)
        lo, hi = stamps[n // 10], stamps[n * 9 // 10]
        return (n * 8 // 10) / (hi - lo)

    async def _until(self, ids: list[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while any(i not in self.seen for i in ids):
            if time.monotonic() > deadline:
                raise SystemExit(f"{sum(i not in self.seen for i in ids)} outputs missing after {timeout:g}s")
            await asyncio.sleep(0.2)

    async def open_loop(self, prefix: str, rate: float, arrival: str, window: float, max_windows: int,
                        seed: int) -> dict:
        """Offer ``rate`` events/s until the last three windows agree (or ``max_windows``)."""
        texts = tweets(64)
        times = schedule(rate, window * max_windows, arrival, seed)
        start = time.time() + 0.2
        ids: list[str] = []
        futures = []
        windows: list[dict] = []
        stable = False
        for k, t in enumerate(times):
            at = start + t
            delay = at - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            i = f"{prefix}-{k}"
            ids.append(i)
            self.sent[i] = at
            futures.append(await self.producer.send(self.inp, orjson.dumps({**texts[k % len(texts)], "id": i}),
                                                    key=i.encode(), timestamp_ms=int(at * 1000)))
            w = int(t // window)
            if w >= len(windows) + 1 and w >= 1:  # window w-1 is over (its outputs may still come)
                windows.append({"ids": [j for j, s in zip(ids, times) if (w - 1) * window <= s < w * window]})
                if len(windows) >= 4 and _agree(self, windows[-4:-1], window):
                    stable = True
                    break
        await asyncio.gather(*futures)
        counted = [w["ids"] for w in windows[-4:-1]] if stable else [w["ids"] for w in windows[-3:]]
        await self._until(ids, 120 + 2 * len(ids) / max(rate, 1))
        lat = [1000 * (self.seen[i] - self.sent[i]) for ws in counted for i in ws]
        first = min(self.sent[i] for ws in counted for i in ws)
        last_out = max(self.seen[i] for ws in counted for i in ws)
        return {"offered_per_s": rate, "arrival": arrival, "sent": len(ids), "windows": len(windows),
                "stable": stable, "achieved_per_s": sum(map(len, counted)) / max(last_out - first, 1e-9),
                **percentiles(lat)}


def _agree(h: Harness, last3: list[dict], window: float) -> bool:
    """perf_analyzer's rule on three windows whose outputs are in: p50 and count within 10% of their mean."""
    p50s = []
    for w in last3:
        lat = [h.seen[i] - h.sent[i] for i in w["ids"] if i in h.seen]
        if len(lat) < max(5, 0.9 * len(w["ids"])):
            return False
        p50s.append(statistics.median(lat))
    counts = [sum(i in h.seen for i in w["ids"]) for w in last3]
    mean_p50, mean_n = statistics.mean(p50s), statistics.mean(counts)
    return all(abs(p - mean_p50) <= 0.1 * mean_p50 for p in p50s) and all(abs(n - mean_n) <= 0.1 * mean_n
                                                                          for n in counts)


async def _kafka_policy(args, policy: str, bootstrap: str, workdir: Path, rates: list[float] | None) -> dict:
    inp, out, dlq = await _topics(bootstrap, args.partitions)
    group, worker = _spawn_worker(args, policy, bootstrap, inp, out, dlq, workdir)
    h = Harness(bootstrap, inp, [out, dlq])
    try:
        await _wait_group(bootstrap, group, 1)
        await h.start()
        await h.backlog("warm", 200, 300)
        capacity = await h.backlog("cap", args.capacity_n, 600)
        rates = rates or [f * capacity for f in args.fractions]
        points = []
        for arrival in args.arrivals:
            for f, rate in zip(args.fractions, rates):
                point = await h.open_loop(f"{arrival}-{f}", rate, arrival, args.window, args.max_windows, seed=7)
                point["fraction"] = f
                points.append(point)
                print(f"  {policy} {arrival} {f:.2f} ({rate:.1f}/s): p50 {point['p50']:.0f} p95 {point['p95']:.0f} "
                      f"p99 {point['p99']:.0f} ms, {point['achieved_per_s']:.1f}/s, stable={point['stable']}",
                      file=sys.stderr, flush=True)
                await asyncio.sleep(1.0)
        return {"policy": policy, "capacity_per_s": capacity, "rates": rates, "points": points}
    finally:
        await h.stop()
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(60)
        except subprocess.TimeoutExpired:
            worker.kill()


def _http_policy(args, policy: str) -> dict:
    from tests.serve_harness import ServeProc

    _, env = POLICIES[policy]
    os.sched_setaffinity(0, {0})  # the server inherits core 0 (its ORT threads follow its CPU quota)
    try:
        server = ServeProc(model=args.model_path, env={**env, "SPANSTREAM_MODEL_VARIANT": args.variant}).start(timeout=180)
    finally:
        os.sched_setaffinity(0, {1})
    try:
        return {"policy": policy, "points": [asyncio.run(_closed_loop(server.url, c, args.http_seconds))
                                              for c in args.concurrency]}
    finally:
        server.stop()


async def _closed_loop(url: str, concurrency: int, seconds: float) -> dict:
    import aiohttp

    texts = tweets(64)
    lat: list[float] = []
    codes: dict[int, int] = {}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        async def one(k: int) -> None:
            t = time.perf_counter()
            async with session.post(url + "/v1/extract", json={"text": texts[k % 64]["text"], "labels": LABELS}) as r:
                await r.read()
                codes[r.status] = codes.get(r.status, 0) + 1
            if record:
                lat.append(1000 * (time.perf_counter() - t))

        async def client(c: int) -> None:
            k = c
            while time.perf_counter() < end:
                await one(k)
                k += concurrency

        record = False
        end = time.perf_counter() + 2.0  # warm-up
        await asyncio.gather(*(client(c) for c in range(concurrency)))
        record, started = True, time.perf_counter()
        end = started + seconds
        await asyncio.gather(*(client(c) for c in range(concurrency)))
        wall = time.perf_counter() - started
    return {"concurrency": concurrency, "requests": len(lat), "per_s": len(lat) / wall, "codes": codes,
            "mean": statistics.fmean(lat) if lat else float("nan"), **percentiles(lat)}


def _engine(args, workdir: Path) -> dict:
    jsonl = workdir / "short.jsonl"
    jsonl.write_bytes(b"".join(orjson.dumps({"text": e["text"]}) + b"\n" for e in tweets(64)))
    cmd = [sys.executable, "-m", "stream", "bench", "--texts", str(jsonl), "--labels", ",".join(LABELS),
           "--threads", "1", "--loads", ",".join(map(str, args.fractions)), "--json", "--seconds", "15",
           "--variant", args.variant]
    if args.model:
        cmd += ["--model", str(args.model)]
    return json.loads(subprocess.run(_pinned(0, cmd), cwd=ROOT, check=True, capture_output=True).stdout)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.latency", description=__doc__.split("\n")[0])
    p.add_argument("--policies", default="adaptive,take50-wait5,take5-wait5,take5-wait0",
                   help=f"comma-separated, of: {', '.join(POLICIES)}")
    p.add_argument("--fractions", type=lambda s: [float(x) for x in s.split(",")], default=[0.25, 0.5, 0.8, 1.0])
    p.add_argument("--arrivals", type=lambda s: s.split(","), default=["constant", "poisson"])
    p.add_argument("--window", type=float, default=5.0, help="seconds per measurement window")
    p.add_argument("--max-windows", type=int, default=8)
    p.add_argument("--capacity-n", type=int, default=2000)
    p.add_argument("--partitions", type=int, default=8)
    p.add_argument("--http", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--kafka", action=argparse.BooleanOptionalAction, default=True,
                   help="the Kafka open-loop points (--no-kafka: the engine and HTTP only)")
    p.add_argument("--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[1, 8, 64])
    p.add_argument("--http-seconds", type=float, default=15)
    p.add_argument("--model", default=None, help="model folder (default: the embedded model)")
    p.add_argument("--variant", choices=["auto", "fp32", "int8"], default="auto")
    args = p.parse_args(argv)
    if len(os.sched_getaffinity(0)) < 2:
        raise SystemExit("needs two CPUs: the worker on one, broker and harness on the other")
    from stream.engine import default_model_path

    args.model_path = Path(args.model) if args.model else default_model_path()
    policies = args.policies.split(",")
    result: dict = {"fractions": args.fractions, "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                             text=True).stdout.strip()}
    with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp:
        workdir = Path(tmp)
        result["engine"] = _engine(args, workdir)
        os.sched_setaffinity(0, {1})
        if args.kafka:
            result["kafka"] = _kafka(args, policies, workdir)
        if args.http:
            result["http"] = [_http_policy(args, policy) for policy in policies]
    (HERE / "out").mkdir(exist_ok=True)
    (HERE / "out" / "latency.json").write_text(json.dumps(result, indent=2))
    print(report(result))
    return 0


def _kafka(args, policies: list[str], workdir: Path) -> list[dict]:
    from devtools.localkafka import KafkaCluster

    cluster = KafkaCluster.create(workdir / "kafka", size=1)
    cluster.start()
    subprocess.run(["taskset", "-a", "-p", "-c", "1", str(cluster.nodes[0].process.pid)], check=True,
                   stdout=subprocess.DEVNULL)
    try:
        kafka, rates = [], None
        for policy in policies:
            run = asyncio.run(_kafka_policy(args, policy, cluster.bootstrap, workdir, rates))
            rates = rates or run["rates"]
            kafka.append(run)
        return kafka
    finally:
        cluster.stop()


def _engine_cell(e: dict | None) -> str:
    return f"{e['p50_ms']:.0f} / {e['p99_ms']:.0f}" if e else ""


def report(result: dict) -> str:
    lines = [f"Code of {result['commit']}. Raw engine (`spanstream bench`, 1 thread, core 0): "
             f"{result['engine']['texts_per_s']:.1f} texts/s."]
    eng = dict(zip((round(f, 2) for f in result["fractions"]), result["engine"].get("latency", [])))
    lines += ["", "| policy | arrivals | load | offered /s | achieved /s | p50 ms | p95 ms | p99 ms | stable "
              "| engine p50 / p99 ms at that load |", "|---|---|---|---|---|---|---|---|---|---|"]
    for run in result.get("kafka", []):
        for pt in run["points"]:
            e = eng.get(round(pt["fraction"], 2))
            lines.append(f"| {run['policy']} | {pt['arrival']} | {pt['fraction']:.2f} | {pt['offered_per_s']:.1f} "
                         f"| {pt['achieved_per_s']:.1f} | {pt['p50']:.0f} | {pt['p95']:.0f} | {pt['p99']:.0f} "
                         f"| {'yes' if pt['stable'] else 'no'} "
                         f"| {_engine_cell(e)} |")
    lines.append("")
    lines.append("Capacity (backlog, 1 worker): " + ", ".join(f"{r['policy']} {r['capacity_per_s']:.1f}/s"
                                                              for r in result.get("kafka", [])))
    if result.get("http"):
        lines += ["", "| policy | concurrency | requests/s | mean ms | p50 ms | p95 ms | p99 ms | statuses |",
                  "|---|---|---|---|---|---|---|---|"]
        for run in result["http"]:
            for pt in run["points"]:
                lines.append(f"| {run['policy']} | {pt['concurrency']} | {pt['per_s']:.1f} | {pt['mean']:.0f} "
                             f"| {pt['p50']:.0f} "
                             f"| {pt['p95']:.0f} | {pt['p99']:.0f} | {pt['codes']} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
