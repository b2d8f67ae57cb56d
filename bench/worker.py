"""`make bench-worker`: a worker through Kafka against the raw engine, same texts, same threads, one run.

    python -m bench.worker [--n 2000] [--partitions 4] [--model DIR] [--py-spy FILE]

The engine side is `spanstream extract`'s own loop (``extract_stream``) on the texts as JSONL,
timed after model load and a warm-up. The worker side is a real `spanstream worker` process: all
events are produced first, then the worker starts; its rate is counted from the first output
record to the last (broker timestamps set by the worker's producer), as a user would see it.
Both run in their own process with the engine's default thread count. Outputs are compared
text by text (same entities: start, end, label).

Uses ``KAFKA_BOOTSTRAP`` when set; otherwise starts a single-node broker from the Maven jars.
Writes bench/out/worker.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import orjson

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
LABELS = ["person", "organization", "location", "date", "money"]


def corpus(n: int, seed: int = 7) -> list[dict]:
    """Mixed traffic: 85% tweet-length sentences, 13.5% paragraphs, 1.5% long documents."""
    from bench.corpus import long_documents, paragraphs, sentences

    n_long = max(1, n * 15 // 1000)
    n_par = n * 135 // 1000
    texts = sentences(n - n_long - n_par) + paragraphs(n_par) + long_documents(n_long)
    random.Random(seed).shuffle(texts)
    return [{"id": f"t{i}", "text": t} for i, t in enumerate(texts)]


def engine_main(args: argparse.Namespace) -> None:
    """Subprocess: time `spanstream extract`'s loop on the JSONL file (after load and warm-up)."""
    import io

    from stream.cli.extract import extract_stream
    from stream.engine import Extractor

    extractor = Extractor.load(args.model, variant=args.variant)
    from stream.engine.batching import (
        DEFAULT_LOOKAHEAD,
        DEFAULT_MAX_ROWS,
        DEFAULT_MAX_TOKENS,
    )

    ns = argparse.Namespace(labels=",".join(LABELS), threshold=0.5, nested=False, multi_label=False,
                            batch_size=DEFAULT_MAX_ROWS, max_batch_tokens=DEFAULT_MAX_TOKENS,
                            lookahead=DEFAULT_LOOKAHEAD)
    data = Path(args.engine).read_bytes()
    extract_stream(extractor, io.BytesIO(b"\n".join(data.splitlines()[:32]) + b"\n"), io.BytesIO(), ns)  # warm-up
    out = io.BytesIO()
    started, cpu = time.perf_counter(), time.process_time()
    extract_stream(extractor, io.BytesIO(data), out, ns)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    Path(args.engine_out).write_bytes(out.getvalue())
    print(json.dumps({"seconds": seconds, "cpu_seconds": cpu, "variant": extractor.info.variant,
                      "threads": extractor.engine.session.threads}))


def _broker(workdir: Path):
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP")
    if bootstrap:
        return bootstrap, None
    from devtools.localkafka import KafkaCluster

    cluster = KafkaCluster.create(workdir / "kafka", size=1)
    cluster.start()
    return cluster.bootstrap, cluster


async def _topics(bootstrap: str, partitions: int, prefix: str = "bench") -> tuple[str, str, str]:
    """Fresh input and output topics of ``partitions`` partitions and a one-partition dead-letter topic."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    run = uuid.uuid4().hex[:8]
    names = (f"{prefix}-in-{run}", f"{prefix}-out-{run}", f"{prefix}-dlq-{run}")
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(names[0], partitions, 1), NewTopic(names[1], partitions, 1),
                                   NewTopic(names[2], 1, 1)])
    finally:
        await admin.close()
    await asyncio.sleep(1.0)
    return names


async def _produce(bootstrap: str, topic: str, events: list[dict]) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=20)
    await producer.start()
    try:
        futures = [await producer.send(topic, orjson.dumps(e), key=e["id"].encode()) for e in events]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def _collect(bootstrap: str, topics: list[str], n: int, timeout: float) -> list:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                group_id=f"bench-reader-{uuid.uuid4().hex[:8]}", enable_auto_commit=False)
    await consumer.start()
    out: list = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < n and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                out.extend(records)
    finally:
        await consumer.stop()
    return out


def _entities(records: list[dict]) -> dict[str, set]:
    return {str(r["id"]): {(e["start"], e["end"], e["label"]) for e in r.get("entities", [])} for r in records}


def run_worker(args, events: list[dict], workdir: Path) -> dict:
    bootstrap, cluster = _broker(workdir)
    try:
        inp, out, dlq = asyncio.run(_topics(bootstrap, args.partitions))
        asyncio.run(_produce(bootstrap, inp, events))
        config = workdir / "pipelines.toml"
        config.write_text(f'[[pipelines]]\nname = "bench"\ninput_topics = ["{inp}"]\noutput_topic = "{out}"\n'
                          f'dead_letter_topic = "{dlq}"\nlabels = {json.dumps(LABELS)}\nthreshold = 0.5\n')
        from devtools.localkafka import free_port

        cmd = [sys.executable, "-m", "stream", "worker", "--config", str(config), "--bootstrap", bootstrap,
               "--group-id", f"bench-{uuid.uuid4().hex[:8]}", "--http-port", str(free_port()),
               "--data-dir", str(workdir / "data"), "--loglevel", "warning", "--variant", args.variant]
        if args.model:
            cmd += ["--model", str(args.model)]
        log = open(workdir / "worker.log", "wb")
        worker = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        spy = None
        if args.py_spy:
            spy = subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "--format", "raw",
                                    "--rate", "50", "-o", args.py_spy, "--pid", str(worker.pid)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            records = asyncio.run(_collect(bootstrap, [out, dlq], len(events), args.timeout))
        finally:
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                spy.wait(60)
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(60)
            except subprocess.TimeoutExpired:
                worker.kill()
        if len(records) < len(events):
            raise SystemExit(f"worker delivered {len(records)} of {len(events)} outputs; see {workdir}/worker.log")
        stamps = sorted(r.timestamp for r in records)
        seconds = (stamps[-1] - stamps[0]) / 1000
        values = [orjson.loads(r.value) for r in records]
        return {"seconds": seconds, "outputs": values, "dead_letters": sum(r.topic == dlq for r in records)}
    finally:
        if cluster is not None:
            cluster.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.worker", description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--partitions", type=int, default=4)
    p.add_argument("--model", default=None, help="model folder (default: the embedded model)")
    p.add_argument("--variant", choices=["auto", "fp32", "int8"], default="auto",
                   help="fp32 gives identical outputs; int8 (dynamic quantization) depends on batch-mates")
    p.add_argument("--timeout", type=float, default=900)
    p.add_argument("--py-spy", default=None, help="record the worker with py-spy (raw stacks) into this file")
    p.add_argument("--engine", help=argparse.SUPPRESS)
    p.add_argument("--engine-out", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.engine:
        engine_main(args)
        return 0
    events = corpus(args.n)
    with tempfile.TemporaryDirectory(prefix="bench-worker-") as tmp:
        workdir = Path(tmp)
        jsonl = workdir / "texts.jsonl"
        jsonl.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
        cmd = [sys.executable, "-m", "bench.worker", "--engine", str(jsonl), "--engine-out", str(workdir / "e.jsonl"),
               "--variant", args.variant]
        if args.model:
            cmd += ["--model", str(args.model)]
        engine = json.loads(subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True).stdout.splitlines()[-1])
        engine_out = _entities([orjson.loads(line) for line in (workdir / "e.jsonl").read_bytes().splitlines()])
        worker = run_worker(args, events, workdir)
    worker_out = _entities([o for o in worker["outputs"] if "entities" in o])
    same = sum(engine_out.get(k) == v for k, v in worker_out.items())
    n = len(events)
    result = {
        "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                 text=True).stdout.strip(),
        "texts": n, "partitions": args.partitions, "variant": engine["variant"], "threads": engine["threads"],
        "engine_events_per_s": n / engine["seconds"], "worker_events_per_s": n / worker["seconds"],
        "dead_letters": worker["dead_letters"], "same_entities": same, "compared": len(worker_out),
    }
    result["ratio"] = result["worker_events_per_s"] / result["engine_events_per_s"]
    (HERE / "out").mkdir(exist_ok=True)
    (HERE / "out" / "worker.json").write_text(json.dumps(result, indent=2))
    print("| texts | variant | threads | `spanstream extract` events/s | worker events/s | worker / engine "
          "| same entities |")
    print("|---|---|---|---|---|---|---|")
    print(f"| {n} | {result['variant']} | {result['threads']} | {result['engine_events_per_s']:.1f} "
          f"| {result['worker_events_per_s']:.1f} | **{result['ratio']:.2f}** "
          f"| {same}/{len(worker_out)} |")
    print(f"(commit {result['commit']}; dead letters {worker['dead_letters']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
