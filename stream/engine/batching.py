"""The one batching policy: which model rows run together, from their real token lengths.

A batch is padded to its longest row, so its cost is ``rows × longest``. Rows are sorted by
length (so neighbours pad little) and cut when the next row would take the batch past
``max_rows`` or ``max_tokens`` padded tokens. ``Extractor`` (the CLI, the library) and the
serving queue (worker, HTTP) both cut batches here; nothing else decides batch shape.
"""

from __future__ import annotations

from collections.abc import Sequence

DEFAULT_MAX_ROWS = 16
"Rows per ONNX call: on 2 AVX2 cores 16 beat 32 (bench.worker corpus, interleaved runs)."
DEFAULT_MAX_TOKENS = 8192
"Padded tokens per ONNX call (rows × longest row): bounds memory and time on long windows."

__all__ = ["DEFAULT_LOOKAHEAD", "DEFAULT_MAX_ROWS", "DEFAULT_MAX_TOKENS", "padded_tokens", "plan_batches"]


def padded_tokens(lengths: Sequence[int]) -> int:
    """What a batch of rows with these lengths costs once padded."""
    return len(lengths) * max(lengths, default=0)


def plan_batches(lengths: Sequence[int], max_rows: int = DEFAULT_MAX_ROWS,
                 max_tokens: int | None = DEFAULT_MAX_TOKENS, sort: bool = True) -> list[list[int]]:
    """Indices into ``lengths``, grouped into batches within ``max_rows`` and ``max_tokens``.

    ``sort=False`` keeps the given order (to reproduce another runtime's batches exactly). A row
    longer than ``max_tokens`` on its own still gets a batch of one.
    """
    if max_rows < 1:
        raise ValueError("max_rows must be at least 1")
    order = sorted(range(len(lengths)), key=lengths.__getitem__) if sort else range(len(lengths))
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for i in order:
        grown = max(longest, lengths[i])
        if current and (len(current) >= max_rows or (max_tokens is not None and grown * (len(current) + 1)
                                                     > max_tokens)):
            batches.append(current)
            current, grown = [], lengths[i]
        current.append(i)
        longest = grown
    if current:
        batches.append(current)
    return batches


DEFAULT_LOOKAHEAD = 256
"Rows sorted by length together before they are cut into batches."
