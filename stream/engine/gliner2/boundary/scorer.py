"""Scores of every pool candidate for every query (gliner2 2.1.0 ``models/boundary/pool.py``
``SharedPoolScorer``, ``OverlapBiasedCandidateAttention``, ``EvidenceConditionedQueryAttention``),
inference only. The scorer's layers are ``pool_graph``'s onnxruntime graph; here: the
overlap-bucket table it reads, the boundary and inside evidence added to its scores, and the
optional span content features (``enable_span_content``: ``models/boundary/content.py``
``SpanContentPooler``, mean and smooth-maximum pooling of the tokens a candidate covers)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from stream.engine.gliner2.boundary.encoding import MASK_LOGIT, Weights, layer_norm, linear
from stream.engine.gliner2.boundary.pool import Pool, gather_rows

if TYPE_CHECKING:
    from stream.engine.gliner2.boundary.pool_graph import PoolGraph

# gliner2's overlap buckets of an ordered candidate pair (``classify_overlap_buckets``)
IDENTICAL, NESTED_INSIDE, NESTED_OUTSIDE, CROSSING, SAME_START, SAME_END, DISJOINT_LEFT, DISJOINT_RIGHT = range(8)


def erf(x: np.ndarray) -> np.ndarray:
    """Abramowitz & Stegun 7.1.26 (absolute error < 1.5e-7), in float64: numpy has no erf, and
    torch's ``nn.GELU()`` is the exact, erf-based one. (In float32 the rounding of the nested
    polynomial alone reaches 5e-7.) In place, one temporary at a time. The query layers' FFN and
    the relation MLP use it; the candidate layers and FiLM run onnxruntime's Erf (``pool_graph``)."""
    z = np.abs(x, dtype=np.float64)
    t = z * 0.3275911
    t += 1.0
    np.reciprocal(t, out=t)
    poly = t * 1.061405429
    for c in (-1.453152027, 1.421413741, -0.284496736, 0.254829592):
        poly += c
        poly *= t
    np.square(z, out=z)
    np.negative(z, out=z)
    np.exp(z, out=z)
    poly *= z
    np.subtract(1.0, poly, out=poly)
    out = poly.astype(np.float32)
    return np.copysign(out, x, out=out)


_GELU_BLOCK = 1 << 15
"Elements per step of ``gelu``: erf's float64 temporaries of a block stay in the CPU's cache."


def gelu(x: np.ndarray) -> np.ndarray:
    """``0.5 x (1 + erf(x / sqrt 2))``, a cache-sized block at a time (the same arithmetic)."""
    flat = x.reshape(-1)
    out = np.empty_like(flat)
    root2 = np.float32(math.sqrt(2.0))
    for at in range(0, flat.size, _GELU_BLOCK):
        part = flat[at:at + _GELU_BLOCK]
        out[at:at + _GELU_BLOCK] = np.float32(0.5) * part * (np.float32(1.0) + erf(part / root2))
    return out.reshape(x.shape)


def _bucket_of(ds: int, de: int, left: bool, right: bool) -> int:
    """gliner2's rules for one ordered pair, later rules winning, from the signs of
    ``s1 - s2`` and ``e1 - e2`` and whether the first span ends before the second starts
    (``left``: ``e1 <= s2``) or after it ends (``right``: ``e2 <= s1``)."""
    bucket = CROSSING
    for value, holds in ((DISJOINT_LEFT, left), (DISJOINT_RIGHT, right), (NESTED_INSIDE, ds > 0 and de < 0),
                         (NESTED_OUTSIDE, ds < 0 and de > 0), (SAME_START, ds == 0 and de != 0),
                         (SAME_END, de == 0 and ds != 0), (IDENTICAL, ds == 0 and de == 0)):
        if holds:
            bucket = value
    return bucket


MASKED_KEY = 8
"The bucket of a pair whose second (key) candidate is padding: its bias is gliner2's mask logit."

PADDING_CODE = 36
"The pair code of a pair whose second (key) candidate is padding."
BUCKETS = np.array([_bucket_of(ds, de, bool(left), bool(right)) for right in (0, 1) for left in (0, 1)
                    for ds in (-1, 0, 1) for de in (-1, 0, 1)] + [MASKED_KEY], np.uint8)
"""Bucket by pair code ``3 (ds + 1) + (de + 1) + 9 left + 18 right`` (``PADDING_CODE``: a padding
key), ``ds``/``de`` the signs of the start and end differences. The rules only read those four
facts, so the table is them for every pair of integer spans; the candidate layers' graph computes
each pair's code (``pool_graph``) and reads its bias from this table."""


_LSE_FLOOR = np.float32(np.finfo(np.float32).min / 4.0)


def span_content(tokens: np.ndarray, token_mask: np.ndarray, starts: np.ndarray, ends: np.ndarray, w: Weights,
                 name: str) -> np.ndarray:
    """``SpanContentPooler`` (eval): the mean of the projected token states over ``[start, end)``
    from prefix sums, and, when the checkpoint has the smooth-maximum pool (its LayerNorm is twice
    the projection's width), their log-sum-exp over the span from log-cumulative-sum-exp prefixes;
    then LayerNorm. ``[B, C, content]``."""
    values = linear(tokens, w, f"{name}.value_projection") * token_mask[..., None].astype(np.float32)
    b, _, d = values.shape
    mean_prefix = np.concatenate([np.zeros((b, 1, d), np.float32), np.cumsum(values, 1, dtype=np.float32)], 1)
    length = np.maximum(ends - starts, 1).astype(np.float32)[..., None]
    pooled = (gather_rows(mean_prefix, ends) - gather_rows(mean_prefix, starts)) / length
    if w[f"{name}.layer_norm.weight"].shape[0] == 2 * d:  # content_soft_max_pool
        masked = np.where(token_mask[..., None], values, _LSE_FLOOR)
        lse_prefix = np.concatenate([np.full((b, 1, d), _LSE_FLOOR), np.logaddexp.accumulate(masked, 1)], 1)
        lse_end, lse_start = gather_rows(lse_prefix, ends), gather_rows(lse_prefix, starts)
        delta = np.minimum(lse_start - lse_end, np.float32(-1e-6))
        with np.errstate(over="ignore", invalid="ignore"):
            soft_max = lse_end + np.log1p(-np.exp(delta))
        soft_max = np.nan_to_num(soft_max, nan=0.0, neginf=0.0, posinf=0.0)
        pooled = np.concatenate([pooled, soft_max.astype(np.float32)], -1)
        # A padding candidate (0, 0) reads the floor, -8.5e37: float32 sums of such values overflow
        # (torch's Welford LayerNorm does not); in float64 they stay finite, and are masked after.
        return layer_norm(pooled.astype(np.float64), w, f"{name}.layer_norm").astype(np.float32)
    return layer_norm(pooled, w, f"{name}.layer_norm")


def score_pool(boundary_states: np.ndarray, queries: np.ndarray, query_mask: np.ndarray, pool: Pool,
               start_logits: np.ndarray, end_logits: np.ndarray, inside_prefix: np.ndarray | None,
               text_lengths: np.ndarray, w: Weights, graph: "PoolGraph", inside_prefix_mean: np.ndarray | None = None,
               prefix: str = "shared_pool_scorer", tokens: np.ndarray | None = None,
               token_mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``SharedPoolScorer.forward`` (eval): ``[B, C, Q]`` pair logits (masked with gliner2's
    sentinel) and the ``[B, C, p]`` candidate states. The candidates' features and attention
    layers, the query layers and the FiLM scoring run in ``graph`` (the same checkpoint's, built at
    load: ``pool_graph``); the span content and the boundary and inside evidence here. The span
    content features need the text's token states (``tokens``, ``token_mask``) when the
    checkpoint has them."""
    starts, ends = pool.indices[..., 0], pool.indices[..., 1]
    content = None
    if graph.content:
        if tokens is None or token_mask is None:
            raise ValueError("this checkpoint's span content features need the token states")
        content = linear(span_content(tokens, token_mask, starts, ends, w, f"{prefix}.content_pooler"), w,
                         f"{prefix}.content_projection")
    candidate, score = graph.score(boundary_states, pool.indices, pool.mask, pool.compat_logits, text_lengths,
                                   queries, query_mask, content)
    q = queries.shape[1]
    s_idx = np.broadcast_to(np.clip(starts, 0, start_logits.shape[2] - 1)[:, None, :], (starts.shape[0], q, starts.shape[1]))
    e_idx = np.broadcast_to(np.clip(ends, 0, end_logits.shape[2] - 1)[:, None, :], s_idx.shape)
    score = score + np.take_along_axis(start_logits, s_idx, 2).transpose(0, 2, 1)
    score = score + np.take_along_axis(end_logits, e_idx, 2).transpose(0, 2, 1)
    if inside_prefix is not None:
        last = inside_prefix.shape[2] - 1
        interval = (np.take_along_axis(inside_prefix, np.minimum(e_idx, last), 2)
                    - np.take_along_axis(inside_prefix, np.minimum(s_idx, last), 2))
        if inside_prefix_mean is not None:
            interval = interval + inside_prefix_mean * (e_idx - s_idx).astype(np.float32)
        score = score + (interval / np.sqrt(np.maximum(e_idx - s_idx, 1).astype(np.float32))).transpose(0, 2, 1)
    score = np.where(pool.mask[..., None], score, MASK_LOGIT)
    score = np.where(query_mask[:, None, :], score, MASK_LOGIT)
    return score.astype(np.float32), candidate.astype(np.float32)
