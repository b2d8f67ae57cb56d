"""Bodies as real clients send them: in several segments, large, slow, compressed, or to a route
that does not exist. Raw sockets, so the segments are really separate."""

from __future__ import annotations

import gzip
import json
import socket
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.serve_harness import ServeProc, request


@pytest.fixture(scope="module")
def server():
    proc = ServeProc(env={"SPANSTREAM_HTTP_BODY_TIMEOUT_S": "1.5", "SPANSTREAM_HTTP_HEADER_TIMEOUT_S": "1.5",
                          "SPANSTREAM_HTTP_KEEPALIVE_TIMEOUT_S": "2"}).start()
    yield proc
    assert proc.stop() == 0


def raw_exchange(server, head: bytes, parts: list[bytes], pause: float = 0.3, timeout: float = 20) -> tuple[int, dict]:
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as sock:
        sock.sendall(head)
        for part in parts:
            time.sleep(pause)
            sock.sendall(part)
        data = b""
        while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < _length(data):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, json.loads(data.split(b"\r\n\r\n", 1)[1] or b"null")


def _length(data: bytes) -> int:
    for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":")[1])
    return 0


def post_head(length: int, extra: str = "") -> bytes:
    return (f"POST /v1/extract HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {length}\r\n{extra}Connection: close\r\n\r\n").encode()


BODY = json.dumps({"text": "Angela Merkel met Emmanuel Macron in Paris.", "labels": ["person", "city"]}).encode()


def test_a_body_sent_in_two_segments_is_read_whole(server):
    status, body = raw_exchange(server, post_head(len(BODY)), [BODY[:20], BODY[20:]])
    assert status == 200, body
    assert "entities" in body


def test_a_large_body_is_read_whole(server):
    """~1 MB (JSON whitespace, cheap to infer): over what one loopback read returns."""
    payload = BODY[:-1] + b" " * 1_000_000 + b"}"
    status, _, data = request(server.url + "/v1/extract", raw=payload, timeout=60)
    assert status == 200, data[:200]
    assert "entities" in json.loads(data)


def test_a_stalled_body_gets_408_not_a_hang(server):
    started = time.monotonic()
    status, body = raw_exchange(server, post_head(1000), [b'{"text": "abc'], pause=0.1)
    assert status == 408 and body["error"]["type"] == "timeout"
    assert time.monotonic() - started < 10


def held_open(port: int, sends: list[bytes], pause: float = 0.3, limit: float = 15) -> tuple[float, bytes]:
    """Send ``sends`` with pauses, then wait for the server to close; (seconds held, bytes received)."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=limit) as sock:
        data = b""
        for part in sends:
            sock.sendall(part)
            time.sleep(pause)
        try:
            while chunk := sock.recv(65536):
                data += chunk
        except TimeoutError:
            pass
    return time.monotonic() - started, data


def test_a_request_head_that_never_completes_is_closed_after_the_header_timeout(server):
    """Slowloris: aiohttp bounds idle keep-alive connections but not a head that dribbles in."""
    held, data = held_open(server.port, [b"GET /healthz HTTP/1.1\r\n", b"Host: x\r\n", b"X-Slow: 1\r\n"])
    assert held < 8, f"connection held {held:.1f}s"
    assert data.startswith(b"HTTP/1.1 408"), data[:200]
    assert json.loads(data.split(b"\r\n\r\n", 1)[1])["error"]["type"] == "timeout"


def test_a_connection_that_never_sends_a_request_is_closed(server):
    held, data = held_open(server.port, [])
    assert held < 8, f"connection held {held:.1f}s"


def test_an_idle_keep_alive_connection_is_closed_after_the_keepalive_timeout(server):
    ping = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    held, data = held_open(server.port, [ping])
    assert data.startswith(b"HTTP/1.1 200") and held < 8, (held, data[:100])


def test_gzip_bodies_are_decoded_and_bad_gzip_is_400(server):
    packed = gzip.compress(BODY)
    status, body = raw_exchange(server, post_head(len(packed), "Content-Encoding: gzip\r\n"), [packed])
    assert status == 200 and "entities" in body
    status, body = raw_exchange(server, post_head(20, "Content-Encoding: gzip\r\n"), [b"this is not gzip!!!!"])
    assert status == 400 and body["error"]["type"] == "malformed"


def test_unknown_routes_and_methods_answer_json_and_are_counted(server):
    status, _, data = request(server.url + "/v1/nope")
    assert status == 404 and json.loads(data)["error"]["type"] == "not_found"
    status, headers, data = request(server.url + "/v1/extract")  # GET
    assert status == 405 and json.loads(data)["error"]["type"] == "method_not_allowed"
    metrics = request(server.url + "/metrics")[2].decode()
    counted = {(s.labels["route"], s.labels["status"]): s.value
               for f in text_string_to_metric_families(metrics) for s in f.samples
               if s.name == "spanstream_http_requests_total"}
    assert counted[("unmatched", "404")] >= 1 and counted[("unmatched", "405")] >= 1
