"""The shared-pool scorer as one onnxruntime graph, built from the head's weights at load
(gliner2 2.1.0 ``models/boundary/pool.py``: ``SharedPoolScorer.forward`` with its
``OverlapBiasedCandidateAttention`` and ``EvidenceConditionedQueryAttention`` layers and FiLM
scoring).

Its work does not shrink with the encoder (192 candidates on any sentence, two attention layers
with a 512-wide exact-GELU FFN, and the FiLM FFN on every candidate × query), so on a small
encoder it is a large share of a batch. In numpy each elementwise pass is one thread and a
temporary; onnxruntime runs them on the session's threads and keeps the GEMMs in MLAS. The
arithmetic is the reference's; onnxruntime's ``Erf`` is within 5.7e-8 of ``math.erf``
(``tests/engine/test_boundary_heads.py`` checks the GELU), where numpy has no erf at all.

From the ``[B, n, d]`` boundary states, the pool (``[B, C, 2]`` spans, mask, compatibility priors,
the text lengths) and the ``[B, Q, H]`` query embeddings:

- each candidate's features (its start and end states, length features, prior; the projected
  span content when the checkpoint has it), LayerNorm, and the overlap-biased attention layers.
  Each (query, key) pair's overlap code is computed once; every layer reads its bias at the codes
  with one ``GatherElements`` in the ``[B, heads, C, C]`` layout the logits have (a ``Gather`` of
  ``[B, C, C, heads]`` rows and a transpose took twice as long), a padding key reading gliner2's
  mask logit;
- the query layers (evidence from the candidates, self-attention among the row's queries, FFN);
- ``[B, C, Q]`` ``candidate·query / sqrt(p) + film_output(candidate ⊙ (1 + γ) + β)``,
  ``γ, β = film(query)``; film_output's first Linear is applied as ``candidate @ ((1 + γ) ⊙ Wᵀ) +
  (β Wᵀ + b)`` (the same sum in another order, within 3e-6 on the benchmark's scores of ~10),
  so the ``[B, C, Q, p]`` conditioned candidates are never formed (2% of the graph's time).
"""

from __future__ import annotations

import math

import numpy as np
from onnx import TensorProto, helper

from stream.engine.gliner2.boundary.encoding import MASK_LOGIT, Weights, layers
from stream.engine.gliner2.boundary.graph import GraphBuilder
from stream.engine.gliner2.boundary.scorer import BUCKETS, PADDING_CODE
from stream.engine.session import OnnxSession

def _candidate_attention(g: GraphBuilder, x: str, codes: str, table_shape: str, mask: str, name: str,
                         heads: int) -> str:
    """One ``OverlapBiasedCandidateAttention`` layer (eval); ``codes``: ``[B, heads, C, C]`` pair
    codes, ``table_shape``: ``[B, heads, C, codes]``. gliner2 sets a padding key's logit to
    its sentinel; here the sentinel is added to it (the bias table's ``MASKED_KEY`` row): either way
    its softmax weight is exactly 0 (exp of about -1e4) and the other weights are the same numbers.
    Padding rows are zeroed after the product with the values rather than before (0 or 1 times each
    row: the same numbers)."""
    d = g.w[f"{name}.output.weight"].shape[0]
    table = np.concatenate([g.w[f"{name}.relative_bias"], np.full((1, heads), MASK_LOGIT, np.float32)])[BUCKETS]
    rows = g.op("Expand", [g.const(table.T.reshape(1, heads, 1, -1).astype(np.float32), f"{name}.overlap_bias"),
                           table_shape])  # [B, heads, C, codes]
    bias = g.op("GatherElements", [rows, codes], axis=3)  # [B, heads, C, C]
    attended = g.attention(g.linear(g.layer_norm(x, f"{name}.norm1"), f"{name}.qkv"), d, heads,
                           lambda logits: g.op("Add", [logits, bias]))
    attended = g.op("Mul", [attended, mask])
    x = g.op("Add", [x, g.linear(attended, f"{name}.output")])
    x = g.op("Add", [x, g.ffn(g.layer_norm(x, f"{name}.norm2"), f"{name}.ffn")])
    return g.op("Mul", [x, mask])


def overlap_codes(g: GraphBuilder, starts: str, ends: str, key_mask: str) -> str:
    """``[B, C, 1]`` int64 starts and ends, ``[B, 1, C]`` bool key mask → ``[B, C, C]`` int32 pair
    codes ``3 (sign(s1 - s2) + 1) + sign(e1 - e2) + 1 + 9 [e1 <= s2] + 18 [e2 <= s1]``,
    ``PADDING_CODE`` where the key is padding: what gliner2's overlap rules read (``scorer.BUCKETS``)."""
    s = g.op("Cast", [starts], to=TensorProto.FLOAT)
    e = g.op("Cast", [ends], to=TensorProto.FLOAT)
    s_key, e_key = (g.op("Transpose", [x], perm=[0, 2, 1]) for x in (s, e))  # [B, 1, C]

    def const(v: float) -> str:
        return g.const(np.array(v, np.float32))

    def flag(x: str, weight: float) -> str:
        return g.op("Where", [x, const(weight), const(0.0)])

    code = g.op("Mul", [g.op("Sign", [g.op("Sub", [s, s_key])]), const(3.0)])
    code = g.op("Add", [code, g.op("Sign", [g.op("Sub", [e, e_key])])])
    code = g.op("Add", [code, flag(g.op("LessOrEqual", [e, s_key]), 9.0)])
    code = g.op("Add", [code, flag(g.op("LessOrEqual", [e_key, s]), 18.0)])
    code = g.op("Where", [key_mask, g.op("Add", [code, const(4.0)]), const(float(PADDING_CODE))])
    return g.op("Cast", [code], to=TensorProto.INT32)


def _candidate_states(g: GraphBuilder, prefix: str, heads: int, content: bool) -> str:
    """``SharedPoolScorer.forward`` up to the query layers, from the boundary states and the pool:
    each candidate's start and end states (the projections gathered at its boundaries), its
    length features, its compatibility prior (and, when ``content``, its projected span content
    computed outside), LayerNorm, then the overlap-biased candidate attention layers. Each layer's
    overlap-bias table is read at the pair codes through ``scorer.BUCKETS`` (37 rows: gliner2's
    eight buckets and a padding key's mask logit)."""
    spans = "spans"
    starts = g.op("Slice", [spans, g.const(np.array([0], np.int64)), g.const(np.array([1], np.int64)),
                            g.const(np.array([2], np.int64))])  # [B, C, 1]
    ends = g.op("Slice", [spans, g.const(np.array([1], np.int64)), g.const(np.array([2], np.int64)),
                          g.const(np.array([2], np.int64))])
    start_all, end_all = g.linears("boundary_states", [f"{prefix}.start_projection", f"{prefix}.end_projection"])
    start_rep = g.op("GatherND", [start_all, starts], batch_dims=1)
    end_rep = g.op("GatherND", [end_all, ends], batch_dims=1)
    length = g.op("Max", [g.op("Cast", [g.op("Sub", [ends, starts])], to=TensorProto.FLOAT),
                          g.const(np.array(1.0, np.float32))])  # [B, C, 1]
    one = g.const(np.array(1.0, np.float32))
    features = g.op("Concat", [g.op("Log", [g.op("Add", [length, one])]), g.op("Div", [length, "text_lengths"]),
                               g.op("Div", [one, g.op("Sqrt", [length])])], axis=-1)
    x = g.op("Add", [g.op("Add", [start_rep, end_rep]), g.linear(features, f"{prefix}.length_projection")])
    x = g.op("Add", [x, g.linear("compat", f"{prefix}.prior_projection")])
    if content:
        x = g.op("Add", [x, "content"])
    x = g.op("Mul", [g.layer_norm(x, f"{prefix}.candidate_norm"), "mask"])
    key_mask = g.op("Cast", [g.op("Transpose", ["mask"], perm=[0, 2, 1])], to=TensorProto.BOOL)
    codes = g.op("Unsqueeze", [overlap_codes(g, starts, ends, key_mask), g.const(np.array([1], np.int64))])
    codes = g.op("Expand", [codes, g.const(np.array([1, heads, 1, 1], np.int64))])  # [B, heads, C, C]
    leading = g.op("Slice", [g.op("Shape", [codes]), g.const(np.array([0], np.int64)), g.const(np.array([3], np.int64))])
    table_shape = g.op("Concat", [leading, g.const(np.array([len(BUCKETS)], np.int64))], axis=0)
    for i in range(layers(g.w, f"{prefix}.candidate_layers")):
        x = _candidate_attention(g, x, codes, table_shape, "mask", f"{prefix}.candidate_layers.{i}", heads)
    return x


def _query_layer(g: GraphBuilder, candidates: str, candidate_ok: str, query: str, name: str, heads: int) -> str:
    """One ``EvidenceConditionedQueryAttention`` layer (eval) on ``[B, Q, p]`` query states: each
    query's evidence is the softmax-over-candidates mean of the candidates it scores highest
    (padding candidates at gliner2's mask logit), then self-attention among the row's queries
    (``key_ok``: a padded query is not a key; a row without queries keeps its first) and a FFN."""
    preliminary = g.op("MatMul", [candidates, g.op("Transpose", [query], perm=[0, 2, 1])])  # [B, C, Q]
    preliminary = g.op("Where", [candidate_ok, preliminary, g.const(np.array(MASK_LOGIT, np.float32))])
    weights = g.op("Softmax", [preliminary], axis=1)
    evidence = g.op("MatMul", [g.op("Transpose", [weights], perm=[0, 2, 1]), candidates])  # [B, Q, p]
    states = g.op("Add", [g.linear(query, f"{name}.query_in"), g.linear(evidence, f"{name}.evidence_in")])
    d = g.w[f"{name}.attention.out_proj.weight"].shape[0]
    qkv = g.op("MatMul", [g.layer_norm(states, f"{name}.norm1"),
                          g.const(g.w[f"{name}.attention.in_proj_weight"].T.astype(np.float32))])
    qkv = g.op("Add", [qkv, g.const(g.w[f"{name}.attention.in_proj_bias"].astype(np.float32))])
    attended = g.attention(qkv, d, heads, lambda logits: g.op(
        "Where", ["key_ok", logits, g.const(np.array(-np.inf, np.float32))]))
    states = g.op("Add", [states, g.linear(attended, f"{name}.attention.out_proj")])
    states = g.op("Add", [states, g.ffn(g.layer_norm(states, f"{name}.norm2"), f"{name}.ffn")])
    return g.op("Mul", [states, "query_mask"])


def scorer_model(w: Weights, prefix: str, heads: int, content: bool = False) -> bytes:
    """``SharedPoolScorer.forward`` (eval) from the boundary states, the pool and the query
    embeddings: the candidates' states and every candidate × query score before the boundary and
    inside evidence is added."""
    g = GraphBuilder(w)
    candidates = _candidate_states(g, prefix, heads, content)
    p = w[f"{prefix}.film.weight"].shape[1]
    queries = g.linear("queries", f"{prefix}.query_projection")
    candidate_ok = g.op("Cast", ["mask"], to=TensorProto.BOOL)  # [B, C, 1]
    for i in range(layers(w, f"{prefix}.query_layers")):
        queries = _query_layer(g, candidates, candidate_ok, queries, f"{prefix}.query_layers.{i}", heads)
    score = g.op("MatMul", [candidates, g.op("Transpose", [queries], perm=[0, 2, 1])])  # [B, C, Q]
    score = g.op("Div", [score, g.const(np.array(math.sqrt(p), np.float32))])
    film = g.linear(queries, f"{prefix}.film")
    gamma, beta = (g.op("Slice", [film, g.const(np.array([at], np.int64)), g.const(np.array([at + p], np.int64)),
                                  g.const(np.array([-1], np.int64))]) for at in (0, p))
    # film_output's first Linear on ``candidate ⊙ (1 + γ) + β`` as ``candidate @ ((1 + γ) ⊙ Wᵀ) + (β Wᵀ + b)``:
    # each query's scaled weight [p, h] is small, the conditioned [B, C, Q, p] is never formed
    first = g.w[f"{prefix}.film_output.0.weight"].T.astype(np.float32)  # [p, h]
    one_plus = g.op("Add", [g.op("Unsqueeze", [gamma, g.const(np.array([3], np.int64))]),
                            g.const(np.array(1.0, np.float32))])  # [B, Q, p, 1]
    scaled = g.op("Mul", [one_plus, g.const(first)])  # [B, Q, p, h]
    shift = g.linear(beta, f"{prefix}.film_output.0")  # [B, Q, h]
    hidden = g.op("MatMul", [g.op("Unsqueeze", [candidates, g.const(np.array([1], np.int64))]), scaled])  # [B, Q, C, h]
    hidden = g.gelu(g.op("Add", [hidden, g.op("Unsqueeze", [shift, g.const(np.array([2], np.int64))])]))
    film_out = g.op("Squeeze", [g.linear(hidden, f"{prefix}.film_output.3"), g.const(np.array([3], np.int64))])
    film_out = g.op("Transpose", [film_out], perm=[0, 2, 1])  # [B, C, Q]
    inputs = [helper.make_tensor_value_info(name, dtype, dims) for name, dtype, dims in (
        ("boundary_states", TensorProto.FLOAT, ["batch", "boundaries", "width"]),
        ("spans", TensorProto.INT64, ["batch", "pool", 2]),
        ("compat", TensorProto.FLOAT, ["batch", "pool", 1]),
        ("text_lengths", TensorProto.FLOAT, ["batch", 1, 1]),
        ("mask", TensorProto.FLOAT, ["batch", "pool", 1]),
        ("queries", TensorProto.FLOAT, ["batch", "queries", "hidden"]),
        ("query_mask", TensorProto.FLOAT, ["batch", "queries", 1]),
        ("key_ok", TensorProto.BOOL, ["batch", 1, 1, "queries"]),
    ) + ((("content", TensorProto.FLOAT, ["batch", "pool", "pool_width"]),) if content else ())]
    return g.model(inputs, [(candidates, "states", ["batch", "pool", "pool_width"]),
                            (g.op("Add", [score, film_out]), "scores", ["batch", "pool", "queries"])], "pool_scorer")


class PoolGraph:
    """One checkpoint's shared-pool scorer as one onnxruntime session."""

    INPUTS = ("boundary_states", "spans", "compat", "text_lengths", "mask", "queries", "query_mask", "key_ok")

    def __init__(self, w: Weights, heads: int, threads: int | None = None, prefix: str = "shared_pool_scorer"):
        self.heads = heads
        "``candidate_attention_heads``: the candidate layers' and the query layers' heads."
        self.content = f"{prefix}.content_pooler.value_projection.weight" in w
        "Whether the candidates take span content features (``enable_span_content``), an input then."
        self._session = OnnxSession(scorer_model(w, prefix, heads, self.content),
                                    self.INPUTS + (("content",) if self.content else ()), ("states", "scores"),
                                    threads, name=f"{prefix} graph")

    def score(self, boundary_states: np.ndarray, spans: np.ndarray, mask: np.ndarray, compat: np.ndarray,
              text_lengths: np.ndarray, queries: np.ndarray, query_mask: np.ndarray,
              content: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The candidates' states ``[B, C, p]`` and the ``[B, C, Q]`` scores before the boundary
        and inside evidence is added: ``[B, n, d]`` boundary states, the pool's ``[B, C, 2]`` spans,
        ``[B, C]`` bool mask and ``[B, C]`` compatibility logits, ``[B]`` text lengths in words,
        ``[B, Q, H]`` query embeddings and ``[B, Q]`` mask; ``content``: the projected span
        content ``[B, C, p]`` (only, and always, when the checkpoint has it)."""
        key_ok = query_mask.copy()
        key_ok[:, 0] |= ~query_mask.any(-1)  # a row without queries: its softmax reads its first key
        feed = {"boundary_states": np.ascontiguousarray(boundary_states, np.float32),
                "spans": np.ascontiguousarray(spans, np.int64),
                "compat": np.ascontiguousarray(compat[..., None], np.float32),
                "text_lengths": np.maximum(text_lengths, 1).astype(np.float32).reshape(-1, 1, 1),
                "mask": mask[..., None].astype(np.float32),
                "queries": np.ascontiguousarray(queries, np.float32),
                "query_mask": query_mask[..., None].astype(np.float32),
                "key_ok": key_ok[:, None, None, :]}
        if self.content:
            if content is None:
                raise ValueError("this checkpoint's candidates need their span content features")
            feed["content"] = np.ascontiguousarray(content, np.float32)
        states, scores = self._session.run(feed)
        return states, scores
