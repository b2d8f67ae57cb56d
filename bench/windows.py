"""Long texts on the embedded (trained) model: what windowing costs, and what the merge adds.

    python -m bench.windows [--texts 24]

For texts of 100–300 words with ``max_len`` forced to 64 and 128 words, prints
- merge F1: the engine's windowed output against each window run alone and merged the same way
  (tests/engine/test_windows.py asserts ≥ 0.99; int8 results do not depend on the batch);
- context loss: agreement of the windowed output with one window over the whole text (the
  model sees less context per window; no merge can restore it).
"""

from __future__ import annotations

import argparse

from stream.engine import Extractor
from tests.engine import test_windows as tw


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--texts", type=int, default=24)
    args = ap.parse_args()
    texts = tw.long_texts(args.texts)
    whole = Extractor(tw.engine_with_max_len("default-int8", 384))
    single = [[(e.start, e.end, e.label) for e in r.entities]
              for r in whole.extract_detailed(texts, list(tw.LABELS), threshold=tw.THRESHOLD)]
    print("| max_len | windows | merge F1 | agreement with one window (context loss) |")
    print("|---|---|---|---|")
    for max_len in (64, 128):
        engine = tw.engine_with_max_len("default-int8", max_len)
        got = [[(e.start, e.end, e.label) for e in r.entities]
               for r in Extractor(engine).extract_detailed(texts, list(tw.LABELS), threshold=tw.THRESHOLD)]
        want = [tw.reference(engine, t) for t in texts]
        windows = sum(len(p.rows) for p in engine.prepare(texts, [tw.LABELS] * len(texts)))
        print(f"| {max_len} | {windows} | {tw.micro_f1(zip(got, want)):.4f} | {tw.micro_f1(zip(got, single)):.4f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
