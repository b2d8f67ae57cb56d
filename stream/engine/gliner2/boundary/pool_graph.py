"""The shared-pool scorer's dense layers as onnxruntime graphs, built from the head's weights at
load (gliner2 2.1.0 ``models/boundary/pool.py``: ``OverlapBiasedCandidateAttention`` and the
FiLM scoring of ``SharedPoolScorer.forward``).

Their work does not shrink with the encoder (192 candidates on any sentence, two attention
layers with a 512-wide exact-GELU FFN, and the FiLM FFN on every candidate × query), so on a
small encoder it is a large share of a batch. In numpy each elementwise pass is one thread and
a temporary; onnxruntime runs them on the session's threads and keeps the GEMMs in MLAS. The
arithmetic is the reference's; onnxruntime's ``Erf`` is within 5.7e-8 of ``math.erf``
(``tests/engine/test_boundary_heads.py`` checks the GELU), where numpy has no erf at all.

Two graphs, because the query layers (small, numpy) sit between them:

- ``candidate_layers``: ``[B, C, p]`` candidate states, ``[B, C, C]`` overlap buckets of each
  (query, key) pair (``scorer.keyed_buckets``: a padding key reads gliner2's mask logit from the
  bias table) and the ``[B, C, 1]`` pool mask → the candidate states after every layer;
- ``film_scores``: candidate states and ``[B, Q, p]`` query states → ``[B, C, Q]``
  ``candidate·query / sqrt(p) + film_output(candidate ⊙ (1 + γ) + β)``, ``γ, β = film(query)``.
"""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from stream.engine.gliner2.boundary.encoding import MASK_LOGIT, Weights, layers
from stream.engine.session import OnnxSession

OPSET = 17
"LayerNormalization is an ONNX operator from opset 17."


class GraphBuilder:
    """Nodes and initializers of one graph, with the torch modules the scorer is made of."""

    def __init__(self, w: Weights):
        self.w = w
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._names = 0

    def _fresh(self, hint: str) -> str:
        self._names += 1
        return f"{hint}_{self._names}"

    def const(self, value: np.ndarray, hint: str = "c") -> str:
        name = self._fresh(hint)
        self.inits.append(numpy_helper.from_array(np.array(value, order="C"), name))  # 0-d stays 0-d
        return name

    def op(self, op_type: str, inputs: list[str], hint: str | None = None, **attrs) -> str:
        out = self._fresh(hint or op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], **attrs))
        return out

    def linear(self, x: str, name: str) -> str:
        """``nn.Linear`` over the last axis."""
        y = self.op("MatMul", [x, self.const(self.w[f"{name}.weight"].T.astype(np.float32), name)])
        bias = self.w.get(f"{name}.bias")
        return y if bias is None else self.op("Add", [y, self.const(bias.astype(np.float32), name)])

    def layer_norm(self, x: str, name: str, eps: float = 1e-5) -> str:
        return self.op("LayerNormalization", [x, self.const(self.w[f"{name}.weight"], name),
                                              self.const(self.w[f"{name}.bias"], name)], axis=-1, epsilon=eps)

    def gelu(self, x: str) -> str:
        """torch's exact ``nn.GELU()``: ``0.5 x (1 + erf(x / sqrt 2))``."""
        e = self.op("Erf", [self.op("Div", [x, self.const(np.array(math.sqrt(2.0), np.float32))])])
        half_x = self.op("Mul", [x, self.const(np.array(0.5, np.float32))])
        return self.op("Mul", [half_x, self.op("Add", [e, self.const(np.array(1.0, np.float32))])])

    def ffn(self, x: str, name: str) -> str:
        """``nn.Sequential(Linear, GELU, Dropout, Linear)`` (eval)."""
        return self.linear(self.gelu(self.linear(x, f"{name}.0")), f"{name}.3")

    def model(self, inputs: list[onnx.ValueInfoProto], outputs: list[tuple[str, str, list[str]]], name: str) -> bytes:
        """The serialized model; ``outputs``: a produced value, the output's name, its dimensions."""
        for produced, exposed, _ in outputs:
            self.nodes.append(helper.make_node("Identity", [produced], [exposed]))
        graph = helper.make_graph(self.nodes, name, inputs,
                                  [helper.make_tensor_value_info(exposed, TensorProto.FLOAT, dims)
                                   for _, exposed, dims in outputs], self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
        onnx.checker.check_model(model)
        return model.SerializeToString()


def _candidate_attention(g: GraphBuilder, x: str, bias_index: str, mask: str, name: str, heads: int) -> str:
    """One ``OverlapBiasedCandidateAttention`` layer (eval). gliner2 sets a padding key's logit to
    its sentinel; here the sentinel is added to it (the bias table's ``MASKED_KEY`` row): either way
    its softmax weight is exactly 0 (exp of about -1e4) and the other weights are the same numbers.
    Padding rows are zeroed after the product with the values rather than before (0 or 1 times each
    row: the same numbers)."""
    d = g.w[f"{name}.output.weight"].shape[0]
    hd = d // heads
    qkv = g.linear(g.layer_norm(x, f"{name}.norm1"), f"{name}.qkv")
    qkv = g.op("Reshape", [qkv, g.const(np.array([0, 0, 3, heads, hd], np.int64))])
    qkv = g.op("Transpose", [qkv], perm=[2, 0, 3, 1, 4])  # [3, B, heads, C, hd]
    q, k, v = (g.op("Gather", [qkv, g.const(np.array(i, np.int64))], axis=0) for i in range(3))
    logits = g.op("MatMul", [q, g.op("Transpose", [k], perm=[0, 1, 3, 2])])
    logits = g.op("Div", [logits, g.const(np.array(math.sqrt(hd), np.float32))])
    table = np.concatenate([g.w[f"{name}.relative_bias"], np.full((1, heads), MASK_LOGIT, np.float32)])
    bias = g.op("Gather", [g.const(table.astype(np.float32), f"{name}.overlap_bias"), bias_index], axis=0)
    weights = g.op("Softmax", [g.op("Add", [logits, g.op("Transpose", [bias], perm=[0, 3, 1, 2])])], axis=-1)
    attended = g.op("Transpose", [g.op("MatMul", [weights, v])], perm=[0, 2, 1, 3])  # [B, C, heads, hd]
    attended = g.op("Mul", [g.op("Reshape", [attended, g.const(np.array([0, 0, d], np.int64))]), mask])
    x = g.op("Add", [x, g.linear(attended, f"{name}.output")])
    x = g.op("Add", [x, g.ffn(g.layer_norm(x, f"{name}.norm2"), f"{name}.ffn")])
    return g.op("Mul", [x, mask])


def candidate_layers_model(w: Weights, prefix: str, heads: int) -> bytes:
    """``buckets`` from ``scorer.keyed_buckets`` index each layer's overlap-bias table, whose
    ``MASKED_KEY`` row is gliner2's mask logit."""
    g = GraphBuilder(w)
    x, bias_index = "candidates", g.op("Cast", ["buckets"], to=TensorProto.INT32)
    for i in range(layers(w, f"{prefix}.candidate_layers")):
        x = _candidate_attention(g, x, bias_index, "mask", f"{prefix}.candidate_layers.{i}", heads)
    inputs = [helper.make_tensor_value_info("candidates", TensorProto.FLOAT, ["batch", "pool", "width"]),
              helper.make_tensor_value_info("buckets", TensorProto.UINT8, ["batch", "pool", "pool"]),
              helper.make_tensor_value_info("mask", TensorProto.FLOAT, ["batch", "pool", 1])]
    return g.model(inputs, [(x, "states", ["batch", "pool", "width"])], "candidate_layers")


def film_scores_model(w: Weights, prefix: str) -> bytes:
    g = GraphBuilder(w)
    p = w[f"{prefix}.film.weight"].shape[1]
    score = g.op("MatMul", ["candidates", g.op("Transpose", ["queries"], perm=[0, 2, 1])])  # [B, C, Q]
    score = g.op("Div", [score, g.const(np.array(math.sqrt(p), np.float32))])
    film = g.linear("queries", f"{prefix}.film")
    gamma, beta = (g.op("Slice", [film, g.const(np.array([at], np.int64)), g.const(np.array([at + p], np.int64)),
                                  g.const(np.array([-1], np.int64))]) for at in (0, p))
    one_plus = g.op("Add", [g.op("Unsqueeze", [gamma, g.const(np.array([1], np.int64))]),
                            g.const(np.array(1.0, np.float32))])  # [B, 1, Q, p]
    cand = g.op("Unsqueeze", ["candidates", g.const(np.array([2], np.int64))])  # [B, C, 1, p]
    conditioned = g.op("Add", [g.op("Mul", [cand, one_plus]),
                               g.op("Unsqueeze", [beta, g.const(np.array([1], np.int64))])])
    film_out = g.op("Squeeze", [g.ffn(conditioned, f"{prefix}.film_output"), g.const(np.array([3], np.int64))])
    inputs = [helper.make_tensor_value_info("candidates", TensorProto.FLOAT, ["batch", "pool", "width"]),
              helper.make_tensor_value_info("queries", TensorProto.FLOAT, ["batch", "queries", "width"])]
    return g.model(inputs, [(g.op("Add", [score, film_out]), "scores", ["batch", "pool", "queries"])], "film_scores")


class PoolGraph:
    """The two graphs of one checkpoint's shared-pool scorer, each in its own session."""

    def __init__(self, w: Weights, heads: int, threads: int | None = None, prefix: str = "shared_pool_scorer"):
        self.heads = heads
        "``candidate_attention_heads``: the candidate layers' and the query layers' heads."
        self._layers = OnnxSession(candidate_layers_model(w, prefix, heads), ("candidates", "buckets", "mask"),
                                   ("states",), threads, name=f"{prefix} candidate layers")
        self._film = OnnxSession(film_scores_model(w, prefix), ("candidates", "queries"), ("scores",), threads,
                                 name=f"{prefix} FiLM scores")

    def candidate_layers(self, candidates: np.ndarray, buckets: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """``[B, C, p]`` states, ``[B, C, C]`` uint8 ``keyed_buckets``, ``[B, C]`` bool pool mask."""
        return self._layers.run({"candidates": np.ascontiguousarray(candidates, np.float32), "buckets": buckets,
                                 "mask": mask[..., None].astype(np.float32)})[0]

    def film_scores(self, candidates: np.ndarray, queries: np.ndarray) -> np.ndarray:
        """``[B, C, Q]`` scores before the boundary and inside evidence is added."""
        return self._film.run({"candidates": np.ascontiguousarray(candidates, np.float32),
                               "queries": np.ascontiguousarray(queries, np.float32)})[0]
