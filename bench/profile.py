"""Where spanstream's graph time goes, per operator type, and how close its GEMMs run to this
machine's GEMM speed for the same shapes — the evidence for what bounds `make bench`.

    python -m bench.profile [--model DIR] [--variant fp32|int8] [--rounds 2]

Runs the engine's own batches (batch 32, length-sorted) of each workload through an onnxruntime
session with profiling on, on the load-time (fast) graph the worker runs, and prints per workload:
time share per op type, achieved GFLOPS of the dense products and of attention, and the GFLOPS a
standalone onnxruntime MatMul reaches on the same shapes with the same threads. Writes
bench/PROFILE.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import NamedTuple

import numpy as np

HERE = Path(__file__).resolve().parent
BATCH = 32
DENSE_OPS = {"MatMul", "FusedMatMul", "Gemm", "MatMulInteger", "DynamicQuantizeMatMul", "MatMulIntegerToFloat",
             "QGemm", "MatMulNBits"}
ATTENTION_OPS = {"MultiHeadAttention", "Attention"}


class OpStat(NamedTuple):
    seconds: float
    flops: float
    calls: int


def _shape(arg: list[dict], i: int) -> list[int]:
    return next(iter(arg[i].values())) if i < len(arg) else []


def op_flops(op: str, inputs: list[dict], outputs: list[dict]) -> float:
    """FLOPs of one dense product or attention call, from the shapes ORT's profiler records
    (prepacked weights are not listed, so the product's N comes from its output)."""
    if op in DENSE_OPS:
        a, out = _shape(inputs, 0), _shape(outputs, 0)
        if len(a) < 2 or not out:
            return 0.0
        m = float(np.prod(out[:-1]))
        k = np.prod(a) / m if np.prod(a) % m == 0 else a[-1]
        return 2.0 * m * k * out[-1]
    if op in ATTENTION_OPS:
        q = _shape(inputs, 0)  # [B, T, D]
        k = _shape(inputs, 1) or q
        if len(q) == 3:
            return 4.0 * q[0] * q[1] * k[1] * q[2]
    return 0.0


def profile_graph(path: Path, feeds: list[dict], threads: int, rounds: int) -> tuple[dict[str, OpStat], float, dict]:
    """Per-op-type time and FLOPs over the last ``rounds - 1`` passes (the first one warms up)."""
    from stream.engine.session import OnnxSession
    from stream.engine.tensors import INPUT_NAMES, OUTPUT_NAMES

    (HERE / "out").mkdir(exist_ok=True)
    session = OnnxSession(path, INPUT_NAMES, OUTPUT_NAMES, threads, profile_prefix=str(HERE / "out" / "ort_profile"))
    for feed in feeds:
        session.run(feed)
    mark = time.perf_counter()
    for _ in range(rounds - 1):
        for feed in feeds:
            session.run(feed)
    wall = time.perf_counter() - mark
    profile = session.end_profiling()
    events = json.loads(profile.read_text())
    profile.unlink()
    # The warm-up pass ends with the len(feeds)-th model_run event.
    runs = sorted(ev["ts"] + ev["dur"] for ev in events if ev.get("name") == "model_run")
    cutoff = runs[len(feeds) - 1] if len(runs) >= len(feeds) else 0
    stats: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0])
    shapes: dict[tuple, list[float]] = defaultdict(lambda: [0.0, 0.0, 0])
    for ev in events:
        if ev.get("cat") != "Node" or not ev["name"].endswith("_kernel_time") or ev["ts"] < cutoff:
            continue
        op = ev["args"].get("op_name", "?")
        if op in ("If", "Loop", "Scan"):  # their subgraph's nodes are reported one by one
            continue
        inputs = ev["args"].get("input_type_shape", [])
        outputs = ev["args"].get("output_type_shape", [])
        flops = op_flops(op, inputs, outputs)
        s = stats[op]
        s[0] += ev["dur"] / 1e6
        s[1] += flops
        s[2] += 1
        if op in DENSE_OPS and flops:
            out = _shape(outputs, 0)
            m = int(np.prod(out[:-1]))
            key = (op, m, int(flops / 2 / m / out[-1]), out[-1])
            shapes[key][0] += ev["dur"] / 1e6
            shapes[key][1] += flops
            shapes[key][2] += 1
    return {op: OpStat(*v) for op, v in stats.items()}, wall, shapes


def matmul_gflops(m: int, k: int, n: int, threads: int, repeats: int = 5) -> float:
    """A standalone fp32 MatMul of this shape in a session opened like the engine's (same options,
    same threads): the speed the graph's GEMMs could have."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from bench.__main__ import timed
    from stream.engine.session import OnnxSession

    w = numpy_helper.from_array(np.random.rand(k, n).astype(np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "mm",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [m, k])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [m, n])], [w])
    path = HERE / "out" / "matmul.onnx"
    path.parent.mkdir(exist_ok=True)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    session = OnnxSession(path, ("x",), ("y",), threads)
    x = {"x": np.random.rand(m, k).astype(np.float32)}
    session.run(x)
    best = min(timed(lambda: session.run(x)) for _ in range(repeats))
    return 2.0 * m * k * n / best / 1e9


def report(name: str, variant: str, stats: dict[str, OpStat], wall: float, shapes: dict, threads: int) -> str:
    total = sum(s.seconds for s in stats.values())
    lines = [f"### {name}, {variant}: graph {total:.2f} s of kernel time ({wall:.2f} s wall)", "",
             "| op type | calls | seconds | share | GFLOPS |", "|---|---|---|---|---|"]
    for op, s in sorted(stats.items(), key=lambda kv: -kv[1].seconds)[:12]:
        gf = f"{s.flops / s.seconds / 1e9:.0f}" if s.flops and s.seconds else "–"
        lines.append(f"| {op} | {s.calls} | {s.seconds:.3f} | {s.seconds / total:.1%} | {gf} |")
    dense = [s for op, s in stats.items() if op in DENSE_OPS]
    d_sec, d_flops = sum(s.seconds for s in dense), sum(s.flops for s in dense)
    floor = d_sec + sum(s.seconds for op, s in stats.items() if op in ATTENTION_OPS or op == "LSTM")
    lines += ["", f"Dense products: {d_sec / total:.1%} of kernel time at {d_flops / max(d_sec, 1e-9) / 1e9:.0f} GFLOPS. "
              f"With attention and the LSTM (kernels that run at their own speed) they are {floor / total:.1%}: "
              f"removing every other operator entirely would make this graph at most {total / floor:.2f}× faster."]
    if variant == "fp32" and shapes:
        lines += ["", "| dense shape (M×K×N) | share of kernel time | in graph GFLOPS | standalone ORT MatMul GFLOPS |",
                  "|---|---|---|---|"]
        top = sorted(shapes.items(), key=lambda kv: -kv[1][0])[:6]
        for (op, m, k, n), (sec, flops, _) in top:
            alone = matmul_gflops(m, k, n, threads)
            lines.append(f"| {m}×{k}×{n} ({op}) | {sec / total:.1%} | {flops / sec / 1e9:.0f} | {alone:.0f} |")
    return "\n".join(lines)


def main() -> int:
    from bench import corpus
    from bench.__main__ import RECIPE_MODEL, gemm_peak_gflops
    from stream.engine import Extractor
    from stream.errors import ModelLoadError

    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, default=RECIPE_MODEL)
    ap.add_argument("--variant", action="append", choices=["fp32", "int8"])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--n-short", type=int, default=256)
    args = ap.parse_args()
    workloads = {
        "short": (corpus.sentences(args.n_short), corpus.SHORT_LABELS),
        "paragraphs": (corpus.paragraphs(64), corpus.PARAGRAPH_LABELS),
        "long": (corpus.long_documents(4), corpus.SHORT_LABELS),
    }
    peak = gemm_peak_gflops()
    parts = [f"numpy fp32 GEMM peak (2048³): {peak:.0f} GFLOPS", ""]
    for variant in args.variant or ["fp32", "int8"]:
        try:
            ex = Extractor.load(args.model, variant=variant)
        except ModelLoadError as exc:
            print(f"profile: skipping {variant}: {exc}", file=sys.stderr)
            continue
        threads = ex.engine.session.threads
        for name, (texts, labels) in workloads.items():
            feeds = ex.feeds(texts, labels, batch_size=BATCH)
            stats, wall, shapes = profile_graph(ex.engine.session.path, feeds, threads, args.rounds)
            parts += [report(name, variant, stats, wall, shapes, threads), ""]
            print(parts[-2], flush=True)
    text = "\n".join(parts)
    (HERE / "PROFILE.md").write_text(
        "# Graph profile (last run)\n\nReproduce: `python -m bench.profile` (same model folder as `make bench`).\n\n"
        + text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
