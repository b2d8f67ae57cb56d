"""The label prompt must fit the model: the token limit comes from the model (encoder positions
and tokenizer), and a label set that leaves too little room for text is refused before any work."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from stream.engine import Extractor, load_engine
from stream.errors import InvalidInput

MODEL = Path(__file__).resolve().parents[1] / "fixtures" / "tiny-gliner"
TEXT = "Ada Lovelace was born in London."


@pytest.fixture(scope="module")
def extractor() -> Extractor:
    return Extractor.load(MODEL, variant="fp32")


@pytest.mark.parametrize("labels", [
    [" ".join(f"word{i}x{j}" for j in range(10)) for i in range(50)],  # 50 labels of 10 words
    [" ".join(f"w{i}y{j}" for j in range(5)) for i in range(40)],  # fits in 512 tokens, leaves < half
])
def test_labels_that_leave_too_little_room_are_refused(extractor, labels):
    with pytest.raises(InvalidInput) as err:
        extractor.engine.check_labels(tuple(labels))
    assert err.value.reason == "labels_too_long" and "512" in err.value.message
    with pytest.raises(InvalidInput):  # and prepare refuses them too: nothing is tokenized into rows
        extractor.extract([TEXT, "word " * 4000], labels)


def test_a_label_set_under_half_the_window_is_served_with_few_windows(extractor):
    labels = [" ".join(f"w{i}y{j}" for j in range(5)) for i in range(10)]
    assert extractor.engine.encoder.prompt(tuple(labels)).ids.size <= extractor.engine.encoder.max_prompt_tokens
    (prepared,) = extractor.engine.prepare(["word " * 4000], [tuple(labels)])
    assert all(n <= 512 for n in prepared.lengths)
    assert len(prepared.rows) <= 2 * 4000 // 64 + 1  # max_len 64 words, at most half a window of overlap


def test_the_token_limit_comes_from_the_encoder_when_the_tokenizer_has_none(tmp_path):
    """Hub DeBERTa tokenizers declare model_max_length 1e30; rows must still fit 512 positions."""
    folder = tmp_path / "m"
    shutil.copytree(MODEL, folder)
    cfg = json.loads((folder / "tokenizer_config.json").read_text())
    cfg["model_max_length"] = 1000000000000000019884624838656
    (folder / "tokenizer_config.json").write_text(json.dumps(cfg))
    engine = load_engine(folder, "fp32")
    assert engine.info.max_tokens == 512
    text = " ".join(["Pneumonoultramicroscopicsilicovolcanoconiosis"] * 60)  # 60 words of ~15 tokens
    (prepared,) = engine.prepare([text], [("disease",)])
    assert max(prepared.lengths) <= 512 and prepared.windowed
    (result,) = Extractor(engine).extract_detailed([text], ["disease"], threshold=0.0)
    assert result.entities
