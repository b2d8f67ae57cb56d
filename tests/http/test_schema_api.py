"""/v1/extract with a GLiNER2 schema, over real HTTP on the tiny GLiNER2 checkpoint: gliner2's
result shapes (the engine's, checked against gliner2 by the parity suite), the same limits and
error table, and labels requests still answered on a GLiNER2 model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema import Draft7Validator, RefResolver

from stream.engine.gliner2.engine import Gliner2Engine
from tests.engine.test_gliner2_parity import compare
from tests.serve_harness import TINY_MODEL, ServeProc, request

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "tests" / "fixtures" / "tiny-gliner2" / "bert" / "spanstream"
OPENAPI = json.loads((ROOT / "schemas" / "openapi.json").read_text())
SCHEMA = {"entities": {"person": "a human", "organization": ""},
          "structures": {"product": {"fields": [{"name": "name", "dtype": "str"}, "price::str",
                                                {"name": "kind", "choices": ["phone", "laptop"], "dtype": "str"}]}},
          "classifications": [{"task": "sentiment", "labels": ["positive", "negative"]}],
          "relations": ["works_for"]}
TEXTS = ["Sarah Chen, CEO of Nimbus Labs, announced the Orion phone for $999.", "Ann works for Acme in Rome."]


def _validate(name: str, instance) -> None:
    schema = {"$ref": f"#/components/schemas/{name}", **{"components": OPENAPI["components"]}}
    Draft7Validator(schema, resolver=RefResolver.from_schema(schema)).validate(instance)


@pytest.fixture(scope="module")
def server():
    proc = ServeProc(model=MODEL).start()
    yield proc
    assert proc.stop() == 0


@pytest.fixture(scope="module")
def engine():
    return Gliner2Engine(MODEL, threads=1)


def post(server, body):
    status, headers, data = request(server.url + "/v1/extract", body=body)
    return status, headers, json.loads(data)


def test_schema_request_returns_gliner2_results(server, engine):
    _validate("ExtractRequest", {"texts": TEXTS, "schema": SCHEMA})
    status, _, body = post(server, {"texts": TEXTS, "schema": SCHEMA, "include_confidence": True,
                                    "include_spans": True, "threshold": 0.4})
    assert status == 200, body
    _validate("SchemaExtractResponse", body)
    want = json.loads(json.dumps(engine.extract(TEXTS, SCHEMA, threshold=0.4, include_confidence=True,
                                                include_spans=True)))
    assert compare(body["results"], want, deltas=[]) is None
    assert set(body["results"][0]) == {"entities", "product", "sentiment", "relation_extraction"}
    for text, result in zip(TEXTS, body["results"]):
        for spans in result["entities"].values():
            assert all(text[s["start"]:s["end"]] == s["text"] for s in spans)


def test_single_text_and_overlap_policy(server, engine):
    status, _, body = post(server, {"text": TEXTS[1], "schema": {"entities": ["person", "city"]},
                                    "overlap_policy": "flat"})
    assert status == 200, body
    assert body["result"] == engine.extract([TEXTS[1]], {"entities": ["person", "city"]}, overlap_policy="flat")[0]


def test_labels_request_on_a_gliner2_model_gives_entities(server):
    status, _, body = post(server, {"text": TEXTS[1], "labels": ["person", "organization"], "threshold": 0.3,
                                    "label_thresholds": {"organization": 0.99}})
    assert status == 200, body
    _validate("ExtractResponse", body)
    assert body["entities"] and all(TEXTS[1][e["start"]:e["end"]] == e["text"] for e in body["entities"])
    assert all(e["score"] >= 0.99 for e in body["entities"] if e["label"] == "organization")


CONSTRAINED = {"tasks": {"intent": {"labels": ["read", "write", "delete"], "min_labels": 1, "max_labels": 1},
                         "effects": {"labels": ["read_only", "modify", "delete"]}},
               "constraints": [{"type": "Implies", "cond": {"type": "LabelRef", "task": "intent", "label": "delete"},
                                "then": {"type": "LabelRef", "task": "effects", "label": "delete"}}]}


def test_constrained_classification_over_http(server, engine):
    """gliner2's constrained classification: the result under its key, as the engine (checked
    against gliner2 by test_constrained_parity) gives it; an infeasible text with
    on_infeasible=raise is that text's 422, naming the violated constraint."""
    schema = {"entities": ["person"], "constrained_classification": CONSTRAINED}
    _validate("ExtractRequest", {"texts": TEXTS, "schema": schema})
    status, _, body = post(server, {"texts": TEXTS, "schema": schema})
    assert status == 200, body
    assert body["results"] == json.loads(json.dumps(engine.extract(TEXTS, schema)))
    result = body["results"][0]["constrained_classification"]
    assert set(result) == {"intent", "effects", "_meta"} and result["_meta"]["feasible"] is True
    assert result["intent"]["value"] in ("read", "write", "delete")
    if result["intent"]["value"] == "delete":
        assert "delete" in result["effects"]["value"]
    never = {**CONSTRAINED, "constraints": [{"type": "Not", "child": {"type": "AnySelected", "task": "effects"}},
                                            {"type": "AnySelected", "task": "effects"}],
             "config": {"on_infeasible": "raise"}}
    status, _, body = post(server, {"text": TEXTS[0], "schema": {"constrained_classification": never}})
    assert status == 422 and body["error"]["reason"] == "infeasible_classification", body


def test_joint_decoding_over_http(server, engine):
    """gliner2's JointIE: the result under ``joint``, as the engine (checked against gliner2 by
    test_jointie_engine) gives it; its relations join entity ids of the types the schema allows."""
    schema = {"joint": {"entities": {"person": {}, "organization": {}},
                        "relations": {"works_for": {"head": ["person"], "tail": ["organization"]}},
                        "config": {"beam_size": 8}}}
    _validate("ExtractRequest", {"texts": TEXTS, "schema": schema})
    status, _, body = post(server, {"texts": TEXTS, "schema": schema})
    assert status == 200, body
    _validate("SchemaExtractResponse", body)
    assert body["results"] == json.loads(json.dumps(engine.extract(TEXTS, schema)))
    for result in body["results"]:
        types = {e["id"]: e["type"] for e in result["joint"]["entities"]}
        assert all(types[r["head"]] == "person" and types[r["tail"]] == "organization"
                   for r in result["joint"]["relations"])
    assert any(r["joint"]["entities"] for r in body["results"])


@pytest.mark.parametrize("body, status, needle", [
    ({"text": "x", "schema": {"joint": {"entities": {"a": {}}, "config": {"beam_size": 0}}}}, 422,
     "schema.joint.config.beam_size"),
    ({"text": "x", "schema": {"joint": {"entities": {"a": {}}}, "entities": ["b"]}}, 422, "schema.entities"),
    ({"text": "x", "schema": {"entities": []}}, 422, "schema.entities: cannot be empty"),
    ({"text": "x", "schema": {"entities": ["a"], "sentiment": 1}}, 422, "unknown key"),
    ({"text": "x", "schema": {"classifications": [{"task": "t", "labels": ["a"]}]}}, 422, "at least 2 labels"),
    ({"text": "x", "schema": {"entities": ["a"]}, "overlap_policy": "sometimes"}, 422, "overlap_policy"),
    ({"text": "x", "schema": {"entities": ["a"]}, "include_spans": "yes"}, 422, "include_spans"),
    ({"text": "x", "schema": {"entities": ["a"]}, "flat_ner": True}, 422, "unknown fields"),
    ({"text": "x", "schema": {"entities": [f"type {i}" for i in range(51)]}}, 413, "max_labels"),
    ({"text": "x", "schema": {"entities": {"a": "word " * 400}}}, 422, "schema_too_long"),
    ({"text": "x", "schema": {"constrained_classification": {"tasks": {"a": {"labels": ["x", "y"]}},
                                                            "config": {"decoder": "greedy"}}}},
     422, "schema.constrained_classification.config.decoder"),
    ({"text": "x", "schema": {"classifications": [{"task": "a", "labels": ["x", "y"]}],
                              "constrained_classification": {"tasks": {"a": {"labels": ["x", "y"]}}}}},
     422, "are classification tasks already"),
])
def test_bad_schema_requests(server, body, status, needle):
    got, _, data = post(server, body)
    assert got == status, data
    assert needle in json.dumps(data)


def test_schema_on_a_span_model_is_422():
    proc = ServeProc(model=TINY_MODEL).start()
    try:
        status, _, body = post(proc, {"text": "Ann.", "schema": {"entities": ["person"]}})
        assert status == 422 and "needs a GLiNER2 model" in body["error"]["message"]
    finally:
        assert proc.stop() == 0


def test_models_describes_the_gliner2_model(server):
    status, _, data = request(server.url + "/v1/models")
    body = json.loads(data)
    assert status == 200
    model = dict(body["models"][0])
    assert model.pop("int8_agreement") is None  # OpenAPI 3.0 'nullable' (the validator here is JSON Schema)
    _validate("Model", model)
    assert body["models"][0]["family"] == "gliner2" and body["models"][0]["max_tokens"] == 512


BOUNDARY = ROOT / "tests" / "fixtures" / "tiny-boundary" / "bert" / "spanstream"
RECORDS_SCHEMA = {"entities": ["person", "organization"],
                  "entity_attributes": {"sentiment": {"labels": ["positive", "negative"]}},
                  "structures": {"product": {"mode": "natural", "fields": [
                      {"name": "name", "dtype": "str"}, {"name": "price", "dtype": "str", "exclusive": True},
                      {"name": "kind", "choices": ["phone", "laptop"], "dtype": "str"}]}}}


def test_records_and_attributes_on_a_boundary_checkpoint_over_http():
    """A GLiNER2.5 (boundary) model serves structures with a mode (records) and entity attributes
    through /v1/extract: the engine's result (checked against gliner2 by the boundary parity suite),
    valid against the OpenAPI contract."""
    engine = Gliner2Engine(BOUNDARY, threads=1)
    proc = ServeProc(model=BOUNDARY).start()
    try:
        body = {"texts": TEXTS, "schema": RECORDS_SCHEMA, "include_confidence": True, "include_spans": True,
                "threshold": 0.3}
        _validate("ExtractRequest", body)
        status, _, answer = post(proc, body)
    finally:
        assert proc.stop() == 0
    assert status == 200, answer
    _validate("SchemaExtractResponse", answer)
    want = json.loads(json.dumps(engine.extract(TEXTS, RECORDS_SCHEMA, threshold=0.3, include_confidence=True,
                                                include_spans=True)))
    assert compare(answer["results"], want, deltas=[]) is None
    records = [r for result in answer["results"] for r in result["product"]]
    assert records and all("confidence" in r and set(r) >= {"name", "price", "kind"} for r in records)
    found = [e for result in answer["results"] for spans in result["entities"].values() for e in spans]
    assert found and all(e["sentiment"]["label"] in ("positive", "negative") for e in found)
