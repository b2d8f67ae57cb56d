"""The GLiNER2 prompt: a schema's tasks and a text as one sub-word sequence.

Mirrors gliner2's ``SchemaTransformer`` (inference mode). Each task is ``( [P] prompt ( [M] f1
[M] f2 … ) )`` with M = ``[C]`` structure fields, ``[E]`` entity types, ``[R]`` relation
head/tail, ``[L]`` classification labels; tasks in the order structures, entities, relations,
classifications, joined by ``[SEP_STRUCT]``, then ``[SEP_TEXT]`` and the text's lower-cased words.
Choice fields put ``( parent: field ( c1 | c2 ) )`` before the words. Every item is tokenized on
its own without special tokens ([CLS]/[SEP] are not used); a word is pooled at its first sub-word,
and each task contributes the embeddings at its ``[P]`` and marker positions.

Deliberate differences from gliner2 (``tests/engine/gliner2`` names the cases):
- a word that yields no sub-word (a lone U+FFFD or control character) is dropped, as in the span
  engine, where gliner2 aliases it to the next word's first sub-word;
- gliner2 appends "." to a text that does not end in ``.!?`` (and uses "." for an empty text);
  the model sees the same sequence here, but spans never include that word, so every offset
  indexes the caller's text.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import numpy as np
from tokenizers import Tokenizer

from stream.engine.gliner2.schema import (
    Classification,
    EntityType,
    RelationType,
    Schema,
    Structure,
)
from stream.engine.gliner2.words import split_words
from stream.engine.types import Words

SEP_STRUCT, SEP_TEXT, P, C, E, R, L = "[SEP_STRUCT]", "[SEP_TEXT]", "[P]", "[C]", "[E]", "[R]", "[L]"
DESC, EXAMPLE, OUTPUT = "[DESCRIPTION]", "[EXAMPLE]", "[OUTPUT]"


class Task(NamedTuple):
    """One task of a schema, as the model sees it."""

    kind: str
    "'structure' | 'entities' | 'relation' | 'classification'"
    name: str
    "Result key: the structure, 'entities', the relation or the classification task."
    fields: tuple[str, ...]
    "Field / entity type / ('head', 'tail') / label names, in marker order."
    tokens: tuple[str, ...]
    "The task's prompt items (each tokenized on its own)."
    spec: object
    "The schema part it came from."


def _task_tokens(prompt: str, fields: tuple[str, ...], marker: str) -> tuple[str, ...]:
    out = ["(", P, prompt, "("]
    for f in fields:
        out += [marker, f]
    return tuple(out + [")", ")"])


def _described(prompt: str, fields: tuple[str, ...], descriptions: list[tuple[str, str]]) -> str:
    for label, desc in descriptions:
        if label in fields:
            prompt += f" {DESC} {label}: {desc}"
    return prompt


def structure_task(s: Structure) -> Task:
    fields = tuple(f.name for f in s.fields)
    prompt = _described(s.name, fields, [(f.name, f.description) for f in s.fields if f.description])
    return Task("structure", s.name, fields, _task_tokens(prompt, fields, C), s)


def entities_task(entities: tuple[EntityType, ...]) -> Task:
    fields = tuple(e.name for e in entities)
    prompt = _described("entities", fields, [(e.name, e.description) for e in entities if e.description is not None])
    return Task("entities", "entities", fields, _task_tokens(prompt, fields, E), entities)


def relation_task(r: RelationType) -> Task:
    prompt = f"{r.name}: {r.description}" if r.description else r.name
    return Task("relation", r.name, ("head", "tail"), _task_tokens(prompt, ("head", "tail"), R), r)


def classification_task(c: Classification) -> Task:
    prompt = f"{c.task}: {c.prompt}" if c.prompt else c.task
    prompt = _described(prompt, c.labels, list(c.label_descriptions))
    for inp, out in c.examples:
        if out in c.labels:
            prompt += f" {EXAMPLE} {inp} {OUTPUT} {out}"
    return Task("classification", c.task, c.labels, _task_tokens(prompt, c.labels, L), c)


def schema_tasks(schema: Schema) -> tuple[Task, ...]:
    """Tasks in gliner2's prompt order: structures, entities, relations, classifications."""
    tasks = [structure_task(s) for s in schema.structures]
    if schema.entities:
        tasks.append(entities_task(schema.prompt_entities))
    tasks += [relation_task(r) for r in schema.relations]
    tasks += [classification_task(c) for c in schema.classifications]
    return tuple(tasks)


def choice_prefix(schema: Schema) -> tuple[str, ...]:
    """``( parent: field ( c1 | c2 ) , field2 ( … ) )`` for every structure with choice fields:
    words placed before the text, scored by the choice fields."""
    out: list[str] = []
    for s in schema.structures:
        inner: list[str] = []
        for f in s.fields:
            if f.choices:
                choices: list[str] = []
                for i, c in enumerate(f.choices):
                    choices += (["|"] if i else []) + [c]
                inner += [f.name, "(", *choices, ")", ","]
        if inner:
            out += ["(", f"{s.name}:", *inner[:-1], ")"]
    return tuple(out)


def normalized_text(text: str) -> str:
    """gliner2's ``_normalize_text``: the model always sees a text ending in ``.!?``."""
    if not text:
        return "."
    return text if text.endswith((".", "!", "?")) else text + "."


class Prompt(NamedTuple):
    """A schema's prompt, tokenized once and reused for every text with that schema."""

    schema: Schema
    tasks: tuple[Task, ...]
    prefix: tuple[str, ...]
    "Choice words placed before the text."
    ids: np.ndarray
    "Sub-word ids of the tasks, separators and ``[SEP_TEXT]``."
    markers: tuple[np.ndarray, ...]
    "Per task: sub-word positions of ``[P]`` then of each field marker."
    prefix_ids: np.ndarray
    prefix_first: np.ndarray
    "First sub-word position (relative to the prefix) of each prefix word."


class Encoded(NamedTuple):
    """A text ready for the encoder: its words, sub-word ids and pooling positions."""

    words: Words
    "The caller's words (the synthetic final period excluded)."
    ids: np.ndarray
    "int64 [tokens]: prompt, prefix, text sub-words."
    word_first: np.ndarray
    "int64 [prefix words + text words (+ synthetic period)]: first sub-word of each word."
    n_prefix: int
    n_text: int
    "Words of the caller's text (the model may see one more: gliner2's appended period)."


class PromptEncoder:
    """Tokenizes prompt items and words exactly as gliner2's ``tokenizer.tokenize(item)``."""

    def __init__(self, tokenizer: Tokenizer):
        self.tokenizer = tokenizer
        self._item = lru_cache(maxsize=65536)(self._encode_item)

    def _encode_item(self, item: str) -> tuple[int, ...]:
        return tuple(self.tokenizer.encode(item, add_special_tokens=False).ids)

    def item_ids(self, item: str) -> tuple[int, ...]:
        return self._item(item)

    def prompt(self, schema: Schema) -> Prompt:
        tasks = schema_tasks(schema)
        ids: list[int] = []
        markers = []
        for t, task in enumerate(tasks):
            if t:
                ids += self._item(SEP_STRUCT)
            positions = []
            for k, item in enumerate(task.tokens):
                if k == 1 or (4 <= k < len(task.tokens) - 2 and k % 2 == 0):
                    positions.append(len(ids))
                ids += self._item(item)
            markers.append(np.asarray(positions, dtype=np.int64))
        ids += self._item(SEP_TEXT)
        prefix = choice_prefix(schema)
        prefix_ids, prefix_first = self._words(prefix)
        return Prompt(schema, tasks, prefix, np.asarray(ids, dtype=np.int64), tuple(markers),
                      prefix_ids, prefix_first)

    def _words(self, words) -> tuple[np.ndarray, np.ndarray]:
        ids: list[int] = []
        first: list[int] = []
        for w in words:
            first.append(len(ids))
            ids += self._item(w)
        return np.asarray(ids, dtype=np.int64), np.asarray(first, dtype=np.int64)

    def encode(self, prompt: Prompt, text: str, max_words: int | None = None) -> Encoded:
        """Split the normalized text (as gliner2 does, so a URL that swallows the added period
        is one word), keep the words that start inside the caller's text, clip their ends to it.
        ``max_words`` caps the words the model sees (gliner2's ``max_len``: a full window loses
        the appended period)."""
        limit = len(text)
        split = split_words(normalized_text(text))
        if max_words is not None and len(split.words) > max_words:
            split = Words(split.words[:max_words], split.starts[:max_words], split.ends[:max_words])
        kept_words, starts, ends = [], [], []
        ids: list[int] = []
        first: list[int] = []
        for w, s, e in zip(split.words, split.starts, split.ends):
            sub = self._item(w.lower())
            if not sub:
                continue
            first.append(len(ids))
            ids += sub
            if s >= limit:  # the appended period: seen by the model, never part of a span
                continue
            kept_words.append(w)
            starts.append(s)
            ends.append(min(e, limit))
        base = len(prompt.ids)
        all_ids = np.concatenate([prompt.ids, prompt.prefix_ids, np.asarray(ids, dtype=np.int64)])
        word_first = np.concatenate([base + prompt.prefix_first,
                                     base + len(prompt.prefix_ids) + np.asarray(first, dtype=np.int64)])
        return Encoded(Words(kept_words, starts, ends), all_ids, word_first, len(prompt.prefix), len(kept_words))
