"""Pure-function tests of the engine stages, plus load errors and the batch invariant."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from stream.engine import Extractor
from stream.engine.decode import candidate_spans, greedy_search
from stream.engine.folder import resolve_model_folder
from stream.engine.params import DecodeParams
from stream.engine.splitter import split_words
from stream.engine.tensors import build_feed
from stream.engine.types import WordSpan
from stream.engine.windows import plan_windows
from stream.errors import ModelLoadError

MODEL = Path(__file__).resolve().parents[1] / "fixtures" / "tiny-gliner"


@pytest.fixture(scope="module")
def extractor() -> Extractor:
    return Extractor.load(MODEL)


# --- splitting -------------------------------------------------------------------------------

def test_splitter_keeps_offsets_and_gliner_word_rules():
    text = "Dr. Smith's state-of-the-art e_mail: a@b.com!"
    words = split_words(text)
    assert words.words == ["Dr", ".", "Smith", "'", "s", "state-of-the-art", "e_mail", ":", "a", "@", "b", ".",
                           "com", "!"]
    for w, s, e in zip(*words):
        assert text[s:e] == w


def test_splitter_unicode_and_whitespace():
    assert split_words("").words == []
    assert split_words(" \t\n ").words == []
    words = split_words("Zoë 東京 🚀x")
    assert words.words == ["Zoë", "東京", "🚀", "x"]


# --- prompt and word mask --------------------------------------------------------------------

def test_row_has_prompt_then_words_and_first_subtoken_mask(extractor):
    enc = extractor.engine.encoder
    text = enc.encode_words([["unbelievable", "paris"]])[0]
    row = enc.build_row(("person", "city"), text, 0, 2)
    toks = [enc._tok.id_to_token(i) for i in row.ids]
    assert toks[:6] == ["[CLS]", "<<ENT>>", "person", "<<ENT>>", "city", "<<SEP>>"]
    assert toks[-1] == "[SEP]"
    # word 1 starts right after the prompt; its continuation sub-words are 0; word 2 follows
    mask = row.words_mask.tolist()
    assert mask[:6] == [0] * 6 and mask[6] == 1 and mask[-1] == 0
    assert sorted(set(mask)) == [0, 1, 2] and mask.count(1) == 1 and mask.count(2) == 1
    assert row.num_words == 2


def test_window_rows_renumber_words_from_one(extractor):
    enc = extractor.engine.encoder
    text = enc.encode_words([["a", "b", "c", "d"]])[0]
    row = enc.build_row(("x",), text, 2, 4)
    assert [m for m in row.words_mask.tolist() if m] == [1, 2] and row.num_words == 2


# --- span enumeration ------------------------------------------------------------------------

def test_span_enumeration_matches_gliner_prepare_span_idx(extractor):
    enc = extractor.engine.encoder
    rows = [enc.build_row(("x",), enc.encode_words([["a"] * n])[0], 0, n) for n in (3, 1)]
    feed = build_feed(rows, max_width=2, pad_id=0)
    assert feed["span_idx"].shape == (2, 6, 2)
    assert feed["span_idx"][0].tolist() == [[0, 0], [0, 1], [1, 1], [1, 2], [2, 2], [2, 3]]
    assert feed["span_mask"][0].tolist() == [True, True, True, True, True, False]
    assert feed["span_idx"][1].tolist() == [[0, 0], [0, 1], [0, 0], [0, 0], [0, 0], [0, 0]]
    assert feed["span_mask"][1].tolist() == [True, False, False, False, False, False]
    assert feed["text_lengths"].tolist() == [[3], [1]]
    assert feed["attention_mask"][1].sum() == rows[1].ids.size


# --- decoding --------------------------------------------------------------------------------

def _logits(entries: dict[tuple[int, int, int], float], words: int = 5, width: int = 3, classes: int = 2):
    logits = np.full((words, width, classes), -10.0, dtype=np.float32)
    for (s, k, c), p in entries.items():
        logits[s, k, c] = np.log(p / (1 - p))
    return logits


def test_candidates_respect_threshold_and_text_length():
    logits = _logits({(0, 0, 0): 0.9, (3, 2, 0): 0.95, (1, 1, 1): 0.4})
    found = candidate_spans(logits, 4, np.array([0.5, 0.3]))
    assert [(s.start, s.end, s.label_index) for s in found] == [(0, 0, 0), (1, 2, 1)]  # (3,5) runs past word 4
    assert found[0].score == pytest.approx(0.9, abs=1e-6)


def test_per_label_threshold():
    logits = _logits({(0, 0, 0): 0.6, (2, 0, 1): 0.6})
    found = candidate_spans(logits, 5, np.array([0.5, 0.7]))
    assert [(s.start, s.label_index) for s in found] == [(0, 0)]


def test_greedy_flat_nested_multilabel():
    spans = [WordSpan(0, 2, 0, 0.9), WordSpan(1, 1, 1, 0.8), WordSpan(2, 4, 0, 0.7),
             WordSpan(0, 2, 1, 0.6), WordSpan(5, 5, 0, 0.5)]
    flat = greedy_search(spans, flat_ner=True)
    assert [(s.start, s.end, s.label_index) for s in flat] == [(0, 2, 0), (5, 5, 0)]
    nested = greedy_search(spans, flat_ner=False)
    assert [(s.start, s.end, s.label_index) for s in nested] == [(0, 2, 0), (1, 1, 1), (5, 5, 0)]
    multi = greedy_search(spans, flat_ner=False, multi_label=True)
    assert [(s.start, s.end, s.label_index) for s in multi] == [(0, 2, 0), (0, 2, 1), (1, 1, 1), (5, 5, 0)]


def test_decode_params_validate():
    with pytest.raises(ValueError):
        DecodeParams(threshold=1.5)
    assert DecodeParams(0.5, label_thresholds={"x": 0.9}).threshold_for("x") == 0.9


# --- windows ---------------------------------------------------------------------------------

def test_windows_cover_everything_with_overlap():
    counts = np.ones(100, dtype=np.int64)
    plan = plan_windows(counts, max_words=40, token_budget=1000, overlap=10)
    assert plan[0] == (0, 40) and plan[-1][1] == 100
    for (s0, e0), (s1, e1) in zip(plan, plan[1:]):
        assert s1 == e0 - 10 and e1 > e0
    assert plan_windows(np.ones(10, np.int64), 40, 1000, 10) == [(0, 10)]
    assert plan_windows(np.zeros(0, np.int64), 40, 1000, 10) == []


def test_windows_respect_token_budget_and_giant_words():
    counts = np.array([5, 5, 50, 5, 5], dtype=np.int64)
    plan = plan_windows(counts, max_words=10, token_budget=12, overlap=1)
    assert plan[-1][1] == 5 and all(e > s for s, e in plan)
    assert (2, 3) in plan  # the 50-token word gets a window of its own


def test_windows_of_few_long_words_advance_half_a_window():
    """Words of 50 tokens, 255 tokens per window: 5 words a window. An overlap of 24 words would
    advance one word at a time (a window per word); at most half a window overlaps."""
    plan = plan_windows(np.full(400, 50, dtype=np.int64), max_words=384, token_budget=255, overlap=24)
    assert len(plan) <= 2 * 400 // 5 + 1
    assert all(s1 - s0 >= 2 for (s0, _), (s1, _) in zip(plan, plan[1:]))


def test_long_text_is_windowed_not_truncated(extractor):
    text = " ".join(f"Paris{i}" for i in range(300))  # 300 words, max_len 64
    (result,) = extractor.extract_detailed([text], ["city"], threshold=0.0)
    assert result.windowed
    assert result.entities[-1].end == len(text)  # the last word was seen
    assert all(text[e.start:e.end] == e.text for e in result.entities)


# --- batches ---------------------------------------------------------------------------------

def test_batched_output_equals_single_item_output(extractor):
    texts = ["Angela Merkel met Macron.", "A much longer sentence about Apple, Google and Microsoft in Texas.", "x",
             "", "Zoë went to 東京."]
    labels = [["person"], ["company", "location"], ["a", "b", "c"], ["x"], ["person", "city"]]
    batched = extractor.extract(texts, labels, threshold=0.3, batch_size=8)
    single = [extractor.extract([t], [l], threshold=0.3)[0] for t, l in zip(texts, labels)]
    for b, s in zip(batched, single):
        assert [(e.start, e.end, e.label) for e in b] == [(e.start, e.end, e.label) for e in s]
        for x, y in zip(b, s):
            assert x.score == pytest.approx(y.score, abs=1e-5)


def test_api_validation(extractor):
    with pytest.raises(ValueError):
        extractor.extract(["a"], [])
    with pytest.raises(TypeError):
        extractor.extract(["a"], "person")
    with pytest.raises(ValueError):
        extractor.extract(["a", "b"], [["x"]])
    assert extractor.extract([], ["x"]) == []


# --- model folders ---------------------------------------------------------------------------

def test_folder_errors(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        resolve_model_folder(tmp_path / "nope")
    with pytest.raises(ModelLoadError, match="incomplete"):
        resolve_model_folder(tmp_path)
    shutil.copy(MODEL / "tokenizer.json", tmp_path)
    cfg = json.loads((MODEL / "gliner_config.json").read_text())
    (tmp_path / "gliner_config.json").write_text(json.dumps({**cfg, "span_mode": "token_level"}))
    with pytest.raises(ModelLoadError, match="span_mode"):
        resolve_model_folder(tmp_path)
    (tmp_path / "gliner_config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelLoadError, match="model.onnx"):
        resolve_model_folder(tmp_path)


def test_onnx_subfolder_layout_and_variants(tmp_path):
    for name in ("gliner_config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(MODEL / name, tmp_path)
    (tmp_path / "onnx").mkdir()
    shutil.copy(MODEL / "model_quantized.onnx", tmp_path / "onnx")
    folder = resolve_model_folder(tmp_path, "auto")
    assert folder.variant == "int8" and folder.onnx_file.parent.name == "onnx"
    with pytest.raises(ModelLoadError, match="model.onnx"):
        resolve_model_folder(tmp_path, "fp32")
    assert Extractor.load(tmp_path).info.variant == "int8"


def test_hub_download_failure_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(ModelLoadError, match="hub"):
        Extractor.load("hf://urchade/gliner_small-v2.1")


def test_row_outputs_are_copies_that_do_not_keep_the_batch_alive():
    """A long text's windows wait across batches; a row's logits as a view kept its whole padded
    batch array alive until the text's last window was done."""
    from pathlib import Path

    import numpy as np

    from stream.engine import load_engine

    engine = load_engine(Path(__file__).resolve().parents[1] / "fixtures" / "tiny-gliner", "fp32")
    (short,), (longer,) = (engine.prepare([t], [("person",)])[0].rows for t in ("Paris.", "Angela Merkel met Macron."))
    outputs = engine.run([short, longer])
    assert not np.shares_memory(outputs[0], outputs[1])
    assert all(o.base is None or o.base.size == o.size for o in outputs)
