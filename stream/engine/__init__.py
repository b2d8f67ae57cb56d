"""The model runtime: tokenize → ONNX → decode. Knows nothing of Kafka or HTTP.

``Extractor`` is the public API; model families sit behind the small ``ModelEngine`` protocol
so a second family (GLiNER2) can join without touching callers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from stream.engine.batching import DEFAULT_MAX_ROWS, DEFAULT_MAX_TOKENS, plan_batches
from stream.engine.folder import (
    ModelFolder,
    Variant,
    download_from_hub,
    resolve_model_folder,
)
from stream.engine.gliner_span import GlinerSpanEngine, ModelInfo
from stream.engine.params import DecodeParams
from stream.engine.types import Entity, Extraction, Prepared

__all__ = ["DEFAULT_MAX_ROWS", "DEFAULT_MAX_TOKENS", "DecodeParams", "Entity", "Extraction", "Extractor",
           "ModelEngine", "ModelInfo", "Prepared", "default_model_path", "load_engine", "plan_batches"]

MODELS_DIR = Path(__file__).resolve().parents[1] / "data" / "models"
"The embedded model ships inside the package (in the repository, a link to models/)."
DEFAULT_MODEL_NAME = "spanstream-minilm-gliner2"
HUB_PREFIX = "hf://"


class ModelEngine(Protocol):
    """What every model family provides: three stages, so that callers can batch the rows of
    many texts together (``engine.batching``) between ``prepare`` and ``run``."""

    info: ModelInfo

    def check_labels(self, labels: tuple[str, ...]) -> None:
        """Raise ``InvalidInput`` for a label set the model cannot take (before work is queued)."""

    def prepare(self, texts: list[str], labels: list[tuple[str, ...]]) -> list[Prepared]:
        """Split, tokenize and window; pure CPU work."""

    def feed(self, rows: list[Any]) -> dict[str, np.ndarray]:
        """The ONNX feed of one batch of rows."""

    def run(self, rows: list[Any]) -> list[np.ndarray]:
        """One model call over a batch of rows; the output of each row."""

    def decode(self, prepared: Prepared, outputs: list[np.ndarray], params: DecodeParams) -> Extraction:
        """One text's row outputs (in row order) → its result."""


def default_model_path() -> Path:
    """The embedded default model shipped in ``models/``."""
    return MODELS_DIR / DEFAULT_MODEL_NAME


def load_engine(path: str | Path | None = None, variant: Variant = "auto", threads: int | None = None,
                graph: str = "fast", cache_dir: str | Path | None = None) -> ModelEngine:
    """``graph='fast'`` rewrites the span head (same results up to float rounding, much less
    compute); ``'exported'`` runs the graph exactly as shipped."""
    repo_id = None
    if isinstance(path, str) and path.startswith(HUB_PREFIX):  # optional: needs network + huggingface_hub
        repo_id = path[len(HUB_PREFIX):]
        path = download_from_hub(repo_id)
    from stream.engine.gliner2.engine import Gliner2Engine, is_gliner2_folder

    path = path or default_model_path()
    if is_gliner2_folder(Path(path)):
        engine: ModelEngine = Gliner2Engine(Path(path), threads, variant=variant, cache_dir=cache_dir)
    else:
        folder: ModelFolder = resolve_model_folder(path, variant)
        engine = GlinerSpanEngine(folder, threads, graph, cache_dir)
    if repo_id:  # a hub snapshot folder is named by its commit: report the repository instead
        engine.info = replace(engine.info, name=repo_id)
    return engine


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
                         batch_size: int = DEFAULT_MAX_ROWS, max_batch_tokens: int | None = DEFAULT_MAX_TOKENS,
                         sort_by_length: bool = True) -> list[Extraction]:
        """Entities per text. Rows are batched by ``engine.batching.plan_batches``: at most
        ``batch_size`` rows and ``max_batch_tokens`` padded tokens per call, sorted by length unless
        ``sort_by_length`` is off (to reproduce another runtime's batches; int8 activation scales
        are per batch)."""
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
        prepared = self.engine.prepare(texts, label_rows)
        rows, lengths, owners = _rows(prepared)
        outputs: list[list[Any]] = [[None] * len(p.rows) for p in prepared]
        for batch in plan_batches(lengths, batch_size, max_batch_tokens, sort_by_length):
            for i, out in zip(batch, self.engine.run([rows[i] for i in batch])):
                text, window = owners[i]
                outputs[text][window] = out
        return [self.engine.decode(p, o, prm) for p, o, prm in zip(prepared, outputs, params)]

    def feeds(self, texts: Sequence[str], labels: Sequence[str] | Sequence[Sequence[str]],
              batch_size: int = DEFAULT_MAX_ROWS, max_batch_tokens: int | None = DEFAULT_MAX_TOKENS) -> list[dict]:
        """The ONNX feeds ``extract`` would run for these texts, not run: for int8 calibration
        and for profiling the graph on exactly the engine's batches."""
        texts = list(texts)
        rows, lengths, _ = _rows(self.engine.prepare(texts, _normalize_labels(labels, len(texts))))
        return [self.engine.feed([rows[i] for i in batch]) for batch in plan_batches(lengths, batch_size,
                                                                                        max_batch_tokens)]

    def extract(self, texts: Sequence[str], labels: Sequence[str] | Sequence[Sequence[str]], **kwargs) -> list[list[Entity]]:
        return [r.entities for r in self.extract_detailed(texts, labels, **kwargs)]


def _rows(prepared: list[Prepared]) -> tuple[list[Any], list[int], list[tuple[int, int]]]:
    """Every row of every text, its length, and (text index, window index) of each."""
    rows, lengths, owners = [], [], []
    for t, p in enumerate(prepared):
        rows.extend(p.rows)
        lengths.extend(p.lengths)
        owners.extend((t, w) for w in range(len(p.rows)))
    return rows, lengths, owners
