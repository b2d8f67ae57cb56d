"""The per-query candidate path (gliner2 2.1.0 ``candidate_pool="per_query"``, its default):
``models/boundary/proposal.py`` ``SparseBoundaryProposer`` and ``models/boundary/scoring.py``
``SparseBoundaryPairScorer``, inference only, in numpy.

Per query: the top start boundaries (by the query's start marginal), for each the best ends after
it (endpoint compatibility + end marginal + the start's score), and the same backwards from the
top ends; the pairs deduplicated into ``candidate_budget`` candidates in descending score order.
Each candidate is then scored by the pair reranker: multi-head endpoint compatibility gated by
the query, the start/end marginals, the proposer's endpoint compatibility as a prior, the
query's inside evidence over the span, continuous length features, and optionally span content,
rotary endpoint positions and endpoint differences. Sorting is stable everywhere, as gliner2's
``stable=True`` sorts are; the streaming block loop is kept so ties break as gliner2's do."""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from stream.engine.gliner2.boundary.encoding import MASK_LOGIT, Weights, linear
from stream.engine.gliner2.boundary.pool import _deduplicate, top_descending
from stream.engine.gliner2.boundary.scorer import span_content


class ProposerSettings(NamedTuple):
    """The ``boundary_head`` settings the per-query path reads."""

    start_top_k: int = 16
    end_top_k: int = 16
    ends_per_start: int = 8
    starts_per_end: int = 8
    candidate_budget: int = 128
    end_block_size: int = 256
    bidirectional_proposals: bool = True
    export_mode: str = "auto"
    vectorized_pair_elements: int = 16_777_216
    enable_rotary_endpoints: bool = False
    rotary_base: float = 10000.0
    boundary_top_k_alpha: float = 0.0
    boundary_top_k_max: int = 128
    boundary_top_k_bucket: int = 8
    query_conditioned_inside_weight: bool = False
    endpoint_difference_features: bool = False
    reranker_endpoint_compat: bool = True
    multihead_pair_compat_heads: int = 8


class Candidates(NamedTuple):
    indices: np.ndarray  # [B, Q, C, 2] half-open boundary spans, 0 where invalid
    valid: np.ndarray  # [B, Q, C]
    compat: np.ndarray  # [B, Q, C] the proposer's marginal-free endpoint compatibility (0 where invalid)


def boundary_budget(n: int, base_k: int, s: ProposerSettings) -> int:
    """``resolve_boundary_budget``: a length-adaptive, bucketed top-k when ``boundary_top_k_alpha`` > 0."""
    if s.boundary_top_k_alpha <= 0.0:
        return base_k
    requested = int(math.ceil(s.boundary_top_k_alpha * max(n - 1, 0)))
    requested = max(base_k, min(requested, s.boundary_top_k_max))
    return min(s.boundary_top_k_max, int(math.ceil(requested / s.boundary_top_k_bucket) * s.boundary_top_k_bucket))


def rotate(states: np.ndarray, base: float) -> np.ndarray:
    """``RotaryBoundaryEmbedding`` at positions 0..N-1 of ``[B, N, d]``: pairs (even, odd) rotated."""
    d = states.shape[-1]
    inv_freq = (1.0 / (np.float32(base) ** (np.arange(0, d, 2, dtype=np.float32) / np.float32(d)))).astype(np.float32)
    angle = np.arange(states.shape[1], dtype=np.float32)[:, None] * inv_freq
    cos, sin = np.cos(angle), np.sin(angle)
    even, odd = states[..., 0::2], states[..., 1::2]
    return np.stack([even * cos - odd * sin, even * sin + odd * cos], -1).reshape(states.shape).astype(np.float32)


def _gather(states: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``[B, N, D]`` at ``[B, ...]`` → ``[B, ..., D]`` (indices clamped)."""
    b = np.arange(states.shape[0]).reshape((-1,) + (1,) * (idx.ndim - 1))
    return states[b, np.clip(idx, 0, states.shape[1] - 1)]


def _top_boundaries(logits: np.ndarray, valid: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``select_top_boundaries`` on ``[B, Q, N]``: scores (0 where invalid), indices (0), validity."""
    k = min(k, logits.shape[-1])
    idx = top_descending(np.where(valid, logits, MASK_LOGIT), k)
    ok = np.take_along_axis(valid, idx, -1)
    scores = np.where(ok, np.take_along_axis(np.where(valid, logits, MASK_LOGIT), idx, -1), 0)
    return scores.astype(np.float32), np.where(ok, idx, 0), ok


def _conditional(anchor: np.ndarray, others: np.ndarray, anchor_idx: np.ndarray, anchor_scores: np.ndarray,
                 anchor_ok: np.ndarray, boundary_mask: np.ndarray, query_mask: np.ndarray,
                 marginals: np.ndarray, block: int, top_k: int, scale: np.float32,
                 forward: bool) -> tuple[np.ndarray, np.ndarray]:
    """``_score_ends_blockwise`` (``forward``) / ``_score_starts_blockwise``: for each selected
    boundary, the best ``top_k`` partners after (before) it, merged block by block into a running
    top-k as gliner2 merges them (stable sort of running + block: exact ties keep that order)."""
    b, q, k, _ = anchor.shape
    n = others.shape[1]
    top_scores = np.full((b, q, k, top_k), MASK_LOGIT, np.float32)
    top_idx = np.zeros((b, q, k, top_k), np.int64)
    for j0 in range(0, n, block):
        j1 = min(j0 + block, n)
        scores = np.einsum("bqkd,bed->bqke", anchor, others[:, j0:j1]) * scale
        scores = scores + marginals[:, :, None, j0:j1] + anchor_scores[..., None]
        index = np.arange(j0, j1)
        order_ok = index > anchor_idx[..., None] if forward else index < anchor_idx[..., None]
        keep = (boundary_mask[:, None, None, j0:j1] & query_mask[:, :, None, None] & order_ok
                & anchor_ok[..., None])
        scores = np.where(keep, scores, MASK_LOGIT).astype(np.float32)
        merged_scores = np.concatenate([top_scores, scores], -1)
        merged_idx = np.concatenate([top_idx, np.broadcast_to(index, scores.shape)], -1)
        order = top_descending(merged_scores, top_k)
        top_scores = np.take_along_axis(merged_scores, order, -1)
        top_idx = np.take_along_axis(merged_idx, order, -1)
    return top_scores, top_idx


def propose(states: np.ndarray, mask: np.ndarray, queries: np.ndarray, query_mask: np.ndarray,
            start_logits: np.ndarray, end_logits: np.ndarray, w: Weights, s: ProposerSettings,
            prefix: str = "boundary_proposer") -> Candidates:
    """``SparseBoundaryProposer.forward`` in eval (no gold injection): ``[B, Q, C]`` candidates."""
    b, n, d = states.shape
    q = queries.shape[1]
    scale = np.float32(1.0 / math.sqrt(d))
    start_k = boundary_budget(n, s.start_top_k, s)
    end_k = boundary_budget(n, s.end_top_k, s)
    vectorized = s.export_mode == "vectorized" or (s.export_mode == "auto"
                                                    and b * q * start_k * n <= s.vectorized_pair_elements)
    block = n if vectorized else s.end_block_size
    b_valid = mask[:, None, :] & query_mask[:, :, None]
    start_all, end_all, gate = _projections(states, queries, w, s, prefix)

    st_scores, st_idx, st_ok = _top_boundaries(start_logits, b_valid, start_k)
    fwd_scores, fwd_end = _conditional(_gather(start_all, st_idx) * gate[:, :, None], end_all, st_idx, st_scores,
                                       st_ok, mask, query_mask, end_logits, block, s.ends_per_start, scale, True)
    fwd_start = np.broadcast_to(st_idx[..., None], fwd_end.shape)
    pair_s, pair_e, pair_sc = [fwd_start.reshape(b, q, -1)], [fwd_end.reshape(b, q, -1)], [fwd_scores.reshape(b, q, -1)]
    pair_ok = [(st_ok[..., None] & query_mask[:, :, None, None] & _gather(mask, fwd_end)
                & (fwd_end > fwd_start)).reshape(b, q, -1)]
    if s.bidirectional_proposals:
        en_scores, en_idx, en_ok = _top_boundaries(end_logits, b_valid, end_k)
        bwd_scores, bwd_start = _conditional(_gather(end_all, en_idx) * gate[:, :, None], start_all, en_idx,
                                             en_scores, en_ok, mask, query_mask, start_logits, block,
                                             s.starts_per_end, scale, False)
        bwd_end = np.broadcast_to(en_idx[..., None], bwd_start.shape)
        pair_s.append(bwd_start.reshape(b, q, -1))
        pair_e.append(bwd_end.reshape(b, q, -1))
        pair_sc.append(bwd_scores.reshape(b, q, -1))
        pair_ok.append((en_ok[..., None] & query_mask[:, :, None, None] & _gather(mask, bwd_start)
                        & (bwd_end > bwd_start)).reshape(b, q, -1))
    all_s, all_e = np.concatenate(pair_s, -1), np.concatenate(pair_e, -1)
    all_ok = np.concatenate(pair_ok, -1) & query_mask[:, :, None]
    keys, ok = _deduplicate((all_s * n + all_e).reshape(b * q, -1), np.concatenate(pair_sc, -1).reshape(b * q, -1),
                            all_ok.reshape(b * q, -1), s.candidate_budget, n)
    keys, ok = keys.reshape(b, q, -1), ok.reshape(b, q, -1)
    keys = np.where(ok, keys, 0)
    starts, ends = keys // n, keys % n
    indices = np.where(ok[..., None], np.stack([starts, ends], -1), 0)
    compat = (_gather(start_all, starts) * gate[:, :, None] * _gather(end_all, ends)).sum(-1) * scale
    return Candidates(indices, ok, np.where(ok, compat, 0).astype(np.float32))


def _projections(states: np.ndarray, queries: np.ndarray, w: Weights, s: ProposerSettings,
                 prefix: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    start_all = linear(states, w, f"{prefix}.start_pair_projection")
    end_all = linear(states, w, f"{prefix}.end_key_projection")
    if s.enable_rotary_endpoints:
        start_all, end_all = rotate(start_all, s.rotary_base), rotate(end_all, s.rotary_base)
    gate = _sigmoid(linear(queries, w, f"{prefix}.start_query_projection"))
    if s.enable_rotary_endpoints:
        gate = np.repeat(gate, 2, axis=-1)
    return start_all, end_all, gate


def explicit_candidates(states: np.ndarray, queries: np.ndarray, indices: np.ndarray, legal: np.ndarray,
                        w: Weights, s: ProposerSettings, prefix: str = "boundary_proposer") -> Candidates:
    """``score_explicit_pairs``: the proposer's compatibility prior at caller spans ``[B, Q, K, 2]``."""
    start_all, end_all, gate = _projections(states, queries, w, s, prefix)
    compat = ((_gather(start_all, indices[..., 0]) * gate[:, :, None] * _gather(end_all, indices[..., 1])).sum(-1)
              / np.float32(math.sqrt(states.shape[-1])))
    return Candidates(indices, legal, np.where(legal, compat, 0).astype(np.float32))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return (1.0 / (1.0 + np.exp(-x))).astype(np.float32)


def rerank(states: np.ndarray, queries: np.ndarray, cand: Candidates, start_logits: np.ndarray,
           end_logits: np.ndarray, inside_prefix: np.ndarray | None, inside_prefix_mean: np.ndarray | None,
           text_lengths: np.ndarray, w: Weights, s: ProposerSettings, tokens: np.ndarray | None = None,
           token_mask: np.ndarray | None = None, prefix: str = "pair_scorer") -> np.ndarray:
    """``SparseBoundaryPairScorer.forward`` in eval: ``[B, Q, C]`` pair logits (gliner2's
    sentinel where a candidate is invalid)."""
    starts, ends = cand.indices[..., 0], cand.indices[..., 1]
    start_all = linear(states, w, f"{prefix}.start_endpoint_projection")
    end_all = linear(states, w, f"{prefix}.end_endpoint_projection")
    if s.enable_rotary_endpoints:
        start_all, end_all = rotate(start_all, s.rotary_base), rotate(end_all, s.rotary_base)
    s_proj, e_proj = _gather(start_all, starts), _gather(end_all, ends)
    p = s_proj.shape[-1]
    gate = _sigmoid(linear(queries, w, f"{prefix}.query_gate"))
    if s.enable_rotary_endpoints:
        gate = np.repeat(gate, 2, axis=-1)
    if s.reranker_endpoint_compat:
        heads = s.multihead_pair_compat_heads
        per_head = (s_proj * gate[:, :, None] * e_proj).reshape(*s_proj.shape[:-1], heads, p // heads).sum(-1)
        score = linear(per_head, w, f"{prefix}.compat_mix")[..., 0] / np.float32(math.sqrt(p))
    else:
        score = np.zeros(starts.shape, np.float32)
    if s.endpoint_difference_features:
        diff = s_proj - e_proj
        features = np.concatenate([diff, np.abs(diff)], -1)
        score = score + linear(features, w, f"{prefix}.endpoint_difference_projection")[..., 0]
    score = score + np.take_along_axis(start_logits, np.clip(starts, 0, start_logits.shape[2] - 1), 2)
    score = score + np.take_along_axis(end_logits, np.clip(ends, 0, end_logits.shape[2] - 1), 2)
    score = score + np.where(cand.valid, cand.compat, 0)
    if f"{prefix}.content_pooler.value_projection.weight" in w:
        if tokens is None or token_mask is None:
            raise ValueError("this checkpoint's span content features need the token states")
        b, q, c = starts.shape
        content = span_content(tokens, token_mask, starts.reshape(b, q * c), ends.reshape(b, q * c), w,
                               f"{prefix}.content_pooler").reshape(b, q, c, -1)
        coefficient = linear(queries, w, f"{prefix}.content_query_projection")[:, :, None]
        score = score + (content * coefficient).sum(-1) / np.float32(math.sqrt(content.shape[-1]))
        score = score + linear(content, w, f"{prefix}.content_bias")[..., 0]
    if inside_prefix is not None:
        last = inside_prefix.shape[2] - 1
        s_c, e_c = np.clip(starts, 0, last), np.clip(ends, 0, last)
        interval = np.take_along_axis(inside_prefix, e_c, 2) - np.take_along_axis(inside_prefix, s_c, 2)
        if inside_prefix_mean is not None:
            interval = interval + inside_prefix_mean * (e_c - s_c).astype(np.float32)
        weight = (linear(queries, w, f"{prefix}.inside_weight")[..., 0][..., None] if s.query_conditioned_inside_weight
                  else w[f"{prefix}.inside_weight"])
        score = score + weight * (interval / np.sqrt(np.maximum(ends - starts, 1).astype(np.float32)))
    length = np.maximum(ends - starts, 1).astype(np.float32)
    tl = np.maximum(text_lengths.astype(np.float32), 1).reshape(-1, 1, 1)
    features = np.stack([np.log1p(length), length / tl, 1.0 / np.sqrt(length)], -1)
    score = score + (features * linear(queries, w, f"{prefix}.length_query_projection")[:, :, None]).sum(-1)
    return np.where(cand.valid, score, MASK_LOGIT).astype(np.float32)
