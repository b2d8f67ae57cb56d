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


class Verbalised(NamedTuple):
    """A WebNLG entry: RDF triples about one DBpedia entity and texts that say them."""

    category: str
    triples: list[tuple[str, str, str]]   # (subject, predicate, object), DBpedia names
    texts: list[str]


class Annotated(NamedTuple):
    """A sentence with typed spans and typed relations between them (SciERC)."""

    words: list[str]
    spans: list[Span]
    relations: list[tuple[Span, Span, str]]   # (head, tail, relation type)


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


def read_io(text: str) -> Iterator[Tagged]:
    """IO tags (``word<TAB>type`` or ``O``; no B-, so a span is a run of one type), blank lines
    between sentences (Few-TK)."""
    words: list[str] = []
    tags: list[str] = []
    for line in text.splitlines() + [""]:
        if not line.strip():
            if words:
                yield Tagged(words, _io_spans(tags))
            words, tags = [], []
            continue
        parts = line.split("\t")
        if len(parts) < 2:
            continue
        words.append(parts[0])
        tags.append(parts[-1].strip())


def _io_spans(tags: list[str]) -> list[Span]:
    spans, start = [], None
    for i, tag in enumerate(tags + ["O"]):
        if start is not None and tag != tags[start]:
            spans.append(Span(start, i - 1, tags[start]))
            start = None
        if start is None and tag != "O" and i < len(tags):
            start = i
    return spans


PTB_BRACKETS = {"-LRB-": "(", "-RRB-": ")", "-LSB-": "[", "-RSB-": "]", "-LCB-": "{", "-RCB-": "}"}


def read_scierc(text: str) -> Iterator[Annotated]:
    """DyGIE-style JSON lines (one document a line: ``sentences``, ``ner``, ``relations`` per
    sentence, word indices counted over the whole document) → one sentence each, indices local."""
    for line in text.splitlines():
        if not line.strip():
            continue
        doc = json.loads(line)
        offset = 0
        for words, ner, rels in zip(doc["sentences"], doc["ner"], doc.get("relations") or [[]] * len(doc["sentences"])):
            spans = {(s - offset, e - offset): Span(s - offset, e - offset, label) for s, e, label in ner}
            relations = []
            for hs, he, ts, te, label in rels:
                head, tail = spans.get((hs - offset, he - offset)), spans.get((ts - offset, te - offset))
                if head and tail:
                    relations.append((head, tail, label))
            yield Annotated([PTB_BRACKETS.get(w, w) for w in words], list(spans.values()), relations)
            offset += len(words)


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


def read_webnlg(text: str) -> Iterator[Verbalised]:
    """WebNLG XML (``<entry category=...>`` with ``<mtriple>s | p | o</mtriple>`` and ``<lex>``)."""
    import xml.etree.ElementTree as ET

    for entry in ET.fromstring(text).iter("entry"):
        triples = []
        for t in entry.iter("mtriple"):
            parts = [p.strip() for p in (t.text or "").split("|")]
            if len(parts) == 3 and all(parts):
                triples.append((parts[0], parts[1], parts[2]))
        texts = [lex.text.strip() for lex in entry.iter("lex") if lex.text and lex.text.strip()]
        if triples and texts:
            yield Verbalised(entry.get("category", ""), triples, texts)


def dbpedia_name(value: str) -> list[str]:
    """How a DBpedia name may appear in text, longest first: underscores as spaces, quotes
    dropped, and the part before a disambiguating comma or parenthesis."""
    name = value.strip().strip('"').replace("_", " ").strip()
    out = [name]
    for sep in (" (", ","):
        if sep in name:
            out.append(name.split(sep)[0].strip())
    return [n for n in dict.fromkeys(out) if len(n) > 1]


def find_mention(text: str, value: str) -> str | None:
    """The text's own spelling of a DBpedia name (case-insensitive, on word bounds, periods
    optional), if it is there."""
    import re

    for name in dbpedia_name(value):
        pattern = re.escape(name).replace(r"\.", r"\.?")  # "Aaron S. Daggett" is also written "Aaron S Daggett"
        m = re.search(rf"(?<!\w){pattern}(?!\w)", text, flags=re.IGNORECASE)
        if m:
            return m.group(0)
    return None


def predicate_words(predicate: str) -> str:
    """``birthPlace`` → ``birth place``."""
    import re

    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", predicate).replace("_", " ").lower().strip()
