"""Typed relations on boundary checkpoints (gliner2 2.1.0 ``models/boundary/relations.py``
``TypedRelationPairGenerator`` and ``SparseRelationScorer``, and ``BoundaryExtractor.
_decode_relations`` / ``_deduplicate_relation_edges``), inference only, in numpy and Python.

Per relation type: the top head-role and tail-role candidates of the shared pool (by
probability, ties by position), their capped cross product (pairs of one span with itself
dropped), each pair scored by the relation MLP over the four endpoint word states, the
relation's query state (the mean of its head and tail role markers, or both side by side with
``directional_relation_states``), their order and distance; with ``relation_biaffine_content``,
plus a gated biaffine and a linear term over the mean word state of the head and of the tail.

One deliberate difference: gliner2 divides the head–tail distance by the *padded* length of the
batch, so a relation's score depends on which texts share its batch; spanstream divides by the
text's own word count (gliner2 run one text at a time gives the same scores)."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from stream.engine.gliner2.boundary.encoding import Weights, linear
from stream.engine.gliner2.boundary.head import HeadSettings
from stream.engine.gliner2.boundary.scorer import gelu

FLOOR = np.finfo(np.float32).min


class RelationPairs(NamedTuple):
    """One relation type's scored pairs in one row (word boundaries, prefix words included)."""

    head: np.ndarray  # int [P, 2]
    tail: np.ndarray  # int [P, 2]
    head_prob: np.ndarray  # [P]
    tail_prob: np.ndarray  # [P]
    prob: np.ndarray  # [P] sigmoid(relation logit / temperature)
    logit: np.ndarray | None = None  # [P] relation logit / temperature


def _select(spans: np.ndarray, probs: np.ndarray, requested: int) -> np.ndarray:
    """Indices of the top ``requested`` candidates by probability, ties by start, end, index
    (gliner2's ``select`` for one role query, among the candidates passing)."""
    order = np.lexsort((np.arange(len(spans)), spans[:, 1], spans[:, 0]))
    return order[np.argsort(-probs[order], kind="stable")][:requested]


def word_blocks(w: Weights, h: int) -> np.ndarray:
    """``[H, 4 M]``: the relation MLP's first-layer blocks for a head's first and last word and a
    tail's first and last word, side by side (built once, at load)."""
    weight = w["relation_scorer.mlp.0.weight"]
    return np.ascontiguousarray(np.concatenate([weight[:, k * h:(k + 1) * h] for k in range(4)]).T)


def word_projections(states: np.ndarray, w: Weights, blocks: np.ndarray | None = None) -> np.ndarray:
    """``[words, 4 M]``: the words through ``word_blocks`` (``_first_layer`` reads them per pair).
    They depend on the words only, not on the relation: a batch's rows are projected once, in
    one product, for all their relation types."""
    return states @ (word_blocks(w, states.shape[-1]) if blocks is None else blocks)


def relation_pairs(spans: np.ndarray, head_logits: np.ndarray, tail_logits: np.ndarray, states: np.ndarray,
                   relation_query: np.ndarray, w: Weights, s: HeadSettings, head_ok: np.ndarray | None = None,
                   tail_ok: np.ndarray | None = None, allow_self: bool = False,
                   words: np.ndarray | None = None) -> RelationPairs:
    """``spans`` [C, 2] (valid pool candidates), the head and tail role queries' pair logits [C],
    ``states`` [words, H] the row's word states; ``head_ok`` / ``tail_ok`` [C]: the candidates
    each role query proposed (per-query path; None: all); ``allow_self``: a span may pair with
    itself (a joint schema's relation option; gliner2's relation tasks never allow it);
    ``words``: the row's ``word_projections`` (computed here when not given)."""
    with np.errstate(over="ignore"):
        hp_all = 1.0 / (1.0 + np.exp(-head_logits))
        tp_all = 1.0 / (1.0 + np.exp(-tail_logits))
    passing_h = hp_all >= np.float32(s.relation_argument_proposal_threshold)
    passing_t = tp_all >= np.float32(s.relation_argument_proposal_threshold)
    heads = np.flatnonzero(passing_h if head_ok is None else passing_h & head_ok)
    tails = np.flatnonzero(passing_t if tail_ok is None else passing_t & tail_ok)
    hi = heads[_select(spans[heads], hp_all[heads], s.relation_heads_per_type)]
    ti = tails[_select(spans[tails], tp_all[tails], s.relation_tails_per_type)]
    score = (hp_all[hi][:, None] * tp_all[ti][None, :]).astype(np.float32)
    same = (spans[hi][:, None, :] == spans[ti][None, :, :]).all(-1) & (not allow_self)  # a span with itself
    # gliner2 ranks over the padded [heads_per_type x tails_per_type] grid: flat index h * Rt + t
    grid = np.full(s.relation_heads_per_type * s.relation_tails_per_type, FLOOR, np.float32)
    grid_valid = np.zeros(len(grid), bool)
    pos = (np.arange(len(hi))[:, None] * s.relation_tails_per_type + np.arange(len(ti))[None, :]).reshape(-1)
    grid[pos], grid_valid[pos] = np.where(same, FLOOR, score).reshape(-1), ~same.reshape(-1)
    keep = np.argsort(-grid, kind="stable")[:min(s.relation_pair_cap, len(grid))]
    keep = keep[grid_valid[keep]]
    h_idx, t_idx = hi[keep // s.relation_tails_per_type], ti[keep % s.relation_tails_per_type]
    head, tail = spans[h_idx], spans[t_idx]
    n = states.shape[0]

    delta = (tail[:, 0] - head[:, 0]).astype(np.float32)
    hidden = _first_layer(word_projections(states, w) if words is None else words,
                          (head[:, 0], head[:, 1] - 1, tail[:, 0], tail[:, 1] - 1), relation_query,
                          np.sign(delta), np.abs(delta) / np.float32(max(n, 1)), w)
    logits = linear(gelu(hidden), w, "relation_scorer.mlp.3")[:, 0]
    if "relation_scorer.head_content_projection.weight" in w:
        logits = logits + _biaffine_content(states, head, tail, relation_query, w)
    scaled = (logits / np.float32(s.relation_temperature)).astype(np.float32)
    with np.errstate(over="ignore"):
        prob = 1.0 / (1.0 + np.exp(-scaled))
    return RelationPairs(head, tail, hp_all[h_idx].astype(np.float32), tp_all[t_idx].astype(np.float32),
                         prob.astype(np.float32), scaled)


def _first_layer(words: np.ndarray, positions: tuple[np.ndarray, ...], relation_query: np.ndarray,
                 sign: np.ndarray, distance: np.ndarray, w: Weights) -> np.ndarray:
    """The relation MLP's first ``Linear`` on each pair's features — the word states at the head's
    and the tail's first and last word, the relation state, the sign of the tail-minus-head start
    and its distance over the row length, side by side as gliner2 concatenates them — computed
    factorised: each of the four word blocks of the weight is applied once per word of the row
    (``words``: ``word_projections``) and read per pair, the relation state's once per call. The
    same sum as the product with the concatenation (in another order), at about a quarter of the
    work for a row's 128 pairs."""
    weight, bias = w["relation_scorer.mlp.0.weight"], w["relation_scorer.mlp.0.bias"]
    m, n, r = weight.shape[0], words.shape[0], relation_query.shape[-1]
    h = (weight.shape[1] - r - 2) // 4  # the word state's width
    out = relation_query @ weight[:, 4 * h:4 * h + r].T + bias
    out = out + np.outer(sign, weight[:, 4 * h + r]) + np.outer(distance, weight[:, 4 * h + r + 1])
    for k, pos in enumerate(positions):
        out += words[np.clip(pos, 0, max(n - 1, 0)), k * m:(k + 1) * m]
    return out.astype(np.float32)


def _biaffine_content(states: np.ndarray, head: np.ndarray, tail: np.ndarray, relation_query: np.ndarray,
                      w: Weights) -> np.ndarray:
    """``SparseRelationScorer``'s ``use_biaffine_content`` term: the head's and the tail's mean
    word state, projected; their product gated by the relation state, over sqrt(H); plus a linear
    score of both and the relation state."""
    n, h = states.shape
    prefix = np.concatenate([np.zeros((1, h), np.float32), np.cumsum(states, 0, dtype=np.float32)])

    def mean(spans: np.ndarray) -> np.ndarray:
        start, end = np.clip(spans[:, 0], 0, n), np.clip(spans[:, 1], 0, n)
        return (prefix[end] - prefix[start]) / np.maximum(spans[:, 1] - spans[:, 0], 1).astype(np.float32)[:, None]

    head_content = linear(mean(head), w, "relation_scorer.head_content_projection")
    tail_content = linear(mean(tail), w, "relation_scorer.tail_content_projection")
    gate = 1.0 / (1.0 + np.exp(-linear(relation_query, w, "relation_scorer.relation_content_gate")))  # one per type
    rel = np.broadcast_to(relation_query, (len(head), relation_query.shape[-1]))
    biaffine = (head_content * gate * tail_content).sum(-1) / np.float32(h ** 0.5)
    lin = linear(np.concatenate([head_content, tail_content, rel], -1), w, "relation_scorer.content_linear")[:, 0]
    return (biaffine + lin).astype(np.float32)


def deduplicate_edges(edges: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """gliner2's ``_deduplicate_relation_edges``: the longest containing mention stands for the
    mentions inside it, one edge per (head, tail) position (best score), one per (head text, tail
    text) (nearest, then best), and an argument that is a strict token subset of another edge's
    with the same other argument is dropped. Sorted by head start, tail start, score."""
    if len(edges) < 2:
        return edges

    def canonical(side: str) -> dict:
        mentions = {(e[side][1], e[side][2]): e[side] for e in edges}
        return {(s, e): max((m for m in mentions.values() if m[1] <= s and m[2] >= e),
                            key=lambda m: (m[2] - m[1], -m[1]))
                for (s, e) in mentions}

    heads, tails = canonical("head"), canonical("tail")
    exact: dict[tuple, dict] = {}
    for edge in edges:
        head, tail = heads[(edge["head"][1], edge["head"][2])], tails[(edge["tail"][1], edge["tail"][2])]
        key = (head[1], head[2], tail[1], tail[2])
        if key not in exact or edge["score"] > exact[key]["score"]:
            exact[key] = {**edge, "head": head, "tail": tail}

    def words(value: str) -> str:
        return " ".join(value.casefold().split())

    def rank(e):
        _, hs, he, _ = e["head"]
        _, ts, te, _ = e["tail"]
        return (max(hs - te, ts - he, 0), -e["score"], hs, ts)

    semantic: dict[tuple, dict] = {}
    for edge in exact.values():
        key = (words(edge["head"][0]), words(edge["tail"][0]))
        if key not in semantic or rank(edge) < rank(semantic[key]):
            semantic[key] = edge
    values = list(semantic.values())
    kept = []
    for edge in values:
        h, t = set(words(edge["head"][0]).split()), set(words(edge["tail"][0]).split())
        if not any(other is not edge and ((h < set(words(other["head"][0]).split())
                                           and t == set(words(other["tail"][0]).split()))
                                          or (t < set(words(other["tail"][0]).split())
                                              and h == set(words(other["head"][0]).split())))
                   for other in values):
            kept.append(edge)
    return sorted(kept, key=lambda e: (e["head"][1], e["tail"][1], -e["score"]))
