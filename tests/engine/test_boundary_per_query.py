"""GLiNER2.5's per-query candidate path (``candidate_pool="per_query"``, gliner2's default: the
sparse boundary proposer and the pair reranker) in numpy against gliner2 2.1.0's torch modules
(goldens from ``tests/fixtures/make_golden_per_query.py``): the tiny per-query checkpoint's head
(streaming block loop, length-adaptive boundary budget, truncating budgets) and a head with every
optional reranker feature on (rotary endpoints, query-conditioned inside weight, endpoint
differences, span content), each in both export modes; two texts of different lengths, a padded
query. End-to-end parity of the checkpoint is in ``test_boundary_parity.py``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from stream.engine.gliner2.boundary.head import run_head, score_explicit, settings_from_config
from stream.engine.gliner2.engine import Gliner2Engine
from stream.errors import ModelLoadError
from tests.fixtures.make_golden_per_query import OPTIONS

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
GOLDEN = FIXTURES / "golden-boundary-per-query-heads.npz"
CHECKPOINT = FIXTURES / "tiny-boundary" / "bert-per-query" / "spanstream"
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def golden():
    return np.load(GOLDEN)


def _head(golden, name: str, mode: str):
    prefix = f"{name}:w:"
    w = {k[len(prefix):]: golden[k] for k in golden.files if k.startswith(prefix)}
    raw = (json.loads((CHECKPOINT / "gliner2_config.json").read_text())["boundary_head"] if name == "checkpoint"
           else dict(OPTIONS))
    return w, settings_from_config({**raw, "export_mode": mode, "end_block_size": 8})


@pytest.mark.parametrize("mode", ["streaming", "vectorized"])
@pytest.mark.parametrize("name", ["checkpoint", "options"])
def test_per_query_candidates_and_pair_logits_match_gliner2(golden, name, mode):
    w, settings = _head(golden, name, mode)
    assert settings.candidate_pool == "per_query"
    out = run_head(golden["tokens"], golden["token_mask"], golden["queries"], golden["query_mask"], w, settings)
    valid = golden[f"{name}:{mode}:valid"]
    assert np.array_equal(out.valid, valid)
    assert np.array_equal(out.indices[valid], golden[f"{name}:{mode}:indices"][valid])
    delta = np.abs(out.pair_logits[valid] - golden[f"{name}:{mode}:pair_logits"][valid]).max()
    assert delta <= TOLERANCE, delta
    assert (out.pair_logits[~valid] == -1.0e4).all()
    assert np.abs(out.null_logits - golden[f"{name}:null_logits"]).max() <= TOLERANCE
    assert np.abs(out.count_log_rates - golden[f"{name}:count_log_rates"]).max() <= TOLERANCE
    # the budgets truncate (some query has a full budget) and the padded query has no candidate
    assert valid.sum(-1).max() == settings.proposer.candidate_budget and not valid[1, 2].any()


@pytest.mark.parametrize("name", ["checkpoint", "options"])
def test_explicit_spans_are_scored_by_the_reranker_as_gliner2_scores_them(golden, name):
    w, settings = _head(golden, name, "vectorized")
    spans = golden["spans"]
    got = score_explicit(golden["tokens"], golden["token_mask"], golden["queries"], golden["query_mask"], spans,
                         np.ones(spans.shape[:2], bool), w, settings)
    ref = golden[f"{name}:explicit"]
    legal = ref != -1.0e4  # past a text's end, or the padded query
    assert legal.sum() >= 20 and (~legal).any()
    assert np.array_equal(got == -1.0e4, ~legal)
    assert np.abs(got[legal] - ref[legal]).max() <= TOLERANCE


def test_a_config_without_candidate_pool_gets_gliner2s_default_and_unknown_values_are_refused():
    assert settings_from_config({}).candidate_pool == "per_query"
    with pytest.raises(ValueError, match="candidate_pool"):
        settings_from_config({"candidate_pool": "global"})
    with pytest.raises(ValueError, match="export_mode"):
        settings_from_config({"export_mode": "onnx"})


def test_a_per_query_checkpoint_missing_its_reranker_weights_is_refused_at_load(tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(CHECKPOINT, folder)
    with np.load(folder / "heads.npz") as npz:
        weights = {k: npz[k] for k in npz.files if not k.startswith("boundary_head.pair_scorer.")}
    np.savez(folder / "heads.npz", **weights)
    with pytest.raises(ModelLoadError, match="pair_scorer"):
        Gliner2Engine(folder)
