"""Building a head's onnxruntime graph from its torch weights: the torch modules the boundary
head is made of (``nn.Linear``, ``nn.LayerNorm``, exact ``nn.GELU``, the FFN) as ONNX nodes,
written by hand with ``onnx.helper`` (no torch at run time, so no ``torch.onnx.export``)."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from stream.engine.gliner2.boundary.encoding import Weights

OPSET = 17
"LayerNormalization is an ONNX operator from opset 17."


class GraphBuilder:
    """Nodes and initializers of one graph, with the torch modules the head is made of."""

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

    def split(self, x: str, sizes: list[int]) -> list[str]:
        """Pieces of the last axis."""
        outs = [self._fresh("split") for _ in sizes]
        self.nodes.append(helper.make_node("Split", [x, self.const(np.array(sizes, np.int64))], outs, axis=-1))
        return outs

    def linear(self, x: str, name: str) -> str:
        """``nn.Linear`` over the last axis."""
        y = self.op("MatMul", [x, self.const(self.w[f"{name}.weight"].T.astype(np.float32), name)])
        bias = self.w.get(f"{name}.bias")
        return y if bias is None else self.op("Add", [y, self.const(bias.astype(np.float32), name)])

    def linears(self, x: str, names: list[str]) -> list[str]:
        """Several ``nn.Linear`` of the same input as one product (one wider GEMM), split after."""
        weights = [self.w[f"{name}.weight"] for name in names]
        bias = np.concatenate([self.w.get(f"{name}.bias", np.zeros(len(weight), np.float32))
                               for name, weight in zip(names, weights)])
        y = self.op("MatMul", [x, self.const(np.concatenate(weights).T.astype(np.float32))])
        y = self.op("Add", [y, self.const(bias.astype(np.float32))])
        return self.split(y, [len(weight) for weight in weights])

    def attention(self, qkv: str, width: int, heads: int, adjust: Callable[[str], str]) -> str:
        """Multi-head scaled dot-product attention from a ``[B, S, 3 d]`` q|k|v projection (torch's
        head layout); ``adjust`` takes the ``[B, heads, S, S]`` scaled logits before the softmax
        (masking, bias) → ``[B, S, d]``."""
        hd = width // heads
        qkv = self.op("Transpose", [self.op("Reshape", [qkv, self.const(np.array([0, 0, 3, heads, hd], np.int64))])],
                      perm=[2, 0, 3, 1, 4])  # [3, B, heads, S, hd]
        q, k, v = (self.op("Gather", [qkv, self.const(np.array(i, np.int64))], axis=0) for i in range(3))
        logits = self.op("Div", [self.op("MatMul", [q, self.op("Transpose", [k], perm=[0, 1, 3, 2])]),
                                 self.const(np.array(math.sqrt(hd), np.float32))])
        weights = self.op("Softmax", [adjust(logits)], axis=-1)
        attended = self.op("Transpose", [self.op("MatMul", [weights, v])], perm=[0, 2, 1, 3])  # [B, S, heads, hd]
        return self.op("Reshape", [attended, self.const(np.array([0, 0, width], np.int64))])

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
