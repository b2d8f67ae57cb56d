"""Does fusing DeBERTa's attention pay? The share of engine time in its attention blocks.

    python -m bench.deberta_attention [--hidden 256] [--layers 3] [--heads 4]   # needs `make export-dev`

Builds a random DeBERTa-v3 GLiNER of the given size (the tiny fixture's recipe, larger), runs the
engine's fast graph on 64 tweet-length texts and 16 paragraphs with onnxruntime's profiler, and
prints the share of node time spent in the encoder's attention (``/attention/self/`` nodes:
the disentangled score computation, softmax and context) against the rest. A fused kernel can at
best remove part of that share.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent


def build(out: Path, hidden: int, layers: int, heads: int) -> None:
    import torch
    from gliner import GLiNER, GLiNERConfig
    from transformers import DebertaV2Config, DebertaV2Model

    sys.path.insert(0, str(HERE.parent))
    from tests.fixtures.build_tiny_deberta import train_tokenizer

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        enc = Path(tmp) / "encoder"
        enc.mkdir()
        train_tokenizer(enc)
        cfg = DebertaV2Config(vocab_size=3000, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                              intermediate_size=4 * hidden, max_position_embeddings=512, relative_attention=True,
                              position_buckets=256, norm_rel_ebd="layer_norm", share_att_key=True,
                              pos_att_type=["p2c", "c2p"], position_biased_input=False, max_relative_positions=-1,
                              pad_token_id=0, initializer_range=0.5)
        DebertaV2Model(cfg).save_pretrained(enc)
        model = GLiNER.from_config(GLiNERConfig(model_name=str(enc), span_mode="markerV0", max_width=12,
                                                hidden_size=hidden, max_len=384),
                                   backbone_from_pretrained=True, local_files_only=True)
        model.eval()
        model.save_pretrained(out, safe_serialization=True)
        model.export_to_onnx(out, quantize=False, opset=19)


def main() -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    ap = argparse.ArgumentParser()
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--heads", type=int, default=4)
    args = ap.parse_args()
    from bench.corpus import paragraphs, sentences
    from stream.engine import load_engine
    from stream.engine.session import OnnxSession
    from stream.engine.tensors import INPUT_NAMES, OUTPUT_NAMES

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "deberta"
        build(folder, args.hidden, args.layers, args.heads)
        engine = load_engine(folder, "fp32")
        labels = ("person", "organization", "location", "date", "money")
        shares = {}
        for name, texts in (("tweets", sentences(64)), ("paragraphs", paragraphs(16))):
            session = OnnxSession(engine.session.path, INPUT_NAMES, OUTPUT_NAMES,
                                  profile_prefix=str(Path(tmp) / name))
            prepared = engine.prepare(texts, [labels] * len(texts))
            rows = [r for p in prepared for r in p.rows]
            for start in range(0, len(rows), 16):
                session.run(engine.feed(rows[start:start + 16]))
            trace = json.loads(session.end_profiling().read_text())
            time_by = defaultdict(float)
            by_op = defaultdict(float)
            for event in trace:
                if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
                    node = event["name"][:-len("_kernel_time")]
                    inside = "/attention/self/" in node
                    time_by["attention" if inside else "rest"] += event["dur"]
                    if inside:
                        by_op[event.get("args", {}).get("op_name", "?")] += event["dur"]
            total = sum(time_by.values())
            shares[name] = time_by["attention"] / total
            top = sorted(by_op.items(), key=lambda kv: -kv[1])[:6]
            print(f"  {name} attention time by op: " + ", ".join(f"{op} {t / total:.1%}" for op, t in top))
        print(f"DeBERTa-v3 GLiNER hidden {args.hidden}, {args.layers} layers, {args.heads} heads, fp32 fast graph:")
        for name, share in shares.items():
            print(f"  {name}: {share:.1%} of node time in attention blocks")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
