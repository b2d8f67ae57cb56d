"""A client that disconnects stops costing compute and is not counted as a server error; what
aiohttp's own parser refuses is counted like every other response."""

from __future__ import annotations

import json
import socket
import time

from stream.engine import load_engine
from tests.serve_harness import TINY_MODEL, ServeProc, request

LABELS = ["person", "location", "organization"]
TEXT = "Angela Merkel met Emmanuel Macron in Paris to talk about trade. " * 300


def _metric(url: str, name: str, **labels) -> float:
    body = request(url + "/metrics")[2].decode()
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    total = 0.0
    for line in body.splitlines():
        if line.startswith(name + ("{" if labels else "")) and want in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_a_client_that_disconnects_stops_costing_compute_and_is_not_a_5xx():
    texts = [TEXT] * 32
    engine = load_engine(TINY_MODEL, "fp32")
    rows = sum(len(p.rows) for p in engine.prepare(texts, [tuple(LABELS)] * len(texts)))
    serve = ServeProc(env={"SPANSTREAM_MAX_BATCH_ROWS": "1", "SPANSTREAM_MAX_QUEUE_WAIT_S": "0",
                           "SPANSTREAM_MAX_QUEUE_TEXTS": "64", "SPANSTREAM_INFERENCE_THREADS": "1"}).start()
    try:
        body = json.dumps({"texts": texts, "labels": LABELS}).encode()
        sock = socket.create_connection(("127.0.0.1", serve.port))
        sock.sendall(b"POST /v1/extract HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        deadline = time.monotonic() + 30
        while _metric(serve.url, "spanstream_batch_size_count") < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        sock.close()  # the client goes away mid-request
        deadline = time.monotonic() + 30
        while _metric(serve.url, "spanstream_http_requests_total", route="/v1/extract", status="499") < 1:
            assert time.monotonic() < deadline, "the cut-off request was never counted"
            time.sleep(0.1)
        time.sleep(1.0)
        ran = _metric(serve.url, "spanstream_batch_size_sum")
        time.sleep(1.0)
        assert _metric(serve.url, "spanstream_batch_size_sum") == ran  # nothing more runs for it
        assert ran < rows / 2, (ran, rows)
        server_errors = sum(_metric(serve.url, "spanstream_http_requests_total", route="/v1/extract", status=s)
                            for s in ("500", "502", "503"))
        assert server_errors == 0
        print(f"HTTP client gone: {ran:.0f} of {rows} rows ran, counted as 499")
    finally:
        serve.stop()


def test_requests_the_http_parser_refuses_are_counted():
    serve = ServeProc().start()
    try:
        for raw in (b"GARBAGE\r\n\r\n", b"POST /v1/extract HTTP/1.1\r\nContent-Length: nope\r\n\r\n"):
            with socket.create_connection(("127.0.0.1", serve.port)) as sock:
                sock.sendall(raw)
                assert b" 400 " in sock.recv(4096).split(b"\r\n")[0]
        assert _metric(serve.url, "spanstream_http_requests_total", route="unparsed", status="400") == 2
    finally:
        serve.stop()
