"""The card's scoring: F1 tables and the paired bootstrap against a baseline."""

from __future__ import annotations

from models.recipe.evaluate import paired_bootstrap, parse_gold, score


def test_gold_markup_gives_character_spans():
    gold = parse_gold()
    assert len(gold) >= 150
    for text, spans in gold:
        assert "](" not in text
        assert all(0 <= s < e <= len(text) and text[s:e].strip() == text[s:e] for s, e, _ in spans)


def test_score_counts_exact_span_and_label_matches_only():
    gold = [{(0, 5, "person"), (10, 14, "city")}]
    pred = [{(0, 5, "person"), (10, 14, "country"), (20, 25, "date")}]
    table = score(gold, pred, ["person", "city", "country", "date"])
    assert table["person"]["f1"] == 1.0 and table["city"]["recall"] == 0.0
    assert table["micro"]["precision"] == 1 / 3 and table["micro"]["recall"] == 1 / 2


def test_bootstrap_separates_a_better_system_and_not_an_equal_one():
    gold = [{(0, 5, "person"), (6, 9, "city")} for _ in range(40)]
    perfect, half = list(gold), [{(0, 5, "person")} for _ in range(40)]
    better = paired_bootstrap(gold, perfect, half, ["person", "city"], rounds=200)
    assert better["micro"]["ahead"] == 1.0 and better["micro"]["ci95"][0] > 0
    assert better["macro"]["diff"] == 0.5
    same = paired_bootstrap(gold, half, half, ["person", "city"], rounds=200)
    assert same["micro"] == {"diff": 0.0, "ci95": [0.0, 0.0], "ahead": 0.0}
    # a noisy tie: one system right on the first half of the sentences, the other on the second
    a = [g if i < 20 else set() for i, g in enumerate(gold)]
    b = [g if i >= 20 else set() for i, g in enumerate(gold)]
    tie = paired_bootstrap(gold, a, b, ["person", "city"], rounds=400)
    assert tie["micro"]["diff"] == 0.0 and tie["micro"]["ci95"][0] < 0 < tie["micro"]["ci95"][1]
    assert 0.3 < tie["micro"]["ahead"] < 0.7
