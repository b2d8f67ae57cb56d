"""Immutable values carried from fetch to publish: where a record came from and what it held."""

from __future__ import annotations

from typing import Any, NamedTuple


class RecordRef(NamedTuple):
    """Provenance of one input record; travels with it through the batch."""

    topic: str
    partition: int
    offset: int
    timestamp: int | None
    "Record timestamp, ms since the epoch."
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    received_at: int
    "When this worker read it, ms since the epoch."

    @property
    def default_id(self) -> str:
        return f"{self.topic}/{self.partition}/{self.offset}"


class TextItem(NamedTuple):
    """A valid input, ready for the engine."""

    ref: RecordRef
    id: Any
    text: str
    labels: tuple[str, ...]
    threshold: float
    metadata: Any
    "The input's metadata, or ``MISSING`` when it had none."


class DeadLetter(NamedTuple):
    """An input that could not be processed, and why."""

    ref: RecordRef
    reason: str
    message: str


MISSING: Any = object()
