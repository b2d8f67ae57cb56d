"""Find and validate a model folder in the standard GLiNER ONNX layout.

Layout (as published on the hub or written by ``GLiNER.export_to_onnx``)::

    gliner_config.json  tokenizer.json  tokenizer_config.json
    model.onnx  model_quantized.onnx        # or under onnx/
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from stream.errors import ModelLoadError

Variant = Literal["auto", "fp32", "int8"]
VARIANT_FILES = {"fp32": ("model.onnx",), "int8": ("model_quantized.onnx", "model_int8.onnx")}
SUPPORTED_SPAN_MODES = ("markerV0",)


@dataclass(frozen=True)
class GlinerConfig:
    """The fields of ``gliner_config.json`` the runtime needs."""

    span_mode: str
    max_width: int
    max_len: int
    ent_token: str
    sep_token: str
    words_splitter_type: str
    subtoken_pooling: str
    name: str
    max_types: int = 25
    "Label count the model was trained with; more still work, but accuracy is untested there."
    max_positions: int | None = None
    "The encoder's ``max_position_embeddings``: a token limit besides the tokenizer's."

    @classmethod
    def parse(cls, raw: dict, source: Path) -> "GlinerConfig":
        span_mode = raw.get("span_mode", "markerV0")
        if span_mode not in SUPPORTED_SPAN_MODES:
            raise ModelLoadError(f"{source}: span_mode {span_mode!r} is not supported "
                                 f"(supported: {', '.join(SUPPORTED_SPAN_MODES)})")
        for key in ("labels_encoder", "labels_decoder", "relations_layer"):
            if raw.get(key):
                raise ModelLoadError(f"{source}: {key}={raw[key]!r} models are not supported; "
                                     "only uni-encoder span models (markerV0)")
        splitter = raw.get("words_splitter_type", "whitespace")
        if splitter != "whitespace":
            raise ModelLoadError(f"{source}: words_splitter_type {splitter!r} is not supported")
        pooling = raw.get("subtoken_pooling", "first") or "first"
        if pooling != "first":
            raise ModelLoadError(f"{source}: subtoken_pooling {pooling!r} is not supported")
        try:
            return cls(span_mode=span_mode, max_width=int(raw.get("max_width", 12)),
                       max_len=int(raw.get("max_len", 384)), ent_token=raw.get("ent_token", "<<ENT>>"),
                       sep_token=raw.get("sep_token", "<<SEP>>"), words_splitter_type=splitter,
                       subtoken_pooling=pooling, name=str(raw.get("name") or "gliner"),
                       max_types=int(raw.get("max_types") or 25),
                       max_positions=_int_or_none((raw.get("encoder_config") or {}).get("max_position_embeddings")))
        except (TypeError, ValueError) as exc:
            raise ModelLoadError(f"{source}: invalid value: {exc}") from exc


def _int_or_none(value) -> int | None:
    return int(value) if value else None


@dataclass(frozen=True)
class ModelFolder:
    """Resolved paths of one model folder and the chosen ONNX variant."""

    root: Path
    config: GlinerConfig
    tokenizer_file: Path
    tokenizer_config: dict
    onnx_file: Path
    variant: Literal["fp32", "int8"]
    derive_int8: bool = False
    "int8 was asked for and only fp32 is shipped: the engine quantizes ``onnx_file`` at load."

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def fp32_file(self) -> Path | None:
        """The folder's fp32 graph, if it ships one (the int8 variant's reference)."""
        return _find(self.root, VARIANT_FILES["fp32"])


def _find(root: Path, names: tuple[str, ...]) -> Path | None:
    for sub in ("", "onnx"):
        for name in names:
            candidate = root / sub / name
            if candidate.is_file():
                return candidate
    return None


def resolve_model_folder(path: str | Path, variant: Variant = "auto") -> ModelFolder:
    """Check the folder and pick the ONNX file; ``auto`` prefers fp32, else int8."""
    root = Path(path).expanduser()
    if not root.is_dir():
        raise ModelLoadError(f"model folder {root} does not exist")
    missing = [n for n in ("gliner_config.json", "tokenizer.json") if _find(root, (n,)) is None]
    if missing:
        raise ModelLoadError(f"model folder {root} is incomplete: missing {', '.join(missing)}")
    config_path = _find(root, ("gliner_config.json",))
    try:
        raw = json.loads(config_path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{config_path}: not valid JSON: {exc}") from exc
    config = GlinerConfig.parse(raw, config_path)
    tok_cfg_path = _find(root, ("tokenizer_config.json",))
    tok_cfg = json.loads(tok_cfg_path.read_text()) if tok_cfg_path else {}
    if variant not in ("auto", "fp32", "int8"):
        raise ModelLoadError(f"unknown variant {variant!r}: use auto, fp32 or int8")
    order = ["fp32", "int8"] if variant == "auto" else [variant]
    for v in order:
        onnx_file = _find(root, VARIANT_FILES[v])
        if onnx_file is not None:
            return ModelFolder(root, config, _find(root, ("tokenizer.json",)), tok_cfg, onnx_file, v)
    fp32 = _find(root, VARIANT_FILES["fp32"]) if variant == "int8" else None
    if fp32 is not None:  # no int8 file: derive one from fp32 at load (engine.quantize)
        return ModelFolder(root, config, _find(root, ("tokenizer.json",)), tok_cfg, fp32, "int8", derive_int8=True)
    wanted = " or ".join(f for v in order for f in VARIANT_FILES[v])
    raise ModelLoadError(f"model folder {root} has no {wanted} (looked in . and onnx/)")


def download_from_hub(repo_id: str, cache_dir: str | None = None) -> Path:
    """Fetch a model folder from the Hugging Face hub (optional `hub` extra, needs network)."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:
        raise ModelLoadError("downloading from the hub needs `pip install spanstream[hub]`") from exc
    try:
        return Path(snapshot_download(repo_id, cache_dir=cache_dir,
                                      allow_patterns=["*.json", "*.onnx", "onnx/*"]))
    except Exception as exc:  # network, auth, missing repo: one clear message
        raise ModelLoadError(f"could not download {repo_id!r} from the hub: {exc}") from exc
