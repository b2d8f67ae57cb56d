"""`spanstream sink`: store entity and extraction events in PostgreSQL (its own consumer group)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from stream.errors import ConfigError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sink", help="store entity and extraction events in PostgreSQL, one row per input event")
    p.add_argument("--bootstrap", default=None, help="Kafka bootstrap servers (or SPANSTREAM_KAFKA_BOOTSTRAP)")
    p.add_argument("--topics", default=None, help="event topics, comma-separated (or SPANSTREAM_SINK_TOPICS)")
    p.add_argument("--dead-letter-topic", default=None, help="or SPANSTREAM_SINK_DEAD_LETTER_TOPIC")
    p.add_argument("--group-id", default=None, help="or SPANSTREAM_SINK_GROUP_ID (default spanstream-sink)")
    p.add_argument("--http-port", type=int, default=None, help="probes and /metrics (or SPANSTREAM_HTTP_PORT)")
    p.add_argument("--no-http", action="store_true")
    p.add_argument("--loglevel", default="info")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from stream.config import load_settings
    from stream.sink.runner import serve

    logging.basicConfig(level=args.loglevel.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings(kafka_bootstrap=args.bootstrap, sink_topics=args.topics,
                                 sink_dead_letter_topic=args.dead_letter_topic, sink_group_id=args.group_id,
                                 http_port=args.http_port, http_enabled=False if args.no_http else None)
        if not settings.sink_dsn:
            raise ConfigError("no database: set SPANSTREAM_SINK_DSN (or SPANSTREAM_SINK_DSN_FILE)")
        if not settings.sink_topics:
            raise ConfigError("no topics: pass --topics or set SPANSTREAM_SINK_TOPICS")
    except ConfigError as exc:
        print(f"spanstream sink: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(serve(settings))
