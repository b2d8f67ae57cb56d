"""How gliner2 formats extracted values, shared by the span and boundary decoders: one span as its
text or ``{text, confidence?, start?, end?}``, gliner2's list de-duplication, and how a choice word
is found in the schema prefix. Pure functions."""

from __future__ import annotations

from typing import Any

from stream.engine.gliner2.overlap import RawSpan


def span_value(span: RawSpan, confidence: bool, offsets: bool) -> Any:
    if offsets and confidence:
        return {"text": span.text, "confidence": span.confidence, "start": span.start, "end": span.end}
    if offsets:
        return {"text": span.text, "start": span.start, "end": span.end}
    if confidence:
        return {"text": span.text, "confidence": span.confidence}
    return span.text


def dedupe(values: list[Any]) -> list[Any]:
    """gliner2's ``format_entity_dict``/``format_struct`` list de-duplication: by lower-cased text
    and offsets when present (so without ``include_spans`` equal texts collapse)."""
    out, seen = [], set()
    for v in values:
        if isinstance(v, dict):
            text = v.get("text", "")
            key = (text.lower(), v.get("start"), v.get("end")) if "start" in v and "end" in v else (text.lower(), None, None)
        else:
            text, key = v, v.lower()
        if text and key not in seen:
            seen.add(key)
            out.append(v)
    return out


def choice_index(choice: str, prefix: tuple[str, ...]) -> int:
    """The first prefix word equal to the choice (gliner2 looks it up this way, so a choice
    repeated in two fields scores at its first occurrence)."""
    lowered = choice.lower()
    for i, tok in enumerate(prefix):
        if tok.lower() == lowered:
            return i
    return -1
