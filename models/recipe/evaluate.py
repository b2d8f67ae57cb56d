"""Evaluation tables for the model card (needs the `export` extra for the baselines).

    python -m models.recipe.evaluate [MODEL_DIR]

1. Teacher agreement: held-out dev split of the spaCy-labelled Wikipedia text (never trained on),
   micro-F1 per core type (person, organization, location, date).
2. Zero-shot gold set (``eval/zeroshot_gold.txt``): F1 per type, seen vs unseen types.
Baselines: spaCy en_core_web_md (with a label mapping where one exists) and the untrained
checkpoint (same architecture, encoder pretrained, span head random). The decision threshold is
chosen on the dev split only. A paired bootstrap over the gold sentences says whether the margin
over spaCy is more than the gold set's size can resolve.
"""

from __future__ import annotations

import json
import os
import random
import re
import sys
from collections import defaultdict
from pathlib import Path

from models.recipe.labels import CORE_TYPES, UNSEEN_TYPES

HERE = Path(__file__).resolve().parent
GOLD = HERE / "eval" / "zeroshot_gold.txt"
SPACY_MAP = {"PERSON": "person", "ORG": "organization", "DATE": "date"}  # GPE: city/country, see below


def parse_gold(path: Path = GOLD) -> list[tuple[str, list[tuple[int, int, str]]]]:
    out = []
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        text, spans, pos = "", [], 0
        for m in re.finditer(r"\[([^\]]+)\]\(([^)]+)\)", line):
            text += line[pos:m.start()]
            spans.append((len(text), len(text) + len(m.group(1)), m.group(2)))
            text += m.group(1)
            pos = m.end()
        text += line[pos:]
        out.append((text, spans))
    return out


def prf(tp: int, fp: int, fn: int) -> dict:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0, "support": tp + fn}


def score(gold: list[set], pred: list[set], types: list[str]) -> dict:
    counts = defaultdict(lambda: [0, 0, 0])
    for g, p in zip(gold, pred):
        for t in types:
            gt = {x for x in g if x[2] == t}
            pt = {x for x in p if x[2] == t}
            counts[t][0] += len(gt & pt)
            counts[t][1] += len(pt - gt)
            counts[t][2] += len(gt - pt)
    table = {t: prf(*counts[t]) for t in types}
    table["micro"] = prf(*(sum(counts[t][i] for t in types) for i in range(3)))
    return table


def macro_f1(table: dict, types: list[str]) -> float:
    return sum(table[t]["f1"] for t in types) / len(types)


def paired_bootstrap(gold: list[set], a: list[set], b: list[set], types: list[str],
                     rounds: int = 2000, seed: int = 0) -> dict:
    """F1 of system a minus system b on sentence resamples: the difference over the whole set,
    its 95% interval, and the share of resamples where a is ahead; micro and macro over types."""
    def diff(idx: list[int]) -> tuple[float, float]:
        ta, tb = (score([gold[i] for i in idx], [p[i] for i in idx], types) for p in (a, b))
        return ta["micro"]["f1"] - tb["micro"]["f1"], macro_f1(ta, types) - macro_f1(tb, types)

    rng = random.Random(seed)
    whole = list(range(len(gold)))
    observed = diff(whole)
    resampled = [diff([rng.randrange(len(gold)) for _ in whole]) for _ in range(rounds)]
    out: dict = {"rounds": rounds}
    for k, name in enumerate(("micro", "macro")):
        ds = sorted(d[k] for d in resampled)
        out[name] = {"diff": observed[k], "ci95": [ds[int(0.025 * rounds)], ds[int(0.975 * rounds) - 1]],
                     "ahead": sum(d > 0 for d in ds) / rounds}
    return out


def gliner_predict(model_dir: Path, texts: list[str], labels: list[str], threshold: float,
                   variant: str = "auto") -> list[set]:
    from stream.engine import Extractor

    ex = Extractor.load(model_dir, variant=variant)
    out = ex.extract(texts, labels, threshold=threshold, batch_size=32)
    return [{(e.start, e.end, e.label) for e in row} for row in out]


def spacy_predict(texts: list[str], gold: list[set] | None = None) -> list[set]:
    """spaCy with its types mapped; GPE goes to city or country — whichever gold says at that
    span (an oracle that favours the baseline), else 'city'."""
    from models.recipe.data import load_teacher

    nlp = load_teacher()
    out = []
    for i, doc in enumerate(nlp.pipe(texts)):
        row = set()
        for e in doc.ents:
            if e.label_ in SPACY_MAP:
                row.add((e.start_char, e.end_char, SPACY_MAP[e.label_]))
            elif e.label_ == "GPE":
                gl = {x[2] for x in (gold[i] if gold else ()) if x[:2] == (e.start_char, e.end_char)}
                row.add((e.start_char, e.end_char, "country" if "country" in gl else "city"))
        out.append(row)
    return out


def dev_split(work: Path, limit: int | None = None):
    texts, gold = [], []
    for line in open(work / "dev.jsonl"):
        row = json.loads(line)
        from stream.engine.splitter import split_words

        words = split_words(row["text"])
        spans = set()
        for s, e, t in row["ner"]:
            for core, types in CORE_TYPES.items():
                if t in types:
                    spans.add((words.starts[s], words.ends[e], core))
        texts.append(row["text"])
        gold.append(spans)
    return (texts[:limit], gold[:limit]) if limit else (texts, gold)


def dev_classes(work: Path, limit: int = 600) -> tuple[list[str], list[list[str]], list[set]]:
    """Held-out dev chunks labelled with WordNet classes the way training rows are (when a class
    is asked for, every mention of it is gold): a zero-shot-like target on which the zero-shot
    table's threshold is chosen, since class scores sit lower than the teacher's types."""
    cache = work / "dev_classes.jsonl"
    if not cache.exists():
        import random

        from models.recipe import SEED
        from models.recipe.data import class_mentions, common_nouns, load_tagger, wordnet_spans
        from models.recipe.wordnet import WordNet

        nlp, wn, rng = load_tagger(), WordNet(), random.Random(SEED + 1)
        texts, _ = dev_split(work)
        with open(cache, "w") as fh:
            for doc in nlp.pipe(texts[:limit], batch_size=64):
                ents = [(e.start_char, e.end_char, e.label_) for e in doc.ents]
                spans = wordnet_spans(wn, class_mentions(wn, doc.text, ents, list(common_nouns(doc))), rng)
                if spans:
                    fh.write(json.dumps({"text": doc.text, "spans": spans}) + "\n")
    rows = [json.loads(line) for line in open(cache)]
    labels = [sorted({s[2] for s in r["spans"]}) for r in rows]
    return [r["text"] for r in rows], labels, [{tuple(s) for s in r["spans"]} for r in rows]


def best_threshold(model_dir: Path, texts: list[str], labels, gold: list[set],
                   candidates=(0.2, 0.3, 0.4, 0.5, 0.6)) -> tuple[float, float]:
    """(threshold, micro-F1): one run at the lowest candidate, then filtered — exact for greedy
    flat decoding, which never lets a lower-scored span block a higher one."""
    from stream.engine import Extractor

    rows = Extractor.load(model_dir).extract(texts, labels, threshold=min(candidates), batch_size=32)
    results = []
    for t in candidates:
        pred = [{(e.start, e.end, e.label) for e in row if e.score >= t} for row in rows]
        tp = sum(len(g & p) for g, p in zip(gold, pred))
        results.append((prf(tp, sum(map(len, pred)) - tp, sum(map(len, gold)) - tp)["f1"], t))
    f1, t = max(results)
    return t, f1


def untrained_checkpoint(work: Path) -> Path:
    """Same architecture, pretrained encoder, untrained span head, exported like the real one."""
    out = work / "untrained-onnx"
    if not (out / "model.onnx").exists():
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch

        from models.recipe import SEED
        from models.recipe.train import base_model

        torch.manual_seed(SEED)
        model = base_model()
        model.eval()
        model.save_pretrained(out)
        model.export_to_onnx(out, quantize=False, opset=19)
    return out


def fmt_table(title: str, systems: dict[str, dict], types: list[str]) -> str:
    names = list(systems)
    lines = [f"#### {title}", "", "| type | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for t in types + ["micro"]:
        cells = [f"{systems[n][t]['f1']:.3f}" if t in systems[n] else "–" for n in names]
        label = "**micro-F1**" if t == "micro" else (t if t not in UNSEEN_TYPES or title.startswith("Teacher") else f"{t} *")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def fmt_bootstrap(boot: dict, sentences: int) -> str:
    parts = [f"{name}-F1 over the {'entities' if name == 'micro' else 'types'} {b['diff']:+.3f} "
             f"(95% interval {b['ci95'][0]:+.3f} to {b['ci95'][1]:+.3f}; ahead in {b['ahead']:.0%} of resamples)"
             for name, b in ((n, boot[n]) for n in ("micro", "macro"))]
    return (f"Paired bootstrap over the {sentences} gold sentences ({boot['rounds']:,} resamples), spanstream "
            "minus spaCy: " + "; ".join(parts) + ".")


def main(work: Path | None = None, model_dir: Path | None = None) -> dict:
    work = work or Path(os.environ.get("RECIPE_WORK", HERE / "work"))
    model_dir = model_dir or HERE.parent / "spanstream-minilm-ner"
    dev_texts, dev_gold = dev_split(work)
    core = list(CORE_TYPES)
    # thresholds chosen on the dev split, never on the gold set: the teacher table's on the
    # teacher's types, the zero-shot table's on WordNet classes of the same held-out pages
    threshold, _ = best_threshold(model_dir, dev_texts[:400], core, dev_gold[:400])
    zs_threshold, zs_dev_f1 = best_threshold(model_dir, *dev_classes(work))
    untrained = untrained_checkpoint(work)
    teacher = {
        "spanstream (trained)": score(dev_gold, gliner_predict(model_dir, dev_texts, core, threshold), core),
        "untrained checkpoint": score(dev_gold, gliner_predict(untrained, dev_texts, core, threshold), core),
    }
    gold = parse_gold()
    g_texts = [t for t, _ in gold]
    g_sets = [set(s) for _, s in gold]
    types = sorted({s[2] for x in g_sets for s in x}, key=lambda t: (t in UNSEEN_TYPES, t))
    ours, spacy = gliner_predict(model_dir, g_texts, types, zs_threshold), spacy_predict(g_texts, g_sets)
    zero = {
        "spanstream (trained)": score(g_sets, ours, types),
        "spaCy en_core_web_md": score(g_sets, spacy, types),
        "untrained checkpoint": score(g_sets, gliner_predict(untrained, g_texts, types, zs_threshold), types),
    }
    for system in zero.values():
        for group, members in (("seen", [t for t in types if t not in UNSEEN_TYPES]),
                               ("unseen", [t for t in types if t in UNSEEN_TYPES])):
            system[f"macro-{group}"] = {"f1": macro_f1(system, members)}
    report = {"threshold": threshold, "zero_shot_threshold": zs_threshold, "dev_class_f1": zs_dev_f1,
              "dev_texts": len(dev_texts), "gold_sentences": len(gold),
              "gold_entities": sum(map(len, g_sets)), "teacher_agreement": teacher, "zero_shot": zero,
              "bootstrap_vs_spacy": paired_bootstrap(g_sets, ours, spacy, types)}
    (model_dir / "eval.json").write_text(json.dumps(report, indent=2))
    md = [f"Thresholds chosen on the dev split, never on the gold set: {threshold} for the teacher table (best "
          f"teacher agreement), {zs_threshold} for the zero-shot table (best F1 on WordNet classes of the dev pages: "
          f"{zs_dev_f1:.3f}). Dev split: {len(dev_texts)} chunks of held-out "
          f"Wikipedia pages. Gold set: {len(gold)} sentences, {report['gold_entities']} entities, {len(types)} types; "
          "types marked * never occur as a label in the training data.", "",
          fmt_table("Teacher agreement (dev split, micro-F1 against spaCy)", teacher, core), "",
          fmt_table("Zero-shot gold set (F1 per type)", zero, types + ["macro-seen", "macro-unseen"]), "",
          fmt_bootstrap(report["bootstrap_vs_spacy"], len(gold)), ""]
    (model_dir / "EVAL.md").write_text("\n".join(md))
    print("\n".join(md))
    return report


if __name__ == "__main__":
    main(model_dir=Path(sys.argv[1]) if len(sys.argv) > 1 else None)
