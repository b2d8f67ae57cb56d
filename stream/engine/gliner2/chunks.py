"""Long texts: overlapping word windows, and their results merged back (gliner2's ``*_long``).

A text whose prompt and sub-words exceed the encoder's limit is cut into windows of at most
``chunk_size`` words overlapping by ``chunk_overlap`` (gliner2's defaults: 384 and 64), each run
as a text of its own; offsets are remapped to the whole text and duplicates merged exactly as
gliner2's ``merge_chunk_results`` does (spans resolved with the overlap policy, ``disallow`` by
default, and listed by position; classifications keep the most confident window's label;
structure instances and relations de-duplicated ignoring confidence).

Where gliner2 fails we do better: gliner2 raises when a window exceeds 512 tokens; here a
window that does not fit is shortened until it does, so no text is refused or truncated. And a
relation stays a ``(head, tail)`` pair without ``include_confidence``/``include_spans`` (gliner2's
long path turns it into ``{"head": text, "tail": text}``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from stream.engine.gliner2.overlap import RawSpan, resolve
from stream.engine.gliner2.words import split_words

CHUNK_SIZE = 384
CHUNK_OVERLAP = 64


def windows_of(text: str, word_tokens: Callable[[str], int], budget: int, chunk_size: int = CHUNK_SIZE,
               chunk_overlap: int = CHUNK_OVERLAP) -> list[tuple[str, int]]:
    """``(window text, character offset)`` pairs covering ``text``; each window's words take at
    most ``budget`` sub-words (one is kept for the period the model may append)."""
    words = split_words(text)
    n = len(words.words)
    if n == 0:
        return [(text, 0)]
    costs = [word_tokens(w.lower()) for w in words.words]
    out = []
    start = 0
    while True:
        end = min(start + chunk_size, n)
        used = sum(costs[start:end])
        while end - start > 1 and used + 1 > budget:
            end -= 1
            used -= costs[end]
        cs, ce = words.starts[start], words.ends[end - 1]
        out.append((text[cs:ce], cs))
        if end == n:
            return out
        step = chunk_size - chunk_overlap
        if end - start < chunk_size:  # shortened: keep the same overlap, always move on
            step = max(1, (end - start) - min(chunk_overlap, (end - start) // 2))
        start += step


# --- merging (formatted results with confidence and spans) -----------------------------------

def _is_span(v: Any) -> bool:
    return isinstance(v, dict) and "text" in v and isinstance(v.get("start"), int) and isinstance(v.get("end"), int)


def _is_class(v: Any) -> bool:
    return isinstance(v, dict) and "label" in v and "confidence" in v


def remap(value: Any, text: str, offset: int) -> Any:
    if isinstance(value, list):
        return [remap(v, text, offset) for v in value]
    if isinstance(value, tuple):
        return tuple(remap(v, text, offset) for v in value)
    if isinstance(value, dict):
        out = {k: remap(v, text, offset) for k, v in value.items()}
        if _is_span(out):
            out["start"] += offset
            out["end"] += offset
            if 0 <= out["start"] <= out["end"] <= len(text):
                out["text"] = text[out["start"]:out["end"]]
        return out
    return value


def _canonical(value: Any) -> str:
    if isinstance(value, dict):
        return repr(sorted((k, _canonical(v)) for k, v in value.items() if k != "confidence"))
    if isinstance(value, (list, tuple)):
        return repr([_canonical(v) for v in value])
    return repr(value)


def _confidence(value: Any) -> float:
    if isinstance(value, dict):
        if isinstance(value.get("confidence"), (int, float)):
            return float(value["confidence"])
        nested = [_confidence(v) for v in value.values()]
        return max(nested) if nested else 0.0
    if isinstance(value, (list, tuple)):
        nested = [_confidence(v) for v in value]
        return max(nested) if nested else 0.0
    return 0.0


def _dedupe(items: list[Any], policy: str | None) -> list[Any]:
    spans = [i for i in items if _is_span(i)]
    out: list[Any] = []
    if spans:
        raw = [RawSpan(str(i), float(s.get("confidence", 0.0)), s["start"], s["end"]) for i, s in enumerate(spans)]
        kept = resolve(raw, policy or "allow")
        chosen = [spans[int(r.text)] for r in kept]
        out.extend(sorted(chosen, key=lambda s: (s["start"], s["end"], s.get("text", ""))))
    seen: dict[str, int] = {}
    others: list[Any] = []
    for item in items:
        if _is_span(item):
            continue
        key = _canonical(item)
        if key not in seen:
            seen[key] = len(others)
            others.append(item)
        elif _confidence(item) > _confidence(others[seen[key]]):
            others[seen[key]] = item
    return out + others


def _as_list(v: Any) -> list:
    return [] if v is None else v if isinstance(v, list) else [v]


def _ordered_keys(dicts) -> list:
    return list(dict.fromkeys(k for d in dicts if isinstance(d, dict) for k in d))


def _merge_values(values: list[Any], policy: str) -> Any:
    non_empty = [v for v in values if v not in (None, {}, [])]
    if not non_empty:
        return values[0] if values else None
    if all(_is_class(v) for v in non_empty):
        return max(non_empty, key=lambda v: v.get("confidence", 0.0))
    if all(isinstance(v, str) for v in non_empty):
        counts = Counter(non_empty)
        return max(non_empty, key=lambda v: (counts[v], -non_empty.index(v)))
    if all(isinstance(v, list) for v in non_empty):
        return _dedupe([i for v in non_empty for i in v], policy)
    if all(isinstance(v, dict) for v in non_empty):
        return {k: _merge_values([v[k] for v in non_empty if k in v], policy) for k in _ordered_keys(non_empty)}
    return non_empty[0]


_SPAN_KEYS = {"text", "confidence", "start", "end"}


def _strip(value: Any, confidence: bool, spans: bool) -> Any:
    if isinstance(value, list):
        return [_strip(v, confidence, spans) for v in value]
    if isinstance(value, dict):
        if _is_span(value):
            attributes = {k: v for k, v in value.items() if k not in _SPAN_KEYS}  # kept whole, as decoded
            if not confidence and not spans and not attributes:
                return value.get("text", "")
            out = {"text": value.get("text", "")}
            if confidence and "confidence" in value:
                out["confidence"] = value["confidence"]
            if spans:
                out["start"], out["end"] = value["start"], value["end"]
            return {**out, **attributes}
        if _is_class(value):
            return {"label": value["label"], "confidence": value["confidence"]} if confidence else value["label"]
        if "text" in value and "confidence" in value and "start" not in value and "end" not in value:
            return {"text": value["text"], "confidence": value["confidence"]} if confidence else value["text"]
        return {k: _strip(v, confidence, spans) for k, v in value.items()}
    return value


def merge(text: str, results: list[dict], offsets: list[int], scalar_entities: set[str], policy: str | None,
          include_confidence: bool, include_spans: bool) -> dict:
    """Window results (formatted with confidence and spans) → one result for the whole text."""
    policy = policy or "disallow"
    remapped = [remap(r, text, o) for r, o in zip(results, offsets)]
    merged: dict[str, Any] = {}
    for key in _ordered_keys(remapped):
        values = [r[key] for r in remapped if key in r]
        if key == "entities":
            entity_maps = [v for v in values if isinstance(v, dict)]
            out = {}
            for label in _ordered_keys(entity_maps):
                items = _dedupe([i for v in entity_maps if label in v for i in _as_list(v[label])], policy)
                out[label] = (items[0] if items else None) if label in scalar_entities else items
            merged[key] = out
        elif key == "relation_extraction":
            maps = [v for v in values if isinstance(v, dict)]
            merged[key] = {label: _dedupe([i for v in maps if label in v for i in _as_list(v[label])], None)
                           for label in _ordered_keys(maps)}
        else:
            merged[key] = _merge_values(values, policy)
    out = _strip(merged, include_confidence, include_spans)
    if not (include_confidence or include_spans) and "relation_extraction" in out:
        out["relation_extraction"] = {k: [(r["head"], r["tail"]) for r in v]
                                      for k, v in out["relation_extraction"].items()}
    return out
