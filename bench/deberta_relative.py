"""DeBERTa's relative-position scores narrowed to the offsets a window uses: speed and identity.

    python -m bench.deberta_relative [--hidden 768] [--layers 12] [--heads 12] [--rounds 5]   # needs `make export-dev`

Builds a random DeBERTa-v3 GLiNER (``bench.deberta_attention.build``; default: the size of
DeBERTa-v3-base, the encoder of gliner_multi-v2.1 and gliner_medium-v2.1), derives the engine's
fast graph twice — as shipped, and with ``_narrow_relative_scores`` switched off (the scores over
all 2·k = 512 relative positions plus ``GatherElements``, as exported) — and runs both on the same
rows with the same threads, interleaved rounds after a warm-up: 64 tweet-length texts and 16
paragraphs. Prints texts/s of each, the ratio, and whether the entities are identical.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from unittest import mock


def main() -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    ap = argparse.ArgumentParser()
    ap.add_argument("--hidden", type=int, default=768)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    from bench.corpus import paragraphs, sentences
    from bench.deberta_attention import build
    from stream.engine import fastgraph, load_engine

    labels = ("person", "organization", "location", "date", "money")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "deberta"
        build(folder, args.hidden, args.layers, args.heads)
        narrowed = load_engine(folder, "fp32", cache_dir=Path(tmp) / "narrowed")
        with mock.patch.object(fastgraph, "_narrow_relative_scores", lambda nodes, producers, p: (nodes, [])):
            as_exported = load_engine(folder, "fp32", cache_dir=Path(tmp) / "exported")
        engines = {"all 512 positions (as exported)": as_exported, "narrowed": narrowed}
        print(f"DeBERTa-v3 GLiNER hidden {args.hidden}, {args.layers} layers, {args.heads} heads, fp32 fast graph, "
              f"{narrowed.session.threads} threads, {args.rounds} interleaved rounds (median)")
        for name, texts in (("64 tweets", sentences(64)), ("16 paragraphs", paragraphs(16))):
            prepared = {k: e.prepare(texts, [labels] * len(texts)) for k, e in engines.items()}
            outputs = {}
            seconds = {k: [] for k in engines}
            for k, e in engines.items():  # warm-up, and the outputs compared
                outputs[k] = _run(e, prepared[k])
            for _ in range(args.rounds):
                for k, e in engines.items():
                    started = time.perf_counter()
                    _run(e, prepared[k])
                    seconds[k].append(time.perf_counter() - started)
            rates = {k: len(texts) / statistics.median(v) for k, v in seconds.items()}
            first, second = rates.values()
            same = list(outputs.values())[0] == list(outputs.values())[1]
            print(f"  {name}: " + ", ".join(f"{k} {r:.1f} texts/s" for k, r in rates.items())
                  + f" -> {second / first:.2f}x; entities identical: {same}")
    return 0


def _run(engine, prepared) -> list:
    from stream.engine.params import DecodeParams

    out = []
    rows = [(i, r) for i, p in enumerate(prepared) for r in p.rows]
    results: dict[int, list] = {}
    for start in range(0, len(rows), 16):
        chunk = rows[start:start + 16]
        for (i, _), o in zip(chunk, engine.run([r for _, r in chunk])):
            results.setdefault(i, []).append(o)
    for i, p in enumerate(prepared):
        ex = engine.decode(p, results[i], DecodeParams(0.3))
        out.append([(e.start, e.end, e.label) for e in ex.entities])
    return out


if __name__ == "__main__":
    raise SystemExit(main())
