"""`spanstream worker`: the stream processor (faust worker; HTTP on faust's web server)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from stream.errors import ConfigError, ModelLoadError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("worker", help="consume text events, publish entity events (one consumer group)")
    p.add_argument("--config", type=Path, default=None, help="pipelines TOML (or SPANSTREAM_CONFIG)")
    p.add_argument("--bootstrap", default=None, help="Kafka bootstrap servers (or SPANSTREAM_KAFKA_BOOTSTRAP)")
    p.add_argument("--group-id", default=None)
    p.add_argument("--model", default=None, help="model folder or hf://org/name (default: the embedded model)")
    p.add_argument("--variant", choices=["auto", "fp32", "int8"], default=None)
    p.add_argument("--http-port", type=int, default=None)
    p.add_argument("--no-http", action="store_true")
    p.add_argument("--data-dir", type=Path, default=None)
    p.add_argument("--loglevel", default="info")
    p.set_defaults(func=run)


def build_worker(args: argparse.Namespace):
    """Validate everything and load the model before touching Kafka; return (faust app, runtime)."""
    from stream.config import load_pipelines, load_settings
    from stream.http.server import HttpTimeouts
    from stream.http.server import runner as http_runner
    from stream.kafka.app import build_app
    from stream.runtime import build_runtime

    settings = load_settings(config=args.config, kafka_bootstrap=args.bootstrap, group_id=args.group_id,
                             model_path=args.model, model_variant=args.variant, http_port=args.http_port,
                             http_enabled=False if args.no_http else None, data_dir=args.data_dir)
    if settings.config is None:
        raise ConfigError("no pipelines: pass --config FILE or set SPANSTREAM_CONFIG")
    pipelines = load_pipelines(settings.config)
    app = None
    runtime = build_runtime(settings, pipelines, ready=lambda: consumer_ready(app),
                            default_labels=pipelines[0].labels)
    from stream.kafka.topics import check_output_topics

    # after the pipelines' labels and schemas are checked against the model: a typo'd topic stops the
    # start with its key named, and dead letters are cut to what each dead-letter topic takes
    record_limits = check_output_topics(settings, pipelines)
    for pipeline in runtime.pipelines:
        pipeline.dead_letter_max_bytes = record_limits[pipeline.cfg.dead_letter_topic]
    app = build_app(settings, list(runtime.pipelines))
    if runtime.api is not None:
        runtime.api.install(app.web.web_app)
        # faust's web server, with the head deadline and keep-alive bound serve has
        app.web._runner = http_runner(app.web.web_app, HttpTimeouts(settings.http_header_timeout_s,
                                                                    settings.http_keepalive_timeout_s),
                                      on_refused=runtime.api.count_refused, access_log=None)
    return app, runtime


def consumer_ready(app) -> tuple[bool, str, dict]:
    """Ready once the consumer runs: HTTP never depends on owning a partition. A replica beyond
    the partition count, or one in a rebalance, still serves ``/v1/extract`` (and making it
    unready would stall rollouts and node drains behind the PDB). The body says what it owns."""
    from stream.kafka.coordination import coordinating

    try:
        assignment = app.consumer.assignment()
    except Exception as exc:  # consumer not started yet
        return False, f"consumer not running: {exc}", {"partitions": 0}
    details = {"partitions": len(assignment), "rebalancing": bool(getattr(app, "rebalancing", False)),
               "rebalances": int(getattr(app, "rebalancing_count", 0)),  # since start, the first join included
               "coordinating": coordinating(app.consumer)}  # the group protocol's task runs (else the replica exits)
    if details["rebalancing"]:
        return True, "consumer running; rebalancing", details
    if not assignment:
        return True, "consumer running; no partitions assigned (an idle replica still serves HTTP)", details
    return True, f"consumer running; {len(assignment)} partitions assigned", details


def _exit_after(seconds: float) -> None:
    """The whole shutdown (drain, faust's commit and group leave, producer flush) gets
    ``drain_timeout_s``; past it the process exits non-zero without committing more (Kafka
    redelivers), before an orchestrator's SIGKILL could land mid-commit. faust's own shutdown has
    no bound: with a broker that stopped answering it waited for minutes."""
    import threading

    from stream.kafka.pipeline import fatal

    timer = threading.Timer(seconds, fatal, [f"shutdown did not finish within drain_timeout_s={seconds:g}"])
    timer.daemon = True
    timer.start()


def run(args: argparse.Namespace) -> int:
    try:
        app, runtime = build_worker(args)
    except (ConfigError, ModelLoadError) as exc:
        print(f"spanstream worker: {exc}", file=sys.stderr)
        return 2
    from faust.worker import Worker

    class SpanstreamWorker(Worker):
        async def on_start(self) -> None:
            await super().on_start()
            from stream.kafka.coordination import watch_coordination

            self.add_future(watch_coordination(app))  # a replica whose group coordination died exits

        def _on_sigterm(self) -> None:
            if runtime.api is not None:
                runtime.api.draining = True  # /readyz → 503 while in-flight batches drain
            _exit_after(runtime.settings.drain_timeout_s)
            super()._on_sigterm()

        def _shutdown_loop(self) -> None:
            # Agents have drained and faust has committed: now close our producer and queues.
            self.loop.run_until_complete(runtime.close())
            super()._shutdown_loop()

    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    worker = SpanstreamWorker(app, loglevel=args.loglevel, quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()
    return 0
