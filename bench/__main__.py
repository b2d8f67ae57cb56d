"""`make bench`: spanstream vs gliner on the same checkpoint, texts and cores, in one run.

    python -m bench [--model DIR] [--n-short 512] [--quick]

DIR must be a GLiNER folder with model.onnx (fp32) and model_quantized.onnx; when it also holds
the PyTorch weights and the `export` extra is installed, gliner's PyTorch and ONNX paths are
measured too. Prints a Markdown table, writes bench/out/result.json and bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DEFAULT_MODEL = HERE.parent / "models" / "recipe" / "work" / "onnx"
BATCH = 32


def gemm_peak_gflops(n: int = 2048, repeats: int = 5) -> float:
    a = np.random.rand(n, n).astype(np.float32)
    b = np.random.rand(n, n).astype(np.float32)
    a @ b
    best = min(timed(lambda: a @ b) for _ in range(repeats))
    return 2 * n ** 3 / best / 1e9


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def encoder_flops_per_token(model_dir: Path, avg_tokens: float) -> float:
    """Analytic GEMM FLOPs of the transformer encoder per token (dense layers + attention)."""
    cfg = json.loads((model_dir / "gliner_config.json").read_text()).get("encoder_config") or {}
    d, layers = cfg.get("hidden_size", 384), cfg.get("num_hidden_layers", 6)
    ff = cfg.get("intermediate_size", 4 * d)
    return layers * (2 * (4 * d * d + 2 * d * ff) + 4 * avg_tokens * d)


def run_spanstream(model_dir: Path, variant: str, texts, labels, batch: int = BATCH):
    from stream.engine import Extractor

    ex = Extractor.load(model_dir, variant=variant)
    ex.extract(texts[:batch], labels, batch_size=batch)  # warm-up (and graph derivation)
    session = ex.engine.session
    session.run_seconds = 0.0
    start = time.perf_counter()
    out = ex.extract(texts, labels, batch_size=batch)
    wall = time.perf_counter() - start
    return out, wall, session.run_seconds


def run_gliner(model_dir: Path, runtime: str, texts, labels, batch: int = BATCH):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    warnings.filterwarnings("ignore")
    from gliner import GLiNER

    if runtime == "torch":
        import torch

        torch.set_num_threads(len(os.sched_getaffinity(0)))
        model = GLiNER.from_pretrained(str(model_dir), local_files_only=True)
        model.eval()
    else:
        name = "model.onnx" if runtime == "onnx-fp32" else "model_quantized.onnx"
        model = GLiNER.from_pretrained(str(model_dir), load_onnx_model=True, onnx_model_file=name,
                                       local_files_only=True)
    model.inference(texts[:batch], labels, batch_size=batch)
    start = time.perf_counter()
    out = model.inference(texts, labels, batch_size=batch)
    return out, time.perf_counter() - start


def agreement(a, b) -> float:
    sa = {(i, e.start, e.end, e.label) for i, row in enumerate(a) for e in row}
    sb = {(i, e.start, e.end, e.label) for i, row in enumerate(b) for e in row}
    return 2 * len(sa & sb) / max(len(sa) + len(sb), 1)


def main() -> int:
    from bench import corpus
    from stream.engine import load_engine

    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("--n-short", type=int, default=512)
    ap.add_argument("--n-paragraphs", type=int, default=128)
    ap.add_argument("--n-long", type=int, default=16)
    ap.add_argument("--skip-gliner", action="store_true")
    args = ap.parse_args()
    if not (args.model / "model.onnx").exists():
        print(f"bench: {args.model} has no model.onnx; run `make model` (or pass --model DIR)", file=sys.stderr)
        return 2
    has_gliner = not args.skip_gliner and (args.model / "model.safetensors").exists()
    if has_gliner:
        try:
            import gliner  # noqa: F401
        except ImportError:
            has_gliner = False
    engine = load_engine(args.model, "fp32", graph="exported")
    workloads = {
        "short": (corpus.sentences(args.n_short), corpus.SHORT_LABELS),
        "paragraphs": (corpus.paragraphs(args.n_paragraphs), corpus.PARAGRAPH_LABELS),
        "long": (corpus.long_documents(args.n_long), corpus.SHORT_LABELS),
    }
    peak = gemm_peak_gflops()
    results = {"machine": {"cpus": len(os.sched_getaffinity(0)), "platform": platform.platform(),
                           "gemm_peak_gflops": round(peak, 1)}, "batch": BATCH, "workloads": {}}
    for name, (texts, labels) in workloads.items():
        tokens = sum(e.ids.size for e in engine.encoder.encode_words([t.split() for t in texts]))
        words = sum(len(t.split()) for t in texts)
        rows = {}
        gliner_texts = texts
        if name == "long":  # gliner truncates at max_len: give it the same windows spanstream runs
            from stream.engine.splitter import split_words
            from stream.engine.windows import plan_windows

            enc = engine.encoder
            gliner_texts = []
            for t in texts:
                w = split_words(t)
                counts = enc.encode_words([w.words])[0].word_token_counts
                budget = enc.content_budget - enc.prompt(tuple(labels)).ids.size
                for s, e in plan_windows(counts, engine.max_len, budget, min(2 * engine.max_width, engine.max_len // 2)):
                    gliner_texts.append(t[w.starts[s]:w.ends[e - 1]])
        if has_gliner:
            for runtime in ("torch", "onnx-fp32", "onnx-int8"):
                _, wall = run_gliner(args.model, runtime, gliner_texts, labels)
                rows[f"gliner {runtime}"] = {"seconds": wall}
        outs = {}
        for variant in ("fp32", "int8"):
            out, wall, ort = run_spanstream(args.model, variant, texts, labels)
            outs[variant] = out
            rows[f"spanstream {variant}"] = {"seconds": wall, "outside_ort": 1 - ort / wall}
        flops = encoder_flops_per_token(args.model, tokens / len(texts)) * tokens
        base = rows.get("gliner onnx-fp32", {}).get("seconds")
        for key, row in rows.items():
            row["texts_per_s"] = len(texts) / row["seconds"]
            row["tokens_per_s"] = tokens / row["seconds"]
            row["gflops"] = flops / row["seconds"] / 1e9
            if base:
                row["vs_gliner_onnx_fp32"] = base / row["seconds"]
        results["workloads"][name] = {"texts": len(texts), "words": words, "tokens": tokens, "labels": len(labels),
                                      "int8_agreement": agreement(outs["fp32"], outs["int8"]), "rows": rows}
    print(render(results))
    out_dir = HERE / "out"
    out_dir.mkdir(exist_ok=True)
    (out_dir / "result.json").write_text(json.dumps(results, indent=2))
    (HERE / "RESULTS.md").write_text(
        "# Benchmark results (last run)\n\nReproduce: `make bench` (needs the `export` and `bench` extras and a "
        "model folder with fp32 + int8 ONNX and PyTorch weights; `make model` builds one).\n\n" + render(results) + "\n")
    return 0


def render(results: dict) -> str:
    m = results["machine"]
    lines = [f"{m['cpus']} CPUs, GEMM peak {m['gemm_peak_gflops']} GFLOPS (numpy fp32), batch {results['batch']}", ""]
    for name, w in results["workloads"].items():
        lines += [f"### {name}: {w['texts']} texts, {w['words']} words, {w['tokens']} sub-words, {w['labels']} labels",
                  "", "| runtime | texts/s | tokens/s | × gliner ONNX fp32 | outside ORT | encoder GFLOPS |",
                  "|---|---|---|---|---|---|"]
        for key, r in w["rows"].items():
            ratio = f"{r['vs_gliner_onnx_fp32']:.2f}×" if "vs_gliner_onnx_fp32" in r else "–"
            outside = f"{r['outside_ort']:.1%}" if "outside_ort" in r else "–"
            lines.append(f"| {key} | {r['texts_per_s']:.1f} | {r['tokens_per_s']:.0f} | {ratio} | {outside} | "
                         f"{r['gflops']:.0f} |")
        lines += ["", f"int8 vs fp32 entity agreement (spanstream): {w['int8_agreement']:.1%}", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
