"""Immutable values carried from fetch to publish: where a record came from and what it held."""

from __future__ import annotations

import time
from collections.abc import Mapping
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
    schema: Any = None
    "Schema pipelines: the event's GLiNER2 schema (``engine.gliner2.schema.Schema``); None otherwise."


class DeadLetter(NamedTuple):
    """An input that could not be processed, and why."""

    ref: RecordRef
    reason: str
    message: str


MISSING: Any = object()


def now_ms() -> int:
    return int(time.time() * 1000)


def record_ref(message: Any, received_at: int | None = None) -> RecordRef:
    """The provenance of a consumed message (faust's or aiokafka's); ``received_at`` defaults to now
    (a batch passes one time for all its records)."""
    headers = message.headers or []
    if isinstance(headers, Mapping):
        headers = headers.items()
    ts = message.timestamp
    return RecordRef(topic=message.topic, partition=message.partition, offset=message.offset,
                     timestamp=int(ts * 1000) if ts else None, key=message.key, value=message.value,
                     headers=tuple((str(k), bytes(v) if v is not None else b"") for k, v in headers),
                     received_at=now_ms() if received_at is None else received_at)
