"""`spanstream produce`, `spanstream tail`, `spanstream topics create`: everyday Kafka chores."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

import orjson


def _bootstrap_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bootstrap", default=os.environ.get("SPANSTREAM_KAFKA_BOOTSTRAP",
                                                         os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092")))


def _client(bootstrap: str) -> dict:
    """Connection arguments: ``--bootstrap``, and security from the ``SPANSTREAM_KAFKA_*`` settings
    every spanstream Kafka client uses (``stream.kafka.client``)."""
    from stream.config import load_settings
    from stream.kafka.client import kafka_client_kwargs

    kw = kafka_client_kwargs(load_settings(), bootstrap)
    kw.pop("client_id", None)  # a CLI is not the worker: keep aiokafka's own id in broker logs
    return kw


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("produce", help="publish JSONL (or plain text lines) to a topic")
    _bootstrap_arg(p)
    p.add_argument("--topic", required=True)
    p.add_argument("--input", type=Path, default=None, help="file (default: stdin)")
    p.add_argument("--format", choices=["auto", "jsonl", "lines", "raw"], default="auto",
                   help="auto: JSON objects as they are, other lines as {\"text\": line}; raw: line bytes as is")
    p.add_argument("--key-field", default=None, help="use this JSON field as the record key")
    p.set_defaults(func=run_produce)

    t = sub.add_parser("tail", help="print entity events (or any records) from a topic")
    _bootstrap_arg(t)
    t.add_argument("--topic", required=True)
    t.add_argument("--json", action="store_true", help="print raw JSON values")
    t.add_argument("--from-beginning", action="store_true")
    t.add_argument("--max", type=int, default=0, help="stop after N records (0: never)")
    t.add_argument("--timeout", type=float, default=0, help="stop after S seconds without records (0: never)")
    t.set_defaults(func=run_tail)

    c = sub.add_parser("topics", help="create topics (idempotent)")
    _bootstrap_arg(c)
    c.add_argument("action", choices=["create"])
    c.add_argument("names", nargs="+")
    c.add_argument("--partitions", type=int, default=1)
    c.add_argument("--replication", type=int, default=1)
    c.set_defaults(func=run_topics)


def encode_line(line: str, fmt: str, key_field: str | None) -> tuple[bytes | None, bytes]:
    if fmt == "raw":
        return None, line.encode()
    if fmt in ("auto", "jsonl") and line.lstrip().startswith("{"):
        try:
            obj = orjson.loads(line)
            key = obj.get(key_field) if key_field and isinstance(obj, dict) else None
            return (str(key).encode() if key is not None else None), orjson.dumps(obj)
        except orjson.JSONDecodeError:
            if fmt == "jsonl":
                raise
    if fmt == "jsonl":
        raise ValueError(f"not a JSON object: {line[:80]!r}")
    return None, orjson.dumps({"text": line})


async def _produce(args) -> int:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(**_client(args.bootstrap), acks="all", enable_idempotence=True, linger_ms=10)
    await producer.start()
    sent = failed = 0
    try:
        source = open(args.input, encoding="utf-8") if args.input else sys.stdin
        futures = []
        with source:
            for number, line in enumerate(source, 1):
                line = line.rstrip("\n")
                if not line.strip():
                    continue
                try:
                    key, value = encode_line(line, args.format, args.key_field)
                except ValueError as exc:
                    print(f"line {number}: {exc}", file=sys.stderr)
                    failed += 1
                    continue
                futures.append(await producer.send(args.topic, value, key=key))
                sent += 1
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    print(f"produced {sent} records to {args.topic}", file=sys.stderr)
    return 1 if failed else 0


def run_produce(args) -> int:
    return asyncio.run(_produce(args))


def _value(v) -> str:
    """A span, choice or class value as text (dicts carry it under "text" or "label")."""
    if isinstance(v, dict):
        return str(v.get("text", v.get("label", "")))
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    return str(v)


def _score(v) -> str:
    return f"{v['confidence']:.2f}" if isinstance(v, dict) and "confidence" in v else ""


def _task(name: str, value) -> str:
    """One task of an extraction event's result on one line."""
    if name == "entities":
        ents = [f"{_value(v)} ({' '.join(filter(None, (label, _score(v))))})"
                for label, vs in value.items() for v in (vs if isinstance(vs, list) else [vs] if vs else [])]
        return "entities: " + (", ".join(ents) or "(none)")
    if name == "relation_extraction":
        rels = [f"{rel}({_value(p['head'])}, {_value(p['tail'])})" if isinstance(p, dict) else f"{rel}({p[0]}, {p[1]})"
                for rel, pairs in value.items() for p in pairs]
        return "relations: " + (", ".join(rels) or "(none)")
    if isinstance(value, list) and value and all(isinstance(v, dict) and "label" not in v for v in value):
        insts = ["{" + ", ".join(f"{k}: {_value(v)}" for k, v in inst.items()) + "}" for inst in value]
        return f"{name}: " + ", ".join(insts)
    if isinstance(value, list):  # a multi-label class list, or a structure with no instance
        return f"{name}: " + (", ".join(_value(v) for v in value) or "(none)")
    return f"{name}: {_value(value)}" + (f" ({_score(value)})" if _score(value) else "")


def format_event(value: bytes) -> str:
    try:
        event = orjson.loads(value)
    except orjson.JSONDecodeError:
        return value.decode("utf-8", "replace")
    if isinstance(event, dict) and isinstance(event.get("result"), dict):
        return f"{event.get('id')}: " + " | ".join(_task(k, v) for k, v in event["result"].items())
    if not isinstance(event, dict) or "entities" not in event:
        if isinstance(event, dict) and "reason" in event:
            return f"DEAD LETTER {event['reason']}: {event.get('message', '')}"
        return value.decode()
    ents = ", ".join(f"{e['text']} ({e['label']} {e['score']:.2f})" for e in event["entities"]) or "(no entities)"
    return f"{event.get('id')}: {ents}"


async def _tail(args) -> int:
    import uuid

    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(args.topic, **_client(args.bootstrap), enable_auto_commit=False,
                                group_id=None if args.from_beginning else f"spanstream-tail-{uuid.uuid4().hex[:8]}",
                                auto_offset_reset="earliest" if args.from_beginning else "latest")
    await consumer.start()
    seen, last = 0, time.monotonic()
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for rec in records:
                    text = rec.value.decode("utf-8", "replace") if args.json else format_event(rec.value)
                    print(text if args.json else f"{rec.topic}[{rec.partition}]@{rec.offset} {text}", flush=True)
                    seen += 1
                    last = time.monotonic()
                    if args.max and seen >= args.max:
                        return 0
            if args.timeout and time.monotonic() - last > args.timeout:
                return 0 if seen else 1
    finally:
        await consumer.stop()


def run_tail(args) -> int:
    return asyncio.run(_tail(args))


async def create_topics(bootstrap: str, names: list[str], partitions: int = 1, replication: int = 1) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

    admin = AIOKafkaAdminClient(**_client(bootstrap))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        new = [NewTopic(n, partitions, replication) for n in names if n not in existing]
        if new:
            try:
                await admin.create_topics(new)
            except TopicAlreadyExistsError:
                pass
    finally:
        await admin.close()


def run_topics(args) -> int:
    asyncio.run(create_topics(args.bootstrap, args.names, args.partitions, args.replication))
    print(f"topics ready: {', '.join(args.names)}", file=sys.stderr)
    return 0
