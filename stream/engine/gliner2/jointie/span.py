"""Joint decoding's scores on a span checkpoint (gliner2 2.1.0 ``joint_ie/scoring.py``
``RawScorer._build_lattice``, spanstream's own code over the engine's numpy heads): the entity
types' logits over every span of the caller's words (one instance, as gliner2 scores entities),
and for each relation its ``count_top_k`` most probable instance counts (the count head's
softmax), each count's head and tail role logits over every span — the count hypotheses the
candidate builder weighs by their probability."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from stream.engine.gliner2.heads import Heads

from .candidates import RelationHypothesis
from .request import Joint


class SpanLattice(NamedTuple):
    entity_logits: np.ndarray  # [types, L, W] (-inf past the caller's last word)
    entity_types: tuple[str, ...]
    hypotheses: tuple[RelationHypothesis, ...]


def _logit(p: float) -> float:
    """``torch.logit(p.clamp(1e-7, 1 - 1e-7))`` in float32, as gliner2 reads a count's log-odds."""
    q = np.float32(min(max(p, 1e-7), 1 - 1e-7))
    return float(np.float32(np.log(q / (np.float32(1) - q))))


def span_lattice(heads: Heads, joint: Joint, words: np.ndarray, entity_task: tuple[np.ndarray, tuple[str, ...]],
                 relation_tasks: list[tuple[str, np.ndarray]]) -> SpanLattice:
    """``words`` [caller words, H]; ``entity_task`` (its marker states [1 + types, H], its types);
    ``relation_tasks`` (name, marker states [1 + 2, H]) in prompt order."""
    compiled, config = joint.compiled, joint.config
    marks, types = entity_task
    chunks = [heads.count_queries_many([marks[1:]], [1])[0].reshape(-1, marks.shape[-1])]  # one instance
    plans = []
    for name, rel in relation_tasks:
        logits = heads.count_logits(rel[:1])[0]
        probs = np.exp(logits - logits.max())
        probs = (probs / probs.sum()).astype(np.float32)
        order = np.argsort(-probs, kind="stable")[:min(config.count_top_k, len(probs))]
        alternatives = []
        for count in order:
            count, p = int(count), float(probs[count])
            if count > 0:
                chunks.append(heads.count_queries_many([rel[1:]], [count])[0].reshape(-1, rel.shape[-1]))
            alternatives.append((count, _logit(p), p))
        plans.append((name, alternatives))
    width = heads.max_width
    if len(words):
        all_logits = heads.span_logits(words, np.concatenate(chunks))
    else:
        all_logits = np.zeros((sum(len(c) for c in chunks), 0, width), np.float32)
    at = len(types)
    entity_logits = all_logits[:at]
    hypotheses = []
    for name, alternatives in plans:
        spec = compiled.relation_specs[name]
        for alternative, (count, logit, p) in enumerate(alternatives):
            if count <= 0:
                continue
            role_logits = all_logits[at:at + 2 * count].reshape(count, 2, *all_logits.shape[1:])
            at += 2 * count
            hypotheses.append(RelationHypothesis(name, role_logits, spec.head, spec.tail, spec.threshold,
                                                 spec.candidate_threshold, p, logit, alternative, name))
    return SpanLattice(entity_logits, tuple(types), tuple(hypotheses))
