"""/v1/extract bodies: read whole (``read_body``), then validated (texts, labels, params) within the
configured limits (``parse_extract_request``)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import orjson
from aiohttp import ClientPayloadError, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from stream.engine import DecodeParams
from stream.engine.gliner2.decode import Options
from stream.engine.gliner2.overlap import normalize_policy
from stream.engine.gliner2.schema import Schema, parse_schema, schema_size
from stream.http.status import (
    RequestInvalid,
    RequestMalformed,
    RequestTimeout,
    RequestTooLarge,
)


@dataclass(frozen=True)
class Limits:
    """Per-request limits (``Settings.http_max_*``)."""

    max_texts: int = 64
    max_chars: int = 100_000
    max_labels: int = 50
    max_body_bytes: int = 4 * 1024 * 1024
    body_timeout_s: float = 30.0


async def read_body(request: web.Request, limits: Limits) -> bytes:
    """The whole body (decoded from gzip/deflate by aiohttp), however many segments it arrives in,
    up to ``max_body_bytes`` and within ``body_timeout_s``."""
    if request.content_length and request.content_length > limits.max_body_bytes:
        raise RequestTooLarge(f"body of {request.content_length} bytes exceeds max_body_bytes={limits.max_body_bytes}")
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(limits.body_timeout_s):
            async for chunk in request.content.iter_any():
                size += len(chunk)
                if size > limits.max_body_bytes:
                    raise RequestTooLarge(f"body exceeds max_body_bytes={limits.max_body_bytes}")
                chunks.append(chunk)
    except TimeoutError:
        raise RequestTimeout(f"the body did not arrive within {limits.body_timeout_s:g}s") from None
    except (HttpProcessingError, ClientPayloadError, RequestPayloadError) as exc:  # bad gzip/deflate, broken chunked framing
        raise RequestMalformed(f"cannot read the body: {exc}") from None
    return b"".join(chunks)


def parse_body(body: bytes, limits: Limits) -> dict:
    """The JSON object of a /v1/extract body."""
    if len(body) > limits.max_body_bytes:
        raise RequestTooLarge(f"body of {len(body)} bytes exceeds max_body_bytes={limits.max_body_bytes}")
    try:
        req = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RequestMalformed(f"body is not valid JSON: {exc}") from None
    if not isinstance(req, dict):
        raise RequestInvalid("body must be a JSON object")
    return req


def _texts(req: dict, limits: Limits) -> tuple[list[str], bool]:
    if ("text" in req) == ("texts" in req):
        raise RequestInvalid("give exactly one of 'text' or 'texts'")
    single = "text" in req
    texts = [req["text"]] if single else req["texts"]
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise RequestInvalid("'texts' must be a list of strings" if not single else "'text' must be a string")
    if not texts:
        raise RequestInvalid("'texts' must not be empty")
    if len(texts) > limits.max_texts:
        raise RequestTooLarge(f"{len(texts)} texts exceed max_texts={limits.max_texts}")
    for i, t in enumerate(texts):
        if len(t) > limits.max_chars:
            raise RequestTooLarge(f"text {i} has {len(t)} characters, over max_chars={limits.max_chars}")
    return texts, single


def _threshold(req: dict) -> float:
    threshold = req.get("threshold", 0.5)
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold <= 1:
        raise RequestInvalid("'threshold' must be a number within [0, 1]")
    return float(threshold)


def parse_schema_request(req: dict, limits: Limits) -> tuple[list[str], Schema, Options, bool]:
    """A GLiNER2 request → (texts, schema, options, single); the schema in gliner2's dict form."""
    unknown = set(req) - {"text", "texts", "schema", "threshold", "include_confidence", "include_spans",
                          "overlap_policy"}
    if unknown:
        raise RequestInvalid(f"unknown fields: {sorted(unknown)}")
    texts, single = _texts(req, limits)
    schema = parse_schema(req["schema"])  # InvalidInput (422, reason invalid_schema) names the key
    asked = schema_size(schema)
    if asked > limits.max_labels:
        raise RequestTooLarge(f"the schema asks for {asked} entity types, fields, relations and classes, "
                              f"over max_labels={limits.max_labels}")
    flags = {}
    for name in ("include_confidence", "include_spans"):
        flags[name] = req.get(name, False)
        if not isinstance(flags[name], bool):
            raise RequestInvalid(f"'{name}' must be a boolean")
    try:
        policy = normalize_policy(req.get("overlap_policy"))
    except ValueError as exc:
        raise RequestInvalid(str(exc)) from None
    return texts, schema, Options(_threshold(req), flags["include_confidence"], flags["include_spans"], policy), single


def parse_extract_request(body: bytes | dict, limits: Limits) -> tuple[list[str], list[str], DecodeParams, bool]:
    """Validate a /v1/extract labels request → (texts, labels, params, single)."""
    req = body if isinstance(body, dict) else parse_body(body, limits)
    unknown = set(req) - {"text", "texts", "labels", "threshold", "flat_ner", "multi_label", "label_thresholds"}
    if unknown:
        raise RequestInvalid(f"unknown fields: {sorted(unknown)}")
    texts, single = _texts(req, limits)
    labels = req.get("labels")
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) and x.strip() for x in labels):
        raise RequestInvalid("'labels' must be a non-empty list of non-empty strings")
    if len(labels) > limits.max_labels:
        raise RequestTooLarge(f"{len(labels)} labels exceed max_labels={limits.max_labels}")
    threshold = _threshold(req)
    flags = {}
    for name, default in (("flat_ner", True), ("multi_label", False)):
        value = req.get(name, default)
        if not isinstance(value, bool):
            raise RequestInvalid(f"'{name}' must be a boolean")
        flags[name] = value
    lt = req.get("label_thresholds", {})
    if not isinstance(lt, dict) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1
                                           for v in lt.values()):
        raise RequestInvalid("'label_thresholds' must map labels to numbers within [0, 1]")
    params = DecodeParams(float(threshold), flags["flat_ner"], flags["multi_label"], {k: float(v) for k, v in lt.items()})
    return texts, list(dict.fromkeys(labels)), params, single
