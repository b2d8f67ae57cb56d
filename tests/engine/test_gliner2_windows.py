"""Long texts on the GLiNER2 engine: every window fits the encoder (gliner2 raises past 512
tokens even on its *_long path when a chunk of words is too many sub-words), every word is in
some window, and results come back with offsets into the whole text."""

from __future__ import annotations

from pathlib import Path

from stream.engine.gliner2.engine import Gliner2Engine
from stream.engine.gliner2.words import split_words

MODEL = Path(__file__).resolve().parents[1] / "fixtures" / "tiny-gliner2" / "bert" / "spanstream"


def test_windows_of_subword_heavy_text_fit_and_cover_every_word():
    engine = Gliner2Engine(MODEL, threads=1)  # gliner2's default windows: 384 words, 64 overlapping
    # 400 words of ~12 sub-words each: one 384-word chunk would be ~4,600 tokens
    text = " ".join(f"Xqzvwkjh{i}Plmnbvcx{i}Zzqwrty" for i in range(400)) + "."
    schema = {"entities": ["person", "organization"], "relations": ["works_for"]}
    [prepared] = engine.prepare([text], [schema])
    assert prepared.windowed and max(prepared.lengths) <= engine.max_tokens
    words = split_words(text)
    covered = set()
    for row, offset in zip(prepared.rows, prepared.offsets):
        covered |= {offset + s for s in row.enc.words.starts}
    assert covered == set(words.starts)
    [result] = engine.extract([text], schema, include_confidence=True, include_spans=True, threshold=0.3)
    spans = [s for values in result["entities"].values() for s in values]
    assert spans and all(text[s["start"]:s["end"]] == s["text"] for s in spans)
