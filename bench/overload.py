"""Overload of `spanstream serve` (default model): how soon it refuses, what admitted requests
wait, and how soon it serves normally once the flood stops. With and without the latency bound.

    python -m bench.overload [--clients 64] [--seconds 30] [--texts 50] [--wait 2]

Each client sends requests of ``--texts`` paragraph-length texts back to back for ``--seconds``
(client timeout 30 s; a 429 makes it sleep its Retry-After, as a polite client does). Then a
probe sends one short text every 0.25 s until it gets a 200 within 1 s: that is recovery. The
same run is made with ``SPANSTREAM_MAX_QUEUE_WAIT_S=--wait`` and with ``0`` (bounded by
``max_queue_tokens`` only, the behaviour before the bound). Writes bench/out/overload.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path

import aiohttp

from tests.serve_harness import ServeProc

HERE = Path(__file__).resolve().parent
LABELS = ["person", "organization", "location", "date", "money"]


_PARAGRAPHS: list[str] = []


def paragraph(i: int) -> str:
    if not _PARAGRAPHS:
        from bench.corpus import paragraphs

        _PARAGRAPHS.extend(paragraphs(200))
    return _PARAGRAPHS[i % len(_PARAGRAPHS)]


async def flood(url: str, clients: int, seconds: float, n_texts: int) -> dict:
    started = time.perf_counter()
    first_429: list[float] = []
    ok_latency: list[float] = []
    statuses: dict[str, int] = {}
    stop_at = started + seconds

    async def client(k: int, session: aiohttp.ClientSession) -> None:
        i = 0
        while time.perf_counter() < stop_at:
            body = {"texts": [paragraph(k * 1000 + i + j) for j in range(n_texts)], "labels": LABELS}
            i += n_texts
            t = time.perf_counter()
            try:
                async with session.post(url + "/v1/extract", json=body,
                                        timeout=aiohttp.ClientTimeout(total=30)) as resp:
                    await resp.read()
                    status = str(resp.status)
                    retry = float(resp.headers.get("Retry-After", "1"))
            except asyncio.TimeoutError:
                status, retry = "timeout", 0.0
            statuses[status] = statuses.get(status, 0) + 1
            if status == "200":
                ok_latency.append(time.perf_counter() - t)
            elif status == "429":
                if not first_429:
                    first_429.append(time.perf_counter() - started)
                await asyncio.sleep(min(retry, max(0.0, stop_at - time.perf_counter())))

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        await asyncio.gather(*(client(k, session) for k in range(clients)))
        flood_end = time.perf_counter()
        recovery = None
        while time.perf_counter() - flood_end < 600:
            t = time.perf_counter()
            try:
                async with session.post(url + "/v1/extract", json={"text": "Ada Lovelace lived in London.",
                                                                   "labels": LABELS},
                                        timeout=aiohttp.ClientTimeout(total=1)) as resp:
                    if resp.status == 200 and time.perf_counter() - t < 1:
                        recovery = time.perf_counter() - flood_end
                        break
            except asyncio.TimeoutError:
                pass
            await asyncio.sleep(0.25)
    q = statistics.quantiles(ok_latency, n=100) if len(ok_latency) > 1 else [float("nan")] * 99
    return {"statuses": statuses, "first_429_s": first_429[0] if first_429 else None,
            "ok_latency_p50_s": q[49], "ok_latency_p95_s": q[94], "ok_latency_max_s": max(ok_latency, default=None),
            "recovery_s": recovery}


def run(wait: float, args) -> dict:
    from stream.engine import default_model_path

    server = ServeProc(model=default_model_path(), env={"SPANSTREAM_MAX_QUEUE_WAIT_S": str(wait)}).start()
    try:
        return asyncio.run(flood(server.url, args.clients, args.seconds, args.texts))
    finally:
        server.stop()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--texts", type=int, default=50)
    ap.add_argument("--wait", type=float, default=2.0)
    args = ap.parse_args()
    results = {f"max_queue_wait_s={w:g}": run(w, args) for w in (args.wait, 0.0)}
    (HERE / "out").mkdir(exist_ok=True)
    (HERE / "out" / "overload.json").write_text(json.dumps(results, indent=2))
    print(f"| {args.clients} clients × {args.texts} texts, {args.seconds:g} s | statuses | first 429 | "
          f"200 latency p50 / p95 / max | recovery |")
    print("|---|---|---|---|---|")
    for name, r in results.items():
        def f(x):
            return "—" if x is None else f"{x:.1f} s"
        print(f"| {name} | {r['statuses']} | {f(r['first_429_s'])} | {f(r['ok_latency_p50_s'])} / "
              f"{f(r['ok_latency_p95_s'])} / {f(r['ok_latency_max_s'])} | {f(r['recovery_s'])} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
