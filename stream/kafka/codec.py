"""Bytes ↔ records. Input validation raises ``InvalidInput`` with a stable reason code;
JSON Schemas from ``schemas/`` are compiled once. A dead letter always fits the topic it goes to
(``fit_dead_letter``)."""

from __future__ import annotations

import base64
import json
from typing import Any, NamedTuple

import orjson
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from stream.engine import Entity, Extraction, ModelInfo
from stream.engine.gliner2.schema import Schema, parse_schema, schema_size
from stream.errors import InvalidInput
from stream.kafka.records import MISSING, DeadLetter, RecordRef, TextItem, now_ms
from stream.schemas import TEXT_EVENT, first_error


def decode_input(ref: RecordRef, *, input_format: str, default_labels: tuple[str, ...], default_threshold: float,
                 allow_label_override: bool, max_labels: int, max_text_chars: int,
                 max_record_bytes: int, default_schema: Schema | None = None) -> TextItem:
    """Parse and validate one record value; raise InvalidInput(reason, message).

    Schema pipelines (``default_schema``) read an event's ``schema`` (gliner2's dict) as an
    override when overrides are allowed; a bad one is ``invalid_schema``."""
    value = ref.value
    if value is None:
        raise InvalidInput("null_value", "record has no value (tombstone)")
    if len(value) > max_record_bytes:
        raise InvalidInput("record_too_large", f"{len(value)} bytes > max_record_bytes={max_record_bytes}")
    try:
        raw_text = value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput("invalid_utf8", str(exc)) from None
    labels, threshold, ident, metadata = default_labels, default_threshold, ref.default_id, MISSING
    schema = default_schema
    if input_format == "text":
        text = raw_text
    else:
        try:  # a leading byte order mark is allowed (RFC 8259 §8.1); orjson refuses it
            obj = orjson.loads(value[3:] if value.startswith(b"\xef\xbb\xbf") else value)
        except orjson.JSONDecodeError as exc:
            raise InvalidInput("invalid_json", str(exc)) from None
        error = first_error(TEXT_EVENT, obj)
        if error is not None:
            raise InvalidInput("schema_violation", f"{error[0]}: {error[1]}")
        text = obj["text"]
        if "labels" in obj:
            if not allow_label_override:
                raise InvalidInput("labels_not_allowed", "this pipeline does not accept per-event labels")
            labels = tuple(dict.fromkeys(obj["labels"]))
        if default_schema is not None and "schema" in obj:
            if not allow_label_override:
                raise InvalidInput("schema_not_allowed", "this pipeline does not accept per-event schemas")
            schema = parse_schema(obj["schema"], "schema")
        threshold = float(obj.get("threshold", threshold))
        ident = obj.get("id", ident)
        if isinstance(ident, float):  # orjson reads integers beyond 64 bits (and 1e3) as floats
            ident = _exact_id(raw_text.removeprefix("\ufeff"))
        metadata = obj.get("metadata", MISSING)
    if not text.strip():
        raise InvalidInput("empty_text", "text is empty or whitespace only")
    if len(text) > max_text_chars:
        raise InvalidInput("text_too_long", f"{len(text)} characters > max_text_chars={max_text_chars}")
    asked = len(labels) if schema is None else schema_size(schema)
    if asked > max_labels:
        raise InvalidInput("too_many_labels", f"{asked} labels > max_labels={max_labels}")
    return TextItem(ref, ident, text, labels, threshold, metadata, schema)


def _literal(token: str) -> orjson.Fragment:
    return orjson.Fragment(token.encode())


def _exact_id(text: str) -> orjson.Fragment:
    """The event's ``id`` number exactly as written (``123456789012345678901234567890``, ``1e3``):
    ids are how users join results back, so they round-trip byte for byte. Only read this way
    when orjson turned the id into a float (rare), since the standard library parser is slower."""
    return json.loads(text, parse_int=_literal, parse_float=_literal)["id"]


def _event(item: TextItem, body: dict[str, Any], model: Any, model_version: str, inference_ms: float,
           batch_size: int) -> bytes:
    """The envelope every output event shares: id, source, model, ``body``, metadata, timings."""
    ref = item.ref
    event: dict[str, Any] = {
        "schema_version": 1,
        "id": item.id,
        "source": {"topic": ref.topic, "partition": ref.partition, "offset": ref.offset, "timestamp": ref.timestamp},
        "model": {"name": model.name, "version": model_version, "variant": model.variant},
        **body,
        "processing": {"received_at": ref.received_at, "processed_at": now_ms(),
                       "inference_ms": round(inference_ms, 3), "batch_size": batch_size},
    }
    if item.metadata is not MISSING:
        event["metadata"] = item.metadata
    return orjson.dumps(event)


def encode_entity_event(item: TextItem, result: Extraction, model: ModelInfo, model_version: str,
                        inference_ms: float, batch_size: int) -> bytes:
    """``entity-event.v1``: the entities of one text event."""
    body = {"labels": list(item.labels), "entities": [_entity(e) for e in result.entities],
            "windowed": result.windowed}
    return _event(item, body, model, model_version, inference_ms, batch_size)


def encode_extraction_event(item: TextItem, result: dict, model: Any, model_version: str,
                            inference_ms: float, batch_size: int) -> bytes:
    """``extraction-event.v1``: a GLiNER2 result (entities, classifications, structures,
    relations in gliner2's shape) for one text event."""
    return _event(item, {"result": result}, model, model_version, inference_ms, batch_size)


def _entity(e: Entity) -> dict:
    return {"text": e.text, "label": e.label, "start": e.start, "end": e.end, "score": round(e.score, 6)}


def _bytes(data: bytes | None) -> dict | None:
    if data is None:
        return None
    try:
        return {"encoding": "utf8", "data": data.decode("utf-8")}
    except UnicodeDecodeError:
        return {"encoding": "base64", "data": base64.b64encode(data).decode("ascii")}


def encode_dead_letter(dead: DeadLetter, pipeline: str, omitted: dict[str, int] | None = None) -> bytes:
    """``dead-letter.v1``: the record's coordinates, reason and original bytes. ``omitted`` names the
    parts left out (``value``, ``headers``, ``key``) with their original sizes in bytes."""
    ref = dead.ref
    omitted = omitted or {}
    letter = {
        "schema_version": 1, "reason": dead.reason, "pipeline": pipeline,
        "message": dead.message[:2000].encode("utf-8", "replace").decode("utf-8"),
        "source": {"topic": ref.topic, "partition": ref.partition, "offset": ref.offset, "timestamp": ref.timestamp},
        "key": None if "key" in omitted else _bytes(ref.key),
        "value": None if "value" in omitted else _bytes(ref.value),
        "headers": [] if "headers" in omitted else [{"key": k, "value": _bytes(v)} for k, v in ref.headers],
        "failed_at": now_ms(),
    }
    if omitted:
        letter["omitted"] = omitted
    return orjson.dumps(letter)


class DeadLetterRecord(NamedTuple):
    value: bytes
    key: bytes | None
    headers: tuple[tuple[str, bytes], ...]


RECORD_BATCH_OVERHEAD = 512
"Bytes kept free under the size limit for the record batch header and the producer's own estimate."


def fit_dead_letter(dead: DeadLetter, pipeline: str, max_bytes: int) -> DeadLetterRecord:
    """The dead letter of ``dead`` as a record of at most ``max_bytes`` (the smaller of the topic's
    ``max.message.bytes`` and the producer's ``max_request_size``): the original value, then its
    headers, then its key are left out — in that order, only as far as needed, and named in the
    letter's ``omitted`` — so that the broker never refuses a dead letter for its size."""
    ref = dead.ref
    sizes = {"value": len(ref.value or b""), "headers": sum(len(k) + len(v) for k, v in ref.headers),
             "key": len(ref.key or b"")}
    omitted: dict[str, int] = {}
    for drop in (None, "value", "headers", "key"):
        if drop is not None:
            omitted[drop] = sizes[drop]
        value = encode_dead_letter(dead, pipeline, omitted)
        key = None if "key" in omitted else ref.key
        headers = () if "headers" in omitted else ref.headers
        size = DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, list(headers))
        if size + RECORD_BATCH_OVERHEAD <= max_bytes:
            break
    return DeadLetterRecord(value, key, headers)
