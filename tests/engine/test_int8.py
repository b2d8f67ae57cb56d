"""int8 results do not depend on batch-mates (per-token activation scales, ``engine.quantize``),
on the shipped model as on any folder, and int8 can be derived at load from an fp32-only folder."""

from __future__ import annotations

import shutil
from functools import lru_cache
from pathlib import Path

import pytest

from stream.engine import Extractor, load_engine
from tests.fixtures.models import SPAN_MODEL
from tests.fixtures.parity_corpus import build_corpus

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
LABELS = ["person", "organization", "location", "date", "money"]


@lru_cache(maxsize=None)
def texts() -> list[str]:
    return [t for group in build_corpus().values() for t in group if t.strip()][:120]


def keys(extraction):
    return [(e.start, e.end, e.label) for e in extraction.entities]


def assert_batch_invariant(ex: Extractor, threshold: float) -> int:
    batched = ex.extract_detailed(texts(), LABELS, threshold=threshold)
    alone = [ex.extract_detailed([t], LABELS, threshold=threshold)[0] for t in texts()]
    differing = [i for i, (b, a) in enumerate(zip(batched, alone)) if keys(b) != keys(a)]
    assert differing == [], f"{len(differing)} of {len(texts())} texts changed entities with their batch"
    worst = max((abs(x.score - y.score) for b, a in zip(batched, alone) for x, y in zip(b.entities, a.entities)),
                default=0.0)
    assert worst <= 1e-6
    return sum(len(b.entities) for b in batched)


@pytest.mark.parametrize("model,threshold", [(SPAN_MODEL, 0.5), (FIXTURES / "tiny-gliner", 0.9)])
def test_int8_scores_a_text_the_same_alone_and_in_any_batch(model, threshold):
    """The shipped model (int8 weights) and the fixture (gliner's uint8 export) alike."""
    ex = Extractor.load(model, variant="int8")
    assert ex.info.graph == "fast" and ex.info.variant == "int8"
    assert assert_batch_invariant(ex, threshold) > len(texts()) // 2


def test_int8_is_derived_from_an_fp32_only_folder(tmp_path):
    import onnx

    folder = tmp_path / "fp32-only"
    shutil.copytree(FIXTURES / "tiny-gliner", folder)
    (folder / "model_quantized.onnx").unlink()
    engine = load_engine(folder, "int8", cache_dir=tmp_path / "cache")
    assert engine.info.variant == "int8"
    ops = [n.op_type for n in onnx.load(str(engine.session.path), load_external_data=False).graph.node]
    assert "MatMulInteger" in ops and "DynamicQuantizeLinear" not in ops
    ex = Extractor(engine)
    assert_batch_invariant(ex, 0.9)
    fp32 = Extractor.load(folder, variant="fp32")
    got = [set(keys(r)) for r in ex.extract_detailed(texts(), LABELS, threshold=0.9)]
    want = [set(keys(r)) for r in fp32.extract_detailed(texts(), LABELS, threshold=0.9)]
    tp = sum(len(g & w) for g, w in zip(got, want))
    f1 = 2 * tp / (sum(map(len, got)) + sum(map(len, want)))
    print(f"INT8 derived from fp32: entity F1 against fp32 {f1:.4f}")
    assert f1 >= 0.9


def test_int8_agreement_with_fp32_is_measured_at_load_for_the_shipped_model():
    """The shipped folder has no fp32 graph: the reference is its int8 weights in float arithmetic."""
    ex = Extractor.load(SPAN_MODEL, variant="int8")
    assert ex.info.int8_agreement is not None and ex.info.int8_agreement >= 0.95
    assert Extractor.load(SPAN_MODEL, variant="int8", graph="exported").info.int8_agreement >= 0.95
    assert Extractor.load(FIXTURES / "tiny-gliner", variant="fp32").info.int8_agreement is None


def test_the_int8_gate_keeps_no_fp32_reference_graph_once_measured(tmp_path):
    """The reference for an int8-only folder (its weights in float arithmetic, ~100 MB for the
    shipped model) is needed only to measure; a cached measurement neither keeps nor re-derives it
    (images bake the cache at build time and run read-only)."""
    first = load_engine(SPAN_MODEL, variant="int8", cache_dir=tmp_path)
    kept = sorted(p.name for p in (tmp_path / "graphs").iterdir())
    assert not [name for name in kept if "dequantized" in name], kept
    again = load_engine(SPAN_MODEL, variant="int8", cache_dir=tmp_path)
    assert sorted(p.name for p in (tmp_path / "graphs").iterdir()) == kept
    assert again.info.int8_agreement == first.info.int8_agreement is not None


def test_int8_graphs_compute_exact_integer_products_on_this_cpu(tmp_path):
    """On AVX2 without VNNI, onnxruntime's uint8 x int8 MatMulInteger sums product pairs in
    saturating 16-bit lanes: a 64-deep dot product came back 6.6e5 off, and every int8 parity case
    failed on such a CPU. Graphs the engine runs hold uint8 weights there (exact kernel)."""
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from stream.engine.quantize import exact_int8_path

    rng = np.random.default_rng(0)
    a = rng.integers(200, 256, (8, 64), dtype=np.uint8)
    b = rng.integers(100, 128, (64, 16)).astype(np.int8)
    graph = helper.make_graph([helper.make_node("MatMulInteger", ["a", "b", "za", "zb"], ["y"])], "g",
                              [helper.make_tensor_value_info("a", TensorProto.UINT8, [8, 64])],
                              [helper.make_tensor_value_info("y", TensorProto.INT32, [8, 16])],
                              [numpy_helper.from_array(b, "b"), numpy_helper.from_array(np.array(128, np.uint8), "za"),
                               numpy_helper.from_array(np.array(0, np.int8), "zb")])
    src = tmp_path / "mm.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(src))
    path = exact_int8_path(src, tmp_path / "cache")
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"a": a})[0]
    want = (a.astype(np.int64) - 128) @ b.astype(np.int64)
    assert np.array_equal(got, want), np.abs(got - want).max()
