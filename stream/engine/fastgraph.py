"""Derive a faster, equivalent GLiNER markerV0 graph from any exported one, at load time.

The exported span head computes, for every span (i, j=i+k),
``out_project(relu(cat(S_i, E_j)))`` — Linear(2D→4D) · ReLU · Linear(4D→D) — and then dots the
result with each label vector. Both Linears are affine, so:

- the first splits into per-*word* terms: ``A_i = relu(S_i)·W1[:D] + b1`` and
  ``B_j = relu(E_j)·W1[D:]`` (W·4D work instead of W·K·2D·4D);
- the last folds into the label vectors: ``Q = W2·Pᵀ`` (4D×C), ``r = b2·Pᵀ``.

Per span only ``relu(A_i + B_j)·Q + r`` remains: 4D·C instead of ~12·D² multiply-adds. Exact
up to float rounding. Spans are scored one width at a time (see ``_head``), so memory stays at a
few [B, W, 4D] blocks: a batch of 32 long-document windows peaks well under 1 GB RSS, where one
[B, W, K, 4D] tensor took 2.7 GB.

The encoder's attention, as transformers' SDPA path exports it, spells out reshapes, scaled
operands, a mask on [B, H, T, T], Softmax and a NaN guard per layer; each block becomes one
``com.microsoft.MultiHeadAttention`` over the exported Q/K/V projections, with the padding
mask folded into one extra Q/K channel per head so the kernel's flash path runs. Graphs whose
attention does not match keep it, with the NaN guards dropped where a finite mask fill makes
them unnecessary.

Works on fp32 and on dynamically quantized (int8) exports (the head's weights are dequantized;
the encoder stays int8, with per-token activation scales: ``engine.quantize``). The result is
cached on disk.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import NamedTuple

import numpy as np

from stream.engine.graphcache import cache_dir, digest, save_atomically
from stream.engine.quantize import float_lstm, per_token_activations, weight_kind

log = logging.getLogger(__name__)
FAST_GRAPH_VERSION = "18"


class GraphPatternError(Exception):
    """The graph does not have the markerV0 structure this rewrite expects."""


def fast_graph_path(src: Path, max_width: int, cache_root: str | Path | None = None, int8: bool = False) -> Path:
    """Path of the rewritten graph for ``src`` (built on first use, then reused). An int8 graph's key
    also names the weight kind this CPU needs (``quantize.weight_kind``); an fp32 one does not."""
    version = FAST_GRAPH_VERSION + (weight_kind() if int8 else "")
    out = cache_dir(cache_root) / f"{src.stem}-{digest(src, version)}-k{max_width}-fast.onnx"
    if not out.exists():
        save_atomically(rewrite(src, max_width), out)
        log.info("derived fast span-head graph %s from %s", out.name, src)
    return out


def _one(nodes, suffix: str):
    found = [n for n in nodes if n.name.endswith(suffix)]
    if len(found) != 1:
        raise GraphPatternError(f"expected one node ending in {suffix!r}, found {len(found)}")
    return found[0]


def _linear(add_node, producers, inits) -> tuple[np.ndarray, np.ndarray]:
    """(W [in, out], b [out]) of the Linear whose bias Add is ``add_node`` (fp32 or int8 export)."""
    from onnx import numpy_helper

    bias_name = next((i for i in add_node.input if i in inits), None)
    act = next((i for i in add_node.input if i not in inits), None)
    if bias_name is None or act is None:
        raise GraphPatternError(f"{add_node.name}: no bias initializer")
    bias = numpy_helper.to_array(inits[bias_name]).astype(np.float32)
    node = producers[act]
    if node.op_type == "MatMul" and node.input[1] in inits:
        return numpy_helper.to_array(inits[node.input[1]]).astype(np.float32), bias
    if node.op_type == "Mul":  # dynamic quantization: Mul(Cast(MatMulInteger(...)), scales)
        cast = producers.get(node.input[0])
        mmi = producers.get(cast.input[0]) if cast is not None else None
        if mmi is not None and mmi.op_type == "MatMulInteger":
            wq = numpy_helper.to_array(inits[mmi.input[1]]).astype(np.float32)
            zp = numpy_helper.to_array(inits[mmi.input[3]]).astype(np.float32) if len(mmi.input) > 3 else 0.0
            scales_mul = producers[node.input[1]]
            scale_name = next(i for i in scales_mul.input if i in inits)
            scale = numpy_helper.to_array(inits[scale_name]).astype(np.float32)
            return ((wq - zp) * scale).astype(np.float32), bias
    raise GraphPatternError(f"{add_node.name}: unrecognised weight producer {node.op_type}")


def _const(name: str, producers, inits):
    """Value of an initializer or Constant node output (through Identity), else None."""
    from onnx import numpy_helper

    if name in inits:
        return numpy_helper.to_array(inits[name])
    node = producers.get(name)
    if node is not None and node.op_type == "Identity":  # exporters dedupe equal tensors this way
        return _const(node.input[0], producers, inits)
    if node is not None and node.op_type == "Constant" and node.attribute and node.attribute[0].HasField("t"):
        return numpy_helper.to_array(node.attribute[0].t)
    return None


def _head_path(name: str, producers, inits) -> tuple[str, float, int]:
    """Walk up ``Mul(scalar)`` / ``Transpose`` / ``Reshape`` from one attention operand to the
    projection it came from: (projection output, product of scalar factors, head size)."""
    scale, head_size = 1.0, 0
    while True:
        node = producers.get(name)
        if node is None:
            break
        if node.op_type == "Mul":
            consts = [(i, _const(i, producers, inits)) for i in node.input]
            factor = [c for _, c in consts if c is not None and c.size == 1]
            other = [i for i, c in consts if c is None]
            if len(factor) != 1 or len(other) != 1:
                break
            scale *= float(factor[0].reshape(()))
            name = other[0]
        elif node.op_type == "Transpose":
            name = node.input[0]
        elif node.op_type == "Reshape":
            shape = producers.get(node.input[1])
            last = _const(shape.input[-1], producers, inits) if shape is not None and shape.op_type == "Concat" \
                else _const(node.input[1], producers, inits)
            if last is None or last.size < 1 or int(last.reshape(-1)[-1]) <= 0:
                raise GraphPatternError(f"{node.name}: head size not constant")
            head_size = int(last.reshape(-1)[-1])
            name = node.input[0]
        else:
            break
    if not head_size:
        raise GraphPatternError(f"{name}: no head reshape above the attention operand")
    return name, scale, head_size


def _projection_width(name: str, producers, inits, depth: int = 3) -> int | None:
    """Width of a projection output: the size of the bias vector among the Adds above it."""
    node = producers.get(name)
    if node is None or node.op_type != "Add" or depth == 0:
        return None
    for i in node.input:
        value = _const(i, producers, inits)
        if value is not None and value.ndim == 1:
            return int(value.size)
    return next((w for w in (_projection_width(i, producers, inits, depth - 1) for i in node.input) if w), None)


def _fuse_attention(nodes, inits, p: str, mask_input: str):
    """Replace each encoder self-attention block by one ``com.microsoft.MultiHeadAttention``.

    The export spells attention out as reshapes, transposes, two scaled operands, a mask Add on
    [B, H, T, T], Softmax, a NaN guard and MatMuls — five or six passes over the score tensor,
    which for paragraph-sized rows is larger than the cache. Q, K and V stay the exported
    projections (fp32 or int8), so this works on both variants.

    The key-padding mask is not passed as a mask: onnxruntime's CPU kernel only takes its flash
    path (tiled, L2-resident) without one, and the masked path ran at ~12-27 GFLOPS, up to 40% of
    long-row graph time. Instead each head gets one extra Q/K channel: 1 in every query and 0 or
    KEY_PAD_BIAS in every key, so ``q'·k' = q·k`` for real keys and padded keys drop to zero
    weight, exactly as with the mask. Returns (nodes, extra nodes); raises GraphPatternError when
    a block does not match.
    """
    from onnx import helper

    producers = {o: n for n in nodes for o in n.output}
    consumers: dict[str, list] = {}
    for node in nodes:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    softmaxes = [n for n in nodes if n.op_type == "Softmax" and "attention" in n.name]
    if not softmaxes:
        raise GraphPatternError("no attention Softmax")
    extra: list = []
    padded_heads: dict[tuple[int, int], _PadChannel] = {}
    replaced: set[int] = set()  # ids: protobuf messages compare by content, not identity
    for sm in softmaxes:
        add = producers.get(sm.input[0])
        scores = next((producers[i] for i in (add.input if add is not None and add.op_type == "Add" else ())
                       if i in producers and producers[i].op_type == "MatMul"), None)
        if scores is None:
            raise GraphPatternError(f"{sm.name}: scores are not MatMul + mask Add")
        q, q_scale, head_size = _head_path(scores.input[0], producers, inits)
        k, k_scale, _ = _head_path(scores.input[1], producers, inits)
        users = [u for u in consumers.get(sm.output[0], []) if u.op_type != "IsNaN"]
        if len(users) != 1 or users[0].op_type not in ("MatMul", "Where"):
            raise GraphPatternError(f"{sm.name}: unexpected softmax consumer")
        probs_user = users[0]
        if probs_user.op_type == "Where":  # the NaN guard: Where(IsNaN(p), 0, p)
            probs_user = next(iter(consumers.get(probs_user.output[0], [])), None)
        if probs_user is None or probs_user.op_type != "MatMul":
            raise GraphPatternError(f"{sm.name}: probabilities do not feed a MatMul")
        v, v_scale, _ = _head_path(probs_user.input[1], producers, inits)
        transpose = consumers.get(probs_user.output[0], [None])[0]
        reshape = consumers.get(transpose.output[0], [None])[0] if transpose is not None else None
        if transpose is None or transpose.op_type != "Transpose" or reshape is None or reshape.op_type != "Reshape":
            raise GraphPatternError(f"{sm.name}: context is not Transpose + Reshape")
        hidden = _projection_width(q, producers, inits)
        if hidden is None or v_scale != 1.0:
            raise GraphPatternError(f"{sm.name}: cannot read the model width")
        heads = hidden // head_size
        if (heads, head_size) not in padded_heads:
            padded_heads[(heads, head_size)] = _key_padding_channel(extra, p + f"kpad{len(padded_heads)}/",
                                                                    mask_input, heads, head_size)
        pad = padded_heads[(heads, head_size)]
        name = p + sm.name.replace("/", "_")
        qk = []
        for x, col, tag in ((q, pad.qcol, "q"), (k, pad.kcol, "k")):
            prefix = f"{name}_{tag}"
            extra += [helper.make_node("Reshape", [x, pad.split], [prefix + "_4d"]),
                      helper.make_node("Concat", [prefix + "_4d", col], [prefix + "_cat"], axis=3),
                      helper.make_node("Reshape", [prefix + "_cat", pad.join], [prefix + "_padded"])]
            qk.append(prefix + "_padded")
        extra.append(helper.make_node(
            "MultiHeadAttention", [qk[0], qk[1], v], [reshape.output[0]], name=name,
            domain="com.microsoft", num_heads=heads, scale=q_scale * k_scale))
        replaced.add(id(reshape))
    kept = [n for n in nodes if id(n) not in replaced]
    return kept, extra


KEY_PAD_BIAS = -1e9  # × the attention scale, far below exp's underflow: padded keys weigh 0.0


class _PadChannel(NamedTuple):
    """Tensor names: reshape targets [0, 0, heads, head_size] and [0, 0, heads·(head_size+1)],
    the query column (ones) and the key column (0 real, KEY_PAD_BIAS padding), [B, T, heads, 1]."""

    split: str
    join: str
    qcol: str
    kcol: str


def _key_padding_channel(extra: list, p: str, mask_input: str, heads: int, head_size: int) -> _PadChannel:
    """Append the nodes of the per-head padding channel to ``extra``."""
    from onnx import TensorProto, helper, numpy_helper

    def const(name: str, value) -> str:
        extra.append(helper.make_node("Constant", [], [p + name], value=numpy_helper.from_array(value, p + name)))
        return p + name

    split = const("split_shape", np.array([0, 0, heads, head_size], dtype=np.int64))
    join = const("join_shape", np.array([0, 0, heads * (head_size + 1)], dtype=np.int64))
    n = helper.make_node
    extra += [
        n("Cast", [mask_input], [p + "mask_f"], to=TensorProto.FLOAT),
        n("Sub", [p + "mask_f", const("one_f", np.array(1.0, dtype=np.float32))], [p + "pad_neg"]),
        n("Mul", [p + "pad_neg", const("bias", np.array(-KEY_PAD_BIAS, dtype=np.float32))], [p + "kb"]),
        n("Unsqueeze", [p + "kb", const("axes23", np.array([2, 3], dtype=np.int64))], [p + "kb4"]),
        n("Expand", [p + "kb4", const("heads_shape", np.array([1, 1, heads, 1], dtype=np.int64))], [p + "kcol"]),
        n("Shape", [p + "kcol"], [p + "col_shape"]),
        n("ConstantOfShape", [p + "col_shape"], [p + "qcol"],
          value=numpy_helper.from_array(np.array([1.0], dtype=np.float32))),
    ]
    return _PadChannel(split, join, p + "qcol", p + "kcol")


def _lighten_attention(nodes, producers, inits, p: str):
    """Drop the softmax NaN guards, made unnecessary by a finite mask fill.

    The exported mask is ``Where(mask, 0, -inf)``; rows of padded queries are all -inf, their
    softmax is NaN, and ``Where(IsNaN(p), 0, p)`` cleans that up on every [B, H, T, T] tensor.
    With a fill of -1e30 instead, masked keys still get exactly zero weight, no NaN can arise,
    and the guards go. Padded positions hold finite junk that no real position ever reads.
    Applied only when every guard's mask could be made finite, and never to dynamically
    quantized graphs: their activation scales span whole tensors, padded rows included, so junk
    there would cost real rows precision.
    """
    from onnx import numpy_helper

    if any(node.op_type == "DynamicQuantizeLinear" for node in nodes):
        return nodes, []
    neg_inf_fills = []
    guards = []
    for node in nodes:
        if node.op_type != "Where":
            continue
        cond = producers.get(node.input[0])
        if cond is not None and cond.op_type == "IsNaN" and cond.input[0] == node.input[2]:
            guards.append(node)
            continue
        fill = _const(node.input[2], producers, inits)
        if fill is not None and fill.size == 1 and np.isneginf(fill).all() and "attention" in node.name:
            neg_inf_fills.append((node, fill))
    if not guards or not neg_inf_fills:
        return nodes, []
    extra_inits = []
    for i, (node, fill) in enumerate(neg_inf_fills):
        name = f"{p}attn_mask_fill_{i}"
        extra_inits.append(numpy_helper.from_array(np.full(fill.shape, -1e30, dtype=np.float32), name))
        node.input[2] = name
    rename = {g.output[0]: g.input[2] for g in guards}
    guard_ids = {id(g) for g in guards}
    kept = [n for n in nodes if id(n) not in guard_ids]
    for node in kept:
        for i, name in enumerate(node.input):
            node.input[i] = rename.get(name, name)
    return kept, extra_inits


def _head(p: str, max_width: int):
    """Span logits one width at a time, as ``max(A_i, -B_j)·Q - (-B_j)·Q + r``.

    ``relu(A_i + B_j) = max(A_i, -B_j) + B_j``, and ``B_j·Q`` is a per-word [B, W, C] term, so
    each width costs one Slice, one Max and one MatMul over a [B, W, 4D] block: no Add and Relu
    passes (1.25-1.5x faster than add-then-relu) and never the [B, W, K, 4D] tensor (~1 GB for 32
    windows of 384 words). ``-B`` is padded with max_width words, so every width slices W rows;
    spans running past a row's words hold finite junk that decoding never reads.
    """
    from onnx import helper, numpy_helper

    n = helper.make_node
    inits = [numpy_helper.from_array(np.array([0, 0, 0, 0, max_width, 0], dtype=np.int64), p + "pad_words")]
    nodes = [
        n("Pad", [p + "nb", p + "pad_words"], [p + "nb_pad"]),                  # [B, W+K, H]
        n("MatMul", [p + "nb", p + "q"], [p + "nbq"]),                           # [B, W, C]
        n("Pad", [p + "nbq", p + "pad_words"], [p + "nbq_pad"]),                # [B, W+K, C]
    ]
    for k in range(max_width):
        t = f"{p}k{k}/"
        inits.append(numpy_helper.from_array(np.array([k], dtype=np.int64), t + "k"))
        nodes += [
            n("Add", [t + "k", p + "w"], [t + "end"]),
            n("Slice", [p + "nb_pad", t + "k", t + "end", p + "axis1"], [t + "nb"]),     # [B, W, H]: -B_{i+k}
            n("Max", [p + "a", t + "nb"], [t + "m"]),
            n("MatMul", [t + "m", p + "q"], [t + "mq"]),                                # [B, W, C]
            n("Slice", [p + "nbq_pad", t + "k", t + "end", p + "axis1"], [t + "nbq"]),
            n("Sub", [t + "mq", t + "nbq"], [t + "o"]),
            n("Unsqueeze", [t + "o", p + "axis2"], [t + "o4"]),                         # [B, W, 1, C]
        ]
    nodes += [
        n("Concat", [f"{p}k{k}/o4" for k in range(max_width)], [p + "zq"], axis=2),     # [B, W, K, C]
        n("Add", [p + "zq", p + "r4"], ["logits"]),
    ]
    return nodes, inits


def rewrite(src: Path, max_width: int):
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    producers = {o: n for n in graph.node for o in n.output}
    einsum = producers.get("logits")
    if einsum is None or einsum.op_type != "Einsum":
        raise GraphPatternError("output 'logits' is not produced by an Einsum")
    prompts = einsum.input[1]
    s_out = _one(graph.node, "project_start/project_start.3/Add").output[0]
    e_out = _one(graph.node, "project_end/project_end.3/Add").output[0]
    w1, b1 = _linear(_one(graph.node, "out_project/out_project.0/Add"), producers, inits)
    w2, b2 = _linear(_one(graph.node, "out_project/out_project.3/Add"), producers, inits)
    d = w2.shape[1]
    hidden = w2.shape[0]
    if w1.shape != (2 * d, hidden):
        raise GraphPatternError(f"out_project.0 has shape {w1.shape}, expected {(2 * d, hidden)}")

    p = "/spanstream/fast/"
    new_inits = [
        numpy_helper.from_array(np.ascontiguousarray(w1[:d]), p + "w1_start"),
        numpy_helper.from_array(np.ascontiguousarray(-w1[d:]), p + "w1_end_neg"),
        numpy_helper.from_array(b1, p + "b1"),
        numpy_helper.from_array(np.ascontiguousarray(w2), p + "w2"),
        numpy_helper.from_array(b2.reshape(d, 1), p + "b2_col"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), p + "axis1"),
        numpy_helper.from_array(np.array([2], dtype=np.int64), p + "axis2"),
    ]
    n = helper.make_node
    new_nodes = [
        n("Relu", [s_out], [p + "s_relu"]),
        n("Relu", [e_out], [p + "e_relu"]),
        n("MatMul", [p + "s_relu", p + "w1_start"], [p + "a_mm"]),
        n("Add", [p + "a_mm", p + "b1"], [p + "a"]),                       # [B, W, H]
        n("MatMul", [p + "e_relu", p + "w1_end_neg"], [p + "nb"]),         # [B, W, H]: -B
        n("Transpose", [prompts], [p + "pt"], perm=[0, 2, 1]),             # [B, D, C]
        n("MatMul", [p + "w2", p + "pt"], [p + "q"]),                      # [B, H, C]
        n("MatMul", [prompts, p + "b2_col"], [p + "r_col"]),               # [B, C, 1]
        n("Transpose", [p + "r_col"], [p + "r_row"], perm=[0, 2, 1]),      # [B, 1, C]
        n("Unsqueeze", [p + "r_row", p + "axis1"], [p + "r4"]),            # [B, 1, 1, C]
        n("Shape", [p + "a"], [p + "w"], start=1, end=2),                  # [W]
    ]
    head_nodes, head_inits = _head(p, max_width)
    new_nodes += head_nodes
    new_inits += head_inits
    kept = [node for node in graph.node if node is not einsum]
    try:
        kept, attention_nodes = _fuse_attention(kept, inits, p, "attention_mask")
        if not any(o.domain == "com.microsoft" for o in model.opset_import):
            model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    except GraphPatternError as exc:
        log.info("%s: attention left as exported (%s)", src, exc)
        attention_nodes = []
        kept, mask_inits = _lighten_attention(kept, producers, inits, p)
        new_inits += mask_inits
    all_nodes = kept + attention_nodes + new_nodes
    # keep only what 'logits' needs
    by_output = {o: node for node in all_nodes for o in node.output}
    needed, stack = set(), ["logits"]
    while stack:
        name = stack.pop()
        node = by_output.get(name)
        if node is None or id(node) in needed:
            continue
        needed.add(id(node))
        stack.extend(i for i in node.input if i)
        for attr in node.attribute:  # subgraphs (If/Loop) reference outer names
            for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                for sn in sub.node:
                    stack.extend(i for i in sn.input if i)
    ordered = [node for node in all_nodes if id(node) in needed]
    del graph.node[:]
    graph.node.extend(ordered)
    used = {i for node in ordered for i in node.input}
    for attr_node in ordered:
        for attr in attr_node.attribute:
            for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                used.update(i for sn in sub.node for i in sn.input)
    keep_inits = [i for i in graph.initializer if i.name in used] + new_inits
    del graph.initializer[:]
    graph.initializer.extend(keep_inits)
    del graph.value_info[:]
    if any(node.op_type == "DynamicQuantizeLinear" for node in graph.node):
        per_token_activations(model)  # int8 that does not depend on batch-mates (engine.quantize)
    float_lstm(model)
    return model
