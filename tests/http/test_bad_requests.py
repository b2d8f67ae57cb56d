"""Forty-odd bad requests, sent over raw sockets to one running ``serve``: each gets a 4xx with a
JSON error body (no stack trace, no 5xx, no hang), including what aiohttp's HTTP parser refuses
before any handler runs, and the server keeps serving good requests between and after them."""

from __future__ import annotations

import gzip
import json
import socket

import pytest

from tests.serve_harness import ServeProc

OK = {"text": "Angela Merkel visited Paris.", "labels": ["person", "city"]}


@pytest.fixture(scope="module")
def server():
    proc = ServeProc(env={"SPANSTREAM_HTTP_MAX_BODY_BYTES": "65536", "SPANSTREAM_HTTP_BODY_TIMEOUT_S": "1.5",
                          "SPANSTREAM_HTTP_HEADER_TIMEOUT_S": "1.5"}).start()
    yield proc
    assert proc.stop() == 0


def send(port: int, raw: bytes, timeout: float = 20) -> tuple[int, bytes, bytes]:
    """One request on its own connection (``Connection: close``); (status, headers, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(raw)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), head, body


def req(method: str = "POST", path: str = "/v1/extract", body: bytes | None = None, headers: str = "",
        length: int | None = None) -> bytes:
    body = b"" if body is None else body
    size = len(body) if length is None else length
    head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{headers}"
    if method in ("POST", "PUT", "PATCH") or body:
        head += f"Content-Type: application/json\r\nContent-Length: {size}\r\n"
    return head.encode() + b"\r\n" + body


def js(obj) -> bytes:
    return json.dumps(obj).encode()


def with_(**fields) -> bytes:
    return js({**OK, **fields})


BAD = [
    # (name, raw request, status, error type)
    ("not json", req(body=b"{not json"), 400, "malformed"),
    ("empty body", req(body=b""), 400, "malformed"),
    ("truncated json", req(body=b'{"text": "a"'), 400, "malformed"),
    ("NaN", req(body=b'{"text": "a", "labels": ["x"], "threshold": NaN}'), 400, "malformed"),
    ("lone surrogate", req(body=b'{"text": "\\ud800", "labels": ["x"]}'), 400, "malformed"),
    ("invalid utf-8", req(body=b'{"text": "caf\xe9", "labels": ["x"]}'), 400, "malformed"),
    ("nested 2000 deep", req(body=b'{"text": "a", "labels": ["x"], "m": ' + b"[" * 2000 + b"]" * 2000 + b"}"),
     400, "malformed"),
    ("bad gzip", req(body=b"not gzip", headers="Content-Encoding: gzip\r\n"), 400, "malformed"),
    ("bad deflate", req(body=b"not deflate", headers="Content-Encoding: deflate\r\n"), 400, "malformed"),
    ("gzip bomb", req(body=gzip.compress(b" " * 10_000_000), headers="Content-Encoding: gzip\r\n"), 413,
     "too_large"),
    ("body over the cap", req(body=b" " * 70_000), 413, "too_large"),
    ("body shorter than its Content-Length", req(body=b'{"text": "a"', length=100), 408, "timeout"),
    ("null", req(body=b"null"), 422, "validation"),
    ("array", req(body=b"[1, 2]"), 422, "validation"),
    ("string", req(body=b'"text"'), 422, "validation"),
    ("empty object", req(body=b"{}"), 422, "validation"),
    ("text not a string", req(body=js({"text": 5, "labels": ["x"]})), 422, "validation"),
    ("texts not a list", req(body=js({"texts": "abc", "labels": ["x"]})), 422, "validation"),
    ("texts with a number", req(body=js({"texts": ["a", 3], "labels": ["x"]})), 422, "validation"),
    ("texts empty", req(body=js({"texts": [], "labels": ["x"]})), 422, "validation"),
    ("text and texts", req(body=js({"text": "a", "texts": ["b"], "labels": ["x"]})), 422, "validation"),
    ("labels a string", req(body=with_(labels="person")), 422, "validation"),
    ("labels empty", req(body=with_(labels=[])), 422, "validation"),
    ("label blank", req(body=with_(labels=["  "])), 422, "validation"),
    ("label invisible", req(body=with_(labels=["\u200b\u00ad"])), 422, "validation"),
    ("labels too long for the window", req(body=with_(labels=[" ".join(f"w{i}x{j}" for j in range(40))
                                                              for i in range(8)])), 422, "validation"),
    ("51 labels", req(body=with_(labels=[f"l{i}" for i in range(51)])), 413, "too_large"),
    ("65 texts", req(body=js({"texts": ["a"] * 65, "labels": ["x"]})), 413, "too_large"),
    ("text over max chars", req(body=js({"text": "a " * 50_001, "labels": ["x"]})), 413, "too_large"),
    ("threshold 1.5", req(body=with_(threshold=1.5)), 422, "validation"),
    ("threshold bool", req(body=with_(threshold=True)), 422, "validation"),
    ("threshold string", req(body=with_(threshold="0.5")), 422, "validation"),
    ("flat_ner string", req(body=with_(flat_ner="yes")), 422, "validation"),
    ("label_thresholds out of range", req(body=with_(label_thresholds={"city": 2})), 422, "validation"),
    ("unknown field", req(body=with_(colour="red")), 422, "validation"),
    ("schema on a span model", req(body=js({"text": "a", "schema": {"entities": ["x"]}})), 422, "validation"),
    ("GET extract", req("GET"), 405, "method_not_allowed"),
    ("PUT extract", req("PUT", body=js(OK)), 405, "method_not_allowed"),
    ("DELETE healthz", req("DELETE", "/healthz"), 405, "method_not_allowed"),
    ("unknown route", req("GET", "/v2/extract"), 404, "not_found"),
    ("path traversal", req("GET", "/v1/../../etc/passwd"), 404, "not_found"),
    ("bad Content-Length", b"POST /v1/extract HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n{}", 400,
     "malformed"),
    ("garbage request line", b"HELLO\r\n\r\n", 400, "malformed"),
    ("header line over 8 KiB", req("GET", "/healthz", headers="X-Big: " + "a" * 9000 + "\r\n"), 400, "malformed"),
    ("head never completes", b"GET /healthz HTTP/1.1\r\nHost: x\r\n", 408, "timeout"),
]


def test_there_are_at_least_forty_kinds():
    assert len(BAD) >= 40 and len({name for name, *_ in BAD}) == len(BAD)


@pytest.mark.parametrize("name,raw,status,kind", BAD, ids=[b[0] for b in BAD])
def test_a_bad_request_gets_a_4xx_with_a_json_error_and_the_server_keeps_serving(server, name, raw, status, kind):
    got, head, body = send(server.port, raw)
    assert (got, json.loads(body)["error"]["type"]) == (status, kind), (head, body[:300])
    assert b"Traceback" not in body and b'File "' not in body
    assert send(server.port, req(body=js(OK)))[0] == 200
