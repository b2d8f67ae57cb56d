"""The model runtime: tokenize → ONNX → decode. Knows nothing of Kafka or HTTP.

``Extractor`` is the public API; model families sit behind the small ``ModelEngine`` protocol
so a second family (GLiNER2) can join without touching callers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

from stream.engine.folder import ModelFolder, Variant, download_from_hub, resolve_model_folder
from stream.engine.gliner_span import GlinerSpanEngine, ModelInfo
from stream.engine.params import DecodeParams
from stream.engine.types import Entity, Extraction

__all__ = ["DecodeParams", "Entity", "Extraction", "Extractor", "ModelEngine", "ModelInfo",
           "default_model_path", "load_engine"]

MODELS_DIR = Path(__file__).resolve().parents[2] / "models"
DEFAULT_MODEL_NAME = "spanstream-minilm-ner"
HUB_PREFIX = "hf://"


class ModelEngine(Protocol):
    """What every model family provides."""

    info: ModelInfo

    def extract(self, texts: list[str], labels: list[tuple[str, ...]], params: list[DecodeParams],
                batch_size: int = 16, sort_by_length: bool = True) -> list[Extraction]: ...

    def feeds(self, texts: list[str], labels: list[tuple[str, ...]], batch_size: int = 16,
              sort_by_length: bool = True) -> list[dict]: ...


def default_model_path() -> Path:
    """The embedded default model shipped in ``models/``."""
    return MODELS_DIR / DEFAULT_MODEL_NAME


def load_engine(path: str | Path | None = None, variant: Variant = "auto", threads: int | None = None,
                graph: str = "fast") -> ModelEngine:
    """``graph='fast'`` rewrites the span head (same results up to float rounding, much less
    compute); ``'exported'`` runs the graph exactly as shipped."""
    if isinstance(path, str) and path.startswith(HUB_PREFIX):  # optional: needs network + huggingface_hub
        path = download_from_hub(path[len(HUB_PREFIX):])
    folder: ModelFolder = resolve_model_folder(path or default_model_path(), variant)
    return GlinerSpanEngine(folder, threads, graph)


def _normalize_labels(labels: Sequence[str] | Sequence[Sequence[str]], n: int) -> list[tuple[str, ...]]:
    if isinstance(labels, str):
        raise TypeError("labels must be a list of strings (or one list per text), not a string")
    if labels and all(isinstance(x, str) for x in labels):
        rows = [labels] * n
    else:
        rows = list(labels)
        if len(rows) != n:
            raise ValueError(f"got {len(rows)} label lists for {n} texts")
    out = []
    for row in rows:
        if isinstance(row, str) or not all(isinstance(x, str) for x in row):
            raise TypeError("each label must be a string")
        unique = tuple(dict.fromkeys(row))  # gliner de-duplicates, keeping first occurrence
        if not unique:
            raise ValueError("at least one label is required")
        out.append(unique)
    return out


class Extractor:
    """Zero-shot entity extraction on one loaded model.

    >>> ex = Extractor.load("models/spanstream-minilm-ner")
    >>> ex.extract(["Ada Lovelace was born in London."], ["person", "city"])
    """

    def __init__(self, engine: ModelEngine):
        self.engine = engine

    @classmethod
    def load(cls, path: str | Path | None = None, variant: Variant = "auto", threads: int | None = None,
             graph: str = "fast") -> "Extractor":
        return cls(load_engine(path, variant, threads, graph))

    @property
    def info(self) -> ModelInfo:
        return self.engine.info

    def extract_detailed(self, texts: Sequence[str], labels: Sequence[str] | Sequence[Sequence[str]],
                         threshold: float | Sequence[float] = 0.5, flat_ner: bool = True, multi_label: bool = False,
                         label_thresholds: Mapping[str, float] | None = None,
                         batch_size: int = 16, sort_by_length: bool = True) -> list[Extraction]:
        texts = list(texts)
        if not all(isinstance(t, str) for t in texts):
            raise TypeError("texts must be strings")
        label_rows = _normalize_labels(labels, len(texts))
        thresholds = [threshold] * len(texts) if isinstance(threshold, (int, float)) else list(threshold)
        if len(thresholds) != len(texts):
            raise ValueError(f"got {len(thresholds)} thresholds for {len(texts)} texts")
        params_cache: dict[float, DecodeParams] = {}
        params = []
        for t in thresholds:
            if t not in params_cache:
                params_cache[t] = DecodeParams(float(t), flat_ner, multi_label, dict(label_thresholds or {}))
            params.append(params_cache[t])
        if not texts:
            return []
        return self.engine.extract(texts, label_rows, params, batch_size, sort_by_length)

    def feeds(self, texts: Sequence[str], labels: Sequence[str] | Sequence[Sequence[str]],
              batch_size: int = 16) -> list[dict]:
        """The ONNX feeds ``extract`` would run for these texts, not run: for int8 calibration
        and for profiling the graph on exactly the engine's batches."""
        texts = list(texts)
        return self.engine.feeds(texts, _normalize_labels(labels, len(texts)), batch_size)

    def extract(self, texts: Sequence[str], labels: Sequence[str] | Sequence[Sequence[str]], **kwargs) -> list[list[Entity]]:
        return [r.entities for r in self.extract_detailed(texts, labels, **kwargs)]
