"""Records ("Instance Formation", gliner2 2.1.0 ``models/boundary/records.py``), inference only:
the record head over one row's shared pool for one structure, and ``decode_group``, which turns
its logits into record instances.

- ``natural``: one instance per pool candidate of the anchor field; its object logit is the
  anchor query's pair logit.
- ``latent``: every pool candidate is a seed; the object logit is ``latent_seed_head``.
- ``anchorless``: learned instance queries attend over the pool; the object logit is ``object_head``.

Each instance then scores, per field, ``[ABSENT | every pool candidate]``. Decoding keeps the
instances whose object probability passes the threshold; a scalar field takes its best
alternative, a list field every candidate passing the threshold; ``exclusive`` fields are solved
jointly across instances (scalar: minimum-cost assignment; list: each candidate to its strongest
instance). Adapted from gliner2 (Apache-2.0; see ``NOTICE``)."""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from stream.engine.gliner2.boundary.encoding import Weights, linear, softmax

SCALAR = ("optional_one", "required_one")
ABSENT_ALLOWED = ("optional_one", "zero_or_more")


class RecordField(NamedTuple):
    name: str
    query: int
    "The field's query among the row's extractive queries (its column of the pair logits)."
    cardinality: str
    exclusive: bool = False

    @property
    def scalar(self) -> bool:
        return self.cardinality in SCALAR

    @property
    def allows_absent(self) -> bool:
        return self.cardinality in ABSENT_ALLOWED


class RecordGroup(NamedTuple):
    name: str
    mode: str  # natural | latent | anchorless
    fields: tuple[RecordField, ...]
    anchor: int | None = None
    "Index in ``fields`` of the natural mode's anchor."


def record_group(struct, first_query: int) -> RecordGroup:
    """A structure with a ``mode`` (``schema.Structure``) as the record head reads it; its fields'
    queries start at ``first_query``. A field without ``cardinality`` gets gliner2 2.1.0's
    default at inference: the anchor ``required_one``, every other field ``zero_or_more`` (its
    processor does not pass the field's dtype to ``compile_record_specs``; a ``str`` field is
    still formatted as one value)."""
    names = [f.name for f in struct.fields]
    anchor = names.index(struct.anchor) if struct.mode == "natural" else None
    fields = tuple(RecordField(f.name, first_query + k,
                               f.cardinality or ("required_one" if k == anchor else "zero_or_more"), f.exclusive)
                   for k, f in enumerate(struct.fields))
    return RecordGroup(struct.name, struct.mode, fields, anchor)


class GroupLogits(NamedTuple):
    objects: np.ndarray  # [I] object logits
    assign: np.ndarray  # [I, F, 1 + C]: column 0 is ABSENT, then the row's candidates
    seeds: np.ndarray | None  # [I] candidate seeding each instance (natural), None otherwise
    field_candidates: tuple[np.ndarray, ...] | None = None
    "Per-query path: each field's candidates (the row's indices, in its query's own order); None: all."


def group_logits(group: RecordGroup, candidate_states: np.ndarray, queries: np.ndarray, pair_logits: np.ndarray,
                 w: Weights, own: np.ndarray | None = None) -> GroupLogits:
    """``RecordHead.forward_groups_dense`` for one row and one group, over the row's valid pool
    candidates (``candidate_states`` [C, H], ``pair_logits`` [queries, C]). Instances are
    candidates (natural, latent) or the learned queries (anchorless). On the per-query path
    (``own`` [queries, K]: each query's candidates as row indices in its own order, -1 padding)
    it is ``RecordHead.forward_group``: each field scores only its own query's candidates, natural
    instances are the anchor's candidates, latent seeds every field's candidates in turn (a span
    two fields proposed seeds twice, as in gliner2), anchorless attends over them all."""
    prefix = "record_decoder"
    if own is not None:
        return _per_query_logits(group, candidate_states, queries, pair_logits, w, own)
    if not len(candidate_states):  # no candidate: no instance can hold a field value
        return GroupLogits(np.zeros(0, np.float32), np.zeros((0, len(group.fields), 1), np.float32), None)
    if group.mode == "anchorless":
        instances = _anchorless(candidate_states, w)
        objects = linear(instances, w, f"{prefix}.object_head")[..., 0]
        seeds = None
    else:
        instances = candidate_states
        if group.mode == "natural":
            assert group.anchor is not None
            objects = pair_logits[group.fields[group.anchor].query]
            seeds = np.arange(len(candidate_states))
        else:
            objects = linear(candidate_states, w, f"{prefix}.latent_seed_head")[..., 0]
            seeds = None
    return GroupLogits(objects.astype(np.float32), _assign(group, instances, queries, candidate_states, w), seeds)


def _anchorless(context: np.ndarray, w: Weights) -> np.ndarray:
    prefix = "record_decoder"
    learned = w[f"{prefix}.instance_embed"]
    if not len(context):
        return learned
    q = linear(learned, w, f"{prefix}.q_proj")
    k = linear(context, w, f"{prefix}.k_proj")
    v = linear(context, w, f"{prefix}.v_proj")
    attention = softmax(q @ k.T / np.float32(math.sqrt(q.shape[-1])), axis=-1)
    return learned + attention @ v


def _assign(group: RecordGroup, instances: np.ndarray, queries: np.ndarray, candidate_states: np.ndarray,
            w: Weights) -> np.ndarray:
    prefix = "record_decoder"
    field_queries = queries[[f.query for f in group.fields]]
    query = (linear(instances, w, f"{prefix}.inst_proj")[:, None, :]
             + linear(field_queries, w, f"{prefix}.field_proj")[None, :, :])  # [I, F, D]
    absent = query @ w[f"{prefix}.null_embed"]
    candidates = query @ linear(candidate_states, w, f"{prefix}.cand_proj").T  # [I, F, C]
    return np.concatenate([absent[..., None], candidates], -1).astype(np.float32)


def _per_query_logits(group: RecordGroup, candidate_states: np.ndarray, queries: np.ndarray,
                      pair_logits: np.ndarray, w: Weights, own: np.ndarray) -> GroupLogits:
    prefix = "record_decoder"
    lists = tuple(own[f.query][own[f.query] >= 0] for f in group.fields)
    seeds = None
    if group.mode == "natural":
        assert group.anchor is not None
        seeds = lists[group.anchor]
        instances = candidate_states[seeds]
        objects = pair_logits[group.fields[group.anchor].query][seeds]
    elif group.mode == "latent":
        order = np.concatenate(lists) if lists else np.zeros(0, np.int64)
        instances = candidate_states[order]
        objects = (linear(instances, w, f"{prefix}.latent_seed_head")[..., 0] if len(order)
                   else np.zeros(0, np.float32))
    else:
        instances = _anchorless(candidate_states[np.concatenate(lists)] if lists else candidate_states[:0], w)
        objects = linear(instances, w, f"{prefix}.object_head")[..., 0]
    assign = _assign(group, instances, queries, candidate_states, w) if len(instances) else np.zeros(
        (0, len(group.fields), 1 + len(candidate_states)), np.float32)
    return GroupLogits(np.asarray(objects, np.float32), assign, seeds, lists)


class DecodedRecord(NamedTuple):
    score: float
    fields: dict[int, list[tuple[int, float]]]
    "Field index → (pool candidate, assignment probability) in candidate order."
    anchor: int | None
    "The natural mode's anchor candidate."


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x.astype(np.float64)))


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x.astype(np.float64) - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def linear_sum_assignment(cost: np.ndarray) -> list[tuple[int, int]]:
    """Minimum-cost assignment, ``(row, column)`` pairs by row. The shortest augmenting path
    method in pure Python (gliner2's fallback when scipy is absent; the matrices here are
    instances × candidates), on costs with gliner2's sub-ULP lexicographic tie-break added, so
    exact ties resolve the way gliner2's scipy path resolves them."""
    cost = np.asarray(cost, dtype=np.float64)
    r, c = cost.shape
    if r == 0 or c == 0:
        return []
    scale = max(float(np.abs(cost).max()), 1.0)
    cost = cost + np.finfo(np.float64).eps * scale * np.arange(r * c, dtype=np.float64).reshape(r, c)
    transposed = c < r
    if transposed:
        cost = cost.T
    n, m = cost.shape
    rows = cost.tolist()
    inf = float("inf")
    u, v = [0.0] * (n + 1), [0.0] * (m + 1)
    p, way = [0] * (m + 1), [0] * (m + 1)
    for i in range(1, n + 1):
        p[0], j0 = i, 0
        minv, used = [inf] * (m + 1), [False] * (m + 1)
        while True:
            used[j0] = True
            i0, delta, j1 = p[j0], inf, -1
            row = rows[i0 - 1]
            for j in range(1, m + 1):
                if not used[j]:
                    cur = row[j - 1] - u[i0] - v[j]
                    if cur < minv[j]:
                        minv[j], way[j] = cur, j0
                    if minv[j] < delta:
                        delta, j1 = minv[j], j
            for j in range(m + 1):
                if used[j]:
                    u[p[j]] += delta
                    v[j] -= delta
                else:
                    minv[j] -= delta
            j0 = j1
            if p[j0] == 0:
                break
        while True:
            j1 = way[j0]
            p[j0] = p[j1]
            j0 = j1
            if j0 == 0:
                break
    pairs = [(p[j] - 1, j - 1) for j in range(1, m + 1) if p[j]]
    return sorted((b, a) for a, b in pairs) if transposed else sorted(pairs)


def decode_group(group: RecordGroup, logits: GroupLogits, spans: np.ndarray, threshold: float,
                 temperature: float = 1.0) -> list[DecodedRecord]:
    """gliner2's ``decode_group`` with one threshold for anchors, objects and fields (what its
    engine passes), on the instances whose object probability passes it. Each field decides over
    its own candidates (all of the row's on the shared pool)."""
    if temperature <= 0:
        raise ValueError("record_temperature must be > 0")
    probs = _sigmoid(logits.objects / temperature)
    order = sorted(range(len(probs)), key=lambda i: (-float(probs[i]), i))
    selected = [i for i in order if float(probs[i]) >= threshold]
    every = np.arange(logits.assign.shape[-1] - 1)
    columns = [every if logits.field_candidates is None else logits.field_candidates[f]
               for f in range(len(group.fields))]
    # per field [I, 1 + its candidates] (column 0 ABSENT), and its candidates' row indices
    field_assign = [logits.assign[:, f][:, np.concatenate([[0], 1 + cols]).astype(np.int64)].astype(np.float64)
                    / temperature for f, cols in enumerate(columns)]
    scalar_choice: dict[tuple[int, int], tuple[int, float] | None] = {}
    list_owner: dict[tuple[int, int], tuple[int, float]] = {}
    for f, field in enumerate(group.fields):
        if not field.exclusive or not selected or f == group.anchor:
            continue
        n_cand = len(columns[f])
        rows = field_assign[f][selected]  # [R, 1 + C]
        if field.scalar:
            if n_cand == 0:
                for inst in selected:
                    scalar_choice[(inst, f)] = None
                continue
            p = _softmax(rows)
            cand_p = p[:, 1:]
            eps = np.finfo(np.float64).eps
            cand_cost = -np.log(np.maximum(cand_p, eps))
            n = len(selected)
            if field.allows_absent:
                diagonal = -np.log(np.maximum(p[:, 0], eps))
            else:  # an emergency ABSENT column, never preferred while a candidate is available
                diagonal = np.full(n, cand_cost.max() + 50.0)
            absent = np.full((n, n), max(float(cand_cost.max()), float(diagonal.max())) + 1000.0)
            absent[np.arange(n), np.arange(n)] = diagonal
            chosen = dict(linear_sum_assignment(np.concatenate([cand_cost, absent], -1)))
            for row, inst in enumerate(selected):
                col = chosen.get(row, n_cand + row)
                if col >= n_cand or (float(cand_p[row, col]) < threshold and field.allows_absent):
                    scalar_choice[(inst, f)] = None
                else:
                    scalar_choice[(inst, f)] = (int(columns[f][col]), float(cand_p[row, col]))
        elif n_cand:
            p = _sigmoid(rows[:, 1:])
            for c in range(n_cand):
                best = int(np.argmax(p[:, c]))
                if float(p[best, c]) >= threshold:
                    list_owner[(f, int(columns[f][c]))] = (selected[best], float(p[best, c]))

    records = []
    for inst in selected:
        fields: dict[int, list[tuple[int, float]]] = {}
        anchor = None
        if group.mode == "natural" and logits.seeds is not None:
            anchor = int(logits.seeds[inst])
        for f, field in enumerate(group.fields):
            if f == group.anchor:
                if anchor is not None:
                    fields[f] = [(anchor, float(probs[inst]))]
                continue
            row = field_assign[f][inst]
            n_cand = len(columns[f])
            if field.scalar:
                if field.exclusive:
                    choice = scalar_choice.get((inst, f))
                    if choice is not None:
                        fields[f] = [choice]
                    continue
                p = _softmax(row)
                col = int(np.argmax(p)) if field.allows_absent else 1 + int(np.argmax(p[1:])) if n_cand else 0
                if col == 0 or (float(p[col]) < threshold and field.allows_absent):
                    continue
                fields[f] = [(int(columns[f][col - 1]), float(p[col]))]
            elif n_cand:
                p = _sigmoid(row[1:])
                kept = []
                for c in range(n_cand):
                    pool = int(columns[f][c])
                    if field.exclusive:
                        owner = list_owner.get((f, pool))
                        if owner is not None and owner[0] == inst:
                            kept.append((pool, owner[1]))
                    elif float(p[c]) >= threshold:
                        kept.append((pool, float(p[c])))
                if kept:
                    fields[f] = kept
        if fields:
            records.append(DecodedRecord(float(probs[inst]), fields, anchor))
    if group.mode == "natural":
        records.sort(key=lambda r: (r.anchor is None, tuple(spans[r.anchor]) if r.anchor is not None else (0, 0)))
    else:  # one record per distinct field content, the best scoring
        best: dict[tuple, DecodedRecord] = {}
        for rec in records:
            key = tuple((group.fields[f].query, tuple(sorted(tuple(int(x) for x in spans[c]) for c, _ in values)))
                        for f, values in sorted(rec.fields.items(), key=lambda kv: group.fields[kv[0]].query))
            if key not in best or rec.score > best[key].score:
                best[key] = rec
        records = list(best.values())
    return records
