"""Dev-time: turn a ``GLiNER2.save_pretrained`` folder into spanstream's torch-free layout.

    spanstream export-gliner2 SRC DST      (needs the `export` extra: torch + gliner2)

DST holds ``gliner2_config.json``, ``encoder.onnx`` (input_ids, attention_mask → hidden states),
``heads.npz`` (every non-encoder tensor under its state-dict name, run in numpy by ``heads`` or
``boundary``) and ``tokenizer.json`` (with gliner2's ten special tokens). Both architectures:
span (gliner2-*-v1, ``count_lstm`` / ``count_lstm_v2``) and boundary ("GLiNER2.5",
``architecture: "boundary"``: its ``boundary_head`` settings are copied, and the engine refuses at
load the ones it does not compute, naming the key).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from stream.engine.gliner2.heads import COUNTING_LAYERS
from stream.errors import ModelLoadError

CONFIG_NAME = "gliner2_config.json"
ENCODER_NAME = "encoder.onnx"
HEADS_NAME = "heads.npz"
FORMAT = "spanstream-gliner2"
FORMAT_VERSION = 1


def export_gliner2(src: Path, dst: Path, opset: int = 18) -> Path:
    import numpy as np
    import torch
    from gliner2 import GLiNER2

    src, dst = Path(src), Path(dst)
    raw = json.loads((src / "config.json").read_text()) if (src / "config.json").exists() else {}
    arch = raw.get("architecture", "span")
    if arch not in ("span", "boundary"):
        raise ModelLoadError(f"{src}: architecture {arch!r} is not supported (span or boundary)")
    if arch == "boundary":
        from gliner2 import AutoExtractor

        model = AutoExtractor.from_pretrained(str(src))
    else:
        model = GLiNER2.from_pretrained(str(src))
    model.eval()
    cfg = model.config
    if arch == "span" and cfg.counting_layer not in COUNTING_LAYERS:
        raise ModelLoadError(f"{src}: counting_layer {cfg.counting_layer!r} is not supported "
                             f"(supported: {', '.join(COUNTING_LAYERS)})")
    if getattr(cfg, "token_pooling", "first") != "first":
        raise ModelLoadError(f"{src}: token_pooling {cfg.token_pooling!r} is not supported (only 'first')")

    class Encoder(torch.nn.Module):
        def __init__(self, encoder):
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids, attention_mask):
            return self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    with tempfile.TemporaryDirectory(dir=dst.parent if dst.parent.exists() else None) as tmp:
        out = Path(tmp) / "model"
        out.mkdir()
        ids = torch.tensor([[1, 5, 6, 7, 8, 2, 0]], dtype=torch.long)
        mask = torch.ones_like(ids)
        with torch.no_grad():
            torch.onnx.export(Encoder(model.encoder).eval(), (ids, mask), str(out / ENCODER_NAME),
                              input_names=["input_ids", "attention_mask"], output_names=["hidden_states"],
                              dynamic_axes={"input_ids": {0: "batch", 1: "tokens"},
                                            "attention_mask": {0: "batch", 1: "tokens"},
                                            "hidden_states": {0: "batch", 1: "tokens"}},
                              opset_version=opset, dynamo=False)
        heads = {k: v.detach().float().cpu().numpy() for k, v in model.state_dict().items()
                 if not k.startswith("encoder.")}
        np.savez(out / HEADS_NAME, **heads)
        model.processor.tokenizer.backend_tokenizer.save(str(out / "tokenizer.json"))
        enc_cfg = model.encoder.config
        max_tok = getattr(model.processor.tokenizer, "model_max_length", None)
        limits = [x for x in (getattr(enc_cfg, "max_position_embeddings", None), max_tok)
                  if isinstance(x, int) and 0 < x < 10**6]
        config = {
            "format": FORMAT, "format_version": FORMAT_VERSION, "architecture": arch,
            "name": src.name, "source": str(src),
            "token_pooling": "first", "hidden_size": int(enc_cfg.hidden_size),
            "max_tokens": min(limits) if limits else 512,
            "encoder_model_type": getattr(enc_cfg, "model_type", ""),
        }
        if arch == "span":
            config.update({"max_width": int(cfg.max_width), "counting_layer": cfg.counting_layer})
        else:
            config["boundary_head"] = raw.get("boundary_head", {})
            config["config_version"] = raw.get("config_version")
        (out / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")
        if dst.exists():
            shutil.rmtree(dst)
        shutil.move(str(out), dst)
    return dst
