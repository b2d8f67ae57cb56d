"""Pure readers: corpus file text → typed sentences (no I/O here; ``sources.read`` supplies the text)."""

from __future__ import annotations

import csv
import io
import json
from typing import Iterator, NamedTuple


class Span(NamedTuple):
    start: int   # first word
    end: int     # last word (inclusive)
    label: str


class Tagged(NamedTuple):
    words: list[str]
    spans: list[Span]


class RelationSentence(NamedTuple):
    words: list[str]
    head: Span       # label = "head"
    tail: Span
    relation: str    # the corpus's relation id (P-number or SemEval name)


class Labelled(NamedTuple):
    text: str
    label: str


def read_bio(text: str) -> Iterator[Tagged]:
    """CoNLL-style BIO: one word a line (``idx<TAB>word<TAB>tag`` or ``word<TAB>tag``), blank lines
    between sentences. IOB1 is read too (an ``I-`` after another type starts a span)."""
    words: list[str] = []
    tags: list[str] = []
    for line in text.splitlines() + [""]:
        line = line.rstrip("\n")
        if not line.strip():
            if words:
                yield Tagged(words, _spans(tags))
            words, tags = [], []
            continue
        if line.startswith("-DOCSTART-") or line.startswith("#"):
            continue
        parts = line.split("\t") if "\t" in line else line.split()
        words.append(parts[-2])
        tags.append(parts[-1])


def _spans(tags: list[str]) -> list[Span]:
    spans, start, label = [], None, None
    for i, tag in enumerate(tags + ["O"]):
        kind, _, typ = tag.partition("-")
        begins = kind == "B" or (kind == "I" and typ != label)
        if start is not None and (kind == "O" or begins):
            spans.append(Span(start, i - 1, label))
            start, label = None, None
        if begins:
            start, label = i, typ
    return spans


def read_fewrel(text: str) -> Iterator[RelationSentence]:
    """FewRel JSON: {relation: [{tokens, h: [name, id, [[positions]]], t: [...]}]}; the first mention
    of head and tail, as contiguous word ranges."""
    for relation, items in json.loads(text).items():
        for item in items:
            head = item["h"][2][0]
            tail = item["t"][2][0]
            if head != list(range(head[0], head[-1] + 1)) or tail != list(range(tail[0], tail[-1] + 1)):
                continue
            yield RelationSentence(item["tokens"], Span(head[0], head[-1], "head"),
                                   Span(tail[0], tail[-1], "tail"), relation)


def read_ag_news(text: str) -> Iterator[Labelled]:
    names = {"1": "world", "2": "sports", "3": "business", "4": "science and technology"}
    for row in csv.reader(io.StringIO(text)):
        if len(row) == 3 and row[0] in names:
            yield Labelled(f"{row[1]}. {row[2]}".replace("\\", " "), names[row[0]])


def read_emotion(text: str) -> Iterator[Labelled]:
    for line in text.splitlines()[1:]:
        body, _, label = line.rpartition(";")
        if body and label:
            yield Labelled(body, label)


TREC_COARSE = {"ABBR": "abbreviation", "DESC": "description", "ENTY": "entity", "HUM": "human",
               "LOC": "location", "NUM": "numeric value"}


def read_trec(text: str) -> Iterator[Labelled]:
    for line in text.splitlines():
        tag, _, question = line.partition(" ")
        coarse = tag.split(":")[0]
        if coarse in TREC_COARSE and question:
            yield Labelled(question.strip(), TREC_COARSE[coarse])


def read_uniner(text: str) -> Iterator[tuple[str, dict[str, list[str]]]]:
    """UniversalNER evaluation JSON (one conversation per text × type) → (text, {type: [mentions]})."""
    texts: dict[str, dict[str, list[str]]] = {}
    for item in json.loads(text):
        turns = item["conversations"]
        body = turns[0]["value"].removeprefix("Text: ")
        for ask, answer in zip(turns[2::2], turns[3::2]):
            label = ask["value"].removeprefix("What describes ").removesuffix(" in the text?")
            texts.setdefault(body, {}).setdefault(label, []).extend(json.loads(answer["value"]))
    yield from texts.items()
