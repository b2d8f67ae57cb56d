"""HTTP API: /v1/extract, /v1/models, /healthz, /readyz, /metrics, /openapi.json.

Served by faust's aiohttp server in worker mode and by a plain aiohttp server in
``spanstream serve``. Extraction goes through the same ``InferenceQueue`` as the streams, so
concurrent requests share micro-batches with stream traffic. Errors map to status codes in one
table (``http.status.STATUS``).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from stream.http.requests import (
    Limits,
    parse_body,
    parse_extract_request,
    parse_schema_request,
    read_body,
)
from stream.http.status import (
    NotReady,
    RequestInvalid,
    Unauthorized,
    error_response,
    json_response,
)
from stream.metrics import Metrics
from stream.schemas import OPENAPI
from stream.serving.queue import InferenceQueue


CLIENT_CLOSED = 499
"What the request counter says for a request whose client disconnected before the answer (nginx's code)."


def _client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


class Api:
    def __init__(self, queue: InferenceQueue, metrics: Metrics, ready: Callable[[], tuple[bool, str]],
                 limits: Limits = Limits(), model_version: str = "1", default_labels: list[str] | None = None,
                 auth_token: str | None = None):
        self.queue = queue
        self.metrics = metrics
        self.ready = ready
        self.limits = limits
        self.model_version = model_version
        self.default_labels = default_labels or []
        self.draining = False
        self._auth = f"Bearer {auth_token}".encode() if auth_token else None

    def routes(self) -> list[tuple[str, str, Callable]]:
        return [("POST", "/v1/extract", self.extract), ("GET", "/v1/models", self.models),
                ("GET", "/healthz", self.healthz), ("GET", "/readyz", self.readyz),
                ("GET", "/metrics", self.prometheus), ("GET", "/openapi.json", self.openapi)]

    def install(self, app: web.Application) -> None:
        for method, path, handler in self.routes():
            app.router.add_route(method, path, self._instrument(path, handler))
        app.middlewares.append(self._unmatched)

    @web.middleware
    async def _unmatched(self, request: web.Request, handler: Callable) -> web.StreamResponse:
        """Requests no route takes (404, 405) answer with the JSON error body and are counted."""
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            response = error_response(exc)
            self.metrics.http_requests.labels("unmatched", str(response.status)).inc()
            return response

    def count_refused(self, status: int) -> None:
        """A request aiohttp's own parser refused (bad request line, headers, framing)."""
        self.metrics.http_requests.labels("unparsed", str(status)).inc()

    def _instrument(self, route: str, handler: Callable) -> Callable:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            started = time.perf_counter()
            try:
                response = await handler(request)
            except asyncio.CancelledError:  # the client went away (aiohttp cancels the handler)
                self._count(route, CLIENT_CLOSED, started)
                raise
            except Exception as exc:
                if _client_gone(request):  # e.g. a body cut off mid-way: the client's doing, not a 5xx
                    self._count(route, CLIENT_CLOSED, started)
                    raise
                response = error_response(exc)
            self._count(route, response.status, started)
            return response
        return wrapped

    def _count(self, route: str, status: int, started: float) -> None:
        self.metrics.http_requests.labels(route, str(status)).inc()
        self.metrics.http_request_seconds.labels(route).observe(time.perf_counter() - started)

    def _authorize(self, request: web.Request) -> None:
        if self._auth is not None and not hmac.compare_digest(
                request.headers.get("Authorization", "").encode(), self._auth):
            raise Unauthorized("a valid 'Authorization: Bearer <token>' header is required")

    async def extract(self, request: web.Request) -> web.Response:
        self._authorize(request)
        req = parse_body(await read_body(request, self.limits), self.limits)
        if "schema" in req:
            return await self._extract_schema(req)
        texts, labels, params, single = parse_extract_request(req, self.limits)
        self.queue.check_labels(tuple(labels))
        if self.draining:
            raise NotReady("shutting down")
        started = time.perf_counter()
        outcomes = await self.queue.submit(texts, [tuple(labels)] * len(texts), [params] * len(texts), wait=False)
        for outcome in outcomes:
            if outcome.error is not None:  # this request's own text failed; batch-mates are unaffected
                raise outcome.error
        info = self.queue.engine.info
        out = [{"entities": [e._asdict() for e in o.extraction.entities], "windowed": o.extraction.windowed}
               for o in outcomes]
        body = {"model": {"name": info.name, "version": self.model_version, "variant": info.variant},
                "labels": labels, "took_ms": round((time.perf_counter() - started) * 1000, 3),
                "batch_size": max(1, max(o.batch_rows for o in outcomes))}
        body.update(out[0] if single else {"results": out})
        return json_response(body)

    async def _extract_schema(self, req: dict) -> web.Response:
        """GLiNER2: one schema (entities, classifications, structures, relations) per request;
        results in gliner2's shape."""
        engine = self.queue.engine
        if getattr(engine, "family", None) != "gliner2":
            raise RequestInvalid(f"'schema' needs a GLiNER2 model; this worker serves {engine.info.family} "
                                 "(give 'labels' instead)")
        texts, schema, options, single = parse_schema_request(req, self.limits)
        engine.check_schema(schema)
        if self.draining:
            raise NotReady("shutting down")
        started = time.perf_counter()
        outcomes = await self.queue.submit(texts, [schema] * len(texts), [options] * len(texts), wait=False)
        for outcome in outcomes:
            if outcome.error is not None:
                raise outcome.error
        info = engine.info
        body = {"model": {"name": info.name, "version": self.model_version, "variant": info.variant},
                "took_ms": round((time.perf_counter() - started) * 1000, 3),
                "batch_size": max(1, max(o.batch_rows for o in outcomes))}
        results = [o.extraction for o in outcomes]
        body.update({"result": results[0]} if single else {"results": results})
        return json_response(body)

    async def models(self, request: web.Request) -> web.Response:
        info = self.queue.engine.info
        model = {"name": info.name, "family": info.family, "variant": info.variant, "version": self.model_version,
                 "max_width": info.max_width, "max_len": info.max_len, "max_types": info.max_types,
                 "max_tokens": info.max_tokens, "int8_agreement": info.int8_agreement,
                 "default_labels": self.default_labels}
        # a GLiNER2 model has no word window (max_len) nor trained label count (max_types)
        return json_response({"models": [{k: v for k, v in model.items()
                                          if v is not None or k == "int8_agreement"}]})

    async def healthz(self, request: web.Request) -> web.Response:
        """Liveness: the inference loop is alive (a dead loop never recovers: restart the pod)."""
        if not self.queue.healthy:
            return json_response({"status": "inference loop stopped"}, 503)
        return json_response({"status": "ok"})

    async def readyz(self, request: web.Request) -> web.Response:
        ok, why, *details = (False, "draining") if self.draining else self.ready()
        body = {"status": "ready" if ok else "not ready", "reason": why, **(details[0] if details else {})}
        return json_response(body, 200 if ok else 503)

    async def prometheus(self, request: web.Request) -> web.Response:
        body = generate_latest(self.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def openapi(self, request: web.Request) -> web.Response:
        return json_response(json.loads(OPENAPI.read_text()))
