"""An HTTP flood: 512 clients at once, each sending 50 long texts. Admission refuses what the
engine cannot run in time (429 with Retry-After) before anything is queued, every request gets a
defined answer, peak RSS stays bounded and returns near its steady size (refused requests used to
stay referenced by the queue: 1.5 GB after one flood), and a request after the flood is served."""

from __future__ import annotations

import asyncio
import time

import aiohttp

from tests.kafka.test_bursts import rss_mb
from tests.serve_harness import ServeProc

LONG = " ".join(["Angela Merkel met Emmanuel Macron in Paris to discuss the budget of the European Union."] * 20)


async def test_512_clients_with_50_long_texts_each_get_answers_and_memory_stays_bounded():
    proc = ServeProc().start()
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300)) as session:
            url = proc.url + "/v1/extract"
            async with session.post(url, json={"text": LONG, "labels": ["person"]}) as resp:
                assert resp.status == 200
            steady = rss_mb(proc.proc.pid)
            samples = []
            done = asyncio.Event()

            async def sample() -> None:
                while not done.is_set():
                    samples.append(rss_mb(proc.proc.pid))
                    await asyncio.sleep(0.1)

            async def call(i: int) -> int:
                body = {"texts": [f"{i}-{j} {LONG}" for j in range(50)], "labels": ["person", "city", "organization"]}
                async with session.post(url, json=body) as resp:
                    data = await resp.json()
                    assert resp.status in (200, 429), (resp.status, data)
                    assert resp.status == 200 or (data["error"]["type"] == "overloaded" and resp.headers["Retry-After"])
                    return resp.status

            sampler = asyncio.ensure_future(sample())
            started = time.monotonic()
            statuses = await asyncio.gather(*(call(i) for i in range(512)))
            seconds = time.monotonic() - started
            done.set()
            await sampler
            async with session.post(url, json={"text": LONG, "labels": ["person"]}) as resp:
                assert resp.status == 200
        await asyncio.sleep(2)
        settled = rss_mb(proc.proc.pid)
        print(f"HTTP FLOOD: 512 x 50 texts ({len(LONG)} chars) answered in {seconds:.1f} s: "
              f"{statuses.count(200)} served, {statuses.count(429)} refused with 429; serve RSS steady {steady:.0f} MB, "
              f"peak {max(samples):.0f} MB, settled {settled:.0f} MB")
        assert statuses.count(200) > 0 and statuses.count(429) > 0
        assert max(samples) < steady + 400, (steady, max(samples))
        assert settled < steady + 150, (steady, settled)  # refused requests leave nothing behind
    finally:
        assert proc.stop() == 0
