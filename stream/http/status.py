"""The one table from error to HTTP status (like TEI's): every error body is ``{"error": {type, message}}``."""

from __future__ import annotations

import orjson
from aiohttp import web

from stream.errors import (
    EngineError,
    EngineOverloaded,
    EngineStopped,
    InvalidInput,
    SpanstreamError,
)


class RequestInvalid(SpanstreamError):
    """422: the body is well-formed JSON but not a valid request."""


class RequestTooLarge(SpanstreamError):
    """413: a size limit was exceeded; the message names it."""


class RequestMalformed(SpanstreamError):
    """400: the body is not JSON, or cannot be read (bad gzip/deflate, broken framing)."""


class RequestTimeout(SpanstreamError):
    """408: the body did not arrive in time."""


class Unauthorized(SpanstreamError):
    """401: /v1/extract needs the bearer token (``SPANSTREAM_HTTP_AUTH_TOKEN``)."""


class NotReady(SpanstreamError):
    retriable = True


STATUS: list[tuple[type[Exception], int, str]] = [
    (RequestMalformed, 400, "malformed"),
    (Unauthorized, 401, "unauthorized"),
    (RequestTimeout, 408, "timeout"),
    (RequestTooLarge, 413, "too_large"),
    (RequestInvalid, 422, "validation"),
    (InvalidInput, 422, "validation"),
    (EngineOverloaded, 429, "overloaded"),
    (NotReady, 503, "unavailable"),
    (EngineStopped, 503, "unavailable"),
    (EngineError, 500, "engine"),
]


def json_response(data, status: int = 200, headers: dict | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json", headers=headers)


HTTP_KINDS = {404: "not_found", 405: "method_not_allowed", 413: "too_large", 400: "malformed"}
"aiohttp's own refusals (no route, wrong method, its size cap, framing) get the same JSON body."


def error_response(exc: Exception) -> web.Response:
    if isinstance(exc, web.HTTPException) and exc.status >= 400:
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return json_response({"error": {"type": HTTP_KINDS.get(exc.status, "http"), "message": exc.reason}},
                             exc.status, headers)
    for cls, status, kind in STATUS:
        if isinstance(exc, cls):
            headers = {"Retry-After": str(max(1, round(getattr(exc, "retry_after", 1))))} if status in (429, 503) \
                else {"WWW-Authenticate": 'Bearer realm="spanstream"'} if status == 401 else None
            error = {"type": kind, "message": str(exc)}
            if isinstance(exc, InvalidInput):
                error["reason"] = exc.reason
            return json_response({"error": error}, status, headers)
    return json_response({"error": {"type": "internal", "message": f"{type(exc).__name__}: {exc}"}}, 500)
