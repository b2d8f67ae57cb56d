"""Entities from a boundary head's pool scores (gliner2 2.1.0 ``BoundaryExtractor._decode_entities``
with ``_group_scored_candidates``): per entity type, abstain when the null head says so, keep the
candidates whose probability passes the type's threshold (plus the top predicted-count ones with
``adaptive_threshold``), resolve overlaps (the checkpoint's ``overlap_policy``, ``flat`` by default,
unless the request names one), map word boundaries to characters.

One deliberate difference, as on span checkpoints: a candidate that reaches into the period
gliner2 appends to a text without final punctuation is dropped before overlap resolution (gliner2
returns offsets past the caller's text, and such a span can suppress a real one)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from stream.engine.gliner2.boundary.encoding import MASK_LOGIT
from stream.engine.gliner2.boundary.model import BoundaryScores
from stream.engine.gliner2.boundary.relations import RelationPairs, deduplicate_edges
from stream.engine.gliner2.overlap import RawSpan, normalize_policy, resolve
from stream.engine.gliner2.prompt import Encoded
from stream.engine.gliner2.schema import AttributeGroup, EntityType, RelationType


def candidates(scores: BoundaryScores, q: int, threshold: float) -> list[tuple[float, int, int]]:
    """``(probability, start, end)`` of the kept candidates of type ``q``, in pool order (only
    those the type proposed itself, on the per-query path)."""
    p = scores.probs[q]
    eligible = np.ones(len(p), bool) if scores.valid is None else scores.valid[q]
    keep = eligible & (p >= np.float32(threshold))
    if scores.settings.adaptive_threshold and scores.counts is not None:
        rank = np.empty(len(p), np.int64)
        rank[np.argsort(-np.where(eligible, p, MASK_LOGIT), kind="stable")] = np.arange(len(p))
        keep |= eligible & (rank < scores.counts[q])
    return [(float(p[c]), int(scores.spans[c, 0]), int(scores.spans[c, 1])) for c in np.flatnonzero(keep)]


def decode_entities(entities: Sequence[EntityType], scores: BoundaryScores, enc: Encoded, text: str,
                    threshold: float, policy: str | None, skip: frozenset[str] = frozenset()) -> dict[str, list[RawSpan]]:
    """Each entity type's resolved spans (best first), before formatting; ``skip``: the
    prompt's attribute labels, which are queries but not entity types."""
    settings = scores.settings
    policy = policy if policy is not None else normalize_policy(settings.overlap_policy)
    starts, ends = enc.words.starts, enc.words.ends
    out: dict[str, list[RawSpan]] = {}
    for q, e in enumerate(entities):
        if e.name in skip:
            continue
        spans: list[RawSpan] = []
        abstained = scores.null_probs is not None and float(scores.null_probs[q]) > settings.abstention_threshold
        if not abstained:
            for prob, s, end in candidates(scores, q, threshold if e.threshold is None else e.threshold):
                ts, te = s - enc.n_prefix, end - enc.n_prefix
                if not 0 <= ts < te <= enc.n_text:
                    continue
                cs, ce = starts[ts], ends[te - 1]
                if text[cs:ce].strip():
                    spans.append(RawSpan(text[cs:ce].strip(), prob, cs, ce))
            spans = resolve(spans, policy)
        out[e.name] = spans
    return out


def attach_attributes(found: dict[str, list[RawSpan]], entities: Sequence[EntityType], scores: BoundaryScores,
                      attributes: Sequence[AttributeGroup], enc: Encoded) -> dict[str, list[dict[str, Any]]]:
    """gliner2's ``_attach_entity_attributes`` on boundary checkpoints: every kept span of every
    entity type is scored for each attribute label's query, all at once, in a pool rebuilt for
    those queries with the spans injected; each group that applies to the span's type then gets
    a softmax over its labels (single-label) or the labels whose sigmoid passes its threshold.
    Returns, per entity type, one ``{group: value}`` per kept span."""
    index = {e.name: q for q, e in enumerate(entities)}
    rows = list(dict.fromkeys((label, index[g.prompt_label(label)]) for g in attributes for label in g.labels
                              if g.prompt_label(label) in index))
    words = {id(s): (enc.words.starts.index(s.start) + enc.n_prefix, enc.words.ends.index(s.end) + enc.n_prefix + 1)
             for spans in found.values() for s in spans}
    pairs = list(dict.fromkeys(words[id(s)] for spans in found.values() for s in spans))
    out: dict[str, list[dict[str, Any]]] = {name: [{} for _ in spans] for name, spans in found.items()}
    if not rows or not pairs:
        return out
    assert scores.explicit is not None
    logits = scores.explicit([q for _, q in rows], pairs) / np.float32(scores.settings.pair_temperature)
    row_of = {label: r for r, (label, _) in enumerate(rows)}
    column = {pair: c for c, pair in enumerate(pairs)}
    for name, spans in found.items():
        for span, values in zip(spans, out[name]):
            c = column[words[id(span)]]
            for g in attributes:
                if g.applies_to is not None and name not in g.applies_to:
                    continue
                present = [label for label in g.labels if label in row_of]
                if not present:
                    continue
                x = np.asarray([logits[row_of[label], c] for label in present], dtype=np.float32)
                if g.multi_label:
                    p = 1.0 / (1.0 + np.exp(-x))
                    values[g.name] = [{"label": label, "confidence": float(q)} for label, q in zip(present, p)
                                      if q >= g.threshold]
                else:
                    e = np.exp(x - x.max())
                    p = e / e.sum()
                    best = int(np.argmax(p))
                    values[g.name] = {"label": present[best], "confidence": float(p[best])}
    return out


def decode_relation(rel: RelationType, pairs: RelationPairs, enc: Encoded, text: str, threshold: float,
                    include_confidence: bool, include_spans: bool) -> list:
    """One relation type's edges, as gliner2's boundary ``_decode_relations`` formats them; an
    endpoint reaching into gliner2's appended period is dropped (the span rule)."""
    threshold = threshold if rel.threshold is None else rel.threshold
    starts, ends = enc.words.starts, enc.words.ends
    edges = []
    for k in range(len(pairs.prob)):
        score = float(pairs.prob[k])
        if score < threshold:
            continue
        hs, he = int(pairs.head[k, 0]) - enc.n_prefix, int(pairs.head[k, 1]) - enc.n_prefix
        ts, te = int(pairs.tail[k, 0]) - enc.n_prefix, int(pairs.tail[k, 1]) - enc.n_prefix
        if not (0 <= hs < he <= enc.n_text and 0 <= ts < te <= enc.n_text):
            continue
        h0, h1, t0, t1 = starts[hs], ends[he - 1], starts[ts], ends[te - 1]
        head, tail = text[h0:h1].strip(), text[t0:t1].strip()
        if head and tail:
            edges.append({"score": score, "head": (head, h0, h1, float(pairs.head_prob[k])),
                          "tail": (tail, t0, t1, float(pairs.tail_prob[k]))})
    out = []
    for edge in deduplicate_edges(edges):
        (head, h0, h1, hp), (tail, t0, t1, tp) = edge["head"], edge["tail"]
        if include_spans:
            value: Any = {"head": {"text": head, "start": h0, "end": h1}, "tail": {"text": tail, "start": t0, "end": t1}}
            if include_confidence:
                value["head"]["confidence"], value["tail"]["confidence"] = hp, tp
                value["confidence"] = edge["score"]
        elif include_confidence:
            value = {"head": {"text": head, "confidence": hp}, "tail": {"text": tail, "confidence": tp},
                     "confidence": edge["score"]}
        else:
            value = (head, tail)
        out.append(value)
    return out
