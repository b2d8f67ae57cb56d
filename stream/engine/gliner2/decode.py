"""Scores → gliner2's result shapes. Pure functions; no model, no I/O.

The result of one text is gliner2's ``batch_extract`` output: ``entities`` ({type: [...]} or a
single value for ``dtype='str'``), one key per structure (a list of instances), one key per
classification task, and ``relation_extraction`` ({relation: [(head, tail)]}). With
``include_confidence`` / ``include_spans`` each value becomes ``{"text", "confidence", "start",
"end"}`` as gliner2 shapes it (choice fields and classes have no offsets).

Deliberate differences from gliner2 2.1.0 (each named in the parity suite):
- a described relation is keyed by its name (gliner2 keys it ``"name: description"``, puts an
  empty one at the top level too, and then ignores its threshold);
- a structure whose count head predicts 0 instances is ``[]`` (gliner2: ``{}``);
- spans never include the period gliner2 appends to a text (see ``prompt``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from stream.engine.gliner2.boundary.decode import decode_entities as decode_boundary_entities
from stream.engine.gliner2.boundary.decode import attach_attributes
from stream.engine.gliner2.boundary.decode import decode_relation as decode_boundary_relation
from stream.engine.gliner2.boundary.structures import StructureScores, decode_legacy, decode_records
from stream.engine.gliner2.boundary.relations import RelationPairs
from stream.engine.gliner2.boundary.model import BoundaryScores
from stream.engine.gliner2.constrained import RESULT_KEY
from stream.engine.gliner2.constrained import decode as decode_constrained
from stream.engine.gliner2.overlap import RawSpan, first, resolve
from stream.engine.gliner2.prompt import Encoded, Prompt, Task
from stream.engine.gliner2.values import choice_index, dedupe, span_value
from stream.engine.gliner2.schema import (
    AttributeGroup,
    Classification,
    EntityType,
    RelationType,
    Structure,
)


class Options(NamedTuple):
    threshold: float = 0.5
    include_confidence: bool = False
    include_spans: bool = False
    overlap_policy: str | None = None
    "Canonical policy (``overlap.normalize_policy``); None is gliner2's greedy default."


class TaskScores(NamedTuple):
    """One task's model output for one text."""

    count: int
    "Instances the count head predicted (span tasks)."
    probs: np.ndarray | None
    "Span tasks: [count, fields, words, width] probabilities over every word (prefix, text,"
    " synthetic period); classification: [labels]."
    logits: np.ndarray | None = None
    "The entity task's logits, like ``probs``, when the schema has entity attributes; a"
    " constrained classification task's label logits."


def find_spans(scores: np.ndarray, threshold: float, enc: Encoded, text: str) -> list[RawSpan]:
    """Spans over the caller's words scoring at least ``threshold``, in (start, width) order.
    ``scores`` is [text words (+ synthetic period), width]."""
    n = enc.n_text
    starts, ends = enc.words.starts, enc.words.ends
    out = []
    for s, w in zip(*np.nonzero(scores >= threshold)):
        e = s + w + 1
        if e > n:
            continue
        cs, ce = starts[s], ends[e - 1]
        if text[cs:ce].strip():
            out.append(RawSpan(text[cs:ce].strip(), float(scores[s, w]), cs, ce))
    return out


def _spans_value(spans: list[RawSpan], dtype: str, opts: Options, empty: Any) -> Any:
    if dtype == "list":
        return dedupe([span_value(s, opts.include_confidence, opts.include_spans) for s in spans])
    return span_value(spans[0], opts.include_confidence, opts.include_spans) if spans else empty


def _text_scores(probs: np.ndarray, enc: Encoded) -> np.ndarray:
    return probs[..., enc.n_prefix:, :]


def decode_entities(entities: Sequence[EntityType], scores: TaskScores, enc: Encoded, text: str,
                    opts: Options, attributes: Sequence[AttributeGroup] = ()) -> dict:
    """``entities`` is the entity task's prompt (types, then attribute labels)."""
    if scores.count <= 0:
        return {}
    probs = _text_scores(scores.probs[0], enc)
    index = {e.name: i for i, e in enumerate(entities)}
    prompt_labels = {g.prompt_label(label) for g in attributes for label in g.labels}
    logits = _text_scores(scores.logits[0], enc) if attributes else None
    out = {}
    for i, e in enumerate(entities):
        if e.name in prompt_labels:
            continue
        threshold = opts.threshold if e.threshold is None else e.threshold
        spans = resolve(find_spans(probs[i], threshold, enc, text), opts.overlap_policy)
        if e.dtype != "list":
            spans = spans[:1]
        if attributes:
            values = [_attributed(s, e.name, logits, index, attributes, enc, opts) for s in spans]
            out[e.name] = dedupe(values) if e.dtype == "list" else (values[0] if values else None)
            continue
        value = _spans_value(spans, e.dtype, opts, None)
        out[e.name] = value if value != "" else None
    return out


def _attributed(span: RawSpan, entity: str, logits: np.ndarray, index: dict[str, int],
                attributes: Sequence[AttributeGroup], enc: Encoded, opts: Options) -> dict:
    """gliner2's attributed entity: always a dict (text, confidence/offsets as asked), plus each
    group that applies to its type — single-label: softmax over the group's logits at the span;
    multi-label: every label whose sigmoid passes the group's threshold."""
    start = enc.words.starts.index(span.start)
    width = enc.words.ends.index(span.end) - start
    value: dict[str, Any] = {"text": span.text}
    if opts.include_confidence:
        value["confidence"] = span.confidence
    if opts.include_spans:
        value["start"], value["end"] = span.start, span.end
    for g in attributes:
        if g.applies_to is not None and entity not in g.applies_to:
            continue
        x = np.asarray([logits[index[g.prompt_label(label)], start, width] for label in g.labels], dtype=np.float32)
        if g.multi_label:
            p = 1.0 / (1.0 + np.exp(-x))
            value[g.name] = [{"label": label, "confidence": float(q)} for label, q in zip(g.labels, p)
                             if q >= g.threshold]
        else:
            e = np.exp(x - x.max())
            p = e / e.sum()
            best = int(np.argmax(p))
            value[g.name] = {"label": g.labels[best], "confidence": float(p[best])}
    return value


def decode_relation(rel: RelationType, scores: TaskScores, enc: Encoded, text: str, opts: Options) -> list:
    threshold = opts.threshold if rel.threshold is None else rel.threshold
    out = []
    for inst in range(scores.count):
        probs = _text_scores(scores.probs[inst], enc)
        h, t = (first(find_spans(probs[f], threshold, enc, text), opts.overlap_policy) for f in (0, 1))
        if h and t:
            if not (opts.include_spans or opts.include_confidence):
                out.append((h.text, t.text))
            else:
                keys = (("text",) + (("confidence",) if opts.include_confidence else ())
                        + (("start", "end") if opts.include_spans else ()))
                out.append({"head": {k: getattr(h, k) for k in keys}, "tail": {k: getattr(t, k) for k in keys}})
    return out


def decode_structure(struct: Structure, scores: TaskScores, prompt: Prompt, enc: Encoded, text: str,
                     opts: Options) -> list[dict]:
    instances = []
    for inst in range(scores.count):
        probs = scores.probs[inst]
        text_probs = _text_scores(probs, enc)
        instance: dict[str, Any] = {}
        for f_idx, field in enumerate(struct.fields):
            threshold = opts.threshold if field.threshold is None else field.threshold
            if field.choices:
                chosen = []
                for c in dict.fromkeys(field.choices):
                    i = choice_index(c, prompt.prefix)
                    if i >= 0:
                        chosen.append((c, float(probs[f_idx, i, 0])))
                if field.dtype == "list":
                    value: Any = dedupe([{"text": c, "confidence": p} if opts.include_confidence else c
                                          for c, p in chosen if p >= threshold])
                else:
                    best, best_p = None, -1.0
                    for c, p in chosen:
                        if p > best_p:
                            best, best_p = c, p
                    value = None
                    if best and best_p >= threshold:
                        value = {"text": best, "confidence": best_p} if opts.include_confidence else best
            else:
                spans = resolve(find_spans(text_probs[f_idx], threshold, enc, text), opts.overlap_policy)
                value = _spans_value(spans, field.dtype, opts, None)
            instance[field.name] = value
        if any(v is not None and v != [] for v in instance.values()):
            instances.append(instance)
    return instances


def decode_classification(cls: Classification, probs: np.ndarray, opts: Options) -> Any:
    labels = cls.labels
    if not cls.multi_label:
        best = int(np.argmax(probs))
        return {"label": labels[best], "confidence": float(probs[best])} if opts.include_confidence else labels[best]
    chosen = [(labels[j], float(probs[j])) for j in range(len(labels)) if probs[j] >= cls.cls_threshold]
    if not chosen:  # gliner2: the best label when none passes
        best = int(np.argmax(probs))
        chosen = [(labels[best], float(probs[best]))]
    if cls.top_k is not None:
        chosen = sorted(chosen, key=lambda pair: pair[1], reverse=True)[:cls.top_k]
    if opts.include_confidence:
        return [{"label": label, "confidence": p} for label, p in chosen]
    return [label for label, _ in chosen]


def class_probabilities(cls: Classification, logits: np.ndarray) -> np.ndarray:
    act = cls.class_act
    if act == "auto":
        act = "sigmoid" if cls.multi_label else "softmax"
    if act == "sigmoid":
        return (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)
    e = np.exp(logits - logits.max())
    return (e / e.sum()).astype(np.float32)


def _boundary_entities(entities: Sequence[EntityType], scores: BoundaryScores, enc: Encoded, text: str,
                       opts: Options, attributes: Sequence[AttributeGroup]) -> dict:
    prompt_labels = frozenset(g.prompt_label(label) for g in attributes for label in g.labels)
    found = decode_boundary_entities(entities, scores, enc, text, opts.threshold, opts.overlap_policy, prompt_labels)
    groups = attach_attributes(found, entities, scores, attributes, enc) if attributes else None
    out: dict[str, Any] = {}
    for e in entities:
        if e.name in prompt_labels:
            continue
        spans = found[e.name]
        if groups is None:
            value = _spans_value(spans[:1] if e.dtype != "list" else spans, e.dtype, opts, None)
            out[e.name] = value if value != "" else None
            continue
        values = []
        for span, extra in zip(spans, groups[e.name]):
            v: dict[str, Any] = {"text": span.text}
            if opts.include_confidence:
                v["confidence"] = span.confidence
            if opts.include_spans:
                v["start"], v["end"] = span.start, span.end
            values.append({**v, **extra})
        out[e.name] = dedupe(values) if e.dtype == "list" else (values[0] if values else None)
    return out


def decode(prompt: Prompt, enc: Encoded, text: str, scores: Sequence[TaskScores], opts: Options,
           constrained: bool = True) -> dict:
    """One text's result in gliner2's shape, keys in gliner2's order; the constrained
    classification last (``constrained=False`` leaves it out: a window of a long text)."""
    result: dict[str, Any] = {}
    relations: dict[str, list] = {}
    joint = prompt.schema.constrained
    joint_tasks = {c.task for c in joint.classifications} if joint else set()
    task: Task
    for task, s in zip(prompt.tasks, scores):
        if task.kind == "classification" and task.name in joint_tasks:
            continue
        if task.kind == "structure" and isinstance(s, StructureScores):
            decoder = decode_records if s.group is not None else decode_legacy
            result[task.name] = decoder(task.spec, s, prompt.prefix, enc, text, opts.threshold, opts.overlap_policy,
                                        opts.include_confidence, opts.include_spans)
        elif task.kind == "structure":
            result[task.name] = decode_structure(task.spec, s, prompt, enc, text, opts)
        elif task.kind == "entities" and isinstance(s, BoundaryScores):
            result["entities"] = _boundary_entities(task.spec, s, enc, text, opts, prompt.schema.attributes)
        elif task.kind == "entities":
            result["entities"] = decode_entities(task.spec, s, enc, text, opts, prompt.schema.attributes)
        elif task.kind == "relation" and isinstance(s, RelationPairs):
            relations[task.name] = decode_boundary_relation(task.spec, s, enc, text, opts.threshold,
                                                            opts.include_confidence, opts.include_spans)
        elif task.kind == "relation":
            relations[task.name] = decode_relation(task.spec, s, enc, text, opts)
        else:
            result[task.name] = decode_classification(task.spec, s.probs, opts)
    if relations:
        result["relation_extraction"] = relations
    if joint and constrained:
        result[RESULT_KEY] = decode_constrained(joint, constrained_logits(prompt, [scores]), text)
    return result


def constrained_logits(prompt: Prompt, windows: Sequence[Sequence[TaskScores]]) -> dict[str, np.ndarray]:
    """Each constrained task's label logits: over a long text's windows, each label's highest
    (gliner2's ``classify_long`` with ``aggregate="max"``)."""
    joint_tasks = {c.task for c in prompt.schema.constrained.classifications}
    return {task.name: np.max([w[t].logits for w in windows], axis=0)
            for t, task in enumerate(prompt.tasks) if task.kind == "classification" and task.name in joint_tasks}
