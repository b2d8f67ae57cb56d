"""HTTP API: /v1/extract, /v1/models, /healthz, /readyz, /metrics, /openapi.json.

Served by faust's aiohttp server in worker mode and by a plain aiohttp server in
``spanstream serve``. Extraction goes through the same ``InferenceQueue`` as the streams, so
concurrent requests share micro-batches with stream traffic. Errors map to status codes in one
table (``STATUS``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from stream.engine import DecodeParams
from stream.errors import EngineError, EngineOverloaded, SpanstreamError
from stream.metrics import Metrics
from stream.runner import InferenceQueue

OPENAPI_PATH = Path(__file__).resolve().parent.parent / "schemas" / "openapi.json"


class RequestInvalid(SpanstreamError):
    """422: the body is well-formed JSON but not a valid request."""


class RequestTooLarge(SpanstreamError):
    """413: a size limit was exceeded; the message names it."""


class RequestMalformed(SpanstreamError):
    """400: the body is not JSON."""


class NotReady(SpanstreamError):
    retriable = True


STATUS: list[tuple[type[Exception], int, str]] = [
    (RequestMalformed, 400, "malformed"),
    (RequestTooLarge, 413, "too_large"),
    (RequestInvalid, 422, "validation"),
    (EngineOverloaded, 429, "overloaded"),
    (NotReady, 503, "unavailable"),
    (EngineError, 500, "engine"),
]


@dataclass(frozen=True)
class Limits:
    max_texts: int = 64
    max_chars: int = 100_000
    max_labels: int = 50
    max_body_bytes: int = 4 * 1024 * 1024


def _json(data, status: int = 200, headers: dict | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json", headers=headers)


def _error(exc: Exception) -> web.Response:
    for cls, status, kind in STATUS:
        if isinstance(exc, cls):
            headers = {"Retry-After": str(max(1, round(getattr(exc, "retry_after", 1))))} if status in (429, 503) \
                else None
            return _json({"error": {"type": kind, "message": str(exc)}}, status, headers)
    return _json({"error": {"type": "internal", "message": f"{type(exc).__name__}: {exc}"}}, 500)


def parse_extract_request(body: bytes, limits: Limits) -> tuple[list[str], list[str], DecodeParams, bool]:
    """Validate a /v1/extract body → (texts, labels, params, single)."""
    if len(body) > limits.max_body_bytes:
        raise RequestTooLarge(f"body of {len(body)} bytes exceeds max_body_bytes={limits.max_body_bytes}")
    try:
        req = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RequestMalformed(f"body is not valid JSON: {exc}") from None
    if not isinstance(req, dict):
        raise RequestInvalid("body must be a JSON object")
    unknown = set(req) - {"text", "texts", "labels", "threshold", "flat_ner", "multi_label", "label_thresholds"}
    if unknown:
        raise RequestInvalid(f"unknown fields: {sorted(unknown)}")
    if ("text" in req) == ("texts" in req):
        raise RequestInvalid("give exactly one of 'text' or 'texts'")
    single = "text" in req
    texts = [req["text"]] if single else req["texts"]
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise RequestInvalid("'texts' must be a list of strings" if not single else "'text' must be a string")
    if not texts:
        raise RequestInvalid("'texts' must not be empty")
    if len(texts) > limits.max_texts:
        raise RequestTooLarge(f"{len(texts)} texts exceed max_texts={limits.max_texts}")
    for i, t in enumerate(texts):
        if len(t) > limits.max_chars:
            raise RequestTooLarge(f"text {i} has {len(t)} characters, over max_chars={limits.max_chars}")
    labels = req.get("labels")
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) and x.strip() for x in labels):
        raise RequestInvalid("'labels' must be a non-empty list of non-empty strings")
    if len(labels) > limits.max_labels:
        raise RequestTooLarge(f"{len(labels)} labels exceed max_labels={limits.max_labels}")
    threshold = req.get("threshold", 0.5)
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold <= 1:
        raise RequestInvalid("'threshold' must be a number within [0, 1]")
    flags = {}
    for name, default in (("flat_ner", True), ("multi_label", False)):
        value = req.get(name, default)
        if not isinstance(value, bool):
            raise RequestInvalid(f"'{name}' must be a boolean")
        flags[name] = value
    lt = req.get("label_thresholds", {})
    if not isinstance(lt, dict) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1
                                           for v in lt.values()):
        raise RequestInvalid("'label_thresholds' must map labels to numbers within [0, 1]")
    params = DecodeParams(float(threshold), flags["flat_ner"], flags["multi_label"], {k: float(v) for k, v in lt.items()})
    return texts, list(dict.fromkeys(labels)), params, single


class Api:
    def __init__(self, queue: InferenceQueue, metrics: Metrics, ready: Callable[[], tuple[bool, str]],
                 limits: Limits = Limits(), model_version: str = "1", default_labels: list[str] | None = None):
        self.queue = queue
        self.metrics = metrics
        self.ready = ready
        self.limits = limits
        self.model_version = model_version
        self.default_labels = default_labels or []
        self.draining = False

    def routes(self) -> list[tuple[str, str, Callable]]:
        return [("POST", "/v1/extract", self.extract), ("GET", "/v1/models", self.models),
                ("GET", "/healthz", self.healthz), ("GET", "/readyz", self.readyz),
                ("GET", "/metrics", self.prometheus), ("GET", "/openapi.json", self.openapi)]

    def install(self, app: web.Application) -> None:
        for method, path, handler in self.routes():
            app.router.add_route(method, path, self._instrument(path, handler))

    def _instrument(self, route: str, handler: Callable) -> Callable:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            started = time.perf_counter()
            try:
                response = await handler(request)
            except Exception as exc:
                response = _error(exc)
            self.metrics.http_requests.labels(route, str(response.status)).inc()
            self.metrics.http_request_seconds.labels(route).observe(time.perf_counter() - started)
            return response
        return wrapped

    async def extract(self, request: web.Request) -> web.Response:
        if request.content_length and request.content_length > self.limits.max_body_bytes:
            raise RequestTooLarge(f"body of {request.content_length} bytes exceeds "
                                  f"max_body_bytes={self.limits.max_body_bytes}")
        body = await request.content.read(self.limits.max_body_bytes + 1)
        texts, labels, params, single = parse_extract_request(body, self.limits)
        if self.draining:
            raise NotReady("shutting down")
        started = time.perf_counter()
        results, timing = await self.queue.submit(texts, [tuple(labels)] * len(texts), [params] * len(texts),
                                                  wait=False)
        info = self.queue.engine.info
        out = [{"entities": [e._asdict() for e in r.entities], "windowed": r.windowed} for r in results]
        body = {"model": {"name": info.name, "version": self.model_version, "variant": info.variant},
                "labels": labels, "took_ms": round((time.perf_counter() - started) * 1000, 3),
                "batch_size": timing.batch_size}
        body.update(out[0] if single else {"results": out})
        return _json(body)

    async def models(self, request: web.Request) -> web.Response:
        info = self.queue.engine.info
        return _json({"models": [{"name": info.name, "family": info.family, "variant": info.variant,
                                  "version": self.model_version, "max_width": info.max_width,
                                  "max_len": info.max_len, "default_labels": self.default_labels}]})

    async def healthz(self, request: web.Request) -> web.Response:
        return _json({"status": "ok"})

    async def readyz(self, request: web.Request) -> web.Response:
        ok, why = (False, "draining") if self.draining else self.ready()
        return _json({"status": "ready" if ok else "not ready", "reason": why}, 200 if ok else 503)

    async def prometheus(self, request: web.Request) -> web.Response:
        body = generate_latest(self.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def openapi(self, request: web.Request) -> web.Response:
        return _json(json.loads(OPENAPI_PATH.read_text()))
