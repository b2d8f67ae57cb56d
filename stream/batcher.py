"""Pure batching policy: cut an ordered list into engine calls within a token budget."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


def approx_tokens(text: str) -> int:
    """Cheap sub-word estimate (≈ 1 per 4 characters, at least one per word)."""
    return max(len(text) // 4, len(text.split())) + 1


def split_by_budget(items: Sequence[T], cost: Callable[[T], int], max_tokens: int) -> list[list[T]]:
    """Consecutive chunks whose summed cost stays within ``max_tokens`` (an over-budget item
    goes alone). Order is preserved."""
    chunks: list[list[T]] = []
    current: list[T] = []
    used = 0
    for item in items:
        c = cost(item)
        if current and used + c > max_tokens:
            chunks.append(current)
            current, used = [], 0
        current.append(item)
        used += c
    if current:
        chunks.append(current)
    return chunks
