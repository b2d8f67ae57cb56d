"""Logits → word spans, exactly as gliner's ``SpanDecoder`` (sigmoid, threshold, greedy search).

Pure numpy; the greedy search keeps the highest-scoring spans first and drops any that
overlap a kept one (flat), or that partially overlap it (nested). With ``multi_label`` the same
span may be kept once per label.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from stream.engine.types import WordSpan


def sigmoid(x: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-x, dtype=np.float32))).astype(np.float32, copy=False)


class Candidates(NamedTuple):
    """Spans above threshold as parallel arrays (word ``start``, inclusive ``end``, label, score)."""

    starts: np.ndarray
    ends: np.ndarray
    labels: np.ndarray
    scores: np.ndarray

    def shifted(self, offset: int) -> "Candidates":
        return self._replace(starts=self.starts + offset, ends=self.ends + offset)

    def where(self, mask: np.ndarray) -> "Candidates":
        return Candidates(self.starts[mask], self.ends[mask], self.labels[mask], self.scores[mask])

    def spans(self) -> list[WordSpan]:
        return [WordSpan(s, e, c, p) for s, e, c, p in zip(self.starts.tolist(), self.ends.tolist(),
                                                          self.labels.tolist(), self.scores.tolist())]


def candidates(logits: np.ndarray, num_words: int, thresholds: np.ndarray) -> Candidates:
    """Spans above their label's threshold, in (start, width, label) order, as arrays.

    ``logits``: float32 [W, K, C] for one row; ``thresholds``: float [C].
    """
    probs = sigmoid(logits[:num_words])
    starts, widths, labels = np.nonzero(probs > thresholds.astype(np.float32)[None, None, :])
    valid = starts + widths + 1 <= num_words
    starts, widths, labels = starts[valid], widths[valid], labels[valid]
    return Candidates(starts, starts + widths, labels, probs[starts, widths, labels])


def candidate_spans(logits: np.ndarray, num_words: int, thresholds: np.ndarray) -> list[WordSpan]:
    """``candidates`` as ``WordSpan`` objects."""
    return candidates(logits, num_words, thresholds).spans()


def _overlaps(a: WordSpan, b: WordSpan, flat: bool, multi_label: bool) -> bool:
    if a.start == b.start and a.end == b.end:
        return not multi_label
    disjoint = a.start > b.end or b.start > a.end
    if flat:
        return not disjoint
    nested = (a.start <= b.start and a.end >= b.end) or (b.start <= a.start and b.end >= a.end)
    return not (disjoint or nested)


def greedy_search(spans: list[WordSpan], flat_ner: bool = True, multi_label: bool = False) -> list[WordSpan]:
    """Keep spans by descending score unless they clash with a kept one; return by start."""
    ordered = sorted(spans, key=lambda s: -s.score)  # stable, like gliner
    kept: list[WordSpan] = []
    if flat_ner and not multi_label:
        occupied: set[int] = set()
        for span in ordered:
            words = range(span.start, span.end + 1)
            if not any(w in occupied for w in words):
                kept.append(span)
                occupied.update(words)
    else:
        for span in ordered:
            if not any(_overlaps(span, k, flat_ner, multi_label) for k in kept):
                kept.append(span)
    kept.sort(key=lambda s: s.start)
    return kept
