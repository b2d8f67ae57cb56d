"""Record decoding on boundary checkpoints, by hand-made logits: the assignment solver, exclusive
fields solved jointly across records, cardinalities (the end-to-end results against gliner2 are
in ``test_boundary_parity.py``)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from stream.engine.gliner2.boundary.records import (
    GroupLogits,
    RecordField,
    RecordGroup,
    decode_group,
    linear_sum_assignment,
)


@pytest.mark.parametrize("shape", [(1, 1), (2, 3), (3, 2), (4, 4), (3, 7), (6, 4)])
def test_the_assignment_is_a_minimum_cost_matching(shape):
    rng = np.random.default_rng(sum(shape))
    for _ in range(20):
        cost = rng.normal(size=shape)
        pairs = linear_sum_assignment(cost)
        r, c = shape
        assert len(pairs) == min(r, c)
        assert len({a for a, _ in pairs}) == len({b for _, b in pairs}) == len(pairs)
        assert [a for a, _ in pairs] == sorted(a for a, _ in pairs)
        best = min(sum(cost[i, j] for i, j in zip(rows, cols))
                   for rows in itertools.permutations(range(r), min(r, c))
                   for cols in itertools.permutations(range(c), min(r, c)))
        assert sum(cost[i, j] for i, j in pairs) == pytest.approx(best, abs=1e-9)


def _group(cardinality: str, exclusive: bool) -> RecordGroup:
    return RecordGroup("r", "latent", (RecordField("f", 0, cardinality, exclusive),))


def _logits(objects, assign) -> GroupLogits:
    return GroupLogits(np.asarray(objects, np.float32), np.asarray(assign, np.float32)[:, None, :], None)


SPANS = np.asarray([[0, 1], [2, 3], [4, 6]])


def test_an_exclusive_scalar_field_gives_two_records_different_candidates():
    # both records prefer candidate 0; record 1 prefers it more, so record 0 takes its second best
    assign = [[-5.0, 4.0, 3.0, -5.0], [-5.0, 6.0, -2.0, -5.0]]
    shared = decode_group(_group("optional_one", False), _logits([2.0, 1.0], assign), SPANS, 0.3)
    assert [r.fields[0][0][0] for r in shared] == [0]  # without exclusive: the same content, de-duplicated
    joint = decode_group(_group("optional_one", True), _logits([2.0, 1.0], assign), SPANS, 0.2)
    assert sorted(r.fields[0][0][0] for r in joint) == [0, 1]
    by_score = {round(r.score, 4): r.fields[0][0][0] for r in joint}
    assert by_score[round(1 / (1 + np.exp(-1.0)), 4)] == 0  # the record that wants candidate 0 most has it


def test_an_exclusive_list_field_gives_each_candidate_to_its_strongest_record():
    assign = [[0.0, 3.0, 2.0, -9.0], [0.0, 1.0, 4.0, -9.0]]
    joint = decode_group(_group("zero_or_more", True), _logits([2.0, 1.0], assign), SPANS, 0.5)
    assert sorted(tuple(c for c, _ in r.fields[0]) for r in joint) == [(0,), (1,)]
    free = decode_group(_group("zero_or_more", False), _logits([2.0, 1.0], assign), SPANS, 0.5)
    assert [tuple(c for c, _ in r.fields[0]) for r in free] == [(0, 1)]  # both hold both: one record (latent)


def test_a_required_field_never_takes_absent_while_a_candidate_exists():
    assign = [[9.0, -1.0, -2.0, -3.0]]  # ABSENT is by far the best alternative
    optional = decode_group(_group("optional_one", False), _logits([3.0], assign), SPANS, 0.5)
    required = decode_group(_group("required_one", False), _logits([3.0], assign), SPANS, 0.5)
    assert optional == [] and [c for c, _ in required[0].fields[0]] == [0]
    required_joint = decode_group(_group("required_one", True), _logits([3.0], assign), SPANS, 0.5)
    assert [c for c, _ in required_joint[0].fields[0]] == [0]


def test_instances_below_the_threshold_are_not_records():
    assign = [[-5.0, 5.0, -5.0, -5.0]]
    assert decode_group(_group("optional_one", False), _logits([-3.0], assign), SPANS, 0.5) == []
    assert len(decode_group(_group("optional_one", False), _logits([-3.0], assign), SPANS, 0.04)) == 1
