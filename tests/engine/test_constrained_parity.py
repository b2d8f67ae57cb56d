"""Constrained classification parity with gliner2 2.1.x's ``gliner2.classification`` (golden
file made by ``tests/fixtures/make_golden_constrained.py``; gliner2 is not needed here):

- decoding alone: on 200 random logit sets per case, the result of spanstream's port equals
  gliner2's ``Classifier.decode(...).to_dict()``: the same labels and strings, floats within
  1e-12 (gliner2 sums some objectives over sets of strings, whose order follows the process's
  hash seed: gliner2 itself differs from run to run in the last bits),
  and ``on_infeasible="raise"`` refuses the same inputs, naming the same violated constraints;
- through the engine, on the tiny GLiNER2 checkpoints (bert, deberta) and 40 texts per case:
  spanstream's classifier logits match the ones gliner2 scored (within 1e-4) and the result
  (labels, confidences, probabilities, objective, violations) matches within the same tolerance.
"""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import pytest

from stream.engine.gliner2.constrained import RESULT_KEY, decode, parse
from stream.engine.gliner2.engine import Gliner2Engine
from stream.errors import InvalidInput
from tests.engine.test_gliner2_parity import compare
from tests.fixtures.constrained_cases import CASES

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def golden() -> dict:
    with gzip.open(FIXTURES / "golden-constrained.json.gz", "rt", encoding="utf-8") as fh:
        return json.load(fh)


def _request(name: str) -> dict:
    schema, config = CASES[name]
    return {**schema, "config": config}


@pytest.mark.parametrize("name", sorted(CASES))
def test_decoding_equals_gliner2_on_random_logits(golden, name):
    constrained = parse(_request(name), "constrained_classification")
    rows = golden["decode"][name]
    assert len(rows) == 200
    for i, row in enumerate(rows):
        if "infeasible" in row:
            with pytest.raises(InvalidInput) as err:
                decode(constrained, row["logits"], "")
            assert err.value.reason == "infeasible_classification"
            assert all(v in err.value.message for v in row["infeasible"]), (i, err.value.message)
        else:
            ours = decode(constrained, row["logits"], "")
            assert _same(ours, row["result"]), (name, i, ours, row["result"])


@pytest.mark.parametrize("kind", ["bert", "deberta"])
def test_through_the_engine_results_match_gliner2_classifier(golden, kind):
    engine = Gliner2Engine(FIXTURES / "tiny-gliner2" / kind / "spanstream", threads=2)
    texts = golden["texts"]
    compared = 0
    for name in sorted(CASES):
        rows = golden["model"][kind][name]
        schema = {RESULT_KEY: _request(name)}
        prepared = engine.prepare(texts, [schema] * len(texts))
        for i, (text, p, row) in enumerate(zip(texts, prepared, rows)):
            outputs = [engine.run([r])[0] for r in p.rows]
            logits = {task.name: outputs[0][t].logits for t, task in enumerate(p.prompt.tasks)}
            for task, ref in row["logits"].items():
                got = [float(x) for x in logits[task]]
                assert max(abs(a - b) for a, b in zip(got, ref.values())) <= TOLERANCE, (kind, name, i, task)
            if "infeasible" in row:
                with pytest.raises(InvalidInput):
                    engine.decode(p, outputs, _options())
                continue
            ours = engine.decode(p, outputs, _options())[RESULT_KEY]
            deltas: list[float] = []
            assert compare(ours, row["result"], deltas=deltas) is None, (kind, name, i, ours, row["result"])
            compared += 1
    assert compared >= 40 * (len(CASES) - 1)


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def _options():
    from stream.engine.gliner2.decode import Options

    return Options()


def test_refusals_name_the_key():
    with pytest.raises(InvalidInput, match=r"constrained_classification.config.decoder: must be one of"):
        parse({"tasks": {"a": {"labels": ["x", "y"]}}, "config": {"decoder": "greedy"}}, "constrained_classification")
    with pytest.raises(InvalidInput, match=r"constrained_classification.config.calibrator"):
        parse({"tasks": {"a": {"labels": ["x", "y"]}}, "config": {"calibrator": {}}}, "constrained_classification")
    with pytest.raises(InvalidInput, match=r"undeclared task 'b'"):
        parse({"tasks": {"a": {"labels": ["x", "y"]}}, "constraints": [
            {"type": "LabelRef", "task": "b", "label": "x"}]}, "constrained_classification")
    with pytest.raises(InvalidInput, match=r"may not contain '\[L\]'"):
        parse({"tasks": {"a": {"labels": ["x [L]", "y"]}}}, "constrained_classification")
    with pytest.raises(InvalidInput, match=r"constrained_classification.tasks"):
        parse({"tasks": {"a": {"labels": ["x", "y"], "colour": 1}}}, "constrained_classification")


def test_a_long_text_is_decoded_once_on_each_label_s_highest_logit_over_its_windows(golden):
    """gliner2's ``classify_long`` (aggregate="max"): decoding each window and merging the
    decisions could break a cross-task constraint; the windows' logits are aggregated first."""
    import numpy as np

    engine = Gliner2Engine(FIXTURES / "tiny-gliner2" / "bert" / "spanstream", threads=2, chunk_size=60,
                           chunk_overlap=12)
    text = " ".join(golden["texts"][:32] * 3)  # past the model's token window
    request = {RESULT_KEY: _request("implies-auto"), "entities": ["person"]}
    (prepared,) = engine.prepare([text], [request])
    assert len(prepared.rows) > 3
    outputs = [engine.run([r])[0] for r in prepared.rows]
    result = engine.decode(prepared, outputs, _options())
    tasks = [(t, task.name) for t, task in enumerate(prepared.prompt.tasks) if task.kind == "classification"]
    highest = {name: np.max([o[t].logits for o in outputs], axis=0) for t, name in tasks}
    assert result[RESULT_KEY] == decode(parse(_request("implies-auto"), "c"), highest, text)
    assert any(not np.array_equal(outputs[0][t].logits, highest[name]) for t, name in tasks)
