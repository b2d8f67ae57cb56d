"""Structures from a boundary head (gliner2 2.1.0 ``BoundaryExtractor._decode_legacy_structures``,
``_decode_records``, ``_decode_choice_field``): a structure without ``mode`` is one instance
holding every list value and the best scalar value of each field; a structure with a ``mode``
is decoded by the record head (``records``) into as many instances as it finds. A field with
``choices`` reads the scores of the choice words in the schema prefix (scored as explicit spans
for that field's query alone), or, inside records, the literal mentions of a choice nearest the
record's anchor.

Deliberate differences (named in the parity suite): a structure with no instance is ``[]``
(gliner2's boundary engine leaves its key out), and a candidate reaching into the period gliner2
appends to a text without final punctuation is dropped before overlap resolution."""

from __future__ import annotations

import re
from typing import Any, NamedTuple

import numpy as np

from stream.engine.gliner2.boundary.decode import candidates
from stream.engine.gliner2.boundary.model import BoundaryScores
from stream.engine.gliner2.boundary.records import DecodedRecord, GroupLogits, RecordGroup, decode_group
from stream.engine.gliner2.overlap import RawSpan, normalize_policy, resolve
from stream.engine.gliner2.prompt import Encoded
from stream.engine.gliner2.schema import Field, Structure
from stream.engine.gliner2.values import choice_index, dedupe, span_value


class StructureScores(NamedTuple):
    """A structure task's scores: its field queries over the row's pool, and the record head's
    logits when the structure has a ``mode``."""

    fields: BoundaryScores
    group: RecordGroup | None = None
    logits: GroupLogits | None = None


def _value(spans: list[RawSpan], scalar: bool, confidence: bool, offsets: bool) -> Any:
    """gliner2's ``_format_structure_field`` then ``format_struct`` (list de-duplication)."""
    if scalar:
        return span_value(spans[0], confidence, offsets) if spans else None
    return dedupe([span_value(s, confidence, offsets) for s in spans])


def _choice_field(scores: StructureScores, f: int, field: Field, prefix: tuple[str, ...], threshold: float,
                  confidence: bool, offsets: bool = False,
                  preferred: list[tuple[str, int, int]] | None = None) -> Any:
    """``_decode_choice_field``: the field's query scores each choice word of the prefix."""
    present = []
    for choice in dict.fromkeys(field.choices or ()):
        i = choice_index(choice, prefix)
        if i >= 0:
            present.append((choice, i))
    if not present:
        return [] if field.dtype == "list" else None
    view = scores.fields
    assert view.explicit is not None
    logits = view.explicit([f], [(i, i + 1) for _, i in present])[0]
    probs = 1.0 / (1.0 + np.exp(-(logits / np.float32(view.settings.pair_temperature)).astype(np.float64)))
    probs = probs.astype(np.float32)
    if preferred:
        by_choice = {c: float(probs[k]) for k, (c, _) in enumerate(present)}
        kept = [m for m in preferred if m[0] in by_choice]
        if kept:  # the mentions' own offsets
            values = [span_value(RawSpan(c, by_choice[c], start, end), confidence, offsets) for c, start, end in kept]
            return dedupe(values) if field.dtype == "list" else values[0]
    limit = threshold if field.threshold is None else field.threshold
    if field.dtype == "list":
        return dedupe([{"text": c, "confidence": float(probs[k])} if confidence else c
                        for k, (c, _) in enumerate(present) if float(probs[k]) >= limit])
    best = int(np.argmax(probs))
    if float(probs[best]) < limit:
        return None
    return {"text": present[best][0], "confidence": float(probs[best])} if confidence else present[best][0]


def _char_span(enc: Encoded, s: int, e: int) -> tuple[int, int] | None:
    """Word span (prefix words included) → characters of the caller's text, None outside it."""
    ts, te = s - enc.n_prefix, e - enc.n_prefix
    if not 0 <= ts < te <= enc.n_text:
        return None
    return enc.words.starts[ts], enc.words.ends[te - 1]


def decode_legacy(struct: Structure, scores: StructureScores, prefix: tuple[str, ...], enc: Encoded, text: str,
                  threshold: float, policy: str | None, confidence: bool, offsets: bool) -> list[dict]:
    view = scores.fields
    policy = policy if policy is not None else normalize_policy(view.settings.overlap_policy)
    instance: dict[str, Any] = {}
    for f, field in enumerate(struct.fields):
        if field.choices:
            instance[field.name] = _choice_field(scores, f, field, prefix, threshold, confidence)
            continue
        spans = []
        for prob, s, e in candidates(view, f, threshold if field.threshold is None else field.threshold):
            span = _char_span(enc, s, e)
            if span is not None and text[span[0]:span[1]].strip():
                spans.append(RawSpan(text[span[0]:span[1]].strip(), prob, *span))
        instance[field.name] = _value(resolve(spans, policy), field.dtype == "str", confidence, offsets)
    return [instance] if any(v is not None and v != [] for v in instance.values()) else []


def _literal_choices(text: str, choices: tuple[str, ...], anchors: list[tuple[int, int] | None]
                     ) -> tuple[bool, dict[int, list[tuple[str, int, int]]]]:
    """``_record_local_choice_mentions``: each literal mention of a choice belongs to the nearest
    record anchor before it (the first anchor when none is before it); one mention per value."""
    mentions = [(c, m.start(), m.end()) for c in choices
                for m in re.finditer(rf"(?<!\w){re.escape(c)}(?!\w)", text, flags=re.IGNORECASE)]
    if not mentions:
        return False, {}
    valid = sorted(((i, a) for i, a in enumerate(anchors) if a is not None), key=lambda x: (x[1][0], x[0]))
    if not valid:
        return True, {}
    owned: dict[int, list[tuple[str, int, int]]] = {}
    for m in sorted(mentions, key=lambda x: x[1]):
        before = [x for x in valid if x[1][0] <= m[1]]
        owner = (max(before, key=lambda x: (x[1][0], x[0])) if before else valid[0])[0]
        owned.setdefault(owner, []).append(m)
    for owner, items in owned.items():
        unique: dict[str, tuple[str, int, int]] = {}
        for m in items:
            unique.setdefault(m[0], m)
        owned[owner] = sorted(unique.values(), key=lambda x: x[1])
    return True, owned


def decode_records(struct: Structure, scores: StructureScores, prefix: tuple[str, ...], enc: Encoded, text: str,
                   threshold: float, policy: str | None, confidence: bool, offsets: bool) -> list[dict]:
    group, logits, view = scores.group, scores.logits, scores.fields
    assert group is not None and logits is not None
    policy = policy if policy is not None else normalize_policy(view.settings.overlap_policy)
    decoded = decode_group(group, logits, view.spans, threshold, view.settings.record_temperature)
    anchors = [None if r.anchor is None else _char_span(enc, *view.spans[r.anchor]) for r in decoded]
    instances = []
    for k, rec in enumerate(decoded):
        instance: dict[str, Any] = {}
        for f, (field, rf) in enumerate(zip(struct.fields, group.fields)):
            instance[field.name] = _record_field(scores, f, field, rf.scalar or field.dtype == "str",
                                                 rf.allows_absent, rec, k, anchors, prefix, enc, text, threshold,
                                                 policy, confidence, offsets)
        if any(v is not None and v != [] for v in instance.values()):
            if confidence:
                instance["confidence"] = rec.score
            instances.append(instance)
    return instances


def _record_field(scores: StructureScores, f: int, field: Field, scalar: bool, allows_absent: bool,
                  rec: DecodedRecord, k: int, anchors: list[tuple[int, int] | None], prefix: tuple[str, ...],
                  enc: Encoded, text: str, threshold: float, policy: str, confidence: bool, offsets: bool) -> Any:
    """gliner2's ``_format_field`` for one record's field."""
    view = scores.fields
    found: list[RawSpan] = []
    prefix_choice: dict[int, str] | None = None
    for c, assigned in rec.fields.get(f, []):
        s, e = int(view.spans[c, 0]), int(view.spans[c, 1])
        candidate_p = float(view.probs[f, c])
        prob = min(candidate_p, assigned)
        if field.choices and e <= enc.n_prefix:  # a choice word of the schema prefix
            if prefix_choice is None:
                prefix_choice = {}
                for choice in field.choices:
                    if (i := choice_index(choice, prefix)) >= 0:
                        prefix_choice[i] = choice
            surface = prefix_choice.get(s, "")
            if surface and (field.threshold is None or prob >= field.threshold):
                found.append(RawSpan(surface, prob, *(anchors[k] or (0, 0))))
            continue
        span = _char_span(enc, s, e)
        if span is None:
            continue
        surface = text[span[0]:span[1]].strip()
        if (surface and (not allows_absent or candidate_p >= threshold)
                and (field.threshold is None or prob >= field.threshold)):
            found.append(RawSpan(surface, prob, *span))
    found = resolve(found, policy)
    if scalar:
        found = found[:1]
    if not field.choices:
        return _value(found, scalar, confidence, offsets)
    dtype_field = field if field.dtype == ("str" if scalar else "list") else Field(
        field.name, "str" if scalar else "list", field.choices, field.description, field.threshold)
    if anchors[k] is not None:
        literal, owned = _literal_choices(text, field.choices, anchors)
        preferred = owned.get(k, [])
        if scalar and preferred:
            a0, a1 = anchors[k]
            preferred = [min(preferred, key=lambda m: max(a0 - m[2], m[1] - a1, 0))]
        if preferred:
            return _choice_field(scores, f, dtype_field, prefix, threshold, confidence, offsets, preferred)
        if literal:
            return None if scalar else []
    lookup = {c.casefold(): c for c in field.choices}
    matched = [RawSpan(lookup[s.text.casefold()], s.confidence, s.start, s.end) for s in found
               if s.text.casefold() in lookup]
    if matched:
        return _value(matched, scalar, confidence, offsets)
    return _choice_field(scores, f, dtype_field, prefix, threshold, confidence)
