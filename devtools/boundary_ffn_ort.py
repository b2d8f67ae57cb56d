"""The candidate FFN of the boundary pool scorer (Linear, exact GELU, Linear) in onnxruntime against
the numpy path, on the small-size shapes (16 texts x 192 candidates, 128 -> 512 -> 128), and
onnxruntime's Erf against ``math.erf``: the evidence for moving the pool scorer into a graph built at
load (issue #25, small size). Not used by the engine yet.

    python -m devtools.boundary_ffn_ort
"""
import math
import time

import numpy as np
import onnxruntime as ort
from onnx import helper, TensorProto, numpy_helper

from stream.engine.gliner2.boundary.scorer import gelu
from stream.engine.gliner2.boundary.encoding import linear
rng = np.random.default_rng(0)
d, f = 128, 512
w = {"a.weight": (rng.standard_normal((f, d)) * 0.1).astype(np.float32), "a.bias": rng.standard_normal(f).astype(np.float32),
     "b.weight": (rng.standard_normal((d, f)) * 0.05).astype(np.float32), "b.bias": rng.standard_normal(d).astype(np.float32)}
inits = [numpy_helper.from_array(np.ascontiguousarray(w["a.weight"].T), "W1"), numpy_helper.from_array(w["a.bias"], "B1"),
         numpy_helper.from_array(np.ascontiguousarray(w["b.weight"].T), "W2"), numpy_helper.from_array(w["b.bias"], "B2"),
         numpy_helper.from_array(np.array(math.sqrt(2), np.float32), "R2"), numpy_helper.from_array(np.array(1, np.float32), "One"),
         numpy_helper.from_array(np.array(0.5, np.float32), "Half")]
nodes = [helper.make_node("MatMul", ["x", "W1"], ["h0"]), helper.make_node("Add", ["h0", "B1"], ["h"]),
         helper.make_node("Div", ["h", "R2"], ["hs"]), helper.make_node("Erf", ["hs"], ["e"]),
         helper.make_node("Add", ["e", "One"], ["e1"]), helper.make_node("Mul", ["h", "e1"], ["g0"]),
         helper.make_node("Mul", ["g0", "Half"], ["g"]),
         helper.make_node("MatMul", ["g", "W2"], ["y0"]), helper.make_node("Add", ["y0", "B2"], ["y"])]
g = helper.make_graph(nodes, "ffn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", d])],
                      [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", d])], inits)
m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
so = ort.SessionOptions(); so.intra_op_num_threads = 2
sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
x = rng.standard_normal((16 * 192, d)).astype(np.float32)
ref = linear(gelu(linear(x, w, "a")), w, "b")
got = sess.run(None, {"x": x})[0]
print("max delta", np.abs(ref - got).max())
# erf accuracy of ORT
z = np.linspace(-6, 6, 200001, dtype=np.float32)
eg = helper.make_graph([helper.make_node("Erf", ["z"], ["o"])], "erf", [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["n"])], [helper.make_tensor_value_info("o", TensorProto.FLOAT, ["n"])])
es = ort.InferenceSession(helper.make_model(eg, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString(), so, providers=["CPUExecutionProvider"])
print("ORT erf max err", np.abs(es.run(None, {"z": z})[0] - np.array([math.erf(float(v)) for v in z])).max())
for name, fn in (("numpy", lambda: linear(gelu(linear(x, w, "a")), w, "b")), ("ort", lambda: sess.run(None, {"x": x})[0])):
    fn(); t = time.perf_counter()
    for _ in range(30): fn()
    print(name, (time.perf_counter() - t) / 30 * 1000, "ms")
