"""`python -m devtools kafka up|down|status`: a local single-node broker for `make run`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from devtools.localkafka import KafkaCluster


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("kafka", help="run a local Kafka broker from Maven Central jars (no Docker)")
    p.add_argument("action", choices=["up", "down", "status"])
    p.add_argument("--data-dir", type=Path, default=Path(".kafka"))
    p.add_argument("--port", type=int, default=9092, help="client port; the controller uses port+1")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cluster = KafkaCluster.create(args.data_dir.resolve(), 1, ports=[(args.port, args.port + 1)])
    node = cluster.nodes[0]
    if args.action == "up":
        if node.is_running():
            print(f"kafka already running at {cluster.bootstrap}")
            cluster.wait_ready()
            return 0
        try:
            cluster.start()
        except RuntimeError as exc:
            print(f"spanstream kafka up: {exc}", file=sys.stderr)
            return 1
        print(f"kafka ready at {cluster.bootstrap} (data in {args.data_dir})")
    elif args.action == "down":
        running = node.is_running()
        cluster.stop()
        print("kafka stopped" if running else "kafka was not running")
    else:
        print(f"kafka {'running' if node.is_running() else 'stopped'} at {cluster.bootstrap}")
    return 0
