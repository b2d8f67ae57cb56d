"""Loaded engines, one per (folder, variant): the one piece of process-wide state."""

from __future__ import annotations

import threading
from pathlib import Path

from stream.engine import ModelEngine, load_engine

_ENGINES: dict[tuple[str, str], ModelEngine] = {}
_LOCK = threading.Lock()


def get_engine(path: Path | str | None, variant: str = "auto", threads: int | None = None,
               cache_dir: Path | None = None) -> ModelEngine:
    """Load once per (folder, variant); later calls share it. ``hf://org/name`` downloads first."""
    key = (str(path) if isinstance(path, str) and path.startswith("hf://")
           else str(Path(path).resolve()) if path else "", variant)
    with _LOCK:
        if key not in _ENGINES:
            _ENGINES[key] = load_engine(path, variant, threads, cache_dir=cache_dir)
        return _ENGINES[key]
