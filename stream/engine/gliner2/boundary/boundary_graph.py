"""The boundary encoder and the per-query boundary marginals as one onnxruntime graph, built
from the head's weights at load (gliner2 2.1.0 ``models/boundary/encoding.py``
``BoundaryEncoder`` and ``heads.py`` ``BoundaryQueryHead``, eval).

From ``[B, L, H]`` token states and ``[B, Q, H]`` query embeddings with their masks:

- boundary states ``[B, L + 1, d]``: each boundary's left state (the token before it; a learned
  BOS at 0) and right state (the token after it; a learned EOS at the text's end) projected,
  concatenated, projected and normalised; then the pre-norm attention blocks over the text's
  boundaries (a boundary always attends to itself; within ``attention_window`` when it is set)
  and the SwiGLU refinements; padding boundaries zero;
- start and end logits per query and boundary, inside logits per query and token (gliner2's mask
  logit where the query or the position is padding), and the centred cumulative inside sums
  interval scores read, with their means.

In numpy these were a dozen single-threaded passes and temporaries per batch; here they run on
the session's threads (0.095 → 0.066 s per 300 sentences on the small benchmark checkpoint, whose encoder
takes ~4.5 s: in-engine timers, bench/GLINER2.md).
"""

from __future__ import annotations

import math

import numpy as np
from onnx import TensorProto, helper

from stream.engine.gliner2.boundary.encoding import (
    MASK_LOGIT,
    BoundaryEncoding,
    BoundaryMarginals,
    Weights,
    boundary_mask,
    layers,
    linear,
)
from stream.engine.gliner2.boundary.graph import GraphBuilder
from stream.engine.session import OnnxSession


def _i64(*values: int) -> np.ndarray:
    return np.array(values, np.int64)


def _attention_block(g: GraphBuilder, states: str, allowed: str, mask: str, name: str, heads: int) -> str:
    """Pre-norm self-attention; ``allowed``: ``[B, 1, n, n]`` keys each boundary may read."""
    d = g.w[f"{name}.output_projection.weight"].shape[0]
    attended = g.attention(g.linear(g.layer_norm(states, f"{name}.norm"), f"{name}.qkv_projection"), d, heads,
                           lambda logits: g.op("Where", [allowed, logits, g.const(np.array(-np.inf, np.float32))]))
    return g.op("Mul", [g.op("Add", [states, g.linear(attended, f"{name}.output_projection")]), mask])


def _swiglu(g: GraphBuilder, states: str, name: str) -> str:
    both = g.linear(g.layer_norm(states, f"{name}.norm"), f"{name}.input_projection")
    half = g.w[f"{name}.input_projection.weight"].shape[0] // 2
    value, gate = (g.op("Slice", [both, g.const(_i64(at)), g.const(_i64(at + half)), g.const(_i64(-1))])
                   for at in (0, half))
    silu = g.op("Mul", [gate, g.op("Sigmoid", [gate])])
    return g.op("Add", [states, g.linear(g.op("Mul", [value, silu]), f"{name}.output_projection")])


def _boundary_states(g: GraphBuilder, prefix: str, heads: int, window: int, left_tokens: str,
                     right_tokens: str) -> tuple[str, str]:
    """The boundary states and their ``[B, n]`` bool mask; ``left_tokens``, ``right_tokens``: the
    tokens through the left and right projections (a boundary's left state is the token before it,
    its right state the token after it; the BOS and EOS states are projected here, at build)."""
    shape = g.op("Shape", ["tokens"])  # [B, L, H]
    batch = g.op("Slice", [shape, g.const(_i64(0)), g.const(_i64(1))])
    width = g.const(_i64(g.w[f"{prefix}.left_projection.weight"].shape[0]))
    row_shape = g.op("Concat", [batch, g.const(_i64(1)), width], axis=0)  # [B, 1, d]
    bos, eos = (g.op("Expand", [g.const(linear(g.w[f"{prefix}.{which}_state"].reshape(1, 1, -1).astype(np.float32),
                                               g.w, f"{prefix}.{side}_projection")), row_shape])
                for which, side in (("bos", "left"), ("eos", "right")))
    lengths = g.op("ReduceSum", [g.op("Cast", ["token_mask"], to=TensorProto.INT64), g.const(_i64(1))],
                   keepdims=1)  # [B, 1]
    n = g.op("Add", [g.op("Squeeze", [g.op("Slice", [shape, g.const(_i64(1)), g.const(_i64(2))])]),
                     g.const(np.array(1, np.int64))])
    positions = g.op("Range", [g.const(np.array(0, np.int64)), n, g.const(np.array(1, np.int64))])  # [n]
    mask = g.op("LessOrEqual", [g.op("Unsqueeze", [positions, g.const(_i64(0))]), lengths])  # [B, n]
    left = g.op("Concat", [bos, left_tokens], axis=1)
    at_end = g.op("Unsqueeze", [g.op("Equal", [g.op("Unsqueeze", [positions, g.const(_i64(0))]), lengths]),
                                g.const(_i64(2))])  # [B, n, 1]
    right = g.op("Where", [at_end, eos, g.op("Concat", [right_tokens, eos], axis=1)])
    states = g.op("Concat", [left, right], axis=-1)
    states = g.layer_norm(g.linear(states, f"{prefix}.output_projection"), f"{prefix}.layer_norm")
    float_mask = g.op("Cast", [g.op("Unsqueeze", [mask, g.const(_i64(2))])], to=TensorProto.FLOAT)
    blocks = layers(g.w, f"{prefix}.attention_blocks")
    if blocks:
        allowed = g.op("Unsqueeze", [mask, g.const(_i64(1, 2))])  # [B, 1, 1, n]: valid keys
        rows = g.op("Unsqueeze", [positions, g.const(_i64(1))])
        cols = g.op("Unsqueeze", [positions, g.const(_i64(0))])
        if window > 0:
            near = g.op("LessOrEqual", [g.op("Abs", [g.op("Sub", [rows, cols])]), g.const(np.array(window, np.int64))])
            allowed = g.op("And", [allowed, near])
        allowed = g.op("Or", [allowed, g.op("Equal", [rows, cols])])  # every boundary reads itself
        for i in range(blocks):
            states = _attention_block(g, states, allowed, float_mask, f"{prefix}.attention_blocks.{i}", heads)
    for i in range(layers(g.w, f"{prefix}.refinement_blocks")):
        states = _swiglu(g, states, f"{prefix}.refinement_blocks.{i}")
    return g.op("Mul", [states, float_mask]), mask


def _marginals(g: GraphBuilder, states: str, mask: str, inside_tokens: str, prefix: str) -> tuple[str, str, str, str, str]:
    """``inside_tokens``: the tokens through ``inside_text_projection``."""
    d = g.w[f"{prefix}.start_boundary_projection.weight"].shape[0]
    query_mask = g.op("Unsqueeze", ["query_mask", g.const(_i64(2))])  # [B, Q, 1]
    start_keys, end_keys = g.linears(states, [f"{prefix}.start_boundary_projection", f"{prefix}.end_boundary_projection"])
    start_q, end_q, inside_q = g.linears("queries", [f"{prefix}.{name}_query_projection"
                                                     for name in ("start", "end", "inside")])

    def logits(keys: str, query: str) -> str:
        out = g.op("MatMul", [query, g.op("Transpose", [keys], perm=[0, 2, 1])])  # [B, Q, n]
        return g.op("Mul", [out, g.const(np.array(1.0 / math.sqrt(d), np.float32))])

    sentinel = g.const(np.array(MASK_LOGIT, np.float32))
    b_keep = g.op("And", [g.op("Unsqueeze", [mask, g.const(_i64(1))]), query_mask])  # [B, Q, n]
    t_keep = g.op("And", [g.op("Unsqueeze", ["token_mask", g.const(_i64(1))]), query_mask])  # [B, Q, L]
    start = g.op("Where", [b_keep, logits(start_keys, start_q), sentinel])
    end = g.op("Where", [b_keep, logits(end_keys, end_q), sentinel])
    raw_inside = logits(inside_tokens, inside_q)
    inside = g.op("Where", [t_keep, raw_inside, sentinel])
    kept = g.op("Where", [t_keep, raw_inside, g.const(np.array(0.0, np.float32))])
    keep = g.op("Cast", [t_keep], to=TensorProto.FLOAT)
    count = g.op("Max", [g.op("ReduceSum", [keep, g.const(_i64(-1))], keepdims=1), g.const(np.array(1.0, np.float32))])
    mean = g.op("Div", [g.op("ReduceSum", [kept, g.const(_i64(-1))], keepdims=1), count])  # [B, Q, 1]
    centred = g.op("Mul", [g.op("Sub", [kept, mean]), keep])
    zero = g.op("Mul", [mean, g.const(np.array(0.0, np.float32))])  # [B, Q, 1] zeros (the mean is finite)
    prefix_sums = g.op("Concat", [zero, g.op("CumSum", [centred, g.const(np.array(-1, np.int64))])], axis=-1)
    return start, end, inside, prefix_sums, mean


def boundary_model(w: Weights, heads: int, window: int, encoder: str = "boundary_encoder",
                   query_head: str = "boundary_query_head") -> bytes:
    """``BoundaryEncoder.forward`` and ``BoundaryQueryHead.forward`` (eval) as one graph."""
    g = GraphBuilder(w)
    left, right, inside_tokens = g.linears("tokens", [f"{encoder}.left_projection", f"{encoder}.right_projection",
                                                      f"{query_head}.inside_text_projection"])
    states, mask = _boundary_states(g, encoder, heads, window, left, right)
    start, end, inside, prefix_sums, mean = _marginals(g, states, mask, inside_tokens, query_head)
    inputs = [helper.make_tensor_value_info(name, dtype, dims) for name, dtype, dims in (
        ("tokens", TensorProto.FLOAT, ["batch", "words", "hidden"]),
        ("token_mask", TensorProto.BOOL, ["batch", "words"]),
        ("queries", TensorProto.FLOAT, ["batch", "queries", "hidden"]),
        ("query_mask", TensorProto.BOOL, ["batch", "queries"]))]
    return g.model(inputs, [(states, "states", ["batch", "boundaries", "width"]),
                            (start, "start_logits", ["batch", "queries", "boundaries"]),
                            (end, "end_logits", ["batch", "queries", "boundaries"]),
                            (inside, "inside_logits", ["batch", "queries", "words"]),
                            (prefix_sums, "inside_prefix", ["batch", "queries", "boundaries"]),
                            (mean, "inside_prefix_mean", ["batch", "queries", 1])], "boundary_encoder")


class BoundaryGraph:
    """One checkpoint's boundary encoder and query head as one onnxruntime session."""

    INPUTS = ("tokens", "token_mask", "queries", "query_mask")
    OUTPUTS = ("states",) + BoundaryMarginals._fields

    def __init__(self, w: Weights, heads: int = 4, window: int = 0, threads: int | None = None):
        """``heads``, ``window``: ``boundary_attention_heads`` and ``boundary_attention_window``."""
        self._session = OnnxSession(boundary_model(w, heads, window), self.INPUTS, self.OUTPUTS, threads,
                                    name="boundary encoder graph")

    def run(self, tokens: np.ndarray, token_mask: np.ndarray, queries: np.ndarray,
            query_mask: np.ndarray) -> tuple[BoundaryEncoding, BoundaryMarginals]:
        """``[B, L, H]`` token states with their ``[B, L]`` mask, ``[B, Q, H]`` queries with
        their ``[B, Q]`` mask → the boundary states with their mask, and the marginals."""
        states, *marginals = self._session.run({
            "tokens": np.ascontiguousarray(tokens, np.float32), "token_mask": np.ascontiguousarray(token_mask, bool),
            "queries": np.ascontiguousarray(queries, np.float32), "query_mask": np.ascontiguousarray(query_mask, bool)})
        mask = boundary_mask(token_mask.sum(1).astype(np.int64), tokens.shape[1])
        return BoundaryEncoding(states, mask), BoundaryMarginals(*marginals)
