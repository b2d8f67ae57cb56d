"""The shared document candidate pool (gliner2 2.1.0 ``models/boundary/pool.py``
``DocumentCandidatePool``), inference only, in numpy: one deduplicated set of span candidates per
document, formed from the union over queries of the boundary marginals, with each query's
strongest pairs reserved first. Sorting is stable everywhere, as gliner2's ``stable=True``
sorts are, so ties keep index order."""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from stream.engine.gliner2.boundary.encoding import MASK_LOGIT, Weights, linear


class Pool(NamedTuple):
    indices: np.ndarray  # [B, C, 2] (start boundary, end boundary), 0 where invalid
    mask: np.ndarray  # [B, C] bool
    proposal_logits: np.ndarray  # [B, C]
    compat_logits: np.ndarray  # [B, C]


def _descending(x: np.ndarray) -> np.ndarray:
    """``torch.argsort(x, descending=True, stable=True)`` along the last axis."""
    return np.argsort(-x, axis=-1, kind="stable")


def top_descending(x: np.ndarray, k: int) -> np.ndarray:
    """``_descending(x)[..., :k]`` for finite ``x`` without sorting whole rows: the ``k``-th
    largest value by partition, every element at or above it (ties included) in index order, and
    a stable sort of those alone; the same indices in the same order (a stable sort of 484 pair
    scores per query to keep 8 took 5× as long)."""
    if k >= x.shape[-1]:
        return _descending(x)
    kth = -np.partition(-x, k - 1, axis=-1)[..., k - 1:k]
    contender = x >= kth
    at = np.argsort(~contender, axis=-1, kind="stable")[..., :int(contender.sum(-1).max())]
    values = np.where(np.take_along_axis(contender, at, -1), np.take_along_axis(x, at, -1), -np.inf)
    return np.take_along_axis(at, _descending(values)[..., :k], -1)


def top_boundaries(logits: np.ndarray, valid: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``select_top_boundaries`` on ``[B, N]``: the top-``k`` indices (stable) and their validity."""
    k = min(k, logits.shape[-1])
    idx = top_descending(np.where(valid, logits, MASK_LOGIT), k)
    ok = np.take_along_axis(valid, idx, -1)
    return np.where(ok, idx, 0), ok


def gather_rows(states: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``[B, N, D]`` at ``[B, K]`` → ``[B, K, D]`` (indices clamped, as gliner2 clamps)."""
    return states[np.arange(states.shape[0])[:, None], np.clip(idx, 0, states.shape[1] - 1)]


def _deduplicate(keys: np.ndarray, scores: np.ndarray, valid: np.ndarray, capacity: int,
                 n: int) -> tuple[np.ndarray, np.ndarray]:
    """Keep each key's highest-priority occurrence; the ``capacity`` best keys, padded."""
    keys = np.where(valid, keys, n * n)
    scores = np.where(valid, scores, MASK_LOGIT)
    by_score = _descending(scores)
    keys, scores, valid = (np.take_along_axis(a, by_score, -1) for a in (keys, scores, valid))
    by_key = np.argsort(keys, axis=-1, kind="stable")
    keys, scores, valid = (np.take_along_axis(a, by_key, -1) for a in (keys, scores, valid))
    first = np.ones_like(valid)
    first[..., 1:] = keys[..., 1:] != keys[..., :-1]
    keep = valid & first
    order = top_descending(np.where(keep, scores, MASK_LOGIT), capacity)
    out_keys, out_valid = np.take_along_axis(keys, order, -1), np.take_along_axis(keep, order, -1)
    if out_keys.shape[-1] < capacity:
        pad = capacity - out_keys.shape[-1]
        out_keys = np.pad(out_keys, ((0, 0), (0, pad)))
        out_valid = np.pad(out_valid, ((0, 0), (0, pad)), constant_values=False)
    return out_keys, out_valid


def build_pool(states: np.ndarray, mask: np.ndarray, query_mask: np.ndarray, start_logits: np.ndarray,
               end_logits: np.ndarray, w: Weights, boundary_top_k: int, pool_size: int, min_per_query: int,
               prefix: str = "shared_pool_builder",
               injected: tuple[np.ndarray, np.ndarray] | None = None) -> Pool:
    """``DocumentCandidatePool.forward`` in eval, without statistics, and without the trailing
    padding columns (the pool is at most ``pool_size`` wide). ``injected`` = (spans
    ``[B, K, 2]``, valid ``[B, K]``): spans put in the pool ahead of every other candidate, as
    gliner2's gold injection at probability 1 does for ``score_explicit_spans``."""
    b, n, d = states.shape
    q = query_mask.shape[1]
    q_boundary = mask[:, None, :] & query_mask[:, :, None]
    union_start = np.where(q_boundary, start_logits, MASK_LOGIT).max(1)
    union_end = np.where(q_boundary, end_logits, MASK_LOGIT).max(1)
    union_valid = mask & query_mask.any(-1, keepdims=True)
    starts, starts_ok = top_boundaries(union_start, union_valid, boundary_top_k)
    ends, ends_ok = top_boundaries(union_end, union_valid, boundary_top_k)
    ks, ke = starts.shape[1], ends.shape[1]
    pair_s = np.repeat(starts, ke, axis=1)
    pair_e = np.tile(ends, (1, ks))
    pair_valid = (starts_ok[:, :, None] & ends_ok[:, None, :] & (ends[:, None, :] > starts[:, :, None])).reshape(b, -1)
    # Every (start, end) boundary pair's compatibility at once, ``[B, n, n]``: one batched product
    # instead of gathering both sides of each pair (the same dot products, summed by BLAS).
    scale = np.float32(math.sqrt(d))
    compat_all = (linear(states, w, f"{prefix}.start_projection")
                  @ linear(states, w, f"{prefix}.end_projection").transpose(0, 2, 1)) / scale
    rows = np.arange(b)[:, None]
    s_clamped, e_clamped = np.clip(pair_s, 0, n - 1), np.clip(pair_e, 0, n - 1)
    compat = compat_all[rows, s_clamped, e_clamped]
    union_pair = (compat + np.take_along_axis(union_start, s_clamped, 1)
                  + np.take_along_axis(union_end, e_clamped, 1))

    quota = min(min_per_query, pair_s.shape[-1])
    keys, scores, valid = [], [], []
    if quota:
        s_idx = np.broadcast_to(s_clamped[:, None, :], (b, q, s_clamped.shape[1]))
        e_idx = np.broadcast_to(e_clamped[:, None, :], (b, q, e_clamped.shape[1]))
        # each query's start and end marginals at the top boundaries, summed over the pair grid
        at_starts = np.take_along_axis(start_logits, np.broadcast_to(starts[:, None, :], (b, q, ks)), 2)
        at_ends = np.take_along_axis(end_logits, np.broadcast_to(ends[:, None, :], (b, q, ke)), 2)
        per_query = (at_starts[..., :, None] + at_ends[..., None, :]).reshape(b, q, -1) + compat[:, None, :]
        per_query_valid = pair_valid[:, None, :] & query_mask[:, :, None]
        ranked = top_descending(np.where(per_query_valid, per_query, MASK_LOGIT), quota)
        quota_s, quota_e = np.take_along_axis(s_idx, ranked, -1), np.take_along_axis(e_idx, ranked, -1)
        keys.append((quota_s * n + quota_e).reshape(b, -1))
        valid.append(np.take_along_axis(per_query_valid, ranked, -1).reshape(b, -1))
        bonus = np.arange(quota, 0, -1, dtype=np.float32)
        scores.append((np.full((b, q, quota), -MASK_LOGIT * np.float32(0.5), np.float32) + bonus).reshape(b, -1))
    keys.append(pair_s * n + pair_e)
    scores.append(union_pair.astype(np.float32))
    valid.append(pair_valid)
    if injected is not None:
        spans, ok = injected
        ok = ok & query_mask.any(-1, keepdims=True) & (spans < n).all(-1) & (spans >= 0).all(-1)
        safe = np.clip(spans, 0, n - 1)
        keys.append(safe[..., 0] * n + safe[..., 1])
        scores.append(np.full(ok.shape, -MASK_LOGIT, np.float32))
        valid.append(ok)
    sel_keys, sel_valid = _deduplicate(np.concatenate(keys, -1), np.concatenate(scores, -1),
                                       np.concatenate(valid, -1), pool_size, n)
    # Columns after every row's last candidate are padding: gliner2 scores them and masks them out,
    # and no valid candidate reads them (a padding key's attention weight is 0), so they are dropped
    # here — on short texts most of ``pool_size`` is padding.
    used = int(np.flatnonzero(sel_valid.any(0))[-1]) + 1 if sel_valid.any() else 1
    sel_keys, sel_valid = sel_keys[:, :used], sel_valid[:, :used]
    sel_keys = np.where(sel_valid, sel_keys, 0)
    sel_s = sel_keys // n
    sel_e = sel_keys - sel_s * n
    indices = np.where(sel_valid[..., None], np.stack([sel_s, sel_e], -1), 0)
    sel_compat = compat_all[rows, np.clip(sel_s, 0, n - 1), np.clip(sel_e, 0, n - 1)]
    sel_score = (sel_compat + np.take_along_axis(union_start, np.clip(sel_s, 0, n - 1), 1)
                 + np.take_along_axis(union_end, np.clip(sel_e, 0, n - 1), 1))
    return Pool(indices, sel_valid, np.where(sel_valid, sel_score, MASK_LOGIT).astype(np.float32),
                np.where(sel_valid, sel_compat, 0).astype(np.float32))
