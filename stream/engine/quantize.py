"""int8 whose results do not depend on batch-mates: per-token activation scales.

Dynamic quantization (``onnxruntime.quantization.quantize_dynamic``, gliner's ``quantize=True``)
quantizes each MatMul input with *one* scale and zero point for the whole tensor
(``DynamicQuantizeLinear``): the range of every row in the batch, padding included. A text's
entities then depend on what it was batched with — 5 of 120 texts changed entities batched vs
alone on our int8 model (#15). Here every such node becomes symmetric int8 quantization with one
scale per token (the max |x| of that token's vector / 127): a token's integers depend on that
token alone, so a text scores the same alone, in any batch, at any padding. Finer scales are
also more accurate than one per tensor.

ONNX Runtime's ``MatMulInteger`` takes only a scalar zero point for its first input, hence
symmetric rather than asymmetric per-token scales. The int8 values travel as uint8 with the
fixed zero point 128 (the same products). Weights are int8 (uint8 ones shifted: value - 128 and
zero point - 128, the same differences) where uint8 × int8 is exact, the fast kernel with VNNI;
on AVX2 without VNNI, onnxruntime's uint8 × int8 kernel sums pairs of products in saturating
16-bit lanes (``vpmaddubsw``) and returns wrong integers — 6.6e5 off on a 64-deep dot product —
so there weights stay (or become) uint8, whose kernel widens first and is exact (``u8s8_exact``
probes the kernel this process really runs).

``int8_graph_path`` quantizes an fp32 graph (per-channel int8 weights) for folders that ship no
int8 file; the rewrite then applies to it like to any dynamically quantized graph.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np


def per_token_activations(model) -> int:
    """Rewrite every ``DynamicQuantizeLinear`` feeding ``MatMulInteger`` in ``model`` (in place);
    return how many were rewritten.

    The exported dequantization ``Cast(MatMulInteger(..)) * (x_scale * w_scale)`` stays as it is
    with ``x_scale`` = 1 (onnxruntime fuses it into ``MatMulIntegerToFloat``, whose fused kernel
    takes only a scalar activation scale: fed a per-token one it silently computes garbage), and
    the per-token scale multiplies its result.
    """
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < 18:
        raise ValueError(f"per-token int8 needs opset >= 18 (ReduceMax with axes as input), graph has {opset}")
    inits = {i.name: i for i in graph.initializer}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    p = "/spanstream/int8/"
    shared = [numpy_helper.from_array(np.array([-1], dtype=np.int64), p + "last_axis"),
              numpy_helper.from_array(np.array([-2], dtype=np.int64), p + "row_axis"),
              numpy_helper.from_array(np.array(1e-8, dtype=np.float32), p + "eps"),
              numpy_helper.from_array(np.array(127.0, dtype=np.float32), p + "qmax"),
              numpy_helper.from_array(np.array(128.0, dtype=np.float32), p + "offset"),
              numpy_helper.from_array(np.array(1.0, dtype=np.float32), p + "one"),
              numpy_helper.from_array(np.array(128, dtype=np.uint8), p + "zero")]
    as_b = {n.input[1] for n in graph.node if n.op_type == "MatMulInteger"}  # activation x activation
    rescale: dict[int, list[str]] = {}  # id(dequantizing Mul) → per-token scales to apply after it
    converted: set[str] = set()
    nodes, count = [], 0
    signed = u8s8_exact()
    for node in graph.node:
        if node.op_type == "MatMulInteger":
            _weights_to_int8(node, inits, converted) if signed else _weights_to_uint8(node, inits, converted)
        if node.op_type != "DynamicQuantizeLinear":
            nodes.append(node)
            continue
        x, (q, scale, zero_point) = node.input[0], node.output
        t = f"{p}{count}/"
        for product in consumers.get(scale, []):  # Mul(x_scale, w_scale) → Mul(Cast(..), product)
            if product.op_type != "Mul":
                raise ValueError(f"{node.name}: its scale feeds a {product.op_type}, not the expected Mul")
            for dequantize in consumers.get(product.output[0], []):
                if dequantize.op_type != "Mul":
                    raise ValueError(f"{node.name}: dequantized by a {dequantize.op_type}, not the expected Mul")
                rescale.setdefault(id(dequantize), []).append(t + "scale")
        # A [.., M, K] gets a scale per row (over K); an activation used as B [.., K, N] (attention
        # scores) one per column (over K too): the output's dequantization is then an outer product
        axis = p + ("row_axis" if q in as_b else "last_axis")
        nodes += [  # |x| max per token without materialising |x|: max(max x, -min x)
            helper.make_node("ReduceMax", [x, axis], [t + "max"], keepdims=1),
            helper.make_node("ReduceMin", [x, axis], [t + "min"], keepdims=1),
            helper.make_node("Neg", [t + "min"], [t + "neg_min"]),
            helper.make_node("Max", [t + "max", t + "neg_min", p + "eps"], [t + "amax"]),  # [..., 1]
            helper.make_node("Div", [t + "amax", p + "qmax"], [t + "scale"]),
            helper.make_node("Div", [p + "qmax", t + "amax"], [t + "inv"]),
            # x·127/amax lies in [-127, 127]; + 128 before rounding is exact (round half to even
            # commutes with adding an even integer), so no Clip and one pass fewer
            helper.make_node("Mul", [x, t + "inv"], [t + "scaled"]),
            helper.make_node("Add", [t + "scaled", p + "offset"], [t + "shifted"]),
            helper.make_node("Round", [t + "shifted"], [t + "rounded"]),
            helper.make_node("Cast", [t + "rounded"], [q], to=TensorProto.UINT8),     # int8 + 128, zero
            helper.make_node("Identity", [p + "zero"], [zero_point]),                 # point 128: u8 x s8
            helper.make_node("Identity", [p + "one"], [scale]),                       # see the docstring
        ]
        count += 1
    if not count:
        return 0
    ordered = []
    for node in nodes:
        ordered.append(node)
        for k, token_scale in enumerate(rescale.get(id(node), [])):
            out = node.output[0]
            node.output[0] = f"{out}/before_token_scale{k}"
            ordered.append(helper.make_node("Mul", [node.output[0], token_scale], [out]))
            node = ordered[-1]
    del graph.node[:]
    graph.node.extend(ordered)
    graph.initializer.extend(shared)
    del graph.value_info[:]  # shapes and types of the rewritten tensors changed
    return count


def _weights_to_int8(node, inits: dict, converted: set[str]) -> None:
    """uint8 weights (and their zero point) → int8 with the same differences (w - zp)."""
    _shift_weights(node, inits, converted, source_type=2, shift=-128, dtype=np.int8)


def _weights_to_uint8(node, inits: dict, converted: set[str]) -> None:
    """int8 weights (and their zero point) → uint8 with the same differences (w - zp): the exact
    kernel on CPUs whose uint8 × int8 kernel saturates."""
    _shift_weights(node, inits, converted, source_type=3, shift=128, dtype=np.uint8)


def _shift_weights(node, inits: dict, converted: set[str], source_type: int, shift: int, dtype) -> None:
    weights = inits.get(node.input[1])
    if weights is None or weights.data_type != source_type:  # computed, or of the target type already
        return
    if len(node.input) < 4 or node.input[3] not in inits:
        raise ValueError(f"{node.name}: quantized weights without a constant zero point are not supported")
    for name in (node.input[1], node.input[3]):
        _shift_initializer(inits, name, shift, dtype, converted)


def _shift_initializer(inits: dict, name: str, shift: int, dtype, converted: set[str]) -> None:
    """``inits[name]`` + ``shift`` as ``dtype``, once per name (weights and zero points are shared)."""
    from onnx import numpy_helper

    if name not in converted:
        value = numpy_helper.to_array(inits[name])
        inits[name].CopyFrom(numpy_helper.from_array((value.astype(np.int16) + shift).astype(dtype), name))
        converted.add(name)


_U8S8_EXACT: bool | None = None


def u8s8_exact() -> bool:
    """Whether onnxruntime's uint8 × int8 ``MatMulInteger`` is exact on this CPU (VNNI, or ARM);
    measured once per process on products that overflow 16-bit pair sums."""
    global _U8S8_EXACT
    if _U8S8_EXACT is None:
        import onnxruntime as ort
        from onnx import TensorProto, helper, numpy_helper

        k = 64
        a = np.full((4, k), 255, dtype=np.uint8)
        b = np.full((k, 8), 127, dtype=np.int8)
        graph = helper.make_graph(
            [helper.make_node("MatMulInteger", ["a", "b", "za"], ["y"])], "probe",
            [helper.make_tensor_value_info("a", TensorProto.UINT8, [4, k])],
            [helper.make_tensor_value_info("y", TensorProto.INT32, [4, 8])],
            [numpy_helper.from_array(b, "b"), numpy_helper.from_array(np.array(0, dtype=np.uint8), "za")])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        y = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"]).run(
            None, {"a": a})[0]
        _U8S8_EXACT = bool((y == 255 * 127 * k).all())
    return _U8S8_EXACT


def exact_int8_path(src: Path, cache_root: str | Path | None = None) -> Path:
    """``src`` itself where uint8 × int8 is exact; else a cached copy whose int8 weights
    (``MatMulInteger``, ``DynamicQuantizeLSTM``) are uint8 with the same differences: an int8 graph
    run as exported (gliner's ``model_quantized.onnx`` has an int8-weight LSTM) then computes what
    it computes on a VNNI CPU, not saturated sums."""
    if u8s8_exact():
        return src
    import onnx

    from stream.engine.graphcache import cache_dir, digest, save_atomically

    out = cache_dir(cache_root) / f"{src.stem}-{digest(src, INT8_VERSION + 'u8')}-exact.onnx"
    if not out.exists():
        model = onnx.load(str(src))
        inits = {i.name: i for i in model.graph.initializer}
        converted: set[str] = set()
        for node in model.graph.node:
            if node.op_type == "MatMulInteger":
                _weights_to_uint8(node, inits, converted)
            elif node.op_type == "DynamicQuantizeLSTM":  # W, R and their zero points (inputs 1, 2, 9, 11)
                for name in (node.input[i] for i in (1, 2, 9, 11) if i < len(node.input)):
                    if name in inits and inits[name].data_type == 3:
                        _shift_initializer(inits, name, 128, np.uint8, converted)
        save_atomically(model, out)
    return out


def weight_kind() -> str:
    """What derived int8 graphs hold on this CPU ("s8" or "u8"): part of their cache keys, so a graph
    derived on one CPU (an image's baked cache) is never run on another that needs the other kind."""
    return "s8" if u8s8_exact() else "u8"


def float_lstm(model) -> int:
    """Replace ``com.microsoft.DynamicQuantizeLSTM`` (its input quantized with one scale per
    tensor: batch-dependent) by the standard ``LSTM`` on dequantized weights; return how many.
    The BiLSTM over word vectors is a small part of the compute."""
    from onnx import helper, numpy_helper

    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    nodes, count = [], 0
    for node in graph.node:
        if node.op_type != "DynamicQuantizeLSTM":
            nodes.append(node)
            continue
        x, w, r, b, seq, h0, c0, peep, w_scale, w_zp, r_scale, r_zp = (list(node.input) + [""] * 12)[:12]

        def dequantized(q: str, scale: str, zp: str) -> np.ndarray:
            value = numpy_helper.to_array(inits[q]).astype(np.float32)
            s_ = numpy_helper.to_array(inits[scale]).astype(np.float32)
            z = numpy_helper.to_array(inits[zp]).astype(np.float32)
            shape = (s_.shape[0], 1, -1) if s_.ndim == 2 else (-1, 1, 1)  # per channel or per direction
            real = (value - z.reshape(shape)) * s_.reshape(shape)         # [dirs, in, 4H]
            return np.ascontiguousarray(real.transpose(0, 2, 1))          # ONNX LSTM: [dirs, 4H, in]

        t = f"/spanstream/lstm/{count}/"
        graph.initializer.extend([numpy_helper.from_array(dequantized(w, w_scale, w_zp), t + "W"),
                                  numpy_helper.from_array(dequantized(r, r_scale, r_zp), t + "R")])
        inputs = [x, t + "W", t + "R", b, seq, h0, c0, peep]
        while inputs and not inputs[-1]:
            inputs.pop()
        lstm = helper.make_node("LSTM", inputs, list(node.output), name=node.name + "/float")
        lstm.attribute.extend(node.attribute)
        nodes.append(lstm)
        count += 1
    if count:
        del graph.node[:]
        graph.node.extend(nodes)
        del graph.value_info[:]
    return count


INT8_VERSION = "1"


def int8_graph_path(fp32: Path, cache_root: str | Path | None = None) -> Path:
    """An int8 graph derived from ``fp32`` (per-channel int8 weights on every MatMul), cached."""
    from stream.engine.graphcache import cache_dir, digest

    out = cache_dir(cache_root) / f"{fp32.stem}-{digest(fp32, INT8_VERSION)}-int8.onnx"
    if not out.exists():
        from onnxruntime.quantization import QuantType, quantize_dynamic

        tmp = out.with_suffix(f".tmp{os.getpid()}.onnx")
        quantize_dynamic(str(fp32), str(tmp), weight_type=QuantType.QInt8, per_channel=True,
                         op_types_to_quantize=["MatMul"])
        os.replace(tmp, out)
    return out


def per_token_int8_path(fp32: Path, cache_root: str | Path | None = None) -> Path:
    """``int8_graph_path`` with per-token activation scales (``per_token_activations``), cached:
    an int8 graph whose rows score the same whatever they are batched with (GLiNER2's encoder)."""
    import onnx

    from stream.engine.graphcache import cache_dir, digest, save_atomically

    out = cache_dir(cache_root) / f"{fp32.stem}-{digest(fp32, INT8_VERSION + weight_kind())}-int8-per-token.onnx"
    if not out.exists():
        model = onnx.load(str(int8_graph_path(fp32, cache_root)))
        per_token_activations(model)
        save_atomically(model, out)
    return out


def dequantized(model) -> int:
    """The same graph with int8 arithmetic undone (in place): every ``MatMulInteger`` becomes a
    float ``MatMul`` on ``w - zero_point`` and activations stay float; the exported ``w_scale``
    multiplications remain. The reference an int8 graph is measured against when its folder
    ships no fp32 file: it differs from the int8 graph only by activation quantization."""
    from onnx import helper, numpy_helper

    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    p = "/spanstream/dequantized/"
    extra = [numpy_helper.from_array(np.array(1.0, dtype=np.float32), p + "one")]
    nodes, count = [], 0
    for node in graph.node:
        if node.op_type == "DynamicQuantizeLinear":
            q, scale, _ = node.output
            nodes += [helper.make_node("Identity", [node.input[0]], [q]),
                      helper.make_node("Identity", [p + "one"], [scale])]
        elif node.op_type == "MatMulInteger":
            w = numpy_helper.to_array(inits[node.input[1]]).astype(np.float32)
            zp = numpy_helper.to_array(inits[node.input[3]]).astype(np.float32) if len(node.input) > 3 else 0.0
            name = f"{p}{count}/w"
            extra.append(numpy_helper.from_array(w - zp, name))
            nodes.append(helper.make_node("MatMul", [node.input[0], name], list(node.output)))
            count += 1
        else:
            nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    graph.initializer.extend(extra)
    del graph.value_info[:]
    float_lstm(model)
    return count


AGREEMENT_VERSION = "1"


def int8_agreement(engine, int8: Path, fp32: Path | None = None, cache_root: str | Path | None = None) -> float:
    """Entity F1 of ``engine`` (running the int8 graph ``int8``, or a graph derived from it) against
    the same engine on fp32 over the fixed probe set (``engine.probe``), at every threshold of 0.3,
    0.5 and 0.7; cached per (engine graph, reference) pair. The reference is ``fp32`` when the folder
    ships one, else ``int8``'s weights in float arithmetic (``dequantized``), derived in a temporary
    folder only when no measurement is cached and deleted after it. 1.0 is identical output."""
    import json

    from stream.engine.graphcache import cache_dir, digest

    reference_key = digest(fp32, AGREEMENT_VERSION) if fp32 else f"{digest(int8, INT8_VERSION)}dq"
    key = f"{digest(engine.session.path, AGREEMENT_VERSION)}-{reference_key}"
    cached = cache_dir(cache_root) / f"agreement-{key}.json"
    if cached.exists():
        return float(json.loads(cached.read_text())["f1"])
    if fp32:
        found = _probe_agreement(engine, fp32)
    else:
        with tempfile.TemporaryDirectory(prefix="spanstream-reference-") as scratch:
            found = _probe_agreement(engine, _dequantized_copy(int8, Path(scratch)))
    total = found["int8"] + found["ref"]
    f1 = 2 * found["both"] / total if total else 1.0
    tmp = cached.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps({"f1": f1, "entities": found}))
    os.replace(tmp, cached)
    return f1


def _probe_agreement(engine, reference: Path) -> dict[str, int]:
    from stream.engine.params import DecodeParams
    from stream.engine.probe import LABELS, TEXTS
    from stream.engine.session import OnnxSession
    from stream.engine.tensors import INPUT_NAMES, OUTPUT_NAMES

    ref_session = OnnxSession(reference, INPUT_NAMES, OUTPUT_NAMES, engine.session.threads)
    found = {"int8": 0, "ref": 0, "both": 0}
    for p in engine.prepare(list(TEXTS), [LABELS] * len(TEXTS)):
        outputs = {"int8": [engine.run([row])[0] for row in p.rows],
                   "ref": [ref_session.run(engine.feed([row]))[0][0] for row in p.rows]}
        for threshold in (0.3, 0.5, 0.7):
            params = DecodeParams(threshold)
            got = {k: {(e.start, e.end, e.label) for e in engine.decode(p, out, params).entities}
                   for k, out in outputs.items()}
            found["int8"] += len(got["int8"])
            found["ref"] += len(got["ref"])
            found["both"] += len(got["int8"] & got["ref"])
    return found


def _dequantized_copy(int8: Path, folder: Path) -> Path:
    """``dequantized`` of ``int8``, written to ``folder``: the fp32 reference of an int8-only folder."""
    import onnx

    model = onnx.load(str(int8))
    dequantized(model)
    out = folder / f"{int8.stem}-dequantized.onnx"
    onnx.save(model, str(out))
    return out
