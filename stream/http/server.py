"""The aiohttp runner both ``serve`` and the worker (faust's web server) listen with: aiohttp's,
plus a deadline for the request head, a bounded keep-alive, JSON bodies for the errors aiohttp's
own HTTP parser answers (counted like every other response, through ``on_refused``), and handler
cancellation when the client disconnects (aiohttp ≥ 3.9 has it off by default), so a request whose
client has gone stops costing compute: its queued rows are dropped.

aiohttp closes a keep-alive connection that stays idle between requests (``keepalive_timeout``,
3630 s by default) but puts no limit on a connection whose first request head never completes, so
a client that opens connections and dribbles header lines (slowloris) holds them forever. Written
by hand because neither aiohttp nor a maintained add-on has the limit; it touches two aiohttp
internals (``_make_server`` and the handler's parsed-message queue; ``handle_error`` is public), pinned by aiohttp<4 and by
``tests/http/test_body_reads.py``.
"""

from __future__ import annotations

import asyncio
from http import HTTPStatus
from collections.abc import Callable
from typing import NamedTuple

import orjson
from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from stream.http.status import HTTP_KINDS, json_response

__all__ = ["HttpTimeouts", "runner"]


class HttpTimeouts(NamedTuple):
    header_timeout_s: float
    keepalive_timeout_s: float


_TIMEOUT_BODY = orjson.dumps({"error": {"type": "timeout",
                                        "message": "the request head did not arrive in time"}})
_TIMEOUT_RESPONSE = (b"HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\nConnection: close\r\n"
                     b"Content-Length: " + str(len(_TIMEOUT_BODY)).encode() + b"\r\n\r\n" + _TIMEOUT_BODY)


class _HeadDeadlineHandler(RequestHandler):
    """A request head (request line and headers) must be complete within ``head_timeout`` of the
    connection opening; later requests on the connection are bounded by the keep-alive timeout
    (aiohttp closes a connection still waiting for a whole head when it fires)."""

    def __init__(self, manager, *, head_timeout: float, on_refused: Callable[[int], None] | None = None, **kwargs):
        super().__init__(manager, **kwargs)
        self._head_timeout = head_timeout
        self._on_refused = on_refused
        self._head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._head_deadline = self._loop.call_later(self._head_timeout, self._head_expired)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._head_deadline is not None and self._messages:  # a whole head has been parsed
            self._head_deadline.cancel()
            self._head_deadline = None

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None
        super().connection_lost(exc)

    def handle_error(self, request, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        """What aiohttp answers itself (a request its parser refuses: bad request line, header or
        framing) gets the same JSON error body as everything else; never a traceback."""
        super().handle_error(request, status, exc, message)  # logs; raises if a response already started
        text = message if status < 500 and message else HTTPStatus(status).phrase
        response = json_response({"error": {"type": HTTP_KINDS.get(status, "internal" if status >= 500 else "http"),
                                            "message": text}}, status)
        response.force_close()
        if self._on_refused is not None:
            self._on_refused(status)
        return response

    def _head_expired(self) -> None:
        self._head_deadline = None
        if self.transport is not None and not self._messages:
            self.transport.write(_TIMEOUT_RESPONSE)
            self.force_close()
            self.transport.close()


class _HeadDeadlineServer(web.Server):
    head_timeout: float
    on_refused: Callable[[int], None] | None

    def __call__(self) -> RequestHandler:
        return _HeadDeadlineHandler(self, loop=self._loop, head_timeout=self.head_timeout,
                                    on_refused=self.on_refused, **self._kwargs)


class _Runner(web.AppRunner):
    def __init__(self, app: web.Application, timeouts: HttpTimeouts,
                 on_refused: Callable[[int], None] | None = None, **kwargs):
        super().__init__(app, keepalive_timeout=timeouts.keepalive_timeout_s, handler_cancellation=True, **kwargs)
        self._head_timeout = timeouts.header_timeout_s
        self._on_refused = on_refused

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _HeadDeadlineServer
        server.head_timeout = self._head_timeout
        server.on_refused = self._on_refused
        return server


def runner(app: web.Application, timeouts: HttpTimeouts, on_refused: Callable[[int], None] | None = None,
           **kwargs) -> web.AppRunner:
    """``web.AppRunner(app, **kwargs)`` with the head deadline and keep-alive bound of ``timeouts``;
    ``on_refused(status)`` is called for each request aiohttp's parser refuses."""
    return _Runner(app, timeouts, on_refused, **kwargs)
