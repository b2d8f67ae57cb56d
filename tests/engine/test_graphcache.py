"""Derived graphs (int8, fast graphs) are cached under a hash of their source. A source whose
weights live in external data files (how a model over 50 MB is committed in pieces) must hash
those files too, or new weights would reuse a graph derived from the old ones."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from stream.engine.graphcache import digest
from stream.engine.onnxfiles import save_split


def _matmul_model(weights: list[np.ndarray]) -> onnx.ModelProto:
    """x @ w0 @ w1 @ ... (each 32×32 float: 4,096 bytes)."""
    inits = [numpy_helper.from_array(w, f"w{i}") for i, w in enumerate(weights)]
    names = ["x"] + [f"h{i}" for i in range(len(weights) - 1)] + ["y"]
    nodes = [helper.make_node("MatMul", [names[i], f"w{i}"], [names[i + 1]]) for i in range(len(weights))]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 32])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 32])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def test_digest_covers_external_weights(tmp_path):
    path = tmp_path / "m.onnx"
    save_split(_matmul_model([np.ones((32, 32), np.float32)] * 3), path, max_file_bytes=8192)
    before = digest(path, "v")
    save_split(_matmul_model([np.ones((32, 32), np.float32)] * 2 + [np.full((32, 32), 2, np.float32)]), path,
               max_file_bytes=8192)
    assert digest(path, "v") != before


def test_split_files_stay_under_the_limit_and_load_exactly(tmp_path):
    import onnxruntime as ort

    weights = [np.random.default_rng(i).standard_normal((32, 32)).astype(np.float32) for i in range(5)]
    path = tmp_path / "m.onnx"
    pieces = save_split(_matmul_model(weights), path, max_file_bytes=8192)
    assert len(pieces) == 3 and all(p.stat().st_size <= 8192 for p in pieces)
    assert path.stat().st_size < 4096  # the graph file keeps no weights
    x = np.ones((1, 32), np.float32)
    y = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    expected = x
    for w in weights:
        expected = expected @ w
    np.testing.assert_allclose(y, expected, rtol=1e-5)


def test_a_tensor_over_the_limit_is_refused_by_name(tmp_path):
    import pytest

    with pytest.raises(ValueError, match="w0"):
        save_split(_matmul_model([np.ones((32, 32), np.float32), np.ones((32, 32), np.float64).astype(np.float32)]),
                   tmp_path / "m.onnx", max_file_bytes=2048)
