"""Export the trained model to the standard GLiNER ONNX folder and install it in models/."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

SHIP = ("model_quantized.onnx", "gliner_config.json", "tokenizer.json", "tokenizer_config.json")


def export(final: Path, onnx_dir: Path, dest: Path, calibration: list[str]) -> Path:
    """``calibration``: held-out recipe text whose activations place the int8 outlier split."""
    from gliner import GLiNER

    from models.recipe.quantize import quantize

    if not (onnx_dir / "model.onnx").exists():
        model = GLiNER.from_pretrained(str(final), local_files_only=True)
        model.eval()
        model.save_pretrained(onnx_dir, safe_serialization=True)
        model.export_to_onnx(onnx_dir, quantize=True, opset=19)
    marker = onnx_dir / ".int8-outlier-split"
    if not marker.exists():
        # Replace gliner's per-tensor u8 quantization (see quantize.py): per-channel s8 weights,
        # outlier channels split off in fp32, fp16 embeddings; 98.5% of entities agree with fp32
        # instead of 95.8%, and the file stays under 50 MB.
        quantize(onnx_dir / "model.onnx", onnx_dir / "model_quantized.onnx", calibration)
        marker.touch()
    dest.mkdir(parents=True, exist_ok=True)
    for name in SHIP:
        shutil.copy(onnx_dir / name, dest / name)
    cfg = json.loads((dest / "gliner_config.json").read_text())
    cfg["model_name"] = "sentence-transformers/all-MiniLM-L6-v2"  # not the builder's local path
    cfg["name"] = dest.name
    (dest / "gliner_config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    return dest
