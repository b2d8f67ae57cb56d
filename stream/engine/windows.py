"""Split long texts into overlapping word windows that fit the model, and merge results back.

GLiNER itself truncates texts longer than ``max_len`` words; spanstream never drops text.
Windows overlap by ``overlap`` words (at least ``max_width``), so every span the model can score
lies whole inside some window — but by at most half a window, so that windows of very long
words (few per window) still advance half a window at a time.
"""

from __future__ import annotations

import numpy as np

from stream.engine.decode import Candidates
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


def owned_by(bounds: list[tuple[int, int]], k: int, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """For spans ``[starts, ends]`` (text word indices) found in window ``k``: a mask of those that
    window ``k`` owns — of the windows holding a span whole, the one where it lies furthest from
    either edge (the earlier one on ties). That window saw the most context on both sides.

    Window starts and ends both increase, so the windows holding a span are contiguous, and
    walking outwards from ``k`` stops at the first window that holds none of them: linear in the
    candidates, not in candidates × windows.
    """
    a, b = bounds[k]
    mine = np.minimum(starts - a, b - 1 - ends)
    keep = np.ones(starts.shape, dtype=bool)
    for j in range(k - 1, -1, -1):  # earlier windows win ties
        a, b = bounds[j]
        inside = (a <= starts) & (ends < b)
        if not inside.any():
            break
        keep &= ~(inside & (np.minimum(starts - a, b - 1 - ends) >= mine))
    for j in range(k + 1, len(bounds)):
        a, b = bounds[j]
        inside = (a <= starts) & (ends < b)
        if not inside.any():
            break
        keep &= ~(inside & (np.minimum(starts - a, b - 1 - ends) > mine))
    return keep


def merge_window_candidates(per_window: list[Candidates], bounds: list[tuple[int, int]]) -> list[WordSpan]:
    """Raw (pre-greedy) candidates of each window, in text word indices → each span from its
    owner window only. Greedy search then runs once over the whole text: no candidate is lost to
    a window-local decision, and no edge-of-window score outvotes the window with more context."""
    kept: list[WordSpan] = []
    for k, found in enumerate(per_window):
        if found.starts.size:
            kept.extend(found.where(owned_by(bounds, k, found.starts, found.ends)).spans())
    return kept
