"""Split long texts into overlapping word windows that fit the model, and merge results back.

GLiNER itself truncates texts longer than ``max_len`` words; spanstream never drops text.
Windows overlap by ``overlap`` words (at least ``max_width``), so every span the model can score
lies whole inside some window — but by at most half a window, so that windows of very long
words (few per window) still advance half a window at a time.
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
        start = max(start + 1, end - min(overlap, (end - start) // 2))


def owner_window(bounds: list[tuple[int, int]], start: int, end: int) -> int | None:
    """The window in which the span of words ``[start, end]`` is most central: of the windows
    holding it whole, the one where it lies furthest from either edge (the earlier one on ties).
    That window saw the most context on both sides of the span."""
    best, best_margin = None, -1
    for k, (w_start, w_end) in enumerate(bounds):
        if w_start <= start and end < w_end:
            margin = min(start - w_start, w_end - 1 - end)
            if margin > best_margin:
                best, best_margin = k, margin
    return best


def merge_window_candidates(candidates: list[list[WordSpan]], bounds: list[tuple[int, int]]) -> list[WordSpan]:
    """Raw (pre-greedy) candidates of each window, in text word indices → each span from its
    owner window only. Greedy search then runs once over the whole text: no candidate is lost to
    a window-local decision, and no edge-of-window score outvotes the window with more context."""
    return [span for k, spans in enumerate(candidates) for span in spans
            if owner_window(bounds, span.start, span.end) == k]
