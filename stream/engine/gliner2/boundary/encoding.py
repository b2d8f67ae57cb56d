"""Boundary states and per-query boundary marginals (gliner2 2.1.0
``models/boundary/encoding.py`` ``BoundaryEncoder`` and ``heads.py`` ``BoundaryQueryHead``),
inference only, in numpy.

For a text of ``n`` tokens there are ``n + 1`` boundaries; boundary ``i`` sits between token
``i - 1`` (its left state; a learned BOS at 0) and token ``i`` (its right state; a learned EOS at
``n``). Arrays are batched like gliner2's: ``[B, L, H]`` token states with a ``[B, L]`` mask."""

from __future__ import annotations

import math
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


def silu(x: np.ndarray) -> np.ndarray:
    return x / (1.0 + np.exp(-x))


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


def _attention_block(states: np.ndarray, mask: np.ndarray, w: Weights, name: str, heads: int,
                     window: int) -> np.ndarray:
    """Pre-norm self-attention over valid boundaries (every query row may attend to itself)."""
    b, n, d = states.shape
    hd = d // heads
    qkv = linear(layer_norm(states, w, f"{name}.norm"), w, f"{name}.qkv_projection").reshape(b, n, 3, heads, hd)
    q, k, v = (qkv[:, :, i].transpose(0, 2, 1, 3) for i in range(3))  # [B, h, n, hd]
    allowed = np.broadcast_to(mask[:, None, None, :], (b, 1, n, n))
    if window > 0:
        pos = np.arange(n)
        allowed = allowed & (np.abs(pos[:, None] - pos[None, :]) <= window)[None, None]
    allowed = allowed | np.eye(n, dtype=bool)[None, None]
    scores = q @ k.transpose(0, 1, 3, 2) / np.float32(math.sqrt(hd))
    scores = np.where(allowed, scores, -np.inf)
    attended = (softmax(scores) @ v).transpose(0, 2, 1, 3).reshape(b, n, d)
    return (states + linear(attended, w, f"{name}.output_projection")) * mask[..., None]


def _swiglu(states: np.ndarray, w: Weights, name: str) -> np.ndarray:
    value, gate = np.split(linear(layer_norm(states, w, f"{name}.norm"), w, f"{name}.input_projection"), 2, axis=-1)
    return states + linear(value * silu(gate), w, f"{name}.output_projection")


def encode_boundaries(tokens: np.ndarray, token_mask: np.ndarray, w: Weights, attention_heads: int = 4,
                      attention_window: int = 0, prefix: str = "boundary_encoder") -> BoundaryEncoding:
    """``BoundaryEncoder.forward`` (eval): left/right projections, LayerNorm, attention blocks,
    SwiGLU refinements; padding boundaries zeroed."""
    b, l, h = tokens.shape
    lengths = token_mask.sum(1).astype(np.int64)
    left = np.empty((b, l + 1, h), dtype=tokens.dtype)
    left[:, 0] = w[f"{prefix}.bos_state"]
    left[:, 1:] = tokens
    right = np.empty((b, l + 1, h), dtype=tokens.dtype)
    right[:, :l] = tokens
    right[:, l] = w[f"{prefix}.eos_state"]
    right[np.arange(b), np.minimum(lengths, l)] = w[f"{prefix}.eos_state"]
    states = linear(np.concatenate([linear(left, w, f"{prefix}.left_projection"),
                                    linear(right, w, f"{prefix}.right_projection")], -1),
                    w, f"{prefix}.output_projection")
    states = layer_norm(states, w, f"{prefix}.layer_norm")
    mask = boundary_mask(lengths, l)
    for i in range(layers(w, f"{prefix}.attention_blocks")):
        states = _attention_block(states, mask, w, f"{prefix}.attention_blocks.{i}", attention_heads,
                                  attention_window)
    for i in range(layers(w, f"{prefix}.refinement_blocks")):
        states = _swiglu(states, w, f"{prefix}.refinement_blocks.{i}")
    return BoundaryEncoding((states * mask[..., None]).astype(np.float32), mask)


class BoundaryMarginals(NamedTuple):
    start_logits: np.ndarray  # [B, Q, L + 1]
    end_logits: np.ndarray  # [B, Q, L + 1]
    inside_logits: np.ndarray  # [B, Q, L]
    inside_prefix: np.ndarray  # [B, Q, L + 1], centred cumulative inside sums
    inside_prefix_mean: np.ndarray  # [B, Q, 1]


def boundary_marginals(boundaries: BoundaryEncoding, tokens: np.ndarray, token_mask: np.ndarray,
                       queries: np.ndarray, query_mask: np.ndarray, w: Weights,
                       prefix: str = "boundary_query_head") -> BoundaryMarginals:
    """``BoundaryQueryHead.forward`` (eval): start/end logits per query and boundary, inside
    logits per query and token, and the centred inside prefix sums interval scores use."""
    d = w[f"{prefix}.start_boundary_projection.weight"].shape[0]
    scale = np.float32(1.0 / math.sqrt(d))

    def scores(states, name):
        s = linear(states, w, f"{prefix}.{name}_{'text' if name == 'inside' else 'boundary'}_projection")
        q = linear(queries, w, f"{prefix}.{name}_query_projection")
        return np.einsum("bld,bqd->bql", s, q) * scale

    start = scores(boundaries.states, "start")
    end = scores(boundaries.states, "end")
    inside = scores(tokens, "inside")
    b_keep = boundaries.mask[:, None, :] & query_mask[:, :, None]
    t_keep = token_mask[:, None, :] & query_mask[:, :, None]
    start = np.where(b_keep, start, MASK_LOGIT)
    end = np.where(b_keep, end, MASK_LOGIT)
    inside = np.where(t_keep, inside, MASK_LOGIT)
    for_prefix = np.where(t_keep, inside, np.float32(0)).astype(np.float32)
    count = np.maximum(t_keep.sum(-1, keepdims=True), 1)
    mean = for_prefix.sum(-1, keepdims=True) / count
    centred = (for_prefix - mean) * t_keep
    prefix_sums = np.concatenate([np.zeros(centred.shape[:2] + (1,), np.float32), centred.cumsum(-1)], -1)
    return BoundaryMarginals(start.astype(np.float32), end.astype(np.float32), inside.astype(np.float32),
                             prefix_sums.astype(np.float32), mean.astype(np.float32))
