"""`spanstream serve`: the HTTP API alone (no Kafka), for users who only want REST."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from stream.errors import ConfigError, ModelLoadError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="serve the HTTP extraction API without Kafka")
    p.add_argument("--model", default=None, help="model folder or hf://org/name (default: the embedded model)")
    p.add_argument("--variant", choices=["auto", "fp32", "int8"], default=None)
    p.add_argument("--host", default=None)
    p.add_argument("--port", type=int, default=None)
    p.add_argument("--labels", default="person,organization,location", help="default labels shown by /v1/models")
    p.set_defaults(func=run)


async def serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from stream.config import load_settings
    from stream.http.server import HttpTimeouts
    from stream.http.server import runner as http_runner
    from stream.runtime import build_runtime

    settings = load_settings(model_path=args.model, model_variant=args.variant, http_host=args.host,
                             http_port=args.port, http_enabled=True)
    runtime = build_runtime(settings, default_labels=[x for x in args.labels.split(",") if x])
    api, info = runtime.api, runtime.queues[0].engine.info
    app = web.Application(client_max_size=api.limits.max_body_bytes + 1024)
    api.install(app)
    # in-flight requests may finish within what is left of the drain budget once the listener closes
    runner = http_runner(app, HttpTimeouts(settings.http_header_timeout_s, settings.http_keepalive_timeout_s),
                         on_refused=api.count_refused, access_log=None, shutdown_timeout=settings.drain_timeout_s - settings.drain_seconds)
    await runner.setup()
    site = web.TCPSite(runner, settings.http_host, settings.http_port)
    await site.start()
    print(f"spanstream serve: listening on http://{settings.http_host}:{settings.http_port} "
          f"(model {info.name}, {info.variant})", file=sys.stderr, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        api.draining = True  # /readyz turns 503 so balancers stop routing here
        loop.call_later(settings.drain_seconds, stop.set)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    await stop.wait()
    await runner.cleanup()  # finishes in-flight requests
    await runtime.close()
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(serve(args))
    except (ConfigError, ModelLoadError) as exc:
        print(f"spanstream serve: {exc}", file=sys.stderr)
        return 2
