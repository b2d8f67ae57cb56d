"""GLiNER2.5 (boundary architecture), first step: the boundary encoder and the per-query
boundary marginals (their onnxruntime graph) against gliner2 2.1.0's torch modules on the tiny boundary
checkpoint's head weights (golden tensors from ``tests/fixtures/build_tiny_boundary.py``): a
batch of two texts of different lengths with padding, a padded query, the attention block with
no window and with a window of 2."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from stream.engine.gliner2.boundary.boundary_graph import BoundaryGraph

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "golden-boundary-heads.npz"
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def golden():
    data = np.load(GOLDEN)
    weights = {k[len("w:boundary_head."):]: data[k] for k in data.files if k.startswith("w:")}
    return data, weights


@pytest.mark.parametrize("window", [0, 2])
def test_boundary_states_and_marginals_match_gliner2(golden, window):
    data, w = golden
    tokens, token_mask = data["tokens"], data["token_mask"]
    enc, marg = BoundaryGraph(w, heads=4, window=window).run(tokens, token_mask, data["queries"], data["query_mask"])
    assert np.array_equal(enc.mask, data[f"window{window}:mask"])
    assert np.abs(enc.states - data[f"window{window}:states"]).max() <= TOLERANCE
    for name in ("start_logits", "end_logits", "inside_logits", "inside_prefix", "inside_prefix_mean"):
        ref = data[f"window{window}:{name}"]
        got = getattr(marg, name)
        assert got.shape == ref.shape, name
        assert np.abs(got - ref).max() <= TOLERANCE, (name, np.abs(got - ref).max())
    # the padded text's padding boundaries are zero, the padded query's logits are the sentinel
    assert not enc.states[1, 7:].any()
    assert (marg.start_logits[1, 2] == -1.0e4).all()


def test_the_window_changes_the_states(golden):
    """The two goldens differ, so the window is really exercised."""
    data, _ = golden
    assert np.abs(data["window0:states"] - data["window2:states"]).max() > 1e-3


@pytest.mark.parametrize("size", [24, 80])
def test_the_shared_candidate_pool_matches_gliner2(golden, size):
    """The pool from gliner2's own states and marginals (so only the pool is compared): the same
    candidates in the same order, the same validity, proposal and compatibility logits."""
    from stream.engine.gliner2.boundary.pool import build_pool

    data, w = golden
    pool = build_pool(data["window0:states"], data["window0:mask"], data["query_mask"],
                      data["window0:start_logits"], data["window0:end_logits"], w, boundary_top_k=8,
                      pool_size=size, min_per_query=2)
    used = pool.mask.shape[1]  # trailing columns that are padding in every row are dropped
    assert not data[f"pool{size}:mask"][:, used:].any() and data[f"pool{size}:mask"][:, used - 1].any()
    assert np.array_equal(pool.mask, data[f"pool{size}:mask"][:, :used])
    assert np.array_equal(pool.indices, data[f"pool{size}:indices"][:, :used])
    for name in ("proposal_logits", "compat_logits"):
        assert np.abs(getattr(pool, name) - data[f"pool{size}:{name}"][:, :used]).max() <= TOLERANCE, name
    # the longer text fills the checkpoint's pool (truncation exercised); at 80 both are padded
    assert pool.mask[0].all() if size == 24 else not data["pool80:mask"].all(-1).any() and used < size


def test_the_pool_scorer_matches_gliner2(golden):
    """Candidate states and every query's logit for every pool candidate, from gliner2's own pool
    and marginals: overlap-biased candidate attention (2 layers), evidence-conditioned query
    attention, FiLM (all in the onnxruntime graph built from the weights), the exact GELU."""
    from stream.engine.gliner2.boundary.pool import build_pool
    from stream.engine.gliner2.boundary.pool_graph import PoolGraph
    from stream.engine.gliner2.boundary.scorer import score_pool

    data, w = golden
    pool = build_pool(data["window0:states"], data["window0:mask"], data["query_mask"],
                      data["window0:start_logits"], data["window0:end_logits"], w, boundary_top_k=8,
                      pool_size=24, min_per_query=2)
    logits, candidates = score_pool(data["window0:states"], data["queries"], data["query_mask"], pool,
                                    data["window0:start_logits"], data["window0:end_logits"],
                                    data["window0:inside_prefix"], data["token_mask"].sum(1), w, PoolGraph(w, heads=4),
                                    inside_prefix_mean=data["window0:inside_prefix_mean"])
    assert np.abs(candidates - data["scorer:candidates"]).max() <= TOLERANCE
    assert np.abs(logits - data["scorer:pair_logits"]).max() <= TOLERANCE
    live = pool.mask[..., None] & data["query_mask"][:, None, :]
    assert live.sum() > 40 and np.ptp(logits[live]) > 1.0  # real, varied scores were compared


def test_erf_is_within_its_bound():
    import math

    from stream.engine.gliner2.boundary.scorer import erf

    x = np.linspace(-6, 6, 20001, dtype=np.float32)
    exact = np.array([math.erf(float(v)) for v in x])
    assert np.abs(erf(x) - exact).max() < 2e-7


def test_the_graphs_gelu_is_the_exact_one():
    """The pool graph's GELU: onnxruntime's Erf within 1e-7 of ``math.erf`` (the issue's bound),
    and the GELU within three float32 roundings of ``0.5 x (1 + math.erf(x / sqrt 2))`` in float64."""
    import math

    import onnxruntime as ort
    from onnx import TensorProto, helper

    from stream.engine.gliner2.boundary.graph import GraphBuilder

    g = GraphBuilder({})
    erf = g.op("Erf", ["x"])
    model = g.model([helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n"])],
                    [(erf, "erf", ["n"]), (g.gelu("x"), "gelu", ["n"])], "gelu")
    x = np.linspace(-8, 8, 40001, dtype=np.float32)
    got_erf, got_gelu = ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, {"x": x})
    assert np.abs(got_erf - np.array([math.erf(float(v)) for v in x])).max() <= 1e-7
    exact = np.array([0.5 * float(v) * (1.0 + math.erf(float(v) / math.sqrt(2.0))) for v in x])
    assert (np.abs(got_gelu - exact) / np.maximum(1.0, np.abs(exact))).max() <= 2.5e-7


def _checkpoint_settings():
    import json

    from stream.engine.gliner2.boundary.head import settings_from_config

    config = json.loads((GOLDEN.parent / "tiny-boundary" / "bert" / "gliner2" / "config.json").read_text())
    return settings_from_config(config["boundary_head"])


def test_the_whole_head_matches_gliner2(golden):
    """BoundaryHead.forward end to end from token and query states, with the settings read from
    the checkpoint's config.json: pool spans, pair logits per query, null and count heads,
    candidate states."""
    from stream.engine.gliner2.boundary.head import head_graphs, run_head

    data, w = golden
    settings = _checkpoint_settings()
    assert settings.pool_size == 24 and settings.pool_boundary_top_k == 8 and settings.min_pool_per_query == 2
    out = run_head(data["tokens"], data["token_mask"], data["queries"], data["query_mask"], w, settings,
                   head_graphs(w, settings))
    assert np.array_equal(out.valid, data["head:valid"]) and np.array_equal(out.indices, data["head:indices"])
    for name in ("pair_logits", "null_logits", "count_log_rates", "candidate_states"):
        assert np.abs(getattr(out, name) - data[f"head:{name}"]).max() <= TOLERANCE, name


def test_settings_this_port_does_not_compute_are_refused_with_the_key_named(golden):
    from stream.engine.gliner2.boundary.head import head_graphs, run_head, settings_from_config

    with pytest.raises(ValueError, match=r"boundary_head\.candidate_pool = 'per_document' is not supported"):
        settings_from_config({"candidate_pool": "per_document"})
    # read by the per-query proposer only: with the shared pool gliner2 ignores it, and so does the head
    data, w = golden
    base = {"candidate_pool": "shared", "pool_boundary_top_k": 8, "pool_size": 24, "min_pool_per_query": 2}
    args = (data["tokens"], data["token_mask"], data["queries"], data["query_mask"], w)
    graphs = head_graphs(w, settings_from_config(base))
    plain = run_head(*args, settings_from_config(base), graphs)
    adaptive = run_head(*args, settings_from_config({**base, "boundary_top_k_alpha": 0.5, "start_top_k": 2}), graphs)
    assert np.array_equal(plain.indices, adaptive.indices) and np.array_equal(plain.pair_logits, adaptive.pair_logits)


@pytest.fixture(scope="module")
def records_golden():
    return np.load(Path(__file__).resolve().parents[1] / "fixtures" / "golden-boundary-records.npz")


def test_explicit_spans_are_scored_inside_a_pool_they_are_injected_into(golden, records_golden):
    """``score_explicit_spans`` (attributes and choice fields read it): spans inside and outside
    the ordinary pool, a repeated one, and one past the text (gliner2's sentinel)."""
    from stream.engine.gliner2.boundary.head import HeadSettings
    from stream.engine.gliner2.boundary.model import BoundaryModel

    data, w = golden
    settings = HeadSettings(candidate_pool="shared", pool_boundary_top_k=8, pool_size=24, min_pool_per_query=2)
    model = BoundaryModel({f"boundary_head.{k}": v for k, v in w.items()}, settings)
    tokens, queries = data["tokens"][0], data["queries"][0]
    spans = [tuple(s) for s in records_golden["spans"]]
    got = model.explicit(tokens, queries, spans)
    ref = records_golden["explicit"][0]
    assert got.shape == ref.shape
    assert np.abs(got - ref).max() <= TOLERANCE, np.abs(got - ref).max()
    assert (ref[:, -1] == -1.0e4).all() and (ref[:, :-1] > -1.0e3).all()
    one = model.explicit(tokens, queries[1:2], spans)
    assert np.abs(one - records_golden["explicit_query1"][0]).max() <= TOLERANCE
    assert np.abs(one - got[1:2]).max() > 1e-3  # the pool is rebuilt for the queries asked: scores change


def test_the_record_head_matches_gliner2_in_every_mode(golden, records_golden):
    from stream.engine.gliner2.boundary.head import HeadSettings
    from stream.engine.gliner2.boundary.model import BoundaryModel
    from stream.engine.gliner2.boundary.records import RecordField, RecordGroup, group_logits

    data, w = golden
    weights = dict(np.load(Path(__file__).resolve().parents[1] / "fixtures" / "tiny-boundary" / "bert" / "spanstream"
                           / "heads.npz"))
    model = BoundaryModel(weights, HeadSettings(candidate_pool="shared", pool_boundary_top_k=8, pool_size=24,
                                                min_pool_per_query=2))
    row = model.score_rows([data["tokens"][0]], [data["queries"][0]])[0]
    valid = records_golden["pool_valid"]
    assert len(row.spans) == valid.sum() > 10
    for g, (mode, queries, anchor) in enumerate([("natural", [0, 1, 2], 0), ("latent", [0, 1, 2], None),
                                                 ("anchorless", [1, 2, 0], None)]):
        group = RecordGroup("r", mode, tuple(RecordField(f"f{q}", q, "zero_or_more") for q in queries), anchor)
        out = group_logits(group, row.candidate_states, data["queries"][0], row.logits, model.mlps)
        instances = records_golden["instances"][g]
        ref_objects = records_golden["objects"][g][instances]
        ref_assign = records_golden["assign"][g][instances][..., np.concatenate([[True], valid])]
        assert out.objects.shape == ref_objects.shape and out.assign.shape == ref_assign.shape, mode
        assert np.abs(out.objects - ref_objects).max() <= TOLERANCE, mode
        assert np.abs(out.assign - ref_assign).max() <= TOLERANCE, (mode, np.abs(out.assign - ref_assign).max())


def test_more_explicit_spans_than_the_pool_holds_are_scored_pool_size_at_a_time(golden):
    """gliner2 raises when the spans to score (an attribute request's kept entities) exceed
    ``pool_size``; spanstream scores them ``pool_size`` at a time, each chunk exactly as gliner2
    scores a request of that size."""
    from stream.engine.gliner2.boundary.head import HeadSettings
    from stream.engine.gliner2.boundary.model import BoundaryModel

    data, w = golden
    settings = HeadSettings(candidate_pool="shared", pool_boundary_top_k=8, pool_size=24, min_pool_per_query=2)
    model = BoundaryModel({f"boundary_head.{k}": v for k, v in w.items()}, settings)
    tokens, queries = data["tokens"][0], data["queries"][0]
    spans = [(s, e) for s in range(11) for e in range(s + 1, min(s + 4, 12))][:30]
    assert len(set(spans)) == 30 > 24
    got = model.explicit(tokens, queries, spans)
    assert got.shape == (3, 30) and (got > -1.0e3).all()
    assert np.array_equal(got[:, :24], model.explicit(tokens, queries, spans[:24]))
    assert np.array_equal(got[:, 24:], model.explicit(tokens, queries, spans[24:]))


def _gliner2_overlap_buckets(indices: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """gliner2 2.1.0 ``classify_overlap_buckets`` as written there: seven masked assignments,
    later ones winning; then the padding keys' bucket."""
    from stream.engine.gliner2.boundary import scorer as s

    s1, e1 = indices[:, :, None, 0], indices[:, :, None, 1]
    s2, e2 = indices[:, None, :, 0], indices[:, None, :, 1]
    out = np.full(np.broadcast_shapes(s1.shape, s2.shape), s.CROSSING, dtype=np.uint8)
    out[np.broadcast_to(e1 <= s2, out.shape)] = s.DISJOINT_LEFT
    out[np.broadcast_to(e2 <= s1, out.shape)] = s.DISJOINT_RIGHT
    out[(s1 > s2) & (e1 < e2)] = s.NESTED_INSIDE
    out[(s1 < s2) & (e1 > e2)] = s.NESTED_OUTSIDE
    out[(s1 == s2) & (e1 != e2)] = s.SAME_START
    out[(e1 == e2) & (s1 != s2)] = s.SAME_END
    out[(s1 == s2) & (e1 == e2)] = s.IDENTICAL
    out[np.broadcast_to(~mask[:, None, :], out.shape)] = s.MASKED_KEY
    return out


def test_overlap_buckets_from_the_graphs_pair_codes_equal_gliner2s_rules():
    """The candidate layers' graph computes each pair's code from the signs of the start and end
    differences and the two disjointness tests, and reads the bucket's bias through
    ``scorer.BUCKETS``; on any integer spans — empty and reversed ones too — that bucket equals
    gliner2's rule sequence, and a padding key reads the mask row."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    from stream.engine.gliner2.boundary.graph import GraphBuilder
    from stream.engine.gliner2.boundary.pool_graph import overlap_codes
    from stream.engine.gliner2.boundary.scorer import BUCKETS

    rng = np.random.default_rng(3)
    starts = rng.integers(0, 25, (4, 120))
    indices = np.stack([starts, starts + rng.integers(-3, 9, starts.shape)], -1)
    mask = rng.random(starts.shape) < 0.8
    g = GraphBuilder({})
    codes = overlap_codes(g, "starts", "ends", "key_mask")
    model = g.model([helper.make_tensor_value_info("starts", TensorProto.INT64, ["b", "c", 1]),
                     helper.make_tensor_value_info("ends", TensorProto.INT64, ["b", "c", 1]),
                     helper.make_tensor_value_info("key_mask", TensorProto.BOOL, ["b", 1, "c"])],
                    [(g.op("Cast", [codes], to=TensorProto.FLOAT), "codes", ["b", "c", "c"])], "codes")
    got = ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, {
        "starts": indices[..., :1].copy(), "ends": indices[..., 1:].copy(), "key_mask": mask[:, None, :]})[0]
    want = _gliner2_overlap_buckets(indices, mask)
    assert np.array_equal(BUCKETS[got.astype(np.int64)], want)
    assert len(np.unique(want)) == 9  # every bucket, padding included, occurs


def test_top_descending_is_the_stable_sorts_first_k_ties_included():
    """The pool's and the proposer's top-k without a full sort: the same indices in the same
    order as a stable descending sort cut at ``k``, on rows full of ties (ties straddling the
    k-th place keep index order), with gliner2's mask logit, and ``k`` at and beyond the row."""
    from stream.engine.gliner2.boundary.pool import _descending, top_descending

    rng = np.random.default_rng(7)
    for _ in range(3000):
        n, k = int(rng.integers(1, 50)), int(rng.integers(1, 60))
        x = rng.integers(-3, 4, (2, 3, n)).astype(np.float32)
        x[x == 3] = -1.0e4
        assert np.array_equal(top_descending(x, k), _descending(x)[..., :k]), (x, k)
