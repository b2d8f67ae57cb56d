"""The GLiNER2 engine's throughput with numpy's OpenBLAS threads sleeping at once (spanstream's
default, ``OPENBLAS_THREAD_TIMEOUT=4`` set by ``import stream``) or busy-waiting ~0.1 s after
each call (OpenBLAS's own default, 28). Run it twice on an idle machine and compare:

    python -m devtools.blas_spin_ab
    OPENBLAS_THREAD_TIMEOUT=28 python -m devtools.blas_spin_ab

Embedded GLiNER2 span model, 2 threads, 200 news sentences (5 entity types) and 40 paragraphs
(entities, a classification and two relations), warmed up, median of 5 rounds.
"""
import os
import statistics
import time
from pathlib import Path

import stream  # noqa: F401  (before numpy: its OpenBLAS default)
from bench.corpus import paragraphs, sentences
from stream.engine.gliner2.engine import Gliner2Engine

MODEL = Path(__file__).resolve().parents[1] / "models" / "spanstream-minilm-gliner2"


def main() -> None:
    engine = Gliner2Engine(MODEL, threads=2)
    print("OPENBLAS_THREAD_TIMEOUT =", os.environ["OPENBLAS_THREAD_TIMEOUT"])
    for name, texts, schema in [
            ("short, entities", sentences(200), {"entities": ["person", "organization", "location", "date", "money"]}),
            ("paragraphs, all tasks", paragraphs(40),
             {"entities": ["person", "organization", "location"],
              "classifications": [{"task": "topic", "labels": ["politics", "sports", "business", "science"]}],
              "relations": ["works for", "located in"]})]:
        engine.extract(texts, schema)
        took = []
        for _ in range(5):
            started = time.perf_counter()
            engine.extract(texts, schema)
            took.append(time.perf_counter() - started)
        print(f"{name}: {len(texts) / statistics.median(took):.1f} texts/s")


if __name__ == "__main__":
    main()
