"""A request's joint decoding (spanstream's own, but ``merge_windows``, adapted from gliner2's
``joint_ie/long_text.py``): the schema dict's ``joint`` value — gliner2's ``JointSchema.to_dict()``
form (entities, relations, constraints) plus the ``JointIEConfig`` fields that apply to decoding —
validated and compiled with gliner2's rules, one text's result from its scores, and a long text's
result from its windows'."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields
from typing import Any, Mapping, Sequence

from stream.errors import InvalidInput

from .candidate_scores import CandidateScoreSet, candidate_score_set_to_problem
from .candidates import CandidateBuilder
from .compiler import CompiledJointSchema, compile_schema
from .optimizers import BeamOptimizer, GreedyOptimizer
from .result import JointEntity, JointRelation, JointResult, ResultBuilder
from .schema import JointSchema

RESULT_KEY = "joint"
# Upper bounds a request may set (the search is pure Python and its cost grows with the beam times
# the candidate edges: one request must not stall a worker): gliner2's defaults sit inside (beam 32,
# 32 entities and 12 role candidates a type, 128 pairs, 256 edges a type, 2 count hypotheses).
LIMITS = {"beam_size": 64, "top_k_entities": 64, "top_k_roles": 32, "count_top_k": 4, "relation_pair_cap": 256,
          "max_edges_per_type": 256, "rescue_per_role": 32}
_NOT_HERE = {"batch_size": "batching is the server's", "max_len": "long texts are windowed by the server"}


@dataclass(frozen=True)
class JointConfig:
    """gliner2's ``JointIEConfig`` less what the server owns (batching, length)."""

    optimizer: str = "beam"
    beam_size: int = 32
    candidate_threshold: float = 0.05
    relation_role_threshold: float = 0.05
    top_k_entities: int = 32
    top_k_roles: int = 12
    count_top_k: int = 2
    include_confidence: bool = True
    include_spans: bool = True
    entity_threshold: float | None = None
    relation_pair_cap: int = 128
    max_edges_per_type: int = 256
    rescue_per_role: int | None = None
    entity_weight: float = 1.0
    role_weight: float = 1.0
    count_weight: float = 1.0


@dataclass(frozen=True)
class Joint:
    key: str
    "The request's ``joint`` value as canonical JSON: what equality and hashing (the prompt cache) use."
    compiled: CompiledJointSchema = field(compare=False)
    config: JointConfig = field(compare=False)


def _bad(where: str, message: str) -> InvalidInput:
    return InvalidInput("invalid_schema", f"{where}: {message}")


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _config(raw: Any, where: str) -> JointConfig:
    if raw is None:
        return JointConfig()
    if not isinstance(raw, Mapping):
        raise _bad(where, "must be an object")
    known = {f.name for f in fields(JointConfig)}
    for key in raw:
        if key in _NOT_HERE:
            raise _bad(f"{where}.{key}", _NOT_HERE[key])
        if key not in known:
            raise _bad(f"{where}.{key}", f"unknown key (known: {', '.join(sorted(known))})")
    cfg = JointConfig(**raw)
    positive = ("beam_size", "top_k_entities", "top_k_roles", "count_top_k", "relation_pair_cap", "max_edges_per_type")
    checks = [("optimizer", isinstance(cfg.optimizer, str) and cfg.optimizer.lower() in ("beam", "greedy", "auto"),
               "must be 'beam', 'greedy' or 'auto'")]
    checks += [(k, _int(getattr(cfg, k)) and 0 < getattr(cfg, k) <= LIMITS[k],
                f"must be an integer in [1, {LIMITS[k]}]") for k in positive]
    checks += [("rescue_per_role", cfg.rescue_per_role is None
                or (_int(cfg.rescue_per_role) and 0 < cfg.rescue_per_role <= LIMITS["rescue_per_role"]),
                f"must be an integer in [1, {LIMITS['rescue_per_role']}]")]
    checks += [(k, _number(getattr(cfg, k)) and 0 <= getattr(cfg, k) <= 1, "must be a number in [0, 1]")
               for k in ("candidate_threshold", "relation_role_threshold")]
    checks += [("entity_threshold", cfg.entity_threshold is None
                or (_number(cfg.entity_threshold) and 0 <= cfg.entity_threshold <= 1), "must be a number in [0, 1]")]
    checks += [(k, _number(getattr(cfg, k)) and math.isfinite(getattr(cfg, k)), "must be a finite number")
               for k in ("entity_weight", "role_weight", "count_weight")]
    checks += [(k, isinstance(getattr(cfg, k), bool), "must be a boolean") for k in ("include_confidence", "include_spans")]
    for key, ok, message in checks:
        if not ok:
            raise _bad(f"{where}.{key}", message)
    return cfg


def parse(raw: Any, where: str) -> Joint:
    """The schema dict's ``joint`` value, validated and compiled with gliner2's rules;
    ``InvalidInput('invalid_schema')`` naming the key when it is refused."""
    if not isinstance(raw, Mapping):
        raise _bad(where, "must be an object {entities, relations, constraints, config}")
    unknown = sorted(set(raw) - {"entities", "relations", "constraints", "config"})
    if unknown:
        raise _bad(f"{where}.{unknown[0]}", "unknown key (known: entities, relations, constraints, config)")
    if not raw.get("entities") or not isinstance(raw["entities"], (Mapping, list)):
        raise _bad(f"{where}.entities", "must name at least one entity type ({name: {...}} or a list)")
    if not isinstance(raw.get("relations", {}), (Mapping, list)):
        raise _bad(f"{where}.relations", "must be an object {name: {head, tail, ...}} or a list")
    if not isinstance(raw.get("constraints", []), list):
        raise _bad(f"{where}.constraints", "must be a list")
    entities = raw["entities"]
    items = (entities.items() if isinstance(entities, Mapping) else
             [(v.get("name"), v) if isinstance(v, Mapping) else (v, None) for v in entities]
             if isinstance(entities, list) else ())
    for name, spec in items:
        description = spec.get("description") if isinstance(spec, Mapping) else spec
        if description is not None and not isinstance(description, str):  # it joins the prompt
            raise _bad(f"{where}.entities.{name}.description", "must be a string")
    try:
        compiled = compile_schema(JointSchema.from_dict({k: raw[k] for k in ("entities", "relations", "constraints")
                                                        if k in raw}))
    except TypeError as exc:  # an unknown option reaches a spec or constraint constructor
        raise _bad(where, str(exc)) from None
    except (ValueError, KeyError, AttributeError) as exc:
        raise _bad(where, str(exc)) from None
    key = json.dumps(raw, sort_keys=True, default=repr)
    return Joint(key, compiled, _config(raw.get("config"), f"{where}.config"))


def decode(joint: Joint, scores: Any, text: str, start_mappings, end_mappings) -> JointResult:
    """One text's ``JointResult`` (gliner2's ``JointIEEngine._decode``) from its scores: a boundary
    checkpoint's sparse ``CandidateScoreSet``, or a span checkpoint's ``SpanLattice``."""
    compiled, config = joint.compiled, joint.config
    specs = compiled.entity_specs
    if not isinstance(scores, CandidateScoreSet):  # span lattice: gliner2's CandidateBuilder
        problem = CandidateBuilder(
            candidate_threshold=config.candidate_threshold, relation_role_threshold=config.relation_role_threshold,
            top_k_entities=config.top_k_entities, top_k_roles=config.top_k_roles, count_top_k=config.count_top_k,
            entity_threshold=config.entity_threshold, relation_pair_cap=config.relation_pair_cap,
            max_edges_per_type=config.max_edges_per_type, rescue_per_role=config.rescue_per_role,
            entity_weight=config.entity_weight, role_weight=config.role_weight, count_weight=config.count_weight,
        ).build(scores.entity_logits, scores.entity_types, scores.hypotheses, constraints=compiled.constraints,
                entity_thresholds={n: s.threshold for n, s in specs.items()},
                entity_candidate_thresholds={n: s.candidate_threshold for n, s in specs.items()},
                entity_max_candidates={n: s.max_candidates for n, s in specs.items() if s.max_candidates is not None})
        return _solve(joint, problem, text, start_mappings, end_mappings)
    problem = candidate_score_set_to_problem(
        scores,
        mention_threshold=config.entity_threshold if config.entity_threshold is not None else config.candidate_threshold,
        constraints=compiled.constraints,
        max_mentions_per_type=config.top_k_entities,
        max_mentions_by_type={n: s.max_candidates for n, s in specs.items() if s.max_candidates is not None},
        rescue_relation_endpoints=True,
        edge_candidate_threshold=config.relation_role_threshold,
        max_edges_per_type=min(config.relation_pair_cap, config.max_edges_per_type),
        entity_weight=config.entity_weight,
        relation_weight=config.role_weight)
    return _solve(joint, problem, text, start_mappings, end_mappings)


def _solve(joint: Joint, problem, text: str, start_mappings, end_mappings) -> JointResult:
    config = joint.config
    optimizer = GreedyOptimizer() if config.optimizer.lower() in ("auto", "greedy") else BeamOptimizer(config.beam_size)
    solution = optimizer.optimize(problem)
    view = _Mappings(text, tuple(start_mappings), tuple(end_mappings))
    result = ResultBuilder(include_confidence=config.include_confidence, include_spans=config.include_spans)
    return result.build(solution, problem, text=text, lattice=view)


def merge_windows(joint: Joint, text: str, windows: Sequence[tuple[int, JointResult]]) -> JointResult:
    """A long text's result from its windows' (character offset, result), as gliner2's
    ``extract_long_text`` merges chunks: an entity is keyed by its type and document offsets (the
    most confident copy wins), a relation by its type and endpoint keys, and only relations whose
    endpoints come from one window exist (none is made across windows)."""
    entity_by_key: dict[tuple[str, int, int], JointEntity] = {}
    relation_rows: dict[tuple, tuple] = {}
    for offset, result in windows:
        local_keys: dict[str, tuple[str, int, int]] = {}
        for entity in result.entities:
            start, end = entity.start + offset, entity.end + offset
            key = (entity.type, start, end)
            local_keys[entity.id] = key
            remapped = JointEntity("", entity.type, text[start:end], start, end, entity.confidence,
                                   entity.sentence_id, entity.rescued)
            previous = entity_by_key.get(key)
            if previous is None or _confidence(remapped.confidence) > _confidence(previous.confidence):
                entity_by_key[key] = remapped
        for relation in result.relations:
            if relation.head not in local_keys or relation.tail not in local_keys:
                continue
            head_key, tail_key = local_keys[relation.head], local_keys[relation.tail]
            key = (relation.type, head_key, tail_key)
            row = (relation.type, head_key, tail_key, relation.confidence, relation.derived)
            previous = relation_rows.get(key)
            if previous is None or _confidence(row[3]) > _confidence(previous[3]):
                relation_rows[key] = row
    ordered = sorted(entity_by_key, key=lambda key: (key[1], key[2], key[0]))
    ids = {key: f"e{index + 1}" for index, key in enumerate(ordered)}
    entities = [JointEntity(ids[key], e.type, e.text, e.start, e.end, e.confidence, e.sentence_id, e.rescued)
                for key, e in ((key, entity_by_key[key]) for key in ordered)]
    relations = sorted((JointRelation(label, ids[head], ids[tail], confidence, derived)
                        for label, head, tail, confidence, derived in relation_rows.values()),
                       key=lambda r: (r.type, r.head, r.tail))
    return JointResult(text, entities, relations, joint.config.include_confidence, joint.config.include_spans)


def _confidence(value: float | None) -> float:
    return float("-inf") if value is None else value


@dataclass(frozen=True)
class _Mappings:
    text: str
    start_mappings: tuple
    end_mappings: tuple
