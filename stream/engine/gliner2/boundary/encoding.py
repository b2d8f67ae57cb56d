"""The numpy forms of the torch modules the head's numpy parts use (``nn.Linear``,
``nn.LayerNorm``, softmax), and what the boundary encoder and query head produce (gliner2 2.1.0
``models/boundary/encoding.py`` ``BoundaryEncoder`` and ``heads.py`` ``BoundaryQueryHead``), which
run as one onnxruntime graph (``boundary_graph``).

For a text of ``n`` tokens there are ``n + 1`` boundaries; boundary ``i`` sits between token
``i - 1`` (its left state; a learned BOS at 0) and token ``i`` (its right state; a learned EOS at
``n``). Arrays are batched like gliner2's: ``[B, L, H]`` token states with a ``[B, L]`` mask."""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import numpy as np

MASK_LOGIT = np.float32(-1.0e4)
"gliner2's finite sentinel for masked logits (``constants.MASK_LOGIT``)."

Weights = Mapping[str, np.ndarray]


def linear(x: np.ndarray, w: Weights, name: str) -> np.ndarray:
    """``nn.Linear``: ``x @ W.T + b`` (float32), as one 2-D product: numpy's stacked (3-D)
    matmul against a transposed weight is slower (1.3× on the pool scorer's candidate-layer shapes)."""
    weight = w[f"{name}.weight"]
    out = x.reshape(-1, x.shape[-1]) @ weight.T
    bias = w.get(f"{name}.bias")
    if bias is not None:
        out += bias
    return out.reshape(*x.shape[:-1], weight.shape[0])


def layer_norm(x: np.ndarray, w: Weights, name: str, eps: float = 1e-5) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * w[f"{name}.weight"] + w[f"{name}.bias"]


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def layers(w: Weights, prefix: str) -> int:
    """How many ``prefix.N.`` blocks the state dict holds."""
    found = {int(k[len(prefix) + 1:].split(".", 1)[0]) for k in w if k.startswith(prefix + ".")}
    return max(found) + 1 if found else 0


class BoundaryEncoding(NamedTuple):
    states: np.ndarray  # [B, L + 1, d]
    mask: np.ndarray  # [B, L + 1] bool


def boundary_mask(lengths: np.ndarray, max_length: int) -> np.ndarray:
    return np.arange(max_length + 1)[None, :] <= lengths[:, None]



class BoundaryMarginals(NamedTuple):
    start_logits: np.ndarray  # [B, Q, L + 1]
    end_logits: np.ndarray  # [B, Q, L + 1]
    inside_logits: np.ndarray  # [B, Q, L]
    inside_prefix: np.ndarray  # [B, Q, L + 1], centred cumulative inside sums
    inside_prefix_mean: np.ndarray  # [B, Q, 1]
