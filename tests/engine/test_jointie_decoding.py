"""gliner2's joint entity–relation decoding core (JointIE), ported torch-free
(``stream/engine/gliner2/jointie``), against gliner2 2.1.x's own ``gliner2.joint_ie`` on 240
seeded random problems (``tests/fixtures/make_golden_jointie.py``): schemas with every relation
option and extra constraints, half of them span lattices through ``CandidateBuilder`` and half
sparse boundary score sets through ``candidate_score_set_to_problem``; the same candidate nodes and
edges, and for the greedy optimizer and beam searches of width 1, 4 and 16 the same solution
score, feasibility and result."""

from __future__ import annotations

import gzip
import json
import logging
from pathlib import Path
from types import SimpleNamespace

import pytest

from stream.engine.gliner2.jointie import (
    BeamOptimizer,
    CandidateBuilder,
    CandidateScoreSet,
    GreedyOptimizer,
    JointSchema,
    MentionScore,
    RelationHypothesis,
    ResultBuilder,
    ScoredRelationEdge,
    candidate_score_set_to_problem,
    compile_schema,
)
from stream.engine.gliner2.jointie.candidates import sigmoid
from tests.fixtures.make_golden_jointie import BEAMS, text_and_mappings

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "golden-jointie.json.gz"


@pytest.fixture(scope="module")
def golden():
    with gzip.open(GOLDEN, "rt", encoding="utf-8") as fh:
        return json.load(fh)


def _problem(case: dict, compiled):
    if case["path"] == "lattice":
        lattice = case["lattice"]
        specs = compiled.entity_specs
        return CandidateBuilder(**lattice["builder"]).build(
            lattice["entity_logits"], lattice["entity_types"],
            [RelationHypothesis(**{**h, "head_types": tuple(h["head_types"]), "tail_types": tuple(h["tail_types"])})
             for h in lattice["hypotheses"]],
            entity_thresholds={n: s.threshold for n, s in specs.items()},
            entity_candidate_thresholds={n: s.candidate_threshold for n, s in specs.items()},
            entity_max_candidates={n: s.max_candidates for n, s in specs.items() if s.max_candidates is not None},
            constraints=compiled.constraints), lattice["length"]
    score_set = case["score_set"]
    mentions = tuple(MentionScore(**{**m, "probability": sigmoid(m["logit"])}) for m in score_set["mentions"])
    edges = tuple(ScoredRelationEdge(**{**e, "head": tuple(e["head"]), "tail": tuple(e["tail"]),
                                        "probability": sigmoid(e["logit"])}) for e in score_set["edges"])
    return candidate_score_set_to_problem(CandidateScoreSet("", mentions, edges=edges), constraints=compiled.constraints,
                                          rescue_relation_endpoints=True, **score_set["options"]), score_set["length"]


def test_joint_decoding_matches_gliner2_on_random_problems(golden, caplog):
    caplog.set_level(logging.ERROR)
    cases = golden["cases"]
    assert len(cases) == 240
    compared = infeasible = with_relations = 0
    for case in cases:
        compiled = compile_schema(JointSchema.from_dict(case["schema"]))
        problem, length = _problem(case, compiled)
        nodes = [[n.entity_type, n.start, n.end, n.score, n.probability, n.source.value] for n in problem.nodes]
        edges = [[e.relation_type, list(e.head), list(e.tail), e.score, e.slot, str(e.hypothesis), e.count_alternative]
                 for e in problem.edges]
        assert nodes == case["problem"]["nodes"], case["seed"]
        assert edges == case["problem"]["edges"], case["seed"]
        text, starts, ends = text_and_mappings(length)
        view = SimpleNamespace(text=text, start_mappings=starts, end_mappings=ends)
        for name, optimizer in [("greedy", GreedyOptimizer())] + [(f"beam{w}", BeamOptimizer(w)) for w in BEAMS]:
            solution = optimizer.optimize(problem)
            expected = case["solutions"][name]
            got = {"score": solution.score, "feasible": solution.feasible,
                   "result": ResultBuilder().build(solution, problem, text=text, lattice=view).to_dict()}
            assert got == expected, (case["seed"], name)
            compared += 1
            infeasible += not solution.feasible
            with_relations += bool(got["result"]["relations"])
    # the cases exercise what they should: relations found, and constraint fallbacks
    assert with_relations > 300 and infeasible > 0
    print(f"\n[jointie] {compared} solutions identical to gliner2 {golden['gliner2_version']} "
          f"({with_relations} with relations, {infeasible} infeasible fallbacks)")


def test_schema_options_compile_to_their_constraints():
    schema = JointSchema.from_dict({
        "entities": {"person": {}, "organization": {"allow_nested": True}},
        "relations": {"works_for": {"head": ["person"], "tail": ["organization"], "max_per_head": 1},
                      "employs": {"head": ["person"], "tail": ["person"], "inverse": "works_for"}}})
    with pytest.raises(ValueError, match="inverse endpoint types"):
        compile_schema(schema)  # an inverse's endpoint types must mirror its relation's
    names = {type(c).__name__ for c in compile_schema(JointSchema.from_dict({
        "entities": {"person": {}, "organization": {}},
        "relations": {"works_for": {"head": ["person"], "tail": ["organization"], "max_per_head": 1},
                      "knows": {"head": ["person"], "tail": ["person"], "symmetric": True}}})).constraints}
    assert {"EntityOverlapPolicy", "TypedEndpoints", "NoSelfLoops", "UniqueRelationPair", "UniqueRelationSlot",
            "MaxRelationsPerHead", "SymmetricRelation"} <= names
