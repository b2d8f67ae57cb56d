"""The model card's tables, from ``eval.json`` (``evaluate``) and ``build.json`` (``mix``).

    python -m models.gliner2_recipe.card [MODEL_DIR]   # writes MODEL_DIR/EVAL.md
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

def _f(x: float) -> str:
    return f"{x:.3f}"

def eval_tables(report: dict) -> str:
    ner, base = report["ner"], report.get("baseline_ner")
    lines = ["## Zero-shot NER (exact-span micro-F1; test splits; natural-language labels)", "",
             f"Threshold 0.5, and {ner['chosen_threshold']} chosen on the dev split carved from the training "
             "corpora (F1 by threshold on it: " + ", ".join(f"{t} {v:.3f}" for t, v in ner["dev_f1_by_threshold"].items())
             + ")" + (f"; today's NER model's own dev choice is {base['chosen_threshold']}." if base else "."), ""]
    head = "| dataset | texts | this model @0.5 | this model @dev | spanstream-minilm-ner @0.5 | @dev |"
    lines += [head, "|---|---|---|---|---|---|"]
    for name, row in ner["datasets"].items():
        b = base["datasets"][name] if base else None
        lines.append(f"| {name} | {row['texts']} | {_f(row['0.5']['f1'])} | {_f(row['dev']['f1'])} | "
                     + (f"{_f(b['0.5']['f1'])} | {_f(b['dev']['f1'])} |" if b else "– | – |"))
    lines.append(f"| **CrossNER mean** (5 domains) | | **{_f(ner['crossner_mean_0.5'])}** | "
                 f"**{_f(ner['crossner_mean_dev'])}** | "
                 + (f"{_f(base['crossner_mean_0.5'])} | {_f(base['crossner_mean_dev'])} |" if base else "– | – |"))
    lines += ["", "Published CrossNER means for comparison (not re-measured here): "
              + ", ".join(f"{k} {v:.2f}" for k, v in report["published_crossner_mean"].items())
              + ". MIT Restaurant is scored as (type, text) pairs (its public copy keeps strings, not "
              "offsets); MIT Movie's public copy is a file the offline mirror does not hold.", ""]
    rel = report["relations"]
    lines += ["## Relations never trained (FewRel val_wiki, 8 held-out relations)", "",
              f"{rel['sentences']} sentences, all 8 relations asked of each, threshold {rel['threshold']}: "
              f"(relation, head span, tail span) precision {_f(rel['p'])}, recall {_f(rel['r'])}, "
              f"**F1 {_f(rel['f1'])}** (predicting nothing scores 0). Relations: {', '.join(rel['relations'])}.", ""]
    lines += ["## Classification on datasets never trained", "",
              "| dataset | texts | labels | accuracy | macro-F1 | majority class: accuracy | macro-F1 |",
              "|---|---|---|---|---|---|---|"]
    for name, row in report["classification"].items():
        lines.append(f"| {name} | {row['texts']} | {', '.join(row['labels'])} | **{_f(row['accuracy'])}** | "
                     f"**{_f(row['macro_f1'])}** | {_f(row['majority_accuracy'])} | {_f(row['majority_macro_f1'])} |")
    st = report["structures"]
    lines += ["", "## Structures (held-out dev records)", "",
              f"{st['records']} records (mention groups of NER sentences; FewRel facts with a relation "
              f"choice field), field values compared lower-cased: precision {_f(st['p'])}, recall {_f(st['r'])}, "
              f"**F1 {_f(st['f1'])}**.", ""]
    if "speed" in report:
        sp = report["speed"]
        lines += ["## Speed and int8", "", sp["text"], ""]
    return "\n".join(lines)

def crossner_mean(report: dict) -> float:
    return report["ner"]["crossner_mean_0.5"]

SHARE_SOURCES = {  # build.json row → the sources it is read from
    "conll2003": ("conll2003",), "wikiann": ("wikiann",), "wikineural_val": ("wikineural_val",),
    "wikineural_test": ("wikineural_test",), "wikigold": ("wikigold",),
    "relations": ("fewrel_wiki", "fewrel_nyt", "fewrel_semeval", "fewrel_pubmed", "fewrel_names"),
    "webnlg": ("webnlg",), "emotion": ("emotion",), "ag_news": ("ag_news",),
    "bionlp13cg": ("bionlp13cg",), "bc5cdr": ("bc5cdr",), "jnlpba": ("jnlpba",), "bionlp11id": ("bionlp11id",),
    "ncbi_disease": ("ncbi_disease",), "linnaeus": ("linnaeus",), "fewtk": ("fewtk",), "scierc": ("scierc",),
}


def data_table(build: dict) -> str:
    from models.gliner2_recipe.sources import SOURCES

    total = build["train rows"]
    lines = ["| rows | share | what | source (repository @ commit, file) | licence |", "|---|---|---|---|---|"]
    for key, names in SHARE_SOURCES.items():
        rows = build.get(key, 0)
        if not rows:
            continue
        for i, name in enumerate(names):
            src = SOURCES[name]
            lines.append(f"| {rows if i == 0 else ''} | {f'{rows / total:.1%}' if i == 0 else ''} | {key if i == 0 else ''} | "
                         f"github.com/{src.repo} @ `{src.commit[:10]}`, `{src.path}` | {src.licence} |")
    legacy = build.get("legacy (teacher, WordNet, PII)", 0)
    lines.append(f"| {legacy} | {legacy / total:.1%} | the first recipe's rows (`models/recipe`) | Wikipedia pages in "
                 "gensim's test data (CC BY-SA) labelled by spaCy en_core_web_md (MIT), WordNet 3.0 classes "
                 "(WordNet licence), faker PII templates (MIT) | as listed |")
    return "\n".join(lines)


def readme(report: dict, build: dict, steps: int, commit: str) -> str:
    ner, base = report["ner"], report.get("baseline_ner", {})
    cls = report["classification"]
    base_mit = base.get("datasets", {}).get("mit_restaurant", {}).get("0.5", {}).get("f1", float("nan"))
    return f"""# spanstream-minilm-gliner2

The embedded default model of spanstream: a GLiNER2 model (span architecture, `count_lstm`, max
width 8, first-sub-word pooling) on the 6-layer MiniLM encoder (22M parameters, uncased), trained
by us, offline, on 2 CPU cores, from public annotated corpora. One schema asks for entities,
classifications, structures and relations at once (gliner2's schema dict and result shapes). Shipped
fp32 in spanstream's GLiNER2 folder layout (`encoder.onnx` with its weights in two files under
50 MB, `heads.npz`, `tokenizer.json`); `variant="int8"` derives an int8 encoder at load.

## Intended use

A working default and a demo of the four GLiNER2 tasks on English text, with labels written as
people write them. It is small: for production quality load a larger GLiNER2 checkpoint (any
`spanstream export-gliner2` folder). Not for: languages other than English, case-sensitive
distinctions (uncased encoder), decisions about people without review, commercial use while
the non-commercial corpora below are in its training mix.

## Headline figures (commit `{commit}`, `make eval-model`; tables in EVAL.md)

| | this model | spanstream-minilm-ner (previous default) |
|---|---|---|
| zero-shot CrossNER mean F1 (5 domains, threshold 0.5) | **{ner['crossner_mean_0.5']:.3f}** | {base.get('crossner_mean_0.5', float('nan')):.3f} |
| zero-shot MIT Restaurant F1 (threshold 0.5) | {ner['datasets']['mit_restaurant']['0.5']['f1']:.3f} | {base_mit:.3f} |
| relations never trained (FewRel, 8 relations), F1 | {report['relations']['f1']:.3f} | – (entities only) |
| BBC News topics (never trained), accuracy / macro-F1 (majority {cls['bbc_news']['majority_accuracy']:.3f}) | {cls['bbc_news']['accuracy']:.3f} / {cls['bbc_news']['macro_f1']:.3f} | – |
| TREC question types (never trained), accuracy / macro-F1 (majority {cls['trec']['majority_accuracy']:.3f}) | {cls['trec']['accuracy']:.3f} / {cls['trec']['macro_f1']:.3f} | – |
| held-out structures, field F1 | {report['structures']['f1']:.3f} | – |

Published CrossNER means: GLiNER2 (205M) 0.59, GLiNER-M 0.62 (as quoted in issue #26).

## Data sources and licences (training mix: {build['train rows']} rows)

{data_table(build)}

Zero-shot test sets, never trained on and never used for a choice: CrossNER (every domain and
split), MIT Restaurant, MIT Movie, WNUT-16, TREC, BBC News, and FewRel's eight relations listed in
EVAL.md. Every training row is compared with every CrossNER, MIT Restaurant and TREC text: a row
that shares 8 consecutive words with one (lower-cased, punctuation removed) is dropped
(`mix.ZeroShotOverlap`; `build.json` counts them per source). Choices
(threshold) use the dev split carved from the training corpora (every 20th row by hash).

**Licences**: the mix contains research-only and non-commercial corpora (CoNLL-2003, WikiNEuRal
and WebNLG CC BY-NC-SA 4.0, AG News, CARER emotion; Few-TK and SciERC state no licence). The corpora's text is not in this repository: the recipe
reads them from local copies of the public repositories named above.

## Training

- Command: `make model-gliner2` (= `python -m models.gliner2_recipe`: corpora → mix → train → export;
  resumable: checkpoints with optimizer, schedule and data position every 200 steps; rerun to
  continue). Then `make eval-model` and `python -m models.gliner2_recipe.card`.
- {steps} steps, batch 8, AdamW (encoder lr 5e-5, heads 5e-4, weight decay 0.01), cosine schedule
  with 5% warm-up, gliner2 2.1's loss and sampling (label-name stand-ins off), seed 20261203.
- Labels: one paraphrase per row ("person" / "person name" / "individual" …); every NER row asks
  for the types its corpus annotates completely but the row lacks (true negatives); rows of 1–3
  consecutive sentences; relation rows carry the types their relation implies (film, writer,
  award, sports team …) and, for a fifth of them, a `fact` structure with a relation choice field;
  science rows ask for concept types (gene, chemical, disease, task, method, metric, algorithm,
  "machine learning algorithm" …) with absent types of their corpus as negatives.
"""


def main(argv: list[str]) -> int:
    import os
    import subprocess

    folder = Path(argv[0]) if argv else HERE.parent / "spanstream-minilm-gliner2"
    work = Path(os.environ.get("RECIPE_WORK", HERE / "work"))
    report = json.loads((folder / "eval.json").read_text())
    build = json.loads((work / "build.json").read_text())
    from models.gliner2_recipe.train import steps_setting

    steps = steps_setting()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    (folder / "EVAL.md").write_text("# Evaluation tables\n\nProduced by `make eval-model` "
                                    f"(commit `{commit}`).\n\n" + eval_tables(report))
    (folder / "README.md").write_text(readme(report, build, steps, commit))
    print(folder / "README.md", folder / "EVAL.md")
    return 0

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
