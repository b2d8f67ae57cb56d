"""Value types shared by the engine stages."""

from __future__ import annotations

from typing import Any, NamedTuple


class Entity(NamedTuple):
    """One extracted entity; ``text == source[start:end]`` (character offsets)."""

    text: str
    "The entity's surface text."
    label: str
    "The label (entity type) it was matched to."
    start: int
    "Character offset of the first character."
    end: int
    "Character offset one past the last character."
    score: float
    "Model confidence in [0, 1]."


class Extraction(NamedTuple):
    """All entities of one text, and whether it was split into word windows to fit the model."""

    entities: list[Entity]
    "Entities sorted by start offset."
    windowed: bool
    "True when the text was longer than the model's ``max_len`` (or token budget) and was windowed."


class Words(NamedTuple):
    """A text split into words, with each word's character span."""

    words: list[str]
    starts: list[int]
    ends: list[int]


class WordSpan(NamedTuple):
    """A decoded span over word indices (inclusive ``end``), before mapping to characters."""

    start: int
    end: int
    label_index: int
    score: float


class Prepared(NamedTuple):
    """One text made ready for the model: split, tokenized and cut into rows (windows).

    Pure data, built by the engine's ``prepare``; the rows of many texts can then be batched
    together in any order, and ``decode`` turns each text's row logits into its entities.
    """

    text: str
    labels: tuple[str, ...]
    words: Words
    rows: tuple[Any, ...]
    "Model rows, one per window (a family's own row type)."
    offsets: tuple[int, ...]
    "Index of the first word of each row."
    lengths: tuple[int, ...]
    "Real tokens per row, prompt and special tokens included: what batching counts."

    @property
    def windowed(self) -> bool:
        return len(self.rows) > 1

    @property
    def tokens(self) -> int:
        return sum(self.lengths)
