"""The int8 recipe's outlier split is exact in fp32, and the engine's fast graph still applies.

Runs on the tiny real checkpoint; the ratio is lowered so that its (random) activations do get
outlier channels split off.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from models.recipe import quantize as recipe_quantize
from stream.engine import Extractor

TINY = Path(__file__).resolve().parents[1] / "fixtures" / "tiny-gliner"
TEXTS = ["Angela Merkel met Emmanuel Macron in Paris on Tuesday.",
         "Microsoft bought a startup in Seattle for two billion dollars, said Satya Nadella."] * 4


@pytest.fixture(scope="module")
def split_model(tmp_path_factory, monkeypatch_module) -> tuple[Path, list[str]]:
    monkeypatch_module.setattr(recipe_quantize, "OUTLIER_RATIO", 1.5)
    out = tmp_path_factory.mktemp("split") / "split.onnx"
    return recipe_quantize.split_outliers(TINY / "model.onnx", out, TEXTS)


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def test_outlier_split_is_exact_in_fp32(split_model):
    path, side_nodes = split_model
    names = {n.name for n in onnx.load(str(path)).graph.node}
    assert side_nodes and set(side_nodes) <= names  # something was split off
    original = ort.InferenceSession(str(TINY / "model.onnx"))
    split = ort.InferenceSession(str(path))
    for feed in recipe_quantize.model_feeds(TINY, TEXTS, ["person", "organization", "location", "date"]):
        a = original.run(["logits"], feed)[0]
        b = split.run(["logits"], feed)[0]
        assert np.abs(a - b).max() < 1e-4


def test_quantized_split_model_loads_with_fused_attention(split_model, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(TINY, folder)
    recipe_quantize.quantize(folder / "model.onnx", folder / "model_quantized.onnx", TEXTS)
    ops = [n.op_type for n in onnx.load(str(folder / "model_quantized.onnx")).graph.node]
    assert "MatMulInteger" in ops and ops.count("Cast") > 0  # int8 encoder, fp16 embeddings cast back
    ex = Extractor.load(folder, variant="int8")
    fast_ops = [n.op_type for n in onnx.load(str(ex.engine.session.path)).graph.node]
    layers = json.loads((TINY / "gliner_config.json").read_text())["encoder_config"]["num_hidden_layers"]
    assert ex.info.graph == "fast" and fast_ops.count("MultiHeadAttention") == layers
    fp32 = {(i, e.start, e.end, e.label): e.score for i, row in enumerate(
        Extractor.load(folder, variant="fp32").extract(TEXTS[:2], ["person", "location"], threshold=0.0)) for e in row}
    int8 = {(i, e.start, e.end, e.label): e.score for i, row in enumerate(
        ex.extract(TEXTS[:2], ["person", "location"], threshold=0.0)) for e in row}
    shared = fp32.keys() & int8.keys()
    assert len(shared) >= 0.8 * len(fp32)
    assert max(abs(fp32[k] - int8[k]) for k in shared) < 0.05
