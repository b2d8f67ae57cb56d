"""Split long texts into overlapping word windows that fit the model, and merge results back.

GLiNER itself truncates texts longer than ``max_len`` words; spanstream never drops text.
Windows overlap by at least ``max_width`` words, so every span the model can score lies whole
inside some window.
"""

from __future__ import annotations

import numpy as np

from stream.engine.types import WordSpan


def plan_windows(word_token_counts: np.ndarray, max_words: int, token_budget: int,
                 overlap: int) -> list[tuple[int, int]]:
    """Word ranges ``[start, end)`` covering every word, each within both limits.

    A single word longer than the token budget still gets a window of its own (the tokenizer
    then keeps its first sub-words, which is all first-subtoken pooling reads).
    """
    n = int(word_token_counts.size)
    if n == 0:
        return []
    cumulative = np.concatenate([[0], np.cumsum(word_token_counts)])
    windows: list[tuple[int, int]] = []
    start = 0
    while True:
        limit = min(n, start + max_words)
        # furthest end with tokens(start:end) <= budget
        end = int(np.searchsorted(cumulative, cumulative[start] + token_budget, side="right")) - 1
        end = max(start + 1, min(end, limit))
        windows.append((start, end))
        if end >= n:
            return windows
        start = max(start + 1, end - overlap)


def merge_window_spans(spans: list[WordSpan]) -> list[WordSpan]:
    """Collapse duplicates from overlapping windows: one span per (start, end, label), best score."""
    best: dict[tuple[int, int, int], WordSpan] = {}
    for span in spans:
        key = (span.start, span.end, span.label_index)
        if key not in best or span.score > best[key].score:
            best[key] = span
    return sorted(best.values(), key=lambda s: (s.start, s.end, s.label_index))
