"""Joint decoding's scores on a boundary checkpoint (gliner2 2.1.0 ``joint_ie/scoring.py``
``RawScorer._build_boundary_score_set`` and ``_score_boundary_relations``, spanstream's own code
over the engine's numpy heads): every entity query's candidates in the caller's text as mentions
(pair logit / ``pair_temperature``, the best per type and span), each relation type's pairs
(its role candidates capped by ``top_k_roles``, pairs by ``relation_pair_cap``, self pairs where
the relation allows them) scored by the relation MLP, and each pair endpoint scored explicitly for
every entity type the relation admits there — the edges join those typed endpoints."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from stream.engine.gliner2.boundary.model import BoundaryModel, RowScores

from .candidate_scores import CandidateScoreSet, MentionScore, ScoredRelationEdge
from .request import Joint


def _sigmoid(logit: float) -> float:
    return 1.0 / (1.0 + math.exp(-logit)) if logit >= 0 else math.exp(logit) / (1.0 + math.exp(logit))


def boundary_score_set(model: BoundaryModel, joint: Joint, row: RowScores, tokens: np.ndarray, queries: np.ndarray,
                       entity_queries: Sequence[tuple[str, int]], relation_queries: Sequence[tuple[str, int]],
                       n_prefix: int, n_text: int, text: str) -> CandidateScoreSet:
    """``entity_queries``: (entity type, query index) in prompt order; ``relation_queries``:
    (relation type, its head role query index; the tail's is the next)."""
    specs = joint.compiled.entity_specs
    temperature = float(model.settings.pair_temperature)

    def mention(entity_type: str, q: int, start: int, end: int, logit: float) -> MentionScore:
        spec = specs[entity_type]
        return MentionScore(q, entity_type, start, end, logit, _sigmoid(logit),
                            0.5 if spec.threshold is None else float(spec.threshold), spec.candidate_threshold)

    extra: list[MentionScore] = []
    edges: list[ScoredRelationEdge] = []
    if relation_queries and model.has_relations:
        extra, edges = _relations(model, joint, row, tokens, queries, entity_queries, relation_queries, n_prefix,
                                  n_text, mention)
    best = {m.key: m for m in extra}
    for entity_type, q in entity_queries:
        proposed = np.ones(len(row.spans), bool) if row.valid is None else row.valid[q]
        for c in np.flatnonzero(proposed):
            start, end = int(row.spans[c, 0]) - n_prefix, int(row.spans[c, 1]) - n_prefix
            if not 0 <= start < end <= n_text:
                continue
            m = mention(entity_type, q, start, end, float(row.logits[q, c]) / temperature)
            if m.key not in best or m.logit > best[m.key].logit:
                best[m.key] = m
    mentions = tuple(sorted(best.values(), key=lambda m: (m.entity_type, m.start, m.end, -m.logit)))
    return CandidateScoreSet(text=text, mentions=mentions, edges=tuple(edges))


def _relations(model, joint, row, tokens, queries, entity_queries, relation_queries, n_prefix, n_text, mention):
    """The relation edges between typed endpoints, and those endpoints as explicitly scored mentions."""
    compiled, config = joint.compiled, joint.config
    settings = model.settings._replace(
        relation_heads_per_type=min(model.settings.relation_heads_per_type, config.top_k_roles),
        relation_tails_per_type=min(model.settings.relation_tails_per_type, config.top_k_roles),
        relation_pair_cap=min(model.settings.relation_pair_cap, config.relation_pair_cap))
    entity_q = dict(entity_queries)
    scored = []  # (relation type, head span, tail span, logit) in gliner2's pair order
    required: set[tuple[str, int, int]] = set()
    endpoints: list[tuple[int, int]] = []
    for name, q in relation_queries:
        spec = compiled.relation_specs[name]
        pairs = model.relation(row, q, tokens, queries, settings, allow_self=spec.allow_self)
        for head, tail, logit in zip(pairs.head, pairs.tail, pairs.logit):
            h, t = (int(head[0]), int(head[1])), (int(tail[0]), int(tail[1]))
            scored.append((name, h, t, float(logit)))
            endpoints += [h, t]
            required.update((e, *h) for e in spec.head if e in entity_q)
            required.update((e, *t) for e in spec.tail if e in entity_q)
    unique = list(dict.fromkeys(endpoints))
    if not unique or not entity_queries:
        return [], []
    types = [e for e, _ in entity_queries]
    logits = model.explicit(tokens, queries[[q for _, q in entity_queries]], unique) / np.float32(
        model.settings.pair_temperature)
    row_of = {e: i for i, e in enumerate(types)}
    column = {span: i for i, span in enumerate(unique)}
    extra = []
    for entity_type, start, end in sorted(required):
        if not 0 <= start - n_prefix < end - n_prefix <= n_text:
            continue
        extra.append(mention(entity_type, entity_q[entity_type], start - n_prefix, end - n_prefix,
                             float(logits[row_of[entity_type], column[(start, end)]])))
    keys = {m.key for m in extra}
    edges = []
    for name, h, t, logit in scored:
        spec = compiled.relation_specs[name]
        head_span, tail_span = (h[0] - n_prefix, h[1] - n_prefix), (t[0] - n_prefix, t[1] - n_prefix)
        for head_type in spec.head:
            head_key = (head_type, *head_span)
            if head_key not in keys:
                continue
            for tail_type in spec.tail:
                tail_key = (tail_type, *tail_span)
                if tail_key in keys:
                    edges.append(ScoredRelationEdge(name, head_key, tail_key, logit, _sigmoid(logit),
                                                    0.5 if spec.threshold is None else float(spec.threshold),
                                                    spec.candidate_threshold))
    return extra, edges
