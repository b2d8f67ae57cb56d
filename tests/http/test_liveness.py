"""/healthz reports the inference loop: a dead loop never recovers, so the pod must restart."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from stream.engine import load_engine
from stream.http.api import Api
from stream.metrics import Metrics
from stream.serving import InferenceQueue, QueueLimits

MODEL = Path(__file__).resolve().parents[1] / "fixtures" / "tiny-gliner"


async def test_healthz_turns_503_when_the_inference_loop_dies():
    queue = InferenceQueue(load_engine(MODEL, "fp32"), Metrics.create(), QueueLimits(max_batch_wait_s=0))
    api = Api(queue, queue.metrics, ready=lambda: (True, "ok"))
    app = web.Application()
    api.install(app)
    async with TestClient(TestServer(app)) as client:
        ok = await client.post("/v1/extract", json={"text": "Ada Lovelace", "labels": ["person"]})
        assert ok.status == 200 and (await client.get("/healthz")).status == 200

        queue._pending.append(None)  # a row no code path makes: the owner task dies on it (a bug)
        queue._rows_ready.set()
        for _ in range(100):
            if not queue.healthy:
                break
            await asyncio.sleep(0.01)
        response = await client.get("/healthz")
        assert response.status == 503
        assert "inference loop" in (await response.json())["status"]
        refused = await client.post("/v1/extract", json={"text": "Ada Lovelace", "labels": ["person"]})
        assert refused.status == 503  # not a hang
    await queue.close()
