"""`spanstream bench`: what one replica of a model does on this machine, and the replicas, CPUs and
partitions a target rate needs.

It loads the model the way a worker does (settings: ``SPANSTREAM_*`` and ``SPANSTREAM_CONFIG``;
the batching settings and the inference threads are the worker's), measures the engine through
the inference queue with the user's texts (JSONL ``{"text", "labels"?, "schema"?}`` per line) or a
built-in sample, then offers single-text requests at fractions of the measured rate and reports
latency. A replica's rate through Kafka is the engine's × ``--worker-efficiency`` (measured:
bench/WORKER.md).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import orjson

from stream.errors import ConfigError, InvalidInput, ModelLoadError
from stream.serving.capacity import WORKER_EFFICIENCY

SHORT_LABELS = ("person", "organization", "location", "date", "money")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="measure a replica of a model on this machine; replicas for a target rate")
    p.add_argument("--model", default=None, help="model folder (default: SPANSTREAM_MODEL_PATH or the embedded model)")
    p.add_argument("--variant", choices=["auto", "fp32", "int8"], default=None)
    p.add_argument("--threads", type=int, default=None,
                   help="inference threads = the replica's CPUs (default: SPANSTREAM_INFERENCE_THREADS or the CPU quota)")
    p.add_argument("--texts", type=Path, default=None, help="JSONL of {\"text\", \"labels\"?, \"schema\"?} (default: --sample)")
    p.add_argument("--sample", choices=["short", "paragraph"], default="short",
                   help="built-in texts: one sentence (~20 words) or six (~120 words) per event")
    p.add_argument("--labels", default=",".join(SHORT_LABELS), help="labels for lines that carry none")
    p.add_argument("--schema", type=Path, default=None, help="GLiNER2 models: a schema JSON for lines that carry none")
    p.add_argument("--threshold", type=float, default=0.5)
    p.add_argument("--seconds", type=float, default=20, help="throughput measurement")
    p.add_argument("--latency-seconds", type=float, default=10, help="each latency measurement")
    p.add_argument("--latency-texts", type=int, default=100,
                   help="each latency measurement lasts until at least this many texts have arrived")
    p.add_argument("--loads", default="0.5,0.8", help="offered rates for latency, as fractions of the measured rate")
    p.add_argument("--target-rate", type=float, default=None, help="events/s to plan replicas for")
    p.add_argument("--worker-efficiency", type=float, default=WORKER_EFFICIENCY)
    p.add_argument("--utilisation", type=float, default=0.8, help="planned share of a replica's rate")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.set_defaults(func=run)


def _texts(args: argparse.Namespace) -> list[dict]:
    if args.texts is None:
        from stream.serving.sample_texts import paragraphs, short_texts

        return [{"text": t} for t in (short_texts() if args.sample == "short" else paragraphs())]
    lines = []
    for number, raw in enumerate(args.texts.read_bytes().splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ConfigError(f"{args.texts}:{number}: invalid JSON: {exc}") from None
        if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
            raise ConfigError(f"{args.texts}:{number}: each line needs a string 'text'")
        lines.append(obj)
    if not lines:
        raise ConfigError(f"{args.texts}: no texts")
    return lines


def _requests(queue, lines: list[dict], args: argparse.Namespace) -> tuple[list[str], list, list]:
    """Texts, their labels or parsed schemas, and decode parameters, each checked before any is queued."""
    from stream.engine import DecodeParams

    engine = queue.engine
    gliner2 = getattr(engine, "family", None) == "gliner2"
    default_schema = orjson.loads(args.schema.read_bytes()) if args.schema else None
    default_labels = tuple(x.strip() for x in args.labels.split(",") if x.strip())
    texts, asks, params = [], [], []
    for i, line in enumerate(lines):
        schema = line.get("schema", default_schema)
        if schema is not None:
            if not gliner2:
                raise ConfigError(f"a schema needs a GLiNER2 model; {engine.info.name} is a {engine.info.family} model")
            from stream.engine.gliner2.decode import Options

            try:
                asks.append(engine.check_schema(schema))
            except InvalidInput as exc:
                raise ConfigError(f"text {i + 1}: {exc.message}") from None
            params.append(Options(args.threshold, True, True, None))
        else:
            labels = tuple(dict.fromkeys(line.get("labels") or default_labels))
            try:
                queue.check_labels(labels)
            except InvalidInput as exc:
                raise ConfigError(f"text {i + 1}: {exc.message}") from None
            asks.append(labels)
            params.append(DecodeParams(args.threshold))
        texts.append(line["text"])
    return texts, asks, params


async def _measure(queue, texts, asks, params, args: argparse.Namespace, threads: int) -> dict:
    from stream.serving.capacity import measure_latency, measure_throughput

    throughput = await measure_throughput(queue, texts, asks, params, seconds=args.seconds, threads=threads,
                                          request_texts=min(32, len(texts)))
    latencies = []
    for load in (float(x) for x in args.loads.split(",") if x.strip()):
        latencies.append(await measure_latency(queue, texts, asks, params, rate=load * throughput.texts_per_s,
                                               seconds=args.latency_seconds, min_texts=args.latency_texts))
    await queue.close()
    return {"throughput": throughput, "latencies": latencies}


def run(args: argparse.Namespace) -> int:
    from stream.config import load_settings
    from stream.engine.session import cpu_quota
    from stream.metrics import Metrics
    from stream.runtime import limit_blas_threads, queue_limits
    from stream.serving import InferenceQueue, get_engine
    from stream.serving.capacity import plan

    try:
        settings = load_settings(model_path=args.model, model_variant=args.variant, inference_threads=args.threads)
        threads = settings.inference_threads or cpu_quota()
        limit_blas_threads(threads)
        lines = _texts(args)
        engine = get_engine(settings.model_path, settings.model_variant, threads, settings.cache_dir)
        queue = InferenceQueue(engine, Metrics.create(), queue_limits(settings))
        texts, asks, params = _requests(queue, lines, args)
    except (ConfigError, ModelLoadError) as exc:
        print(f"spanstream bench: {exc}", file=sys.stderr)
        return 2
    measured = asyncio.run(_measure(queue, texts, asks, params, args, threads))
    t = measured["throughput"]
    if t.failed:
        print(f"spanstream bench: {t.failed} of {t.texts} texts failed in the engine", file=sys.stderr)
        return 1
    capacity = plan(args.target_rate, t.texts_per_s, threads, worker_efficiency=args.worker_efficiency,
                    utilisation=args.utilisation) if args.target_rate else None
    report = {
        "model": engine.info.name, "family": engine.info.family, "variant": engine.info.variant,
        "threads": threads, "texts": len(texts), "mean_chars": round(sum(map(len, texts)) / len(texts)),
        "max_batch_wait_ms": settings.max_batch_wait_ms,
        "texts_per_s": round(t.texts_per_s, 2), "texts_per_core_s": round(t.texts_per_s / threads, 2),
        "cpu_ms_per_text": round(t.cpu_ms_per_text, 3), "measured_texts": t.texts, "measured_s": round(t.seconds, 2),
        "latency": [{"offered_per_s": round(x.offered_per_s, 2), "texts": x.texts, "p50_ms": round(1000 * x.p50_s, 1),
                     "p95_ms": round(1000 * x.p95_s, 1), "p99_ms": round(1000 * x.p99_s, 1)}
                    for x in measured["latencies"]],
        "plan": None if capacity is None else {
            "target_per_s": capacity.target_per_s, "replica_per_s": round(capacity.replica_per_s, 2),
            "worker_efficiency": args.worker_efficiency, "utilisation": args.utilisation,
            "replicas": capacity.replicas, "cpu_per_replica": capacity.cpu_per_replica,
            "partitions": capacity.partitions},
    }
    print(orjson.dumps(report).decode() if args.json else _table(report))
    return 0


def _table(r: dict) -> str:
    lines = [f"model {r['model']} ({r['family']}, {r['variant']}), {r['threads']} inference thread(s), "
             f"{r['texts']} texts of {r['mean_chars']} chars on average, batch wait {r['max_batch_wait_ms']} ms",
             f"  engine through the queue: {r['texts_per_s']} texts/s = {r['texts_per_core_s']} per core "
             f"({r['cpu_ms_per_text']} ms of process CPU per text; {r['measured_texts']} texts in {r['measured_s']} s)"]
    for x in r["latency"]:
        lines.append(f"  latency at {x['offered_per_s']} texts/s offered (Poisson, one text per request): "
                     f"p50 {x['p50_ms']} ms, p95 {x['p95_ms']} ms, p99 {x['p99_ms']} ms ({x['texts']} texts)")
    p = r["plan"]
    if p:
        lines.append(f"  for {p['target_per_s']:g} events/s: {p['replicas']} replicas × {p['cpu_per_replica']} CPU "
                     f"(each planned at {p['replica_per_s']} events/s = measured × worker efficiency "
                     f"{p['worker_efficiency']} × utilisation {p['utilisation']}), input topic with at least "
                     f"{p['partitions']} partitions (KEDA maxReplicas ≤ partitions)")
    return "\n".join(lines)
