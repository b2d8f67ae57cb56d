"""The whole boundary head (gliner2 2.1.0 ``BoundaryHead.forward`` in eval): boundary states →
marginals → candidates → pair logits per query and candidate, the abstention (null) and count
heads. Candidates come from the shared document pool (``candidate_pool="shared"``, what the
public checkpoints use; its candidate states feed the record head) or from the per-query
proposer and pair reranker (``"per_query"``, gliner2's default; ``proposer``).
``settings_from_config`` refuses every setting this code does not follow, naming the key."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

from stream.engine.gliner2.boundary.boundary_graph import BoundaryGraph
from stream.engine.gliner2.boundary.encoding import MASK_LOGIT, Weights, linear
from stream.engine.gliner2.boundary.pool import gather_rows, build_pool
from stream.engine.gliner2.boundary.pool_graph import PoolGraph
from stream.engine.gliner2.boundary.proposer import (
    Candidates,
    ProposerSettings,
    explicit_candidates,
    propose,
    rerank,
)
from stream.engine.gliner2.boundary.scorer import score_pool


class HeadSettings(NamedTuple):
    """The ``boundary_head`` settings inference depends on (gliner2's ``BoundaryHeadSettings``)."""

    boundary_attention_heads: int = 4
    boundary_attention_window: int = 0
    pool_boundary_top_k: int = 64
    pool_size: int = 384
    min_pool_per_query: int = 8
    candidate_attention_heads: int = 4
    use_inside_evidence: bool = True
    pair_temperature: float = 1.0
    abstention_threshold: float = 0.5
    adaptive_threshold: bool = False
    overlap_policy: str = "flat"
    classification_temperature: float = 1.0
    enable_relations: bool = True
    relation_heads_per_type: int = 32
    relation_tails_per_type: int = 32
    relation_pair_cap: int = 128
    relation_argument_proposal_threshold: float = 0.0
    relation_temperature: float = 1.0
    enable_records: bool = True
    record_temperature: float = 1.0
    enable_span_content: bool = False  # the weights say whether the smooth-maximum pool is on
    directional_relation_states: bool = False
    relation_biaffine_content: bool = False
    candidate_pool: str = "per_query"  # gliner2's default when a config does not name it
    proposer: ProposerSettings = ProposerSettings()
    "Read by the per-query path only (gliner2 ignores them with the shared pool, and so does this port)."


ALLOWED = {  # key: the values this port computes
    "candidate_pool": ("shared", "per_query"),
    "export_mode": ("auto", "streaming", "vectorized"),
}


def settings_from_config(raw: Mapping[str, Any], where: str = "config.json boundary_head",
                         config_version: int | None = 3) -> HeadSettings:
    """The head settings from a checkpoint's ``boundary_head``; a value this port does not
    compute is refused with its key named (never silently ignored). A config written before
    version 3 has records and relations off unless it says otherwise (gliner2's migration)."""
    if int(config_version or 0) < 3:
        raw = {"enable_records": False, "enable_relations": False, **raw}
    for key, allowed in ALLOWED.items():
        if key in raw and raw[key] not in allowed:
            raise ValueError(f"{where}.{key} = {raw[key]!r} is not supported (one of {', '.join(allowed)})")

    def read(cls):
        defaults = cls()
        return {k: type(getattr(defaults, k))(raw[k]) if k in raw else getattr(defaults, k)
                for k in cls._fields if k != "proposer"}

    return HeadSettings(**read(HeadSettings), proposer=ProposerSettings(**read(ProposerSettings)))


class HeadOutput(NamedTuple):
    indices: np.ndarray  # [B, C, 2] half-open boundary spans of the pool; per-query: [B, Q, C, 2]
    valid: np.ndarray  # [B, C]; per-query: [B, Q, C]
    pair_logits: np.ndarray  # [B, Q, C]
    null_logits: np.ndarray | None  # [B, Q]
    count_log_rates: np.ndarray | None  # [B, Q]
    candidate_states: np.ndarray | None  # [B, C, H] (records); per-query: [B, Q, C, H]


class HeadGraphs(NamedTuple):
    """The head's onnxruntime graphs, built from its weights at load."""

    boundary: BoundaryGraph
    "The boundary encoder and the query head's marginals."
    pool: PoolGraph | None
    "The shared pool's scorer (a ``shared`` candidate pool only)."


def head_graphs(w: Weights, settings: HeadSettings, threads: int | None = None) -> HeadGraphs:
    pool = (PoolGraph(w, settings.candidate_attention_heads, threads)
            if settings.candidate_pool == "shared" else None)
    return HeadGraphs(BoundaryGraph(w, settings.boundary_attention_heads, settings.boundary_attention_window,
                                    threads), pool)


def _pool_scorer(graphs: HeadGraphs) -> PoolGraph:
    if graphs.pool is None:
        raise ValueError("the shared candidate pool is scored by its PoolGraph: head_graphs(w, settings) "
                         "with candidate_pool='shared'")
    return graphs.pool


def score_explicit(tokens: np.ndarray, token_mask: np.ndarray, queries: np.ndarray, query_mask: np.ndarray,
                   spans: np.ndarray, spans_valid: np.ndarray, w: Weights, settings: HeadSettings,
                   graphs: HeadGraphs | None = None) -> np.ndarray:
    """``BoundaryHead.score_explicit_spans``: the pair logits ``[B, Q, K]`` of the caller's spans
    (``[B, K, 2]``, the same for every query; gliner2's sentinel where a span is illegal). Per-query
    path: the pair reranker scores each span with the proposer's compatibility as its prior.
    Shared pool: the pool is rebuilt for these queries with the spans injected ahead of every
    other candidate and its scorer's logits are read at them — candidate attention makes a span's
    score depend on the rest of the pool, which is why it is scored inside one; the caller keeps
    ``K`` within ``pool_size``, so every injected span has a place. ``graphs``: built from ``w``
    and ``settings`` when not given."""
    graphs = graphs or head_graphs(w, settings)
    enc, marg = graphs.boundary.run(tokens, token_mask, queries, query_mask)
    lengths = token_mask.sum(1)
    legal = (spans_valid & (spans[..., 0] >= 0) & (spans[..., 1] > spans[..., 0])
             & (spans[..., 1] <= lengths[:, None]))
    inside = marg.inside_prefix if settings.use_inside_evidence else None
    if settings.candidate_pool == "per_query":  # the reranker scores any span on its own
        q = queries.shape[1]
        per_query = np.broadcast_to(spans[:, None], (spans.shape[0], q, *spans.shape[1:]))
        legal_q = legal[:, None, :] & query_mask[:, :, None]
        cand = explicit_candidates(enc.states, queries, per_query, legal_q, w, settings.proposer)
        return rerank(enc.states, queries, cand, marg.start_logits, marg.end_logits, inside, marg.inside_prefix_mean,
                      lengths, w, settings.proposer, tokens, token_mask)
    pool = build_pool(enc.states, enc.mask, query_mask, marg.start_logits, marg.end_logits, w,
                      settings.pool_boundary_top_k, settings.pool_size, settings.min_pool_per_query,
                      injected=(spans, legal))
    logits, _ = score_pool(enc.states, queries, query_mask, pool, marg.start_logits, marg.end_logits, inside,
                           lengths, w, _pool_scorer(graphs), inside_prefix_mean=marg.inside_prefix_mean,
                           tokens=tokens, token_mask=token_mask)
    match = (spans[:, :, None, :] == pool.indices[:, None, :, :]).all(-1) & pool.mask[:, None, :]  # [B, K, C]
    if (legal & ~match.any(-1)).any():
        raise ValueError(f"explicit spans exceed the shared candidate pool (pool_size={settings.pool_size})")
    at = match.argmax(-1)  # [B, K]
    out = np.take_along_axis(logits, at[:, :, None], 1).transpose(0, 2, 1)  # [B, Q, K]
    legal_q = legal[:, None, :] & query_mask[:, :, None]
    return np.where(legal_q, out, MASK_LOGIT).astype(np.float32)


def _proposals(enc, marg, queries: np.ndarray, query_mask: np.ndarray, w: Weights, settings: HeadSettings):
    """The per-query proposer on the batch. With a length-adaptive boundary budget
    (``boundary_top_k_alpha`` > 0) each text's budget comes from its own length: gliner2 takes the
    padded length of the batch, so a text's candidates would depend on its batch-mates (a
    deliberate difference; the same as gliner2 run one text at a time). Texts of one length share
    a call."""
    if settings.proposer.boundary_top_k_alpha <= 0 or enc.states.shape[0] == 1:
        return propose(enc.states, enc.mask, queries, query_mask, marg.start_logits, marg.end_logits, w,
                       settings.proposer)
    own = enc.mask.sum(1)  # boundaries of each text (words + 1)
    parts: dict[int, tuple[np.ndarray, Candidates]] = {}
    for n in np.unique(own):
        rows = np.flatnonzero(own == n)
        parts[int(n)] = (rows, propose(enc.states[rows, :n], enc.mask[rows, :n], queries[rows], query_mask[rows],
                                       marg.start_logits[rows, :, :n], marg.end_logits[rows, :, :n], w,
                                       settings.proposer))
    b, q, c = queries.shape[0], queries.shape[1], settings.proposer.candidate_budget
    indices, valid, compat = np.zeros((b, q, c, 2), np.int64), np.zeros((b, q, c), bool), np.zeros((b, q, c), np.float32)
    for rows, cand in parts.values():
        indices[rows], valid[rows], compat[rows] = cand.indices, cand.valid, cand.compat
    return Candidates(indices, valid, compat)


def run_head(tokens: np.ndarray, token_mask: np.ndarray, queries: np.ndarray, query_mask: np.ndarray, w: Weights,
             settings: HeadSettings, graphs: HeadGraphs | None = None, candidate_states: bool = True) -> HeadOutput:
    """``BoundaryHead.forward(..., return_candidates=True)`` in eval; ``graphs``: the head's
    onnxruntime graphs (``head_graphs(w, settings)``: built here when not given).
    ``candidate_states``: whether to compute the candidates' record-head states (only structures
    with a record ``mode`` read them; on a small encoder they cost ~2% of its time)."""
    graphs = graphs or head_graphs(w, settings)
    enc, marg = graphs.boundary.run(tokens, token_mask, queries, query_mask)
    null = linear(queries, w, "null_projection")[..., 0] if "null_projection.weight" in w else None
    count = linear(queries, w, "count_head")[..., 0] if "count_head.weight" in w else None
    if settings.candidate_pool == "per_query":
        inside = marg.inside_prefix if settings.use_inside_evidence else None
        cand = _proposals(enc, marg, queries, query_mask, w, settings)
        logits = rerank(enc.states, queries, cand, marg.start_logits, marg.end_logits, inside,
                        marg.inside_prefix_mean, token_mask.sum(1), w, settings.proposer, tokens, token_mask)
        states = None
        if candidate_states and "candidate_encoder.weight" in w:  # [B, Q, C, H]: a span's state does not depend on the query
            b = np.arange(enc.states.shape[0])[:, None, None]
            n = enc.states.shape[1]
            ends = np.concatenate([enc.states[b, np.clip(cand.indices[..., 0], 0, n - 1)],
                                   enc.states[b, np.clip(cand.indices[..., 1], 0, n - 1)]], -1)
            states = np.where(cand.valid[..., None], linear(ends, w, "candidate_encoder"), np.float32(0))
        return HeadOutput(cand.indices, cand.valid, logits, null, count, states)
    pool = build_pool(enc.states, enc.mask, query_mask, marg.start_logits, marg.end_logits, w,
                      settings.pool_boundary_top_k, settings.pool_size, settings.min_pool_per_query)
    inside = marg.inside_prefix if settings.use_inside_evidence else None
    logits, _ = score_pool(enc.states, queries, query_mask, pool, marg.start_logits, marg.end_logits, inside,
                           token_mask.sum(1), w, _pool_scorer(graphs),
                           inside_prefix_mean=marg.inside_prefix_mean, tokens=tokens, token_mask=token_mask)
    states = None
    if candidate_states and "candidate_encoder.weight" in w:
        ends = np.concatenate([gather_rows(enc.states, pool.indices[..., 0]),
                               gather_rows(enc.states, pool.indices[..., 1])], -1)
        states = np.where(pool.mask[..., None], linear(ends, w, "candidate_encoder"), np.float32(0))
    return HeadOutput(pool.indices, pool.mask, logits.transpose(0, 2, 1), null, count, states)
