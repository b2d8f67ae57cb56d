"""Invisible characters change nothing: soft hyphens, zero-width spaces, BOMs and decomposed
accents stay inside their word, and a word with no sub-token does not shift the words after it.

gliner 0.2.29 gets both wrong (it cuts "Lon\\u00addon" into three words and numbers words by
distinct word ids); the parity suite names those texts (``differs_on_purpose``).
"""

from __future__ import annotations

import random
from functools import lru_cache
from pathlib import Path

import pytest

from stream.engine import Extractor
from stream.engine.splitter import GLINER_WORD_PATTERN, joiner_ranges, split_words
from stream.errors import InvalidInput
from tests.fixtures.parity_corpus import build_corpus, differs_on_purpose, strip_joiners


def corpus() -> list[str]:
    return [t for group in build_corpus().values() for t in group]


MODEL = Path(__file__).resolve().parents[1] / "fixtures" / "tiny-gliner"
LABELS = ["person", "city", "organization", "date", "country"]
INVISIBLE = ["\u00ad", "\u200b", "\u200c", "\u200d", "\ufeff", "\u2060"]


@lru_cache(maxsize=None)
def extractor() -> Extractor:
    return Extractor.load(MODEL, variant="fp32")


def sprinkle(text: str, rng: random.Random) -> str:
    """Insert one or two invisible characters inside words (never at a word's edge)."""
    words = [m for m in GLINER_WORD_PATTERN.finditer(text) if len(m.group()) >= 3]
    chars = list(text)
    for m in rng.sample(words, k=min(len(words), rng.choice((1, 2)))):
        cut = rng.randrange(m.start() + 1, m.end() - 1)
        chars[cut] = chars[cut] + rng.choice(INVISIBLE)
    return "".join(chars)


def entity_keys(entities, maps=None):
    return [((maps[0][e.start], maps[1][e.end]) if maps else (e.start, e.end), e.label) for e in entities]


def test_joiners_continue_their_word_and_alone_are_no_word():
    assert split_words("Lon\u00addon and Jus\u00adt").words == ["Lon\u00addon", "and", "Jus\u00adt"]
    assert split_words("Cafe\u0301 \u200b \ufeffHello").words == ["Cafe\u0301", "Hello"]
    assert split_words("हिन्दी").words == ["हिन्दी"]  # vowel signs (Mc) no longer cut the word
    words = split_words("\ufeffAda Lovelace")
    assert (words.starts[0], words.ends[0]) == (1, 4)  # entities never start on an invisible character


def test_words_are_glinerss_on_text_without_joiners():
    for text in corpus():
        if not differs_on_purpose(text):
            assert split_words(text).words == GLINER_WORD_PATTERN.findall(text)


def test_joiner_table_covers_every_plane():
    """The splitter scans planes 0, 1 and 14 only; a full scan finds nothing elsewhere."""
    assert joiner_ranges([range(0x110000)]) == joiner_ranges()


def test_invisible_characters_inside_words_change_no_entity():
    """The issue's measure: 1–2 invisible characters inside words of every corpus text."""
    rng = random.Random(7)
    texts = [t for t in corpus() if not differs_on_purpose(t)][:300]
    noisy = [sprinkle(t, rng) for t in texts]
    ex = extractor()
    clean_out = ex.extract(texts, LABELS, threshold=0.3)
    noisy_out = ex.extract(noisy, LABELS, threshold=0.3)
    changed = 0
    for text, n, want, got in zip(texts, noisy, clean_out, noisy_out):
        _, *maps = strip_joiners(n)
        if entity_keys(got) != entity_keys(want, maps):
            changed += 1
        for e in got:
            assert n[e.start:e.end] == e.text
    print(f"INVISIBLE {changed} of {len(texts)} texts changed entities")
    assert sum(len(x) for x in clean_out) > len(texts)  # the comparison compares something
    assert changed == 0


@pytest.mark.parametrize("silent", ["\ufffd", "\x07"])
def test_a_word_without_sub_tokens_does_not_shift_later_words(silent):
    """A lone U+FFFD or control character is a word to gliner's splitter but the tokenizer drops
    it: the text must score exactly as the text without it (gliner shifts every later word)."""
    rng = random.Random(11)
    texts = [t for t in corpus() if not differs_on_purpose(t) and len(t.split()) >= 4][:120]
    noisy, holes = [], []
    for t in texts:
        starts = [m.start() for m in GLINER_WORD_PATTERN.finditer(t)][1:]
        p = rng.choice(starts)
        noisy.append(t[:p] + silent + " " + t[p:])
        holes.append(p)
    ex = extractor()
    clean_out = ex.extract(texts, LABELS, threshold=0.3)
    noisy_out = ex.extract(noisy, LABELS, threshold=0.3)
    for text, n, p, want, got in zip(texts, noisy, holes, clean_out, noisy_out):
        want_keys = [((e.start + 2 * (e.start >= p), e.end + 2 * (e.end > p)), e.label) for e in want]
        assert [((e.start, e.end), e.label) for e in got] == want_keys, n
        assert [round(e.score, 4) for e in got] == [round(e.score, 4) for e in want]
    assert sum(len(x) for x in clean_out) > len(texts)


def test_row_numbers_words_by_position():
    enc = extractor().engine.encoder
    text = enc.encode_words([["ada", "\ufffd", "lovelace"]])[0]
    row = enc.build_row(("person",), text, 0, 3)
    assert [m for m in row.words_mask.tolist() if m] == [1, 3]


@pytest.mark.parametrize("label", ["", "  ", "\u200b", "\u00ad\ufeff"])
def test_invisible_labels_are_rejected_with_a_reason(label):
    with pytest.raises(InvalidInput) as err:
        extractor().extract(["Ada Lovelace was born in London."], ["person", label])
    assert err.value.reason == "invalid_label"


def test_labels_with_invisible_characters_mean_the_same_label():
    ex = extractor()
    text = ["Ada Lovelace was born in London and met Charles Babbage."]
    plain = ex.extract(text, ["person", "city"], threshold=0.3)[0]
    soft = ex.extract(text, ["per\u00adson", "ci\u200bty"], threshold=0.3)[0]
    assert plain
    assert [(e.start, e.end, round(e.score, 5)) for e in plain] == [(e.start, e.end, round(e.score, 5)) for e in soft]
