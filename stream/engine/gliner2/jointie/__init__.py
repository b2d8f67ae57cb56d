"""gliner2's joint entity–relation decoding (``gliner2.joint_ie``, "JointIE"), torch-free: typed
entity and relation candidates (``CandidateBuilder`` over span lattices, or
``candidate_score_set_to_problem`` over sparse boundary scores), the schema's hard constraints
(typed endpoints, no self loops, unique pairs and slots, entity overlap policy, at most k per head
or tail, symmetric, inverse, acyclic), the deterministic greedy and beam optimizers, and the
result builder (``JointResult.to_dict()``'s shape).

gliner2 2.1.0 cannot be imported without torch, so its pure-Python modules are adapted here
(Apache-2.0; NOTICE beside this file lists them and what changed). In a schema dict:
``{"joint": {"entities": {...}, "relations": {...}, "constraints": [...], "config": {...}}}`` —
``JointSchema.to_dict()``'s form plus the ``JointIEConfig`` fields that apply to decoding — and the
result, under the same key, is ``JointResult.to_dict()``. The scores come from the engine's heads as
gliner2's ``RawScorer`` takes them: sparse candidates on boundary checkpoints (``boundary``), span
lattices with count hypotheses on span checkpoints (``span``); a text longer than one encoder window
is decoded window by window and merged as gliner2's ``extract_long`` merges chunks.
"""

from .candidate_scores import (
    CandidateScoreSet,
    MentionScore,
    ScoredRelationEdge,
    candidate_score_set_to_problem,
)
from .candidates import CandidateBuilder, EdgeCandidate, JointProblem, NodeCandidate, RelationHypothesis
from .compiler import CompiledJointSchema, compile_schema
from .constraints import constraint_from_dict
from .optimizers import BeamOptimizer, GreedyOptimizer, JointSolution
from .result import JointResult, ResultBuilder
from .schema import JointSchema

__all__ = [
    "BeamOptimizer", "CandidateBuilder", "CandidateScoreSet", "CompiledJointSchema", "EdgeCandidate",
    "GreedyOptimizer", "JointProblem", "JointResult", "JointSchema", "JointSolution", "MentionScore",
    "NodeCandidate", "RelationHypothesis", "ResultBuilder", "ScoredRelationEdge", "candidate_score_set_to_problem",
    "compile_schema", "constraint_from_dict",
]
