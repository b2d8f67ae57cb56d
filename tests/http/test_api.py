"""The HTTP API over real HTTP: happy paths, every limit, bad bodies, overload, metrics."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from jsonschema import Draft7Validator, RefResolver
from prometheus_client.parser import text_string_to_metric_families

from tests.serve_harness import ServeProc, request

OPENAPI = json.loads((Path(__file__).resolve().parents[2] / "schemas" / "openapi.json").read_text())


def _validate(name: str, instance) -> None:
    schema = {"$ref": f"#/components/schemas/{name}", **{"components": OPENAPI["components"]}}
    Draft7Validator(schema, resolver=RefResolver.from_schema(schema)).validate(instance)


@pytest.fixture(scope="module")
def server():
    proc = ServeProc(env={"SPANSTREAM_MAX_BATCH_WAIT_MS": "20"}).start()
    yield proc
    assert proc.stop() == 0


def post(server, body=None, raw=None):
    status, headers, data = request(server.url + "/v1/extract", body=body, raw=raw)
    return status, headers, json.loads(data)


def test_single_text(server):
    text = "Angela Merkel met Emmanuel Macron in Paris."
    status, _, body = post(server, {"text": text, "labels": ["person", "city"], "threshold": 0.3})
    assert status == 200
    _validate("ExtractResponse", body)
    assert body["entities"] and all(text[e["start"]:e["end"]] == e["text"] for e in body["entities"])
    assert {e["label"] for e in body["entities"]} <= {"person", "city"}
    assert body["windowed"] is False and body["model"]["name"] == "tiny-gliner"


def test_many_texts_in_order_with_options(server):
    texts = ["Apple in Texas.", "", "Berlin " * 100]
    status, _, body = post(server, {"texts": texts, "labels": ["company", "city"], "threshold": 0.2,
                                    "flat_ner": False, "multi_label": True, "label_thresholds": {"city": 0.9}})
    assert status == 200
    _validate("ExtractResponse", body)
    assert len(body["results"]) == 3 and body["results"][1]["entities"] == []
    assert body["results"][2]["windowed"] is True
    for text, result in zip(texts, body["results"]):
        for e in result["entities"]:
            assert text[e["start"]:e["end"]] == e["text"]
            assert e["label"] != "city" or e["score"] > 0.9


@pytest.mark.parametrize("body,status,needle", [
    ({"texts": ["a"] * 65, "labels": ["x"]}, 413, "max_texts"),
    ({"text": "a" * 100_001, "labels": ["x"]}, 413, "max_chars"),
    ({"text": "a", "labels": [f"l{i}" for i in range(51)]}, 413, "max_labels"),
    ({"text": "a", "labels": "person"}, 422, "labels"),
    ({"text": "a", "labels": []}, 422, "labels"),
    ({"text": "a", "labels": ["  "]}, 422, "labels"),
    ({"text": 5, "labels": ["x"]}, 422, "text"),
    ({"texts": "abc", "labels": ["x"]}, 422, "texts"),
    ({"texts": [], "labels": ["x"]}, 422, "empty"),
    ({"text": "a", "texts": ["b"], "labels": ["x"]}, 422, "exactly one"),
    ({"labels": ["x"]}, 422, "exactly one"),
    ({"text": "a", "labels": ["x"], "threshold": 1.5}, 422, "threshold"),
    ({"text": "a", "labels": ["x"], "threshold": True}, 422, "threshold"),
    ({"text": "a", "labels": ["x"], "flat_ner": "yes"}, 422, "flat_ner"),
    ({"text": "a", "labels": ["x"], "label_thresholds": {"x": 2}}, 422, "label_thresholds"),
    ({"text": "a", "labels": ["x"], "colour": "red"}, 422, "unknown"),
    ([1, 2], 422, "object"),
])
def test_limits_and_validation(server, body, status, needle):
    got, _, data = post(server, body)
    assert got == status
    _validate("Error", data)
    assert needle in data["error"]["message"]


@pytest.mark.parametrize("labels,reason", [
    ([" ".join(f"word{i}x{j}" for j in range(10)) for i in range(50)], "labels_too_long"),
    (["person", "\u200b\u00ad"], "invalid_label"),
])
def test_labels_the_model_cannot_take_are_422_with_a_reason(server, labels, reason):
    """Refused before queueing: the batch-mates of such a request are not touched (they got a 500)."""
    status, _, data = post(server, {"text": "Ada Lovelace was born in London.", "labels": labels})
    assert status == 422
    _validate("Error", data)
    assert data["error"]["reason"] == reason


def test_more_labels_than_max_types_are_served_and_counted(server):
    def counted() -> float:
        metrics = request(server.url + "/metrics")[2].decode()
        return next(s.value for f in text_string_to_metric_families(metrics) for s in f.samples
                    if s.name == "spanstream_labels_over_max_types_total")
    before = counted()
    status, _, _ = post(server, {"text": "Ada Lovelace was born in London.", "labels": [f"l{i}" for i in range(30)]})
    assert status == 200 and counted() == before + 1  # the tiny model's max_types is 25


def test_malformed_json_and_huge_body(server):
    status, _, data = post(server, raw=b"{not json")
    assert status == 400 and data["error"]["type"] == "malformed"
    status, _, data = post(server, raw=b'{"text": "' + b"a" * (5 * 1024 * 1024) + b'", "labels": ["x"]}')
    assert status == 413 and "max_body_bytes" in data["error"]["message"]


def test_probes_models_openapi(server):
    assert request(server.url + "/healthz")[0] == 200
    status, _, body = request(server.url + "/readyz")
    assert status == 200 and json.loads(body)["status"] == "ready"
    status, _, body = request(server.url + "/v1/models")
    model = json.loads(body)["models"][0]
    assert model["name"] == "tiny-gliner" and model["variant"] == "fp32" and model["max_len"] == 64
    assert json.loads(request(server.url + "/openapi.json")[2]) == OPENAPI


def _samples(server) -> dict:
    text = request(server.url + "/metrics")[2].decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_metrics_move_with_traffic(server):
    before = _samples(server)
    for _ in range(3):
        post(server, {"text": "Paris", "labels": ["city"]})
    post(server, {"text": "Paris"})
    after = _samples(server)
    ok = ("spanstream_http_requests_total", (("route", "/v1/extract"), ("status", "200")))
    bad = ("spanstream_http_requests_total", (("route", "/v1/extract"), ("status", "422")))
    assert after[ok] - before.get(ok, 0) == 3 and after[bad] - before.get(bad, 0) == 1
    count = ("spanstream_inference_seconds_count", ())
    assert after[count] - before.get(count, 0) >= 1
    assert after[("spanstream_model_info", (("family", "gliner-span"), ("name", "tiny-gliner"),
                                            ("variant", "fp32"), ("version", "1")))] == 1


def test_concurrent_requests_share_batches_and_overload_is_429():
    proc = ServeProc(env={"SPANSTREAM_MAX_QUEUE_TEXTS": "8", "SPANSTREAM_MAX_BATCH_ROWS": "8",
                          "SPANSTREAM_MAX_BATCH_WAIT_MS": "50"}).start()
    try:
        results = []
        lock = threading.Lock()

        def call(i):
            r = post(proc, {"texts": [f"Text number {i} about Paris and Berlin."] * 4, "labels": ["city"]})
            with lock:
                results.append(r)

        threads = [threading.Thread(target=call, args=(i,)) for i in range(24)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        statuses = [s for s, _, _ in results]
        assert set(statuses) <= {200, 429} and 200 in statuses and 429 in statuses, statuses
        for status, headers, body in results:
            if status == 429:
                assert int(headers["Retry-After"]) >= 1 and body["error"]["type"] == "overloaded"
            else:
                assert len(body["results"]) == 4
        assert max(b["batch_size"] for s, _, b in results if s == 200) > 4  # requests were coalesced
    finally:
        proc.stop()


def test_readyz_turns_503_while_draining_then_process_exits_cleanly():
    proc = ServeProc(env={"SPANSTREAM_DRAIN_SECONDS": "3"}).start()
    assert request(proc.url + "/readyz")[0] == 200
    proc.proc.send_signal(15)
    import time

    time.sleep(0.5)
    status, headers, body = request(proc.url + "/readyz")
    assert status == 503 and json.loads(body)["reason"] == "draining"
    status, headers, body = post(proc, {"text": "Paris", "labels": ["city"]})
    assert status == 503 and int(headers["Retry-After"]) >= 1
    assert proc.proc.wait(30) == 0


def test_a_request_in_flight_at_sigterm_completes_within_the_drain_budget():
    """The drain budget is SPANSTREAM_DRAIN_TIMEOUT_S (one setting, the chart derives it from the
    grace period); serve used to give in-flight requests 1 + 10 s whatever the grace period."""
    proc = ServeProc(env={"SPANSTREAM_DRAIN_SECONDS": "0.5", "SPANSTREAM_DRAIN_TIMEOUT_S": "90"}).start()
    texts = ["Ada Lovelace met Charles Babbage in London. " * 2200] * 8  # ~15-20 s on 2 cores
    result = {}

    def call():
        started = time.monotonic()
        result["status"] = request(proc.url + "/v1/extract", {"texts": texts, "labels": ["person", "city"]},
                                   timeout=300)[0]
        result["seconds"] = time.monotonic() - started

    worker = threading.Thread(target=call)
    worker.start()
    time.sleep(1.5)
    proc.proc.send_signal(15)
    worker.join(300)
    assert result.get("status") == 200, result
    assert proc.proc.wait(60) == 0
    print(f"DRAIN: a {result['seconds']:.1f} s request in flight at SIGTERM completed")
