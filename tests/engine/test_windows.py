"""Long texts: windows are merged from raw candidates, each span from the window where it is
most central, and decoded once.

The reference runs every window alone, as a text of its own (its own row, its own batch), takes
its raw candidates and applies that rule; the engine (all rows batched together, one decode)
must agree with it. Agreement with a single window over the whole text is reported apart: that
is context the model loses by windowing, which no merge can restore.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from stream.engine import Extractor
from stream.engine.decode import Candidates, candidate_spans, greedy_search
from stream.engine.types import WordSpan
from stream.engine.windows import merge_window_candidates, owned_by
from tests.fixtures.models import SPAN_MODEL
from tests.fixtures.parity_corpus import SENTENCES

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
MODELS = {"tiny-fp32": (FIXTURES / "tiny-gliner", "fp32"), "tiny-deberta-fp32": (FIXTURES / "tiny-deberta", "fp32"),
          "default-int8": (SPAN_MODEL, "int8")}  # int8 too: its results do not depend on the batch
LABELS = ("person", "city", "organization", "date", "country")
THRESHOLD = 0.3


def long_texts(n: int = 24, seed: int = 3) -> list[str]:
    """Texts of 100–300 words made of the corpus sentences."""
    rng = random.Random(seed)
    out = []
    while len(out) < n:
        target = rng.randint(100, 300)
        sentences = []
        while sum(len(s.split()) for s in sentences) < target:
            sentences.append(rng.choice(SENTENCES))
        out.append(" ".join(sentences))
    return out


def engine_with_max_len(model: str, max_len: int):
    path, variant = MODELS[model]
    engine = Extractor.load(path, variant=variant).engine
    engine.max_len = max_len
    return engine


def reference(engine, text: str) -> list[tuple]:
    """Every window run alone, raw candidates kept from the window where each span is most central."""
    prepared = engine.prepare([text], [LABELS])[0]
    words = prepared.words
    bounds = [(o, o + r.num_words) for r, o in zip(prepared.rows, prepared.offsets)]
    thresholds = np.full(len(LABELS), THRESHOLD, dtype=np.float32)
    kept = []
    for k, (start, end) in enumerate(bounds):
        piece = text[words.starts[start]:words.ends[end - 1]]
        (alone,) = engine.prepare([piece], [LABELS])
        assert not alone.windowed
        logits = engine.run([alone.rows[0]])[0]
        for s in candidate_spans(logits[:, :, :len(LABELS)], alone.rows[0].num_words, thresholds):
            span = WordSpan(s.start + start, s.end + start, s.label_index, s.score)
            inside = [(min(span.start - a, b - 1 - span.end), -j) for j, (a, b) in enumerate(bounds)
                      if a <= span.start and span.end < b]
            if max(inside)[1] == -k:  # this window is the most central one (earliest on ties)
                kept.append(span)
    return [(words.starts[s.start], words.ends[s.end], LABELS[s.label_index])
            for s in greedy_search(kept, True, False)]


def f1(got: list[tuple], want: list[tuple]) -> float:
    got_set, want_set = set(got), set(want)
    if not got_set and not want_set:
        return 1.0
    tp = len(got_set & want_set)
    return 2 * tp / (len(got_set) + len(want_set))


def micro_f1(pairs) -> float:
    tp = total = 0
    for got, want in pairs:
        tp += 2 * len(set(got) & set(want))
        total += len(set(got)) + len(set(want))
    return tp / total if total else 1.0


@pytest.mark.parametrize("max_len", [64, 128])
@pytest.mark.parametrize("model", list(MODELS))
def test_merged_windows_equal_each_window_run_alone(model, max_len, record_property):
    engine = engine_with_max_len(model, max_len)
    texts = long_texts()
    prepared = engine.prepare(texts, [LABELS] * len(texts))
    assert all(p.windowed for p in prepared)
    ex = Extractor(engine)
    got = [[(e.start, e.end, e.label) for e in r.entities]
           for r in ex.extract_detailed(texts, list(LABELS), threshold=THRESHOLD)]
    want = [reference(engine, t) for t in texts]
    score = micro_f1(zip(got, want))
    single = Extractor(engine_with_max_len(model, 384))
    whole = [[(e.start, e.end, e.label) for e in r.entities]
             for r in single.extract_detailed(texts, list(LABELS), threshold=THRESHOLD)]
    context = micro_f1(zip(got, whole))
    record_property("window_merge_f1", score)
    record_property("single_window_f1", context)
    print(f"WINDOWS {model} max_len={max_len}: {len(texts)} texts, {sum(len(p.rows) for p in prepared)} windows, "
          f"{sum(map(len, want))} reference entities; merge F1 {score:.4f}; "
          f"agreement with one window over the whole text (context loss) F1 {context:.4f}")
    assert sum(map(len, want)) > 10 * len(texts)
    assert score >= 0.99


def owner_by_full_scan(bounds: list[tuple[int, int]], start: int, end: int) -> int | None:
    """The rule spelled out: of the windows holding the span whole, the one where it lies furthest
    from either edge, the earlier one on ties."""
    holding = [(min(start - a, b - 1 - end), -j) for j, (a, b) in enumerate(bounds) if a <= start and end < b]
    return -max(holding)[1] if holding else None


def owner_window(bounds: list[tuple[int, int]], start: int, end: int) -> int | None:
    """The owner as the engine decides it: the one window whose ``owned_by`` mask keeps the span."""
    owners = [k for k, (a, b) in enumerate(bounds) if a <= start and end < b
              and owned_by(bounds, k, np.asarray([start]), np.asarray([end]))[0]]
    assert len(owners) <= 1
    return owners[0] if owners else None


def test_owner_window_is_the_most_central():
    bounds = [(0, 64), (40, 104), (80, 144)]
    assert owner_window(bounds, 45, 47) == 0  # margins: 45-0 vs 64-1-47=16 → 16; 5 in window 1 → 0
    assert owner_window(bounds, 62, 63) == 1  # at the edge of window 0, central in window 1
    assert owner_window(bounds, 100, 101) == 2
    assert owner_window(bounds, 60, 70) == 1  # only window 1 holds it whole


def _arrays(spans: list[WordSpan]) -> Candidates:
    return Candidates(*(np.asarray(x) for x in zip(*spans)))


def test_owner_of_many_spans_is_found_without_scanning_every_window():
    """The walk outwards from a window agrees with the full scan on every span of a long plan."""
    bounds = [(40 * k, 40 * k + 64) for k in range(50)]
    rng = np.random.default_rng(0)
    for k in range(50):
        a, b = bounds[k]
        starts = rng.integers(a, b, 500)
        ends = np.minimum(starts + rng.integers(0, 12, 500), b - 1)
        full = np.asarray([owner_by_full_scan(bounds, s, e) for s, e in zip(starts.tolist(), ends.tolist())])
        assert (owned_by(bounds, k, starts, ends) == (full == k)).all()


def test_a_candidate_suppressed_by_a_span_that_loses_elsewhere_survives():
    """Window 0 (words 0–9) saw B (6–9) beat C (4–6) at its edge; window 1 (words 5–14) is where
    B is most central and scores it low, so B goes — and C, which only B had suppressed, must
    come back. Decoding each window first (the old merge) lost C."""
    bounds = [(0, 10), (5, 15)]
    window0 = [WordSpan(4, 6, 0, 0.6), WordSpan(6, 9, 0, 0.9)]
    window1 = [WordSpan(6, 9, 0, 0.4), WordSpan(11, 12, 0, 0.8)]
    merged = merge_window_candidates([_arrays(window0), _arrays(window1)], bounds)
    kept = greedy_search(merged, True, False)
    assert [(s.start, s.end, s.score) for s in kept] == [(4, 6, 0.6), (11, 12, 0.8)]
