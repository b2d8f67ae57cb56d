"""Entity and extraction events → the rows the sink writes. Pure functions; no database.

One ``EventRow`` per event, keyed by the coordinates of the *input* record the worker read
(``source.topic``, ``source.partition``, ``source.offset``): a replayed worker output and a
replayed sink read carry the same key, so ``ON CONFLICT DO NOTHING`` leaves exactly one row per
input event whatever was replayed. One ``EntityRow`` per entity with character offsets: entity
events' ``entities``; extraction events' ``result.entities`` (gliner2's shape, ``include_spans``
on), keyed by the event's key and the entity's position in it.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, NamedTuple

import orjson


class RowError(ValueError):
    """The record is not an event the sink can store; ``reason`` names the dead letter."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


class EventRow(NamedTuple):
    source_topic: str
    source_partition: int
    source_offset: int
    kind: str  # "entities" | "extraction"
    event_id: str
    key: bytes | None
    model: str
    model_version: str
    source_time: datetime | None
    processed_at: datetime | None
    event: bytes
    "The whole event, JSON (stored as jsonb)."
    topic: str
    "Where the sink read the event."
    partition: int
    offset: int


class EntityRow(NamedTuple):
    source_topic: str
    source_partition: int
    source_offset: int
    ordinal: int
    label: str
    text: str
    start: int | None
    end: int | None
    score: float | None


def _time(ms: Any) -> datetime | None:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc) if isinstance(ms, (int, float)) else None


def _entities(event: dict, kind: str) -> list[tuple[str, str, int | None, int | None, float | None]]:
    if kind == "entities":
        return [(e["label"], e["text"], e.get("start"), e.get("end"), e.get("score")) for e in event["entities"]]
    result = event.get("result") or {}
    joint = result.get("joint")
    if isinstance(joint, dict) and isinstance(joint.get("entities"), list):  # {"joint": JointResult.to_dict()}
        return [(e["type"], e["text"], e.get("start"), e.get("end"), e.get("confidence")) for e in joint["entities"]
                if isinstance(e, dict) and isinstance(e.get("type"), str) and isinstance(e.get("text"), str)]
    found = result.get("entities") or {}
    out = []
    if isinstance(found, dict):
        for label, values in found.items():
            for v in values if isinstance(values, list) else [values]:
                if isinstance(v, dict) and isinstance(v.get("text"), str):
                    out.append((label, v["text"], v.get("start"), v.get("end"), v.get("confidence")))
                elif isinstance(v, str):
                    out.append((label, v, None, None, None))
    return out


def event_rows(value: bytes | None, key: bytes | None, topic: str, partition: int, offset: int
               ) -> tuple[EventRow, list[EntityRow]]:
    """The rows of one event record; ``RowError`` when it is not an entity or extraction event."""
    if value is None:
        raise RowError("invalid_event", "the record has no value")
    try:
        event = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise RowError("invalid_event", f"not JSON: {exc}") from None
    if not isinstance(event, dict):
        raise RowError("invalid_event", "the event is not a JSON object")
    if isinstance(event.get("entities"), list):
        kind = "entities"
    elif isinstance(event.get("result"), dict):
        kind = "extraction"
    else:
        raise RowError("invalid_event", "neither an entity event (entities) nor an extraction event (result)")
    source, model = event.get("source"), event.get("model")
    try:
        coords = (str(source["topic"]), int(source["partition"]), int(source["offset"]))
        entities = _entities(event, kind)
        row = EventRow(*coords, kind, str(event["id"]), key, str(model["name"]), str(model.get("version", "")),
                       _time(source.get("timestamp")), _time((event.get("processing") or {}).get("processed_at")),
                       value, topic, partition, offset)
        ents = [EntityRow(*coords, i, str(label), str(text), start if isinstance(start, int) else None,
                          end if isinstance(end, int) else None,
                          float(score) if isinstance(score, (int, float)) else None)
                for i, (label, text, start, end, score) in enumerate(entities)]
    except (KeyError, TypeError, ValueError) as exc:
        raise RowError("invalid_event", f"missing or malformed field: {exc!r}") from None
    return row, ents
