"""The training mix: corpus sentences → gliner2 training rows (``{"input", "output"}`` JSONL).

Labels are written as users write them (one paraphrase drawn per row); every NER row asks for the
core types its corpus annotates completely but the row lacks (true negatives); relation, structure
and classification rows come from the relation and classification corpora. A row whose text is in
a zero-shot test set, or shares 8 consecutive words with one, is dropped (counted in the build
report).
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections import Counter
from pathlib import Path

from models.gliner2_recipe import corpora as C
from models.gliner2_recipe import sources as S

SEED = 20261203

NER_NAMES = {
    "PER": ["person", "person name", "people", "name of a person", "individual"],
    "ORG": ["organization", "organisation", "company or institution", "organization name"],
    "LOC": ["location", "place", "geographic location", "place name"],
    "MISC": ["miscellaneous entity", "misc", "other named entity"],
}

# FewRel relations held out of training: relation evaluation asks for exactly these (zero-shot).
HELD_OUT_RELATIONS = ("P177", "P364", "P361", "P641", "P59", "P206", "P155", "P26")

SEMEVAL_NAMES = {  # (name when e1 is head, name when e2 is head)
    "Component-Whole": ("component of", "has component"),
    "Instrument-Agency": ("instrument used by", "uses instrument"),
    "Member-Collection": ("member of collection", "collection has member"),
    "Cause-Effect": ("causes", "caused by"),
    "Entity-Destination": ("moved to", "destination of"),
    "Content-Container": ("contained in", "contains"),
    "Message-Topic": ("is about", "topic of"),
    "Product-Producer": ("produced by", "produces"),
    "Entity-Origin": ("originates from", "origin of"),
}

# Entity types FewRel's training relations imply for their head and tail (only where unambiguous).
ROLE_TYPES = {
    "P413": ("athlete", "position played"), "P2094": ("athlete", "competition class"),
    "P412": ("singer", "voice type"), "P410": ("person", "military rank"), "P25": ("person", "person"),
    "P40": ("person", "person"), "P50": ("book", "writer"), "P161": ("film", "actor"),
    "P162": ("film", "film producer"), "P344": ("film", "cinematographer"), "P272": ("film", "production company"),
    "P509": ("person", "cause of death"), "P414": ("company", "stock exchange"), "P54": ("athlete", "sports team"),
    "P166": ("person", "award"), "P172": ("person", "ethnic group"), "P108": ("person", "employer"),
    "P749": ("company", "parent organization"), "P1056": ("company", "product"),
}

# WebNLG: the entry's DBpedia category names its subject's type; a few predicates type their object.
WEBNLG_TYPES = {"Airport": "airport", "Artist": "artist", "Astronaut": "astronaut", "Athlete": "athlete",
                "Building": "building", "CelestialBody": "celestial body", "City": "city",
                "ComicsCharacter": "comics character", "Food": "food", "MeanOfTransportation": "vehicle",
                "Monument": "monument", "Politician": "politician", "SportsTeam": "sports team",
                "University": "university", "WrittenWork": "written work"}
WEBNLG_OBJECT_TYPES = {"genre": "genre", "instrument": "musical instrument", "recordLabel": "record label",
                       "almaMater": "university", "award": "award", "party": "political party",
                       "country": "country", "nationality": "nationality", "language": None}
# Predicates whose names are (or paraphrase) a held-out FewRel relation: never trained.
WEBNLG_HELD_OUT = {"spouse", "isPartOf", "partOf", "part", "language", "sport", "followedBy", "precededBy",
                   "constellation"}

EMOTION_TASKS = ["emotion", "feeling", "emotion expressed"]
TOPIC_TASKS = ["topic", "news category", "category"]


def _key(words: list[str] | str) -> str:
    text = words if isinstance(words, str) else " ".join(words)
    return re.sub(r"\W+", "", text.lower())


def _dev(key: str) -> bool:
    return int(hashlib.sha1(key.encode()).hexdigest(), 16) % 20 == 0


def _mention(words: list[str], span: C.Span) -> str:
    return " ".join(words[span.start:span.end + 1])


OVERLAP_WORDS = 8


def _grams(text: str) -> set[tuple[str, ...]]:
    words = re.findall(r"\w+", text.lower())
    if len(words) < OVERLAP_WORDS:
        return {tuple(words)} if words else set()
    return {tuple(words[i:i + OVERLAP_WORDS]) for i in range(len(words) - OVERLAP_WORDS + 1)}


class ZeroShotOverlap:
    """Every zero-shot test text (CrossNER's domains and splits, MIT Restaurant, TREC) as runs of
    8 words: a training text sharing one with any of them is dropped — a test sentence inside a
    multi-sentence row or chunk, not only an identical text. (Texts under 8 words: the whole text.)"""

    def __init__(self, texts: list[str]) -> None:
        self.grams = set().union(*(_grams(t) for t in texts))

    @classmethod
    def from_corpora(cls) -> "ZeroShotOverlap":
        texts = []
        for domain in ("ai", "literature", "music", "politics", "science"):
            for split in ("train", "dev", "test"):
                src = S.Source(*S.CROSSNER, f"ner_data/{domain}/{split}.txt", "", "test")
                texts += [" ".join(t.words) for t in C.read_bio(S.read(src))]
        texts += [text for text, _ in C.read_uniner(S.read(S.SOURCES["mit_restaurant"]))]
        texts += [x.text for x in C.read_trec(S.read(S.SOURCES["trec"]))]
        return cls(texts)

    def __call__(self, text: str) -> bool:
        return not self.grams.isdisjoint(_grams(text))


def ner_rows(rng: random.Random, name: str, limit: int):
    """Rows of 1–3 consecutive sentences; (row, dev) pairs."""
    sentences = list(C.read_bio(S.read(S.SOURCES[name])))
    types = {s.label for t in sentences for s in t.spans}
    i = 0
    out = []
    while i < len(sentences) and len(out) < limit:
        k = 1 if name == "wikiann" else rng.choice((1, 2, 3))
        group = sentences[i:i + k]
        i += k
        words: list[str] = []
        spans: list[C.Span] = []
        for t in group:
            spans += [C.Span(s.start + len(words), s.end + len(words), s.label) for s in t.spans]
            words += t.words
        if len(words) > 120 or len(words) < 4:
            continue
        out.append((words, spans, types))
    return out


def ner_row(rng: random.Random, words, spans, types) -> dict:
    names = {t: rng.choice(NER_NAMES[t]) for t in types}
    entities: dict[str, list[str]] = {}
    for t in sorted(types, key=lambda _: rng.random()):
        entities[names[t]] = []
    for s in spans:
        m = _mention(words, s)
        if m not in entities[names[s.label]]:
            entities[names[s.label]].append(m)
    row = {"input": " ".join(words), "output": {"entities": entities}}
    grouped = {t: entities[names[t]] for t in ("PER", "ORG", "LOC") if t in types and entities[names[t]]}
    if len(grouped) >= 2 and rng.random() < 0.25:
        fields = {"PER": rng.choice(["people", "persons", "names"]),
                  "ORG": rng.choice(["organizations", "companies and institutions"]),
                  "LOC": rng.choice(["places", "locations"])}
        row["output"]["json_structures"] = [{rng.choice(["mentions", "named entities", "record"]):
                                             {fields[t]: v for t, v in grouped.items()}}]
    return row


def relation_name(source: str, relation: str, names: dict) -> str:
    """The relation's natural name."""
    if source == "fewrel_semeval":
        base, _, direction = relation.partition("(")
        forward, backward = SEMEVAL_NAMES[base]
        return forward if direction.startswith("e1") else backward
    if source == "fewrel_pubmed":
        return relation.replace("_", " ")
    return names[relation][0]


def relation_rows(rng: random.Random, names: dict):
    rows, dev = [], []
    for source in ("fewrel_wiki", "fewrel_nyt", "fewrel_semeval", "fewrel_pubmed"):
        items = [x for x in C.read_fewrel(S.read(S.SOURCES[source])) if x.relation not in HELD_OUT_RELATIONS]
        all_names = sorted({relation_name(source, x.relation, names) for x in items})
        for x in items:
            rel = relation_name(source, x.relation, names)
            head, tail = _mention(x.words, x.head), _mention(x.words, x.tail)
            out: dict = {"relations": [{rel: {"head": head, "tail": tail}}]}
            if x.relation in ROLE_TYPES and rng.random() < 0.7:
                h, t = ROLE_TYPES[x.relation]
                ents: dict[str, list[str]] = {}
                ents.setdefault(h, []).append(head)
                if tail not in ents.setdefault(t, []):
                    ents[t].append(tail)
                out["entities"] = ents
            if rng.random() < 0.2:
                choices = rng.sample([n for n in all_names if n != rel], min(4, len(all_names) - 1)) + [rel]
                rng.shuffle(choices)
                out["json_structures"] = [{"fact": {"subject": head, "object": tail,
                                                    "relation": {"value": rel, "choices": choices}}}]
            row = {"input": " ".join(x.words), "output": out}
            (dev if _dev(_key(x.words)) else rows).append(row)
    return rows, dev


def webnlg_rows(rng: random.Random, limit: int) -> list[dict]:
    """One row per entry (one of its texts): relations for the triples whose subject and object
    both appear, the subject's type from the entry's category, some objects' types, and for a
    third of them the triples as one record of the category (str fields)."""
    src = S.SOURCES["webnlg"]
    entries = [e for path in S.list_files(src, ".xml")
               for e in C.read_webnlg(S.read(S.Source(src.repo, src.commit, path, src.licence, src.use)))]
    rng.shuffle(entries)
    rows = []
    for e in entries:
        if len(rows) >= limit:
            break
        text = rng.choice(e.texts)
        rels: list[dict] = []
        ents: dict[str, list[str]] = {}
        record: dict[str, str] = {}
        for s, p, o in e.triples:
            if p in WEBNLG_HELD_OUT:
                continue
            head, tail = C.find_mention(text, s), C.find_mention(text, o)
            if head and tail and head.lower() != tail.lower():
                rels.append({C.predicate_words(p): {"head": head, "tail": tail}})
                record.setdefault(C.predicate_words(p), tail)
            if head and e.category in WEBNLG_TYPES and s == e.triples[0][0]:
                ents.setdefault(WEBNLG_TYPES[e.category], [])
                if head not in ents[WEBNLG_TYPES[e.category]]:
                    ents[WEBNLG_TYPES[e.category]].append(head)
            if tail and WEBNLG_OBJECT_TYPES.get(p):
                ents.setdefault(WEBNLG_OBJECT_TYPES[p], [])
                if tail not in ents[WEBNLG_OBJECT_TYPES[p]]:
                    ents[WEBNLG_OBJECT_TYPES[p]].append(tail)
        if not rels:
            continue
        out: dict = {"relations": rels}
        if ents:
            out["entities"] = ents
        subject = C.find_mention(text, e.triples[0][0])
        if record and subject and rng.random() < 0.33 and e.category in WEBNLG_TYPES:
            out["json_structures"] = [{WEBNLG_TYPES[e.category]: {"name": subject, **record}}]
        rows.append({"input": text, "output": out})
    return rows


def classification_rows(rng: random.Random):
    rows = []
    for source, tasks, reader in (("emotion", EMOTION_TASKS, C.read_emotion), ("ag_news", TOPIC_TASKS, C.read_ag_news)):
        items = list(reader(S.read(S.SOURCES[source])))
        labels = sorted({x.label for x in items})
        for x in items:
            rows.append({"input": x.text, "output": {"classifications": [
                {"task": rng.choice(tasks), "labels": labels, "true_label": [x.label]}]}})
    return rows


def legacy_rows(work: Path) -> list[dict]:
    """The first recipe's rows (Wikipedia text labelled by the spaCy teacher, WordNet classes with
    their negatives, faker PII; ``models.recipe.data``) in gliner2's form."""
    from models.recipe.data import build as build_legacy

    train_path, _ = build_legacy(work / "legacy")
    rows = []
    for line in open(train_path):
        row = json.loads(line)
        words = row["tokenized_text"]
        entities: dict[str, list[str]] = {}
        for s, e, label in row["ner"]:
            mention = " ".join(words[s:e + 1])
            if mention not in entities.setdefault(label, []):
                entities[label].append(mention)
        for label in row.get("ner_negatives", []):
            entities.setdefault(label, [])
        rows.append({"input": " ".join(words), "output": {"entities": entities}})
    return rows


def build(work: Path, limits: dict[str, int] | None = None) -> dict:
    """Writes ``train.jsonl``, ``dev.jsonl`` (gliner2 rows) and ``dev_ner.jsonl`` (gold spans for
    threshold choice); returns the build report (counts per source, overlap with test sets)."""
    # Session 12: fewer four-type rows, every first-recipe row (WordNet classes: many types per
    # text), WebNLG on (15 categories, its relation types); see EXPERIMENTS.md.
    limits = {"conll2003": 1500, "wikiann": 1200, "wikineural_val": 2500, "wikineural_test": 2500,
              "wikigold": 1000, "legacy": 20000, "relations": 6000, "webnlg": 6000, "emotion": 2000,
              "ag_news": 600, **(limits or {})}
    rng = random.Random(SEED)
    work.mkdir(parents=True, exist_ok=True)
    in_tests = ZeroShotOverlap.from_corpora()
    report: Counter = Counter()

    def clean(rows: list[dict], name: str) -> list[dict]:
        kept = [r for r in rows if not in_tests(r["input"])]
        if len(kept) < len(rows):
            report[f"dropped (overlaps a test set): {name}"] += len(rows) - len(kept)
        return kept

    train, dev, dev_ner = [], [], []
    for name in ("conll2003", "wikiann", "wikineural_val", "wikineural_test", "wikigold"):
        for words, spans, types in ner_rows(rng, name, limits[name]):
            key = _key(words)
            if in_tests(" ".join(words)):
                report[f"dropped (overlaps a test set): {name}"] += 1
                continue
            row = ner_row(rng, words, spans, types)
            if _dev(key):
                dev.append(row)
                dev_ner.append({"words": words, "spans": [list(s) for s in spans], "source": name})
            else:
                train.append(row)
                report[name] += 1
    legacy = clean(legacy_rows(work), "legacy")[:limits["legacy"]]
    train += legacy
    report["legacy (teacher, WordNet, PII)"] = len(legacy)
    names = json.loads(S.read(S.SOURCES["fewrel_names"]))
    rel_train, rel_dev = relation_rows(rng, names)
    rng.shuffle(rel_train)
    rel_train = clean(rel_train, "relations")[:limits["relations"]]
    train += rel_train
    dev += clean(rel_dev, "relations (dev)")[:500]
    report["relations"] = len(rel_train)
    if limits["webnlg"]:  # off in the session-11 run
        web = clean(webnlg_rows(random.Random(SEED + 1), limits["webnlg"]), "webnlg")
        train += web
        report["webnlg"] = len(web)
    cls = clean(classification_rows(rng), "classification")
    emotion = [r for r in cls if r["output"]["classifications"][0]["task"] in EMOTION_TASKS][:limits["emotion"]]
    topic = [r for r in cls if r["output"]["classifications"][0]["task"] in TOPIC_TASKS][:limits["ag_news"]]
    train += emotion + topic
    report["emotion"], report["ag_news"] = len(emotion), len(topic)
    rng.shuffle(train)
    for path, rows in (("train.jsonl", train), ("dev.jsonl", dev), ("dev_ner.jsonl", dev_ner)):
        with open(work / path, "w") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    report["train rows"], report["dev rows"], report["dev ner rows"] = len(train), len(dev), len(dev_ner)
    (work / "build.json").write_text(json.dumps(dict(report), indent=1))
    return dict(report)
