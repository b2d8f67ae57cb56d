"""The one batching policy: rows sorted by length, cut within the row and padded-token caps."""

from stream.engine.batching import padded_tokens, plan_batches


def test_batches_cover_every_row_sorted_and_within_both_caps():
    lengths = [30, 400, 35, 380, 50, 31, 390, 45] * 5
    batches = plan_batches(lengths, max_rows=4, max_tokens=1200)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for b in batches:
        assert len(b) <= 4 and padded_tokens([lengths[i] for i in b]) <= 1200
    flat = [lengths[i] for b in batches for i in b]
    assert flat == sorted(flat)  # neighbours in length share a batch: little padding


def test_unsorted_keeps_the_given_order_and_an_oversized_row_goes_alone():
    assert plan_batches([10, 5000, 10], max_rows=8, max_tokens=100, sort=False) == [[0], [1], [2]]
    assert plan_batches([10] * 5, max_rows=2, max_tokens=None, sort=False) == [[0, 1], [2, 3], [4]]
