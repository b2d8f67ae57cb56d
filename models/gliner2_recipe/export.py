"""Trained checkpoint → the embedded folder: spanstream's GLiNER2 layout, the encoder's weights in
pieces under 50 MB (fp32, so the shipped model is the trained one, bit for bit)."""

from __future__ import annotations

import shutil
from pathlib import Path

MAX_FILE_BYTES = 45 * 1024 * 1024


def export(final: Path, dest: Path, work: Path) -> Path:
    import json

    import onnx

    from stream.engine.gliner2.export import CONFIG_NAME, ENCODER_NAME, export_gliner2
    from stream.engine.onnxfiles import save_split

    staged = work / "export"
    export_gliner2(final, staged)
    config = json.loads((staged / CONFIG_NAME).read_text())
    config.update(name=dest.name, source="make model-gliner2 (models/gliner2_recipe)")
    (staged / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")
    encoder = staged / ENCODER_NAME
    save_split(onnx.load(str(encoder)), encoder, MAX_FILE_BYTES)
    keep = {p.name for p in dest.glob("*.md")} | {p.name for p in dest.glob("*.json") if p.name.startswith("eval")}
    if dest.exists():
        for p in dest.iterdir():
            if p.name not in keep:
                p.unlink()
    dest.mkdir(parents=True, exist_ok=True)
    for p in staged.iterdir():
        shutil.copy2(p, dest / p.name)
    shutil.rmtree(staged)
    return dest
