"""Joint entity–relation decoding (JointIE) through the engine, against gliner2 2.1.x's
``JointIEEngine.batch_extract`` (``tests/fixtures/make_golden_jointie_engine.py``) on the tiny
checkpoints — boundary with the shared candidate pool and with the per-query proposer (sparse
candidate scores), span on both test encoders (count hypotheses over span lattices) — over the
parity corpus's 314 texts, for four joint schemas: typed relations; every entity and relation option
(descriptions, thresholds, nesting, caps, an inverse pair, a symmetric relation, an acyclic
constraint) with a small beam and caps; the greedy optimizer with self loops allowed; entities
alone. Texts with a word that has no sub-word are checked for offsets only (gliner2 aliases such a
word to the next one, spanstream drops it: the parity suites' named difference). On a text with no
word (empty or blanks) gliner2's span lattice raises a TypeError; spanstream returns an empty
result (named difference). Long texts: windows merged as gliner2's ``extract_long`` merges chunks.
Also: what joint decoding refuses, and why."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from stream.engine.gliner2.engine import Gliner2Engine
from stream.errors import InvalidInput
from tests.engine.test_gliner2_parity import _silent
from tests.fixtures.make_golden_jointie_engine import CHECKPOINTS

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def golden():
    with gzip.open(FIXTURES / "golden-jointie-engine.json.gz", "rt", encoding="utf-8") as fh:
        return json.load(fh)


def _close(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= TOLERANCE
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b))
    return a == b


@pytest.mark.parametrize("checkpoint", list(CHECKPOINTS))
def test_joint_results_match_gliner2_jointie(golden, checkpoint):
    engine = Gliner2Engine(FIXTURES / CHECKPOINTS[checkpoint] / "spanstream", threads=2)
    texts = golden["texts"]
    compared, relations, silent, raised, failures = 0, 0, 0, 0, []
    for name, schema, config in golden["cases"]:
        expected = golden["checkpoints"][checkpoint][name]
        # the beam of 32 over a span lattice's count hypotheses is gliner2's pure-Python search (the slowest
        # case of this file by far): that case compares every other text (the golden holds them all)
        picked = list(range(0, len(texts), 2 if checkpoint.startswith("span") and name == "typed" else 1))
        got = dict(zip(picked, engine.extract([texts[i] for i in picked], {"joint": {**schema, "config": config}})))
        for i, g, e in ((i, got[i], expected[i]) for i in picked):
            if "gliner2_raises" in e:  # gliner2's span lattice fails on a text with no word (a TypeError)
                raised += 1
                assert not texts[i].strip() and g["joint"] == {"entities": [], "relations": []}, (name, i)
                continue
            if _silent(engine, texts[i]):  # a word with no sub-word: gliner2 aliases it to the next word,
                silent += 1  # spanstream drops it (the named difference of the parity suites); offsets only
                for entity in g["joint"]["entities"]:
                    start, end = entity.get("start", 0), entity.get("end", 0)
                    assert 0 <= start <= end <= len(texts[i])
                continue
            compared += 1
            relations += bool(e.get("relations"))
            if not _close(g["joint"], e):
                failures.append(f"{name} text {i}: {texts[i]!r}\n  ours   {g['joint']}\n  gliner2 {e}")
    print(f"\n[jointie, {checkpoint}] {compared - len(failures)} of {compared} results identical to gliner2 "
          f"{golden['gliner2_version']} JointIEEngine ({relations} with relations); {silent} results on texts "
          f"with a silent word checked for offsets only; {raised} on empty texts where gliner2 raises (empty here)")
    assert relations > 100
    assert not failures, f"{len(failures)} differ; first: " + "\n".join(failures[:3])


@pytest.mark.parametrize("checkpoint", list(CHECKPOINTS))
def test_long_texts_merge_their_windows_as_gliner2_extract_long(golden, checkpoint):
    """Texts past the encoder's window: each window decoded jointly, the fragments merged as
    gliner2's ``extract_long`` merges chunks (entities by type and offsets, relations only within
    a window), against it with the same chunk size and overlap."""
    from tests.fixtures.gliner2_cases import LONG_CHUNK_OVERLAP, LONG_CHUNK_SIZE

    engine = Gliner2Engine(FIXTURES / CHECKPOINTS[checkpoint] / "spanstream", threads=2, chunk_size=LONG_CHUNK_SIZE,
                           chunk_overlap=LONG_CHUNK_OVERLAP)
    texts = golden["long_texts"]
    cases = {name: (schema, config) for name, schema, config in golden["cases"]}
    compared, relations, failures = 0, 0, []
    for name, expected in golden["long"][checkpoint].items():
        schema, config = cases[name]
        prepared = engine.prepare(texts, [{"joint": {**schema, "config": config}}] * len(texts))
        windowed = {i for i, p in enumerate(prepared) if len(p.rows) > 1}
        assert len(windowed) >= 6
        got = engine.extract(texts, {"joint": {**schema, "config": config}})
        for i in sorted(windowed):
            compared += 1
            relations += len(expected[i]["relations"])
            if not _close(got[i]["joint"], expected[i]):
                failures.append(f"{name} long text {i}:\n  ours   {got[i]['joint']}\n  gliner2 {expected[i]}")
    print(f"\n[jointie, {checkpoint}] {compared - len(failures)} of {compared} long-text results identical to gliner2 "
          f"extract_long ({relations} relations)")
    assert not failures, f"{len(failures)} differ; first: " + "\n".join(f[:1500] for f in failures[:2])


def test_joint_decoding_stands_alone_and_refuses_bad_configs_naming_the_key():
    engine = Gliner2Engine(FIXTURES / "tiny-boundary" / "bert" / "spanstream")
    joint = {"entities": {"person": {}}, "relations": {}}
    with pytest.raises(InvalidInput) as err:
        engine.check_schema({"joint": joint, "entities": ["city"]})
    assert err.value.reason == "invalid_schema" and "schema.entities" in err.value.message
    with pytest.raises(InvalidInput) as err:
        engine.check_schema({"joint": {**joint, "config": {"beam_size": 0}}})
    assert "schema.joint.config.beam_size" in err.value.message
    with pytest.raises(InvalidInput) as err:  # the search's size is bounded: one request cannot stall a worker
        engine.check_schema({"joint": {**joint, "config": {"beam_size": 10**9}}})
    assert "schema.joint.config.beam_size" in err.value.message and "64" in err.value.message
    with pytest.raises(InvalidInput) as err:
        engine.check_schema({"joint": {**joint, "config": {"batch_size": 4}}})
    assert "schema.joint.config.batch_size" in err.value.message
    for bad, key in (({"entities": "person"}, "entities"), ({"entities": {"a": {}}, "relations": "r"}, "relations")):
        with pytest.raises(InvalidInput) as err:
            engine.check_schema({"joint": bad})
        assert f"schema.joint.{key}" in err.value.message
    with pytest.raises(InvalidInput) as err:
        engine.check_schema({"joint": {"entities": {"person": {}},
                                       "relations": {"r": {"head": ["person"], "tail": ["city"]}}}})
    assert err.value.reason == "invalid_schema" and "unknown entity types" in err.value.message
    for entities in ({"person": 5}, {"person": {"description": ["a"]}},  # a description joins the prompt
                     [{"name": "person", "description": 3}]):
        with pytest.raises(InvalidInput) as err:
            engine.check_schema({"joint": {"entities": entities}})
        assert "schema.joint.entities.person.description" in err.value.message
