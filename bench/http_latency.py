"""Latency of POST /v1/extract for one short text against `spanstream serve` (default model).

    python -m bench.http_latency [--requests 300] [--concurrency 1]

Starts a server on a free port, sends the requests from a thread pool, prints p50/p90/p99 and
a /metrics excerpt.
"""

from __future__ import annotations

import argparse
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

from tests.serve_harness import ServeProc, request

TEXT = "Angela Merkel met Emmanuel Macron in Paris on Tuesday to discuss the budget."


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--concurrency", type=int, default=1)
    args = ap.parse_args()
    from stream.engine import default_model_path

    server = ServeProc(model=default_model_path()).start()
    try:
        body = {"text": TEXT, "labels": ["person", "organization", "location", "date"]}
        for _ in range(10):
            request(server.url + "/v1/extract", body)

        def one(_):
            t = time.perf_counter()
            status = request(server.url + "/v1/extract", body)[0]
            return status, (time.perf_counter() - t) * 1000

        started = time.perf_counter()
        with ThreadPoolExecutor(args.concurrency) as pool:
            results = list(pool.map(one, range(args.requests)))
        wall = time.perf_counter() - started
        lat = sorted(ms for _, ms in results)
        q = statistics.quantiles(lat, n=100)
        ok = sum(1 for s, _ in results if s == 200)
        print(f"{args.requests} requests, concurrency {args.concurrency}: {ok} ok, {args.requests / wall:.1f} req/s; "
              f"latency p50 {q[49]:.1f} ms, p90 {q[89]:.1f} ms, p99 {q[98]:.1f} ms")
        metrics = request(server.url + "/metrics")[2].decode().splitlines()
        keep = ("spanstream_http_requests_total", "spanstream_inference_seconds_count", "spanstream_inference_seconds_sum",
                "spanstream_batch_size_sum", "spanstream_batch_size_count", "spanstream_model_info",
                'spanstream_http_request_seconds_bucket{le="0.05"')
        print("\n".join(line for line in metrics if line.startswith(keep)))
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
