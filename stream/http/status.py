"""The one table from error to HTTP status (like TEI's): every error body is ``{"error": {type, message}}``."""

from __future__ import annotations

import orjson
from aiohttp import web

from stream.errors import EngineError, EngineOverloaded, InvalidInput, SpanstreamError


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
    (InvalidInput, 422, "validation"),
    (EngineOverloaded, 429, "overloaded"),
    (NotReady, 503, "unavailable"),
    (EngineError, 500, "engine"),
]


def json_response(data, status: int = 200, headers: dict | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json", headers=headers)


def error_response(exc: Exception) -> web.Response:
    for cls, status, kind in STATUS:
        if isinstance(exc, cls):
            headers = {"Retry-After": str(max(1, round(getattr(exc, "retry_after", 1))))} if status in (429, 503) \
                else None
            error = {"type": kind, "message": str(exc)}
            if isinstance(exc, InvalidInput):
                error["reason"] = exc.reason
            return json_response({"error": error}, status, headers)
    return json_response({"error": {"type": "internal", "message": f"{type(exc).__name__}: {exc}"}}, 500)
