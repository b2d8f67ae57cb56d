"""Joint optimizers: the shared contract and constraint dispatch, the deterministic greedy
optimizer and the deterministic beam search (gliner2 ``joint_ie/optimizers``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any, FrozenSet, Hashable, Iterable, List, Sequence, Set, Tuple

from .candidates import EdgeCandidate, JointProblem, NodeCandidate
from .constraints import InverseRelation, SymmetricRelation


@dataclass(frozen=True)
class JointSolution:
    nodes: Tuple[NodeCandidate, ...]
    edges: Tuple[EdgeCandidate, ...]
    score: float
    # False signals that the decoder could not produce a constraint-satisfying
    # non-trivial assignment and fell back (e.g. to the empty solution). A
    # feasible solution — including the empty one produced when there is nothing
    # to extract — is True.
    feasible: bool = True

    @property
    def node_ids(self) -> FrozenSet[Hashable]:
        return frozenset(node.candidate_id for node in self.nodes)


class BaseOptimizer:
    """Base class with duck-typed constraint handling."""

    def optimize(self, problem: JointProblem) -> JointSolution:
        raise NotImplementedError

    @staticmethod
    def _invoke(method: Any, item: Any, nodes: Sequence[NodeCandidate],
                edges: Sequence[EdgeCandidate], default: Any) -> Any:
        if method is None:
            return default
        # Accommodate simple constraints and state-aware constraints without a
        # required inheritance hierarchy.
        for args in ((item, nodes, edges), (item, nodes), (item,)):
            try:
                return method(*args)
            except TypeError:
                continue
        return method(item, nodes, edges)

    def allow_node(self, problem: JointProblem, node: NodeCandidate,
                   nodes: Sequence[NodeCandidate], edges: Sequence[EdgeCandidate]) -> bool:
        return all(bool(self._invoke(getattr(c, "allow_node", None), node, nodes, edges, True))
                   for c in problem.constraints)

    @staticmethod
    def _resolve_edge(problem: JointProblem, edge: EdgeCandidate) -> Any:
        from types import SimpleNamespace
        node_by_id = problem.node_by_id
        return SimpleNamespace(
            relation_type=edge.relation_type, type=edge.relation_type,
            head=node_by_id.get(edge.head, edge.head),
            tail=node_by_id.get(edge.tail, edge.tail),
            slot=edge.slot, candidate_id=edge.candidate_id)

    def allow_edge(self, problem: JointProblem, edge: EdgeCandidate,
                   nodes: Sequence[NodeCandidate], edges: Sequence[EdgeCandidate]) -> bool:
        candidate = self._resolve_edge(problem, edge)
        accepted = tuple(self._resolve_edge(problem, value) for value in edges)
        return all(bool(self._invoke(getattr(c, "allow_edge", None), candidate, nodes, accepted, True))
                   for c in problem.constraints)

    def validate_solution(self, problem: JointProblem, solution: JointSolution) -> bool:
        """Recheck every hard constraint against the *final* assignment.

        Incremental construction guarantees feasibility of the picked nodes and
        edges, but :meth:`solution` may inject derived companion edges for
        symmetric/inverse relations that were never screened. This replays the
        incremental checks over the full assignment and then runs whole-result
        ``validate`` hooks (e.g. symmetric/inverse completeness), so a returned
        solution is never allowed to silently violate a declared constraint.
        """
        accepted_nodes: List[NodeCandidate] = []
        for node in solution.nodes:
            if not self.allow_node(problem, node, accepted_nodes + [node], solution.edges):
                return False
            accepted_nodes.append(node)
        accepted_edges: List[EdgeCandidate] = []
        for edge in solution.edges:
            if not self.allow_edge(problem, edge, list(solution.nodes), accepted_edges):
                return False
            accepted_edges.append(edge)
        resolved_relations = tuple(self._resolve_edge(problem, edge) for edge in solution.edges)
        for constraint in problem.constraints:
            validate = getattr(constraint, "validate", None)
            if validate is None:
                continue
            try:
                ok = validate(resolved_relations, list(solution.nodes))
            except TypeError:
                ok = validate(resolved_relations)
            if not ok:
                return False
        return True

    def edge_penalty(self, problem: JointProblem, edge: EdgeCandidate,
                     nodes: Sequence[NodeCandidate], edges: Sequence[EdgeCandidate]) -> float:
        return sum(float(self._invoke(getattr(c, "penalty_edge", None), edge, nodes, edges, 0.0))
                   for c in problem.constraints)

    @staticmethod
    def edge_conflicts(edge: EdgeCandidate, used: Iterable[Hashable]) -> bool:
        used_set = set(used)
        if any(key in used_set for key in edge.exclusion_keys):
            return True
        choice = edge.count_choice
        if choice is None:
            return False
        group, alternative = choice
        return any(
            isinstance(key, tuple) and len(key) == 3 and key[0] == "count-choice"
            and key[1] == group and key[2] != alternative
            for key in used_set
        )

    @staticmethod
    def edge_usage(edge: EdgeCandidate) -> FrozenSet[Hashable]:
        keys = set(edge.exclusion_keys)
        if edge.count_choice is not None:
            keys.add(("count-choice",) + edge.count_choice)
        return frozenset(keys)

    @staticmethod
    def solution(problem: JointProblem, node_ids: Iterable[Hashable],
                 edges: Iterable[EdgeCandidate], score: float) -> JointSolution:
        selected = set(node_ids)
        nodes = tuple(node for node in problem.nodes if node.candidate_id in selected)
        chosen = list(edges)
        keys = {(edge.relation_type, edge.head, edge.tail) for edge in chosen}
        companions = []
        for constraint in problem.constraints:
            if isinstance(constraint, SymmetricRelation):
                pairs = [(constraint.relation, edge.tail, edge.head, edge)
                         for edge in chosen if edge.relation_type == constraint.relation]
            elif isinstance(constraint, InverseRelation):
                pairs = []
                for edge in chosen:
                    if edge.relation_type == constraint.relation:
                        pairs.append((constraint.inverse, edge.tail, edge.head, edge))
                    elif edge.relation_type == constraint.inverse:
                        pairs.append((constraint.relation, edge.tail, edge.head, edge))
            else:
                continue
            for relation, head, tail, source in pairs:
                key = (relation, head, tail)
                if key in keys:
                    continue
                derived = EdgeCandidate(relation, head, tail, 0.0,
                    head_probability=source.tail_probability,
                    tail_probability=source.head_probability,
                    head_entity_probability=source.tail_entity_probability,
                    tail_entity_probability=source.head_entity_probability,
                    count_probability=source.count_probability, derived=True,
                    candidate_id=("derived", relation, head, tail))
                companions.append(derived); keys.add(key)
        chosen_edges = tuple(sorted(chosen + companions,
            key=lambda e: (e.relation_type, str(e.head), str(e.tail), e.derived)))
        return JointSolution(nodes, chosen_edges, float(score))

logger = logging.getLogger(__name__)



class GreedyOptimizer(BaseOptimizer):
    """Select profitable edges atomically, then independent positive nodes."""

    @staticmethod
    def _rank(edge: EdgeCandidate):
        return (-edge.score, edge.relation_type, str(edge.hypothesis), str(edge.slot),
                str(edge.head), str(edge.tail))

    def optimize(self, problem: JointProblem) -> JointSolution:
        node_by_id = problem.node_by_id
        selected: Set[Hashable] = set()
        edges: List[EdgeCandidate] = []
        used = set()
        score = 0.0

        # Re-rank by true initial atomic utility so a strong endpoint can make a
        # relation preferable without ever double-counting that endpoint later.
        ranked = sorted(problem.edges, key=lambda edge: (
            -(edge.score + node_by_id[edge.head].score +
              (0.0 if edge.tail == edge.head else node_by_id[edge.tail].score)),
            self._rank(edge),
        ))
        for edge in ranked:
            if self.edge_conflicts(edge, used):
                continue
            new_ids = [value for value in (edge.head, edge.tail) if value not in selected]
            proposed_nodes = [node_by_id[value] for value in new_ids]
            current_nodes = [node_by_id[value] for value in selected]
            if not all(self.allow_node(problem, node, current_nodes + proposed_nodes, edges)
                       for node in proposed_nodes):
                continue
            if not self.allow_edge(problem, edge, current_nodes + proposed_nodes, edges):
                continue
            gain = edge.score + sum(node.score for node in proposed_nodes)
            gain -= self.edge_penalty(problem, edge, current_nodes + proposed_nodes, edges)
            if gain < 0.0:
                continue
            selected.update(new_ids)
            edges.append(edge)
            used.update(self.edge_usage(edge))
            score += gain

        # Nodes need not participate in a relation.
        for node in sorted(problem.nodes, key=lambda n: (-n.score, n.entity_type, n.start, n.end)):
            if node.candidate_id in selected or node.score <= 0.0:
                continue
            current_nodes = [node_by_id[value] for value in selected]
            if self.allow_node(problem, node, current_nodes + [node], edges):
                selected.add(node.candidate_id)
                score += node.score
        result = self.solution(problem, selected, edges, score)
        # Derived companion edges added by ``solution`` are never screened during
        # construction; verify the final assignment honors every hard constraint.
        if self.validate_solution(problem, result):
            return result
        logger.debug(
            "greedy joint-IE decoding produced a constraint-violating assignment; "
            "returning empty solution",
        )
        return replace(self.solution(problem, frozenset(), (), 0.0), feasible=False)


@dataclass(frozen=True)
class _State:
    node_ids: FrozenSet[Hashable] = frozenset()
    edges: Tuple[EdgeCandidate, ...] = ()
    used: FrozenSet[Hashable] = frozenset()
    score: float = 0.0


class BeamOptimizer(BaseOptimizer):
    def __init__(self, beam_width: int = 16) -> None:
        if beam_width <= 0:
            raise ValueError("beam_width must be positive")
        self.beam_width = beam_width

    @staticmethod
    def _signature(state: _State):
        return (tuple(sorted(map(str, state.node_ids))),
                tuple(str(edge.candidate_id) for edge in state.edges))

    def _finish_nodes(self, problem: JointProblem, state: _State) -> _State:
        node_by_id = problem.node_by_id
        selected = set(state.node_ids)
        score = state.score
        for node in sorted(problem.nodes, key=lambda n: (-n.score, n.entity_type, n.start, n.end)):
            if node.candidate_id in selected or node.score <= 0.0:
                continue
            nodes = [node_by_id[value] for value in selected]
            if self.allow_node(problem, node, nodes + [node], state.edges):
                selected.add(node.candidate_id)
                score += node.score
        return _State(frozenset(selected), state.edges, state.used, score)

    def optimize(self, problem: JointProblem) -> JointSolution:
        node_by_id = problem.node_by_id
        ordered = sorted(problem.edges, key=lambda e: (
            -(e.score + node_by_id[e.head].score + node_by_id[e.tail].score),
            e.relation_type, str(e.hypothesis), str(e.slot), str(e.head), str(e.tail),
        ))
        beam = [_State()]
        for edge in ordered:
            expanded = list(beam)  # explicit skip alternative
            for state in beam:
                if self.edge_conflicts(edge, state.used):
                    continue
                new_ids = [value for value in (edge.head, edge.tail) if value not in state.node_ids]
                added_nodes = [node_by_id[value] for value in new_ids]
                current_nodes = [node_by_id[value] for value in state.node_ids]
                proposed_nodes = current_nodes + added_nodes
                if not all(self.allow_node(problem, node, proposed_nodes, state.edges)
                           for node in added_nodes):
                    continue
                if not self.allow_edge(problem, edge, proposed_nodes, state.edges):
                    continue
                gain = edge.score + sum(node.score for node in added_nodes)
                gain -= self.edge_penalty(problem, edge, proposed_nodes, state.edges)
                if gain < 0.0:
                    continue
                expanded.append(_State(
                    state.node_ids.union(new_ids), state.edges + (edge,),
                    state.used.union(self.edge_usage(edge)), state.score + gain,
                ))
            # Collapse equivalent selections before a stable score/signature cut.
            unique = {}
            for state in expanded:
                key = (state.node_ids, frozenset(e.candidate_id for e in state.edges), state.used)
                old = unique.get(key)
                if old is None or state.score > old.score:
                    unique[key] = state
            beam = sorted(unique.values(), key=lambda s: (-s.score, self._signature(s)))[:self.beam_width]

        # Materialize every candidate assignment (beam finishes plus the greedy
        # baseline) and keep only those that satisfy the hard constraints after
        # derived companions are injected. Greedy no longer substitutes
        # unconditionally: a higher-scoring but infeasible assignment must not win.
        candidates: List[JointSolution] = [
            self.solution(problem, state.node_ids, state.edges, state.score)
            for state in (self._finish_nodes(problem, s) for s in beam)
        ]
        candidates.append(GreedyOptimizer().optimize(problem))

        feasible = [sol for sol in candidates if self.validate_solution(problem, sol)]
        if feasible:
            return max(feasible, key=self._solution_key)

        # No non-trivial feasible assignment exists. The empty solution is always
        # feasible; return it with an explicit infeasibility signal so callers can
        # distinguish "nothing to extract" from "constraints could not be met".
        logger.debug(
            "joint-IE decoding found no constraint-satisfying assignment among %d "
            "candidates; returning empty solution",
            len(candidates),
        )
        empty = self.solution(problem, frozenset(), (), 0.0)
        return replace(empty, feasible=False)

    def _solution_key(self, solution: JointSolution):
        return (solution.score,
                tuple(sorted(map(str, solution.node_ids))),
                tuple(str(edge.candidate_id) for edge in solution.edges))
