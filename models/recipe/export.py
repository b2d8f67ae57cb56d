"""Export the trained model to the standard GLiNER ONNX folder and install it in models/."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

SHIP = ("model_quantized.onnx", "gliner_config.json", "tokenizer.json", "tokenizer_config.json")


def export(final: Path, onnx_dir: Path, dest: Path) -> Path:
    from gliner import GLiNER

    from models.recipe.quantize import quantize

    if not (onnx_dir / "model.onnx").exists():
        model = GLiNER.from_pretrained(str(final), local_files_only=True)
        model.eval()
        model.save_pretrained(onnx_dir, safe_serialization=True)
        model.export_to_onnx(onnx_dir, quantize=True, opset=19)
    marker = onnx_dir / ".per-channel-int8"
    if not marker.exists():
        # Replace gliner's per-tensor u8 quantization: per-channel s8 weights (and int8 embeddings)
        # ran 1.4x faster with better agreement to fp32 in bench, and keep the file under 50 MB.
        quantize(onnx_dir / "model.onnx", onnx_dir / "model_quantized.onnx")
        marker.touch()
    dest.mkdir(parents=True, exist_ok=True)
    for name in SHIP:
        shutil.copy(onnx_dir / name, dest / name)
    cfg = json.loads((dest / "gliner_config.json").read_text())
    cfg["model_name"] = "sentence-transformers/all-MiniLM-L6-v2"  # not the builder's local path
    cfg["name"] = dest.name
    (dest / "gliner_config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    return dest
