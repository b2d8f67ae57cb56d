"""The GLiNER2 engine: prepare (split, tokenize, window) → run (encoder + heads) → decode.

Same three stages as the span engine, so callers batch the rows of many texts and schemas
together (sorted by length) between ``prepare`` and ``run``. A row is one window of one text
with its schema's prompt; its output is every task's scores.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from tokenizers import Tokenizer

from stream.engine.batching import DEFAULT_MAX_ROWS, DEFAULT_MAX_TOKENS, plan_batches
from stream.engine.gliner2.boundary.model import BoundaryModel
from stream.engine.gliner2.boundary.records import record_group
from stream.engine.gliner2.boundary.structures import StructureScores
from stream.engine.gliner2.chunks import CHUNK_OVERLAP, CHUNK_SIZE, merge, windows_of
from stream.engine.gliner2.constrained import RESULT_KEY
from stream.engine.gliner2.constrained import decode as decode_constrained
from stream.engine.gliner2.decode import (
    Options,
    TaskScores,
    class_probabilities,
    constrained_logits,
    decode,
)
from stream.engine.gliner2.export import CONFIG_NAME, ENCODER_NAME, FORMAT, HEADS_NAME
from stream.engine.gliner2.heads import Heads
from stream.engine.gliner2.jointie.boundary import boundary_score_set
from stream.engine.gliner2.jointie.span import span_lattice
from stream.engine.gliner2.jointie.request import RESULT_KEY as JOINT_KEY
from stream.engine.gliner2.jointie.request import decode as decode_joint
from stream.engine.gliner2.jointie.request import merge_windows as merge_joint
from stream.engine.gliner2.overlap import normalize_policy
from stream.engine.gliner2.prompt import Encoded, Prompt, PromptEncoder
from stream.engine.gliner2.schema import EntityType, Schema, parse_schema
from stream.engine.params import DecodeParams
from stream.engine.session import OnnxSession
from stream.engine.types import Entity, Extraction
from stream.errors import InvalidInput, ModelLoadError

__all__ = ["Gliner2Engine", "Gliner2Info", "Gliner2Prepared", "is_gliner2_folder"]


def is_gliner2_folder(path: Path) -> bool:
    return (Path(path) / CONFIG_NAME).is_file()


@dataclass(frozen=True)
class Gliner2Info:
    """What ``/v1/models`` reports (the span engine's ``ModelInfo`` fields, where they apply)."""

    name: str
    path: str
    family: str
    max_width: int
    max_tokens: int
    counting_layer: str
    threads: int
    variant: str = "fp32"
    max_len: int | None = None
    max_types: int | None = None
    int8_agreement: float | None = None


class Row(NamedTuple):
    prompt: Prompt
    enc: Encoded
    text: str
    "The window's text (the whole text when it fits)."


class Gliner2Prepared(NamedTuple):
    text: str
    prompt: Prompt
    rows: tuple[Row, ...]
    offsets: tuple[int, ...]
    "Character offset of each row's window in the text."
    lengths: tuple[int, ...]

    @property
    def windowed(self) -> bool:
        return len(self.rows) > 1

    @property
    def tokens(self) -> int:
        return sum(self.lengths)


class Gliner2Engine:
    family = "gliner2"

    def __init__(self, folder: Path, threads: int | None = None, chunk_size: int = CHUNK_SIZE,
                 chunk_overlap: int = CHUNK_OVERLAP, variant: str = "fp32", cache_dir: str | Path | None = None):
        """``variant='int8'`` derives an int8 encoder (per-channel int8 weights, per-token
        activation scales, so a text scores the same in any batch) at load, cached; the heads
        stay float."""
        folder = Path(folder)
        if not 0 <= chunk_overlap < chunk_size:
            raise ValueError("chunk_overlap must be in [0, chunk_size)")
        self.chunk_size, self.chunk_overlap = chunk_size, chunk_overlap
        try:
            raw = json.loads((folder / CONFIG_NAME).read_text())
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"{folder}: cannot read {CONFIG_NAME}: {exc}") from exc
        if raw.get("format") != FORMAT:
            raise ModelLoadError(f"{folder}: {CONFIG_NAME} is not a {FORMAT} folder; make one with "
                                 "`spanstream export-gliner2 SRC DST`")
        for name in (ENCODER_NAME, HEADS_NAME, "tokenizer.json"):
            if not (folder / name).is_file():
                raise ModelLoadError(f"{folder}: {name} is missing")
        self.architecture = raw.get("architecture", "span")
        self.max_tokens = int(raw.get("max_tokens", 512))
        self.heads: Heads | None = None
        self.boundary: BoundaryModel | None = None
        if self.architecture == "span":
            self.max_width = int(raw["max_width"])
            self.heads = Heads.load(folder / HEADS_NAME, raw["counting_layer"], self.max_width)
        elif self.architecture == "boundary":
            self.max_width = 0  # boundary spans have no width limit
            self.boundary = BoundaryModel.load(folder / HEADS_NAME, raw, threads)
        else:
            raise ModelLoadError(f"{folder}: architecture {self.architecture!r} is not supported (span or boundary)")
        if variant not in ("fp32", "int8", "auto"):
            raise ModelLoadError(f"unknown variant {variant!r}: use auto, fp32 or int8")
        variant = "fp32" if variant == "auto" else variant
        encoder = folder / ENCODER_NAME
        if variant == "int8":
            from stream.engine.quantize import per_token_int8_path

            encoder = per_token_int8_path(encoder, cache_dir)
        self.session = OnnxSession(encoder, ("input_ids", "attention_mask"), ("hidden_states",), threads)
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.prompts = PromptEncoder(self.tokenizer)
        self._prompt_cache: dict[Schema, Prompt] = {}
        self.info = Gliner2Info(name=str(raw.get("name") or folder.name), path=str(folder), family=self.family,
                                max_width=self.max_width, max_tokens=self.max_tokens,
                                counting_layer=raw.get("counting_layer") or self.architecture,
                                threads=self.session.threads,
                                variant=variant)

    # --- prepare --------------------------------------------------------------------------
    def prompt(self, schema: Schema | dict) -> Prompt:
        schema = parse_schema(schema)
        prompt = self._prompt_cache.get(schema)
        if prompt is None:
            if self.boundary is not None:
                _boundary_supports(schema, self.boundary.has_relations, self.boundary.records_refusal)
            prompt = self.prompts.prompt(schema)
            budget = self.max_tokens - len(prompt.ids) - len(prompt.prefix_ids)
            if budget < self.max_tokens // 2:
                raise InvalidInput("schema_too_long", (
                    f"the schema's prompt takes {len(prompt.ids) + len(prompt.prefix_ids)} of the model's "
                    f"{self.max_tokens} tokens; at most {self.max_tokens // 2} leave room for text"))
            if len(self._prompt_cache) > 4096:
                self._prompt_cache.clear()
            self._prompt_cache[schema] = prompt
        return prompt

    def check_schema(self, schema: Schema | dict) -> Schema:
        """Parse and fit-check a schema before any work is queued."""
        return self.prompt(schema).schema

    def check_labels(self, labels: tuple[str, ...]) -> None:
        """A span-engine label set is the schema ``{"entities": labels}``."""
        self.check_schema(_labels_schema(labels))

    def prepare(self, texts: Sequence[str], schemas: Sequence[Schema | dict | tuple[str, ...]]
                ) -> list[Gliner2Prepared]:
        """Schemas, or span-engine label tuples (taken as ``{"entities": labels}``)."""
        out = []
        for text, schema in zip(texts, schemas):
            prompt = self.prompt(_labels_schema(schema) if isinstance(schema, (tuple, list)) else schema)
            enc = self.prompts.encode(prompt, text)
            if len(enc.ids) <= self.max_tokens:
                rows: tuple[Row, ...] = (Row(prompt, enc, text),)
                offsets: tuple[int, ...] = (0,)
            else:
                budget = self.max_tokens - len(prompt.ids) - len(prompt.prefix_ids)
                pieces = windows_of(text, lambda w: len(self.prompts.item_ids(w)), budget, self.chunk_size,
                                    self.chunk_overlap)
                # gliner2's *_long passes max_len = the chunk size (a full window loses the period it
                # appends); its joint extract_long runs plain extract on each chunk (no cap)
                cap = None if prompt.schema.joint is not None else self.chunk_size
                rows = tuple(Row(prompt, self.prompts.encode(prompt, piece, cap), piece) for piece, _ in pieces)
                offsets = tuple(offset for _, offset in pieces)
            out.append(Gliner2Prepared(text, prompt, rows, offsets, tuple(len(r.enc.ids) for r in rows)))
        return out

    # --- run ------------------------------------------------------------------------------
    def feed(self, rows: Sequence[Row]) -> dict[str, np.ndarray]:
        width = max(len(r.enc.ids) for r in rows)
        ids = np.zeros((len(rows), width), dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for i, r in enumerate(rows):
            ids[i, :len(r.enc.ids)] = r.enc.ids
            mask[i, :len(r.enc.ids)] = 1
        return {"input_ids": ids, "attention_mask": mask}

    def run(self, rows: Sequence[Row]) -> list[list[TaskScores]]:
        """One encoder call for the batch, then the heads: counts and count-aware queries for
        every span task of every row at once, span scores per row, classes per task."""
        hidden = self.session.run(self.feed(rows))[0]
        if self.boundary is not None:
            return self._run_boundary(rows, hidden)
        out: list[list[Any]] = [[None] * len(r.prompt.tasks) for r in rows]
        for i, r in enumerate(rows):
            if r.prompt.schema.joint is not None:
                out[i] = [self._joint_lattice(r, hidden[i])]
        span = [(i, t) for i, r in enumerate(rows) for t, task in enumerate(r.prompt.tasks)
                if task.kind != "classification" and r.prompt.schema.joint is None]
        if span:
            counts = self.heads.counts(np.stack([hidden[i, rows[i].prompt.markers[t][0]] for i, t in span])).tolist()
            live = [(i, t, k) for (i, t), k in zip(span, counts) if k > 0]
            for (i, t), k in zip(span, counts):
                if k <= 0:
                    out[i][t] = TaskScores(0, None)
            if live:
                # entities read instance 0 only (and instance 0 does not depend on k)
                steps = [1 if rows[i].prompt.tasks[t].kind == "entities" else k for i, t, k in live]
                queries = self.heads.count_queries_many([hidden[i, rows[i].prompt.markers[t][1:]] for i, t, _ in live],
                                                        steps)
                by_row: dict[int, list[tuple[int, int, np.ndarray]]] = {}
                for (i, t, k), q in zip(live, queries):
                    by_row.setdefault(i, []).append((t, k, q))
                order = list(by_row)
                words = [hidden[i, rows[i].enc.word_first] for i in order]
                starts, ends = self.heads.word_parts(np.concatenate(words))  # every row's words at once
                bounds = np.cumsum([0] + [len(w) for w in words])
                for n, i in enumerate(order):
                    tasks = by_row[i]
                    part = (starts[bounds[n]:bounds[n + 1]], ends[bounds[n]:bounds[n + 1]])
                    flat = np.concatenate([q.reshape(-1, q.shape[-1]) for _, _, q in tasks])
                    logits = self.heads.span_logits(words[n], flat, part)
                    probs = _sigmoid(logits)
                    at = 0
                    for t, k, q in tasks:
                        c, m = q.shape[0], q.shape[1]
                        shape = (c, m, *probs.shape[1:])
                        keep = rows[i].prompt.tasks[t].kind == "entities" and rows[i].prompt.schema.attributes
                        out[i][t] = TaskScores(k, probs[at:at + c * m].reshape(shape),
                                               logits[at:at + c * m].reshape(shape) if keep else None)
                        at += c * m
        for i, r in enumerate(rows):
            for t, task in enumerate(r.prompt.tasks):
                if task.kind == "classification":
                    logits = self.heads.class_logits(hidden[i, r.prompt.markers[t][1:]])
                    out[i][t] = TaskScores(0, class_probabilities(task.spec, logits), logits)
        return out

    def _run_boundary(self, rows: Sequence[Row], hidden: np.ndarray) -> list[list[Any]]:
        """Boundary checkpoints: one boundary-head call for every row's extractive queries (the
        entity, structure-field and relation-role markers' states, in prompt order, as gliner2's
        ``query_marker_indices``: they share one candidate pool), then each task's view of it (a
        structure with a ``mode`` also gets the record head's logits); the classifier for
        classification tasks."""
        assert self.boundary is not None
        out: list[list[Any]] = [[None] * len(r.prompt.tasks) for r in rows]
        layouts: list[list[tuple[int, str, int, int]]] = []
        for r in rows:
            layout, at = [], 0
            for t, task in enumerate(r.prompt.tasks):
                if task.kind != "classification":
                    n = len(r.prompt.markers[t]) - 1
                    layout.append((t, task.kind, at, at + n))
                    at += n
            layouts.append(layout)
        live = [i for i, layout in enumerate(layouts) if layout]
        if live:
            tokens = {i: hidden[i, rows[i].enc.word_first] for i in live}
            queries = {i: hidden[i, np.concatenate([rows[i].prompt.markers[t][1:] for t, *_ in layouts[i]])]
                       for i in live}
            records = any(task.kind == "structure" and task.spec.mode is not None
                          for i in live for task in rows[i].prompt.tasks)
            relations = any(kind == "relation" for i in live for _, kind, *_ in layouts[i])
            scored = self.boundary.score_rows([tokens[i] for i in live], [queries[i] for i in live], records,
                                              relations)
            for i, row in zip(live, scored):
                if (joint := rows[i].prompt.schema.joint) is not None:
                    out[i] = [self._joint_scores(rows[i], layouts[i], row, tokens[i], queries[i], joint)]
                    continue
                for t, kind, q0, q1 in layouts[i]:
                    if kind == "relation":
                        out[i][t] = self.boundary.relation(row, q0, tokens[i], queries[i])
                        continue
                    view = self.boundary.entities(row, q0, q1, tokens[i], queries[i])
                    if kind == "entities":
                        out[i][t] = view
                        continue
                    struct = rows[i].prompt.tasks[t].spec
                    group = record_group(struct, q0) if struct.mode is not None else None
                    out[i][t] = StructureScores(view, group, None if group is None else self.boundary.record_logits(
                        group, row, queries[i]))
        for i, r in enumerate(rows):
            for t, task in enumerate(r.prompt.tasks):
                if task.kind == "classification":
                    logits = self.boundary.class_logits(hidden[i, r.prompt.markers[t][1:]])
                    out[i][t] = TaskScores(0, class_probabilities(task.spec, logits), logits)
        return out

    def _joint_lattice(self, row: Row, hidden: np.ndarray) -> Any:
        """Joint decoding's span lattice of one row (span checkpoints): its caller words, the entity
        task's and each relation's marker states."""
        enc = row.enc
        words = hidden[enc.word_first][enc.n_prefix:enc.n_prefix + enc.n_text]
        entities, relations = None, []
        for t, task in enumerate(row.prompt.tasks):
            marks = hidden[row.prompt.markers[t]]
            if task.kind == "entities":
                entities = (marks, tuple(e.name for e in task.spec))
            elif task.kind == "relation":
                relations.append((task.name, marks))
        assert entities is not None  # a joint schema always has entity types
        return span_lattice(self.heads, row.prompt.schema.joint, words, entities, relations)

    def _joint_scores(self, row: Row, layout, scores, tokens: np.ndarray, queries: np.ndarray, joint) -> Any:
        """Joint decoding's sparse scores of one row: its entity types' and relations' queries."""
        entities, relations = [], []
        for t, kind, q0, _ in layout:
            task = row.prompt.tasks[t]
            if kind == "entities":
                entities += [(e.name, q0 + k) for k, e in enumerate(task.spec)]
            elif kind == "relation":
                relations.append((task.name, q0))
        return boundary_score_set(self.boundary, joint, scores, tokens, queries, entities, relations,
                                  row.enc.n_prefix, row.enc.n_text, row.text)

    # --- decode ---------------------------------------------------------------------------
    def decode(self, prepared: Gliner2Prepared, outputs: Sequence[list[TaskScores]],
               opts: Options | DecodeParams) -> dict | Extraction:
        """gliner2's result; with the span engine's ``DecodeParams`` (a labels request), its
        ``Extraction``: every entity type's spans, each type decoded as gliner2 decodes it."""
        if isinstance(opts, DecodeParams):
            if opts.label_thresholds:  # per-type thresholds live in the schema's entity types
                tasks = tuple(t._replace(spec=tuple(EntityType(e.name, e.description, e.dtype,
                                                               opts.label_thresholds.get(e.name, e.threshold))
                                                    for e in t.spec)) if t.kind == "entities" else t
                              for t in prepared.prompt.tasks)
                prepared = prepared._replace(prompt=prepared.prompt._replace(tasks=tasks))
            found = self.decode(prepared, outputs, Options(opts.threshold, True, True, None))
            entities = [Entity(s["text"], label, s["start"], s["end"], s["confidence"])
                        for label, spans in found.get("entities", {}).items() for s in spans]
            return Extraction(sorted(entities, key=lambda e: (e.start, e.end, e.label)), prepared.windowed)
        if (joint := prepared.prompt.schema.joint) is not None:  # windows merged as gliner2's extract_long
            found = [decode_joint(joint, scores[0], row.text, row.enc.words.starts, row.enc.words.ends)
                     for row, scores in zip(prepared.rows, outputs)]
            result = found[0] if not prepared.windowed else merge_joint(
                joint, prepared.text, list(zip(prepared.offsets, found)))
            return {JOINT_KEY: result.to_dict()}
        if not prepared.windowed:
            return decode(prepared.prompt, prepared.rows[0].enc, prepared.text, outputs[0], opts)
        full = opts._replace(include_confidence=True, include_spans=True)
        results = [decode(prepared.prompt, row.enc, row.text, scores, full, constrained=False)
                   for row, scores in zip(prepared.rows, outputs)]
        scalar = {e.name for e in prepared.prompt.schema.entities if e.dtype != "list"}
        merged = merge(prepared.text, results, list(prepared.offsets), scalar, opts.overlap_policy,
                       opts.include_confidence, opts.include_spans)
        if prepared.prompt.schema.constrained:  # decoded once, on the windows' aggregated logits
            merged[RESULT_KEY] = decode_constrained(prepared.prompt.schema.constrained,
                                                    constrained_logits(prepared.prompt, outputs), prepared.text)
        return merged

    # --- all at once ----------------------------------------------------------------------
    def extract(self, texts: Sequence[str], schema: Schema | dict | Sequence[Schema | dict],
                threshold: float = 0.5, include_confidence: bool = False, include_spans: bool = False,
                overlap_policy: str | None = None, batch_size: int = DEFAULT_MAX_ROWS,
                max_batch_tokens: int | None = DEFAULT_MAX_TOKENS, sort_by_length: bool = True) -> list[dict]:
        """gliner2's ``batch_extract``: one result per text, in gliner2's shape. Rows are batched
        by ``plan_batches`` (sorted by length unless ``sort_by_length`` is off)."""
        texts = list(texts)
        schemas = list(schema) if isinstance(schema, (list, tuple)) else [schema] * len(texts)
        if len(schemas) != len(texts):
            raise ValueError(f"got {len(schemas)} schemas for {len(texts)} texts")
        opts = Options(float(threshold), include_confidence, include_spans, normalize_policy(overlap_policy))
        prepared = self.prepare(texts, schemas)
        rows, lengths, owners = [], [], []
        for t, p in enumerate(prepared):
            for w, r in enumerate(p.rows):
                rows.append(r)
                lengths.append(p.lengths[w])
                owners.append((t, w))
        outputs: list[list[Any]] = [[None] * len(p.rows) for p in prepared]
        for batch in plan_batches(lengths, batch_size, max_batch_tokens, sort_by_length):
            for i, out in zip(batch, self.run([rows[i] for i in batch])):
                t, w = owners[i]
                outputs[t][w] = out
        return [self.decode(p, o, opts) for p, o in zip(prepared, outputs)]


def _boundary_supports(schema: Schema, relations: bool, records_refusal: str | None) -> None:
    """What a boundary checkpoint cannot serve: relations without a relation head, record modes
    where it cannot decode records (``records_refusal`` says why; without a record head gliner2
    returns nothing for them)."""
    if schema.relations and not relations:
        raise InvalidInput("unsupported_schema", "schema.relations: this boundary checkpoint has no relation head "
                                                 "(enable_relations is off)")
    for s in schema.structures:
        if s.mode is not None and records_refusal is not None:
            raise InvalidInput("unsupported_schema", f"schema.structures.{s.name}.mode: on this boundary checkpoint "
                                                     f"{records_refusal}; leave mode out for the one-instance "
                                                     "structure decoder")


def _labels_schema(labels) -> Schema:
    return Schema(entities=tuple(EntityType(label) for label in dict.fromkeys(labels)))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return (1.0 / (1.0 + np.exp(-x))).astype(np.float32)

