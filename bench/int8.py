"""int8 on the embedded model: per-token activation scales (the engine's) against per-tensor
dynamic scales (the exported graph's, rewritten span head alike), in one run.

    python -m bench.int8 [--texts 600] [--rounds 5]

Prints, for both: texts that change entities when batched vs alone (of 120 corpus texts),
entity F1 against the fp32 reference (the int8 weights in float arithmetic), and texts/s on
``--texts`` tweet-length sentences (median of interleaved rounds, same threads, warmed up).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import stream.engine.fastgraph as fastgraph
from stream.engine import Extractor, load_engine
from stream.engine.quantize import _dequantized_copy
from stream.engine.session import OnnxSession
from stream.engine.tensors import INPUT_NAMES, OUTPUT_NAMES
from tests.engine.test_int8 import LABELS, keys, texts
from tests.fixtures.models import SPAN_MODEL


def f1(a, b) -> float:
    tp = sum(len(set(x) & set(y)) for x, y in zip(a, b))
    return 2 * tp / (sum(map(len, a)) + sum(map(len, b)))


def main() -> int:
    from bench.corpus import sentences

    ap = argparse.ArgumentParser()
    ap.add_argument("--texts", type=int, default=600)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    model = SPAN_MODEL
    per_token = Extractor.load(model, variant="int8")
    original = fastgraph.per_token_activations
    fastgraph.per_token_activations = lambda m: 0  # the same rewrite, scales left per tensor
    per_tensor = Extractor(load_engine(model, "int8", cache_dir=tempfile.mkdtemp()))
    fastgraph.per_token_activations = original
    reference = load_engine(model, "int8", graph="exported")
    # the fp32 reference: the shipped int8 weights in float arithmetic (what the load-time gate uses)
    reference.session = OnnxSession(_dequantized_copy(model / "model_quantized.onnx", Path(tempfile.mkdtemp())),
                                    INPUT_NAMES, OUTPUT_NAMES)
    ref = [keys(r) for r in Extractor(reference).extract_detailed(texts(), LABELS)]
    corpus = sentences(args.texts)
    rates: dict[str, list[float]] = {"per-token": [], "per-tensor": []}
    engines = {"per-token": per_token, "per-tensor": per_tensor}
    for ex in engines.values():
        ex.extract(corpus[:64], LABELS)
    for _ in range(args.rounds):
        for name, ex in engines.items():
            started = time.perf_counter()
            ex.extract(corpus, LABELS)
            rates[name].append(len(corpus) / (time.perf_counter() - started))
    print("| int8 scales | texts changed batched vs alone | F1 vs fp32 reference | texts/s (median) |")
    print("|---|---|---|---|")
    for name, ex in engines.items():
        batched = [keys(r) for r in ex.extract_detailed(texts(), LABELS)]
        alone = [keys(ex.extract_detailed([t], LABELS)[0]) for t in texts()]
        changed = sum(1 for b, a in zip(batched, alone) if b != a)
        print(f"| {name} | {changed} of {len(texts())} | {f1(batched, ref):.4f} | "
              f"{statistics.median(rates[name]):.1f} |")
    ratio = statistics.median(a / b for a, b in zip(rates["per-token"], rates["per-tensor"]))
    print(f"\nper-token / per-tensor speed: {ratio:.2f} (median of {args.rounds} interleaved rounds)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
