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

# Science and biomedical corpora: each corpus's types → names a user writes (types not listed are
# not asked, so their spans are neither positives nor negatives).
SCIENCE_NAMES = {
    "bionlp13cg": {
        "Gene_or_gene_product": ["gene or gene product", "gene", "protein"], "Cell": ["cell", "cell type"],
        "Cancer": ["cancer", "type of cancer", "tumor"], "Simple_chemical": ["chemical", "chemical compound"],
        "Organism": ["organism", "species"], "Multi-tissue_structure": ["anatomical structure", "body structure"],
        "Tissue": ["tissue"], "Cellular_component": ["cellular component", "cell component"],
        "Organ": ["organ", "body organ"], "Organism_substance": ["bodily substance", "body fluid or substance"],
        "Pathological_formation": ["pathological formation", "lesion"], "Amino_acid": ["amino acid"],
        "Anatomical_system": ["anatomical system", "organ system"]},
    "bc5cdr": {"Chemical": ["chemical", "drug", "chemical compound"],
               "Disease": ["disease", "medical condition", "illness"]},
    "jnlpba": {"protein": ["protein"], "DNA": ["DNA", "DNA sequence"], "RNA": ["RNA", "RNA molecule"],
               "cell_type": ["cell type"], "cell_line": ["cell line"]},
    "bionlp11id": {"Protein": ["protein"], "Organism": ["organism", "species"], "Chemical": ["chemical"]},
    "ncbi_disease": {"Disease": ["disease", "disorder", "medical condition"]},
    "linnaeus": {"Species": ["species", "organism", "species name"]},
}

# Few-TK tags are "<field>-<kind>": the kind is asked in most rows, "<field> <kind>" in a third.
FEWTK_KINDS = {
    "focus": ["research problem", "task", "research focus"], "technique": ["technique", "method"],
    "algorithm/tool": ["algorithm", "algorithm or tool", "method or tool"],
    "domain": ["field", "research field", "domain"], "material": ["resource", "material"],
    "dataset": ["dataset", "data set"], "metrics": ["metric", "evaluation metric"],
    "term": ["technical term", "scientific term", "concept"], "result": ["numerical result", "result"],
}
FEWTK_FIELDS = {"AI/ML/DL": "machine learning", "Computer/vision": "computer vision",
                "Computer/Vision": "computer vision", "NLP": "natural language processing",
                "Data/Mining/Information/Retrieval": "information retrieval",
                "Statistical/Mathematical": "statistical", "Classification": "classification",
                "Regression": "regression", "Ranking": "ranking"}

SCIERC_TYPES = {"Task": ["task", "research task"], "Method": ["method", "technique", "algorithm or method"],
                "Metric": ["metric", "evaluation metric"], "Material": ["material", "dataset or resource", "data"],
                "OtherScientificTerm": ["scientific term", "technical term", "concept"]}
# PART-OF is held out (FewRel's held-out "part of"); CONJUNCTION is not a relation users ask for.
SCIERC_RELATIONS = {"USED-FOR": ["used for"], "FEATURE-OF": ["feature of", "property of"],
                    "HYPONYM-OF": ["type of", "is a kind of"], "EVALUATE-FOR": ["evaluated for", "evaluates"],
                    "COMPARE": ["compared with", "compared to"]}

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

# Session 21: a share of the entity-only rows is written as a search query is typed (lower case, no
# punctuation tokens): the corpora are edited prose, users also send queries and chat.
QUERY_STYLE_SHARE = 0.2

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


def query_words(words: list[str]) -> tuple[list[str], list[int | None]]:
    """Words as a query is typed: lower case, tokens that are only punctuation dropped. Returns the
    new words and, per old word, its new index (None when dropped)."""
    out: list[str] = []
    where: list[int | None] = []
    for w in words:
        if re.fullmatch(r"[^\w]+", w):
            where.append(None)
            continue
        where.append(len(out))
        out.append(w.lower())
    return out, where


def query_style(row: dict) -> dict | None:
    """An entity-only row rewritten by ``query_words`` (text and every mention alike); None when a
    mention does not survive as words of the new text."""
    text = " ".join(query_words(row["input"].split(" "))[0])
    entities: dict[str, list[str]] = {}
    padded = f" {text} "
    for label, mentions in row["output"]["entities"].items():
        kept = entities.setdefault(label, [])
        for m in mentions:
            q = " ".join(query_words(m.split(" "))[0])
            if not q or f" {q} " not in padded:
                return None
            if q not in kept:
                kept.append(q)
    return {"input": text, "output": {"entities": entities}}


def ner_rows(rng: random.Random, name: str, limit: int, sentences: list[C.Tagged] | None = None):
    """Rows of 1–3 consecutive sentences as (words, spans, the corpus's types). Science corpora: a
    tenth of their sentences without any span are kept, one sentence a row (abstracts are mostly
    sentences with spans; the rest would teach little but silence)."""
    sentences = sentences if sentences is not None else list(C.read_bio(S.read(S.SOURCES[name])))
    types = {s.label for t in sentences for s in t.spans}
    sparse = name in SCIENCE_NAMES
    i = 0
    out = []
    while i < len(sentences) and len(out) < limit:
        k = 1 if name in ("wikiann", "fewtk") else rng.choice((1, 2, 3))
        if sparse and not sentences[i].spans:
            k = 1
            if rng.random() >= 0.1:
                i += 1
                continue
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


def ner_row(rng: random.Random, words, spans, types, table: dict[str, list[str]] = NER_NAMES) -> dict:
    """Every type of the corpus asked (those the row lacks are its negatives), one name each."""
    names = {t: rng.choice(table[t]) for t in types if t in table}
    entities: dict[str, list[str]] = {}
    for t in sorted(names, key=lambda _: rng.random()):
        entities.setdefault(names[t], [])
    for s in spans:
        if s.label not in names:
            continue
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


def fewtk_rows(rng: random.Random, limit: int) -> list[dict]:
    """Few-TK (every split: it is not a test set here): typed keyphrases of AI papers. Rows ask the
    kinds present plus three absent ones; a third ask "<field> <kind>" types ("machine learning
    algorithm") with three absent ones of the same form."""
    sentences = [t for split in ("train", "dev", "test")
                 for t in C.read_io(S.read(S.SOURCES["fewtk"], split=split))]
    fine_types = sorted({_fewtk_fine(s.label) for t in sentences for s in t.spans} - {None})
    rows = []
    for words, spans, _ in ner_rows(rng, "fewtk", limit, sentences):
        if rng.random() < 1 / 3:
            fine = {s.label: _fewtk_fine(s.label) for s in spans if _fewtk_fine(s.label)}
            if fine:
                absent = [f for f in fine_types if f not in fine.values()]
                entities: dict[str, list[str]] = {f: [] for f in rng.sample(absent, min(3, len(absent)))}
                for s in spans:
                    if s.label in fine and _mention(words, s) not in entities.setdefault(fine[s.label], []):
                        entities[fine[s.label]].append(_mention(words, s))
                rows.append({"input": " ".join(words), "output": {"entities": dict(
                    sorted(entities.items(), key=lambda _: rng.random()))}})
                continue
        present = {s.label.rpartition("-")[2] for s in spans}
        absent = [k for k in FEWTK_KINDS if k not in present]
        kinds = sorted(present | set(rng.sample(absent, min(3, len(absent)))), key=lambda _: rng.random())
        table = {k: FEWTK_KINDS[k] for k in kinds}
        kind_spans = [C.Span(s.start, s.end, s.label.rpartition("-")[2]) for s in spans]
        rows.append(ner_row(rng, words, kind_spans, kinds, table))
    return rows


def _fewtk_fine(tag: str) -> str | None:
    field, _, kind = tag.rpartition("-")
    return f"{FEWTK_FIELDS[field]} {FEWTK_KINDS[kind][0]}" if field in FEWTK_FIELDS and kind in FEWTK_KINDS else None


def scierc_rows(rng: random.Random, limit: int) -> list[dict]:
    """SciERC (every split): its five entity types and the relations between them ("Generic"
    mentions such as "it" or "method" are not asked, nor relations that involve them)."""
    items = [x for split in ("train", "dev", "test") for x in C.read_scierc(S.read(S.SOURCES["scierc"], split=split))]
    rng.shuffle(items)
    rows = []
    for x in items[:limit]:
        row = ner_row(rng, x.words, x.spans, list(SCIERC_TYPES), SCIERC_TYPES)
        rels = [{rng.choice(SCIERC_RELATIONS[label]): {"head": _mention(x.words, h), "tail": _mention(x.words, t)}}
                for h, t, label in x.relations
                if label in SCIERC_RELATIONS and h.label in SCIERC_TYPES and t.label in SCIERC_TYPES]
        if rels:
            row["output"]["relations"] = rels
        rows.append(row)
    return rows


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
    # Session 14: science and biomedical NER, Few-TK and SciERC (the concept types CrossNER's AI and
    # science domains ask for) in place of part of the four-type and relation rows.
    # Session 18: both — session 12's four-type, relation and WebNLG rows back (their cut cost
    # coarse-type quality) beside session 14's concept-type corpora, and more steps to see them.
    # Session 21: session 18's mix with a fifth of its entity-only rows in query style (QUERY_STYLE_SHARE).
    limits = {"conll2003": 1500, "wikiann": 1200, "wikineural_val": 2500, "wikineural_test": 2500,
              "wikigold": 1000, "bionlp13cg": 2000, "bc5cdr": 1200, "jnlpba": 800, "bionlp11id": 500,
              "ncbi_disease": 500, "linnaeus": 400, "fewtk": 5000, "scierc": 3000,
              "legacy": 20000, "relations": 6000, "webnlg": 6000, "emotion": 2000, "ag_news": 600,
              **(limits or {})}
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
    for name in SCIENCE_NAMES:
        rows = [ner_row(rng, words, spans, types, SCIENCE_NAMES[name])
                for words, spans, types in ner_rows(rng, name, limits[name])]
        rows = clean(rows, name)
        train += rows
        report[name] = len(rows)
    for name, make in (("fewtk", fewtk_rows), ("scierc", scierc_rows)):
        rows = clean(make(rng, limits[name]), name)
        dev += [r for r in rows if _dev(_key(r["input"]))]
        rows = [r for r in rows if not _dev(_key(r["input"]))]
        train += rows
        report[name] = len(rows)
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
    queries = random.Random(SEED + 2)
    for i, row in enumerate(train):
        if set(row["output"]) == {"entities"} and queries.random() < QUERY_STYLE_SHARE:
            rewritten = query_style(row)
            if rewritten is not None:
                train[i] = rewritten
                report["query style (rewritten in place)"] += 1
    rng.shuffle(train)
    for path, rows in (("train.jsonl", train), ("dev.jsonl", dev), ("dev_ner.jsonl", dev_ner)):
        with open(work / path, "w") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    report["train rows"], report["dev rows"], report["dev ner rows"] = len(train), len(dev), len(dev_ner)
    (work / "build.json").write_text(json.dumps(dict(report), indent=1))
    return dict(report)
