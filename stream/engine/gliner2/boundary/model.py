"""A boundary checkpoint's heads as the engine runs them: the shared-pool boundary head over a
batch of rows, and the classifier (gliner2 2.1.0 ``BoundaryExtractor``: entities through the
pool, classification through the same MLP as the span architecture, scaled by
``classification_temperature``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from stream.engine.gliner2.boundary.encoding import MASK_LOGIT, linear
from stream.engine.gliner2.boundary.head import HeadSettings, head_graphs, run_head, score_explicit, settings_from_config
from stream.engine.gliner2.boundary.records import GroupLogits, RecordGroup, group_logits
from stream.engine.gliner2.boundary.relations import RelationPairs, relation_pairs, word_blocks, word_projections
from stream.errors import ModelLoadError


class BoundaryScores(NamedTuple):
    """One row's entity task: every pool candidate's probability for every entity type."""

    spans: np.ndarray
    "int [C, 2]: half-open word spans (prefix words included) of the valid pool candidates."
    probs: np.ndarray
    "[types, C]: sigmoid(pair logit / pair_temperature)."
    null_probs: np.ndarray | None
    "[types]: the abstention head's probability (a type above ``abstention_threshold`` is empty)."
    counts: np.ndarray | None
    "[types]: predicted instances, round(exp(count log-rate)), used when ``adaptive_threshold``."
    settings: HeadSettings
    explicit: Callable[[Sequence[int], Sequence[tuple[int, int]]], np.ndarray] | None = None
    "The pair logits ``[queries, spans]`` of the task's queries (indices) at given word spans,"
    " scored in a pool rebuilt for those queries (``BoundaryModel.explicit``): attributes, choices."
    valid: np.ndarray | None = None
    "bool [types, C]: the candidates each type proposed itself (per-query path); None: all of them."


class RowScores(NamedTuple):
    """The boundary head's output for one row: its candidates and every query's logits. Per-query
    path: the union of the queries' candidates (first seen first: query 0's in its own order),
    with ``valid`` saying which query proposed which (its logit is gliner2's sentinel elsewhere)."""

    spans: np.ndarray  # int [C, 2]
    logits: np.ndarray  # [queries, C]
    null_logits: np.ndarray | None  # [queries]
    count_log_rates: np.ndarray | None  # [queries]
    candidate_states: np.ndarray | None  # [C, H]: what the record head reads
    valid: np.ndarray | None = None  # bool [queries, C]; None: every query has every candidate
    own: np.ndarray | None = None  # int [queries, K]: each query's candidates in its own order (-1: none)
    relation_words: np.ndarray | None = None  # [words, 4 M]: relations.word_projections of the row's words


def _union(indices: np.ndarray, valid: np.ndarray, logits: np.ndarray, states: np.ndarray | None
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
    """One row's per-query candidates (``[Q, C, 2]``, ``[Q, C]``, logits ``[Q, C]``, states
    ``[Q, C, H]``) as one span list: the spans, every query's logit at each (sentinel where it did
    not propose it), validity, each span's state (the same whichever query proposed it), and each
    query's candidates as span indices in its own order."""
    column: dict[tuple[int, int], int] = {}
    first: list[tuple[int, int]] = []
    for q, c in zip(*np.nonzero(valid)):
        key = (int(indices[q, c, 0]), int(indices[q, c, 1]))
        if key not in column:
            column[key] = len(column)
            first.append((q, c))
    spans = np.asarray(list(column), dtype=np.int64).reshape(-1, 2)
    out = np.full((valid.shape[0], len(column)), MASK_LOGIT, np.float32)
    proposed = np.zeros(out.shape, bool)
    own = np.full(valid.shape, -1, np.int64)
    seen = np.zeros(valid.shape[0], np.int64)
    for q, c in zip(*np.nonzero(valid)):
        at = column[(int(indices[q, c, 0]), int(indices[q, c, 1]))]
        out[q, at], proposed[q, at] = logits[q, c], True
        own[q, seen[q]] = at
        seen[q] += 1
    union_states = None
    if states is not None:
        union_states = (states[tuple(np.asarray(first).T)] if first
                        else np.zeros((0, states.shape[-1]), np.float32))
    return spans, out, proposed, union_states, own


class BoundaryModel:
    def __init__(self, weights: Mapping[str, np.ndarray], settings: HeadSettings, threads: int | None = None):
        self.w = {k.removeprefix("boundary_head."): np.ascontiguousarray(v, dtype=np.float32)
                  for k, v in weights.items() if k.startswith("boundary_head.")}
        self.mlps = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in weights.items()
                     if k.startswith(("classifier.", "relation_scorer.", "record_decoder."))}
        self.settings = settings
        self.has_relations = settings.enable_relations and "relation_scorer.mlp.0.weight" in self.mlps
        self.has_records = (settings.enable_records and "record_decoder.inst_proj.weight" in self.mlps
                            and "candidate_encoder.weight" in self.w)
        self.records_refusal = None if self.has_records else "no record head (enable_records is off)"
        self.graphs = head_graphs(self.w, settings, threads)
        self.word_blocks = (word_blocks(self.mlps, self.w["boundary_encoder.left_projection.weight"].shape[1])
                            if self.has_relations else None)
        "The relation MLP's word blocks (``relations.word_blocks``), for ``score_rows(relations=True)``."

    @classmethod
    def load(cls, path: Path, raw_config: Mapping[str, Any], threads: int | None = None) -> "BoundaryModel":
        try:
            settings = settings_from_config(raw_config.get("boundary_head") or {}, f"{path.parent.name}: boundary_head",
                                            raw_config.get("config_version"))
        except ValueError as exc:
            raise ModelLoadError(str(exc)) from exc
        try:
            with np.load(path) as npz:
                weights = {k: npz[k] for k in npz.files}
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"{path}: cannot read the head weights: {exc}") from exc
        head = {k.removeprefix("boundary_head.") for k in weights}
        shared = settings.candidate_pool == "shared"
        scorer = "shared_pool_scorer" if shared else "pair_scorer"
        required = ["boundary_encoder.left_projection.weight"]
        required += (["shared_pool_builder.start_projection.weight", "shared_pool_scorer.film.weight"] if shared else
                     ["boundary_proposer.start_pair_projection.weight", "pair_scorer.compat_mix.weight",
                      "pair_scorer.length_query_projection.weight",
                      "pair_scorer.inside_weight.weight" if settings.proposer.query_conditioned_inside_weight
                      else "pair_scorer.inside_weight"])
        if settings.enable_span_content:
            required += [f"{scorer}.content_pooler.value_projection.weight",
                         f"{scorer}.content_projection.weight" if shared else "pair_scorer.content_bias.weight"]
        elif f"{scorer}.content_pooler.value_projection.weight" in head:
            raise ModelLoadError(f"{path}: the head has span content weights but boundary_head.enable_span_content "
                                 "is not true")
        if settings.enable_relations and settings.relation_biaffine_content:
            required += ["relation_scorer.head_content_projection.weight", "relation_scorer.content_linear.weight"]
        for key in required:
            if key not in head:
                name = key if key.startswith("relation_scorer.") else f"boundary_head.{key}"
                raise ModelLoadError(f"{path}: missing head weight {name}")
        try:
            return cls(weights, settings, threads)
        except KeyError as exc:  # a weight the head's graphs are built from
            raise ModelLoadError(f"{path}: missing head weight boundary_head.{exc.args[0]}") from exc

    def score_rows(self, tokens: Sequence[np.ndarray], queries: Sequence[np.ndarray],
                   candidate_states: bool = True, relations: bool = False) -> list[RowScores]:
        """One head call for every row: ``tokens[i]`` [words, H], ``queries[i]`` [queries, H]
        (every extractive query of the row, in prompt order: they share one pool).
        ``candidate_states``: whether any row will ask for ``record_logits``; ``relations``:
        whether any row has a relation task (every row's words are then projected for the relation
        MLP at once: ``RowScores.relation_words``)."""
        h = tokens[0].shape[-1]
        lw, lq = max(len(t) for t in tokens), max(len(q) for q in queries)
        tok = np.zeros((len(tokens), lw, h), np.float32)
        qry = np.zeros((len(tokens), lq, h), np.float32)
        tmask = np.zeros((len(tokens), lw), bool)
        qmask = np.zeros((len(tokens), lq), bool)
        for i, (t, q) in enumerate(zip(tokens, queries)):
            tok[i, :len(t)], tmask[i, :len(t)] = t, True
            qry[i, :len(q)], qmask[i, :len(q)] = q, True
        out = run_head(tok, tmask, qry, qmask, self.w, self.settings, self.graphs, candidate_states)
        words: list[np.ndarray | None] = [None] * len(tokens)
        if relations and self.has_relations:
            words = np.split(word_projections(np.concatenate(tokens), self.mlps, self.word_blocks),
                             np.cumsum([len(t) for t in tokens])[:-1])
        rows = []
        for i, q in enumerate(queries):
            if out.valid.ndim == 3:  # per-query candidates
                spans, logits, valid, states, own = _union(
                    out.indices[i, :len(q)], out.valid[i, :len(q)], out.pair_logits[i, :len(q)],
                    None if out.candidate_states is None else out.candidate_states[i, :len(q)])
                rows.append(RowScores(spans, logits,
                                      None if out.null_logits is None else out.null_logits[i, :len(q)],
                                      None if out.count_log_rates is None else out.count_log_rates[i, :len(q)],
                                      states, valid, own, words[i]))
                continue
            keep = out.valid[i]
            rows.append(RowScores(out.indices[i][keep], out.pair_logits[i, :len(q)][:, keep],
                                  None if out.null_logits is None else out.null_logits[i, :len(q)],
                                  None if out.count_log_rates is None else out.count_log_rates[i, :len(q)],
                                  None if out.candidate_states is None else out.candidate_states[i][keep],
                                  relation_words=words[i]))
        return rows

    def explicit(self, tokens: np.ndarray, queries: np.ndarray, spans: Sequence[tuple[int, int]]) -> np.ndarray:
        """``score_explicit_spans`` for one row: the pair logits ``[queries, spans]`` of the given
        word spans (prefix words included) for these queries, each span scored inside a pool
        rebuilt for these queries with the spans injected. gliner2 raises when the spans do not
        fit in ``pool_size``; here they are scored ``pool_size`` at a time (a deliberate
        difference: the same scores whenever gliner2 answers)."""
        unique = list(dict.fromkeys((int(s), int(e)) for s, e in spans))
        scores = np.empty((len(queries), len(unique)), np.float32)
        size = max(self.settings.pool_size, 1)
        for at in range(0, len(unique), size):
            chunk = np.asarray(unique[at:at + size], dtype=np.int64).reshape(1, -1, 2)
            scores[:, at:at + chunk.shape[1]] = score_explicit(
                tokens[None], np.ones((1, len(tokens)), bool), queries[None], np.ones((1, len(queries)), bool),
                chunk, np.ones(chunk.shape[:2], bool), self.w, self.settings, self.graphs)[0]
        column = {span: i for i, span in enumerate(unique)}
        return scores[:, [column[(int(s), int(e))] for s, e in spans]]

    def entities(self, row: "RowScores", q0: int, q1: int, tokens: np.ndarray | None = None,
                 queries: np.ndarray | None = None) -> BoundaryScores:
        """The entity task's view of a row (its queries ``q0:q1``); with the row's token and query
        states, the task can also score spans of its choice (``BoundaryScores.explicit``)."""
        with np.errstate(over="ignore"):  # masked rows hold gliner2's -1e4 sentinel: probability 0
            probs = 1.0 / (1.0 + np.exp(-row.logits[q0:q1] / np.float32(self.settings.pair_temperature)))
            null = None if row.null_logits is None else 1.0 / (1.0 + np.exp(-row.null_logits[q0:q1]))
        counts = None if row.count_log_rates is None else np.clip(
            np.rint(np.exp(row.count_log_rates[q0:q1])), 0, len(row.spans)).astype(np.int64)
        explicit = None
        if tokens is not None and queries is not None:
            def explicit(which: Sequence[int], spans: Sequence[tuple[int, int]]) -> np.ndarray:
                return self.explicit(tokens, queries[[q0 + q for q in which]], spans)
        return BoundaryScores(row.spans, probs.astype(np.float32), null, counts, self.settings, explicit,
                              None if row.valid is None else row.valid[q0:q1])

    def relation(self, row: "RowScores", q: int, tokens: np.ndarray, queries: np.ndarray,
                 settings: HeadSettings | None = None, allow_self: bool = False) -> RelationPairs:
        """A relation task's pairs: its head and tail role queries are ``q`` and ``q + 1``; the
        relation's state is their mean, or both side by side (``directional_relation_states``).
        ``settings`` overrides the checkpoint's (joint decoding caps the role and pair counts)."""
        roles = queries[q:q + 2]
        state = roles.reshape(-1) if self.settings.directional_relation_states else roles.mean(0)
        head_ok, tail_ok = (None, None) if row.valid is None else (row.valid[q], row.valid[q + 1])
        return relation_pairs(row.spans, row.logits[q], row.logits[q + 1], tokens, state, self.mlps,
                              settings or self.settings, head_ok, tail_ok, allow_self, row.relation_words)

    def record_logits(self, group: RecordGroup, row: RowScores, queries: np.ndarray) -> GroupLogits:
        """The record head's logits for one structure with a ``mode`` over the row's candidates
        (per-query path: each field over the candidates its own query proposed)."""
        if row.candidate_states is None:
            raise ValueError("record_logits needs the candidate states: score_rows(..., candidate_states=True)")
        return group_logits(group, row.candidate_states, queries, row.logits, self.mlps, row.own)

    def class_logits(self, label_states: np.ndarray) -> np.ndarray:
        """The classifier (Linear, ReLU, Dropout, Linear) on each label's marker state, divided
        by ``classification_temperature``."""
        hidden = np.maximum(linear(label_states, self.mlps, "classifier.0"), 0)
        return linear(hidden, self.mlps, "classifier.3")[..., 0] / np.float32(
            self.settings.classification_temperature)
