"""Benchmark texts: real English news prose shipped by gensim (lee_background.cor, 300 ABC
news documents), cut reproducibly into three workloads."""

from __future__ import annotations

import re
from pathlib import Path


def _documents() -> list[str]:
    try:
        import gensim
    except ImportError as exc:
        raise SystemExit("the benchmark corpus needs gensim: pip install -e '.[bench]'") from exc
    path = Path(gensim.__file__).parent / "test" / "test_data" / "lee_background.cor"
    return [" ".join(line.split()) for line in path.read_text(encoding="latin-1").splitlines() if line.strip()]


def sentences(n: int) -> list[str]:
    """News sentences of 8–60 words (mean ≈ 22)."""
    out = []
    for doc in _documents():
        for sent in re.split(r"(?<=[.!?])\s+(?=[A-Z\"'])", doc):
            if 8 <= len(sent.split()) <= 60:
                out.append(sent)
    return (out * (n // max(len(out), 1) + 1))[:n]


def paragraphs(n: int, words: int = 120) -> list[str]:
    """≈120-word paragraphs."""
    tokens = " ".join(_documents()).split()
    out = [" ".join(tokens[i:i + words]) for i in range(0, len(tokens) - words, words)]
    return out[:n]


def long_documents(n: int, words: int = 1000) -> list[str]:
    """≈1,000-word documents (several news stories joined), longer than the model window."""
    tokens = " ".join(_documents()).split()
    out = [" ".join(tokens[i:i + words]) for i in range(0, len(tokens) - words, words)]
    return out[:n]


SHORT_LABELS = ["person", "organization", "location", "date", "money"]
PARAGRAPH_LABELS = ["person", "organization", "location", "date", "money", "event", "nationality", "product",
                    "law", "number"]
