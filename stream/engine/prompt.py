"""Sub-word encoding of the GLiNER prompt and text: ``[CLS] <<ENT>> l1 <<ENT>> l2 <<SEP>> words [SEP]``.

Mirrors gliner's ``prepare_inputs`` + ``prepare_word_mask`` (first-subtoken pooling): the text
words are encoded once per text, label prompts once per label set (cached), and each model row
is assembled from those pieces, so windows of one text never re-tokenize it.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import numpy as np
from tokenizers import Tokenizer

from stream.errors import ModelLoadError

_HUGE = 10**6


class EncodedWords(NamedTuple):
    """Sub-word ids of a word list, with the index of the word each id came from."""

    ids: np.ndarray
    "int64 [tokens]"
    word_ids: np.ndarray
    "int64 [tokens]; words that produce no sub-word simply have no entry"
    word_token_counts: np.ndarray
    "int64 [words]"


class Row(NamedTuple):
    """One model input row: a prompt plus a window of a text's words."""

    ids: np.ndarray
    "int64 [T] with special tokens"
    words_mask: np.ndarray
    "int64 [T]; 1-based word index at each word's first sub-token, else 0"
    num_words: int
    "words in the window (GLiNER's ``text_lengths``)"


class PromptEncoder:
    """Owns the tokenizer; builds model rows exactly as gliner's processor does."""

    def __init__(self, tokenizer_file: Path, tokenizer_config: dict, ent_token: str, sep_token: str):
        try:
            tok = Tokenizer.from_file(str(tokenizer_file))
        except Exception as exc:
            raise ModelLoadError(f"{tokenizer_file}: cannot load tokenizer: {exc}") from exc
        tok.no_truncation()
        tok.no_padding()
        self._tok = tok
        for special in (ent_token, sep_token):
            if tok.token_to_id(special) is None:
                raise ModelLoadError(f"{tokenizer_file}: tokenizer lacks the GLiNER token {special!r}")
        self.ent_token = ent_token
        self.sep_token = sep_token
        probe = tok.encode(["x"], is_pretokenized=True, add_special_tokens=True)
        first = probe.word_ids.index(0)
        last = len(probe.word_ids) - 1 - probe.word_ids[::-1].index(0)
        self.prefix = np.asarray(probe.ids[:first], dtype=np.int64)
        self.suffix = np.asarray(probe.ids[last + 1:], dtype=np.int64)
        max_len = tokenizer_config.get("model_max_length", _HUGE)
        self.max_tokens = int(max_len) if isinstance(max_len, (int, float)) and max_len < _HUGE else _HUGE
        pad = tokenizer_config.get("pad_token")
        pad = pad.get("content") if isinstance(pad, dict) else pad
        self.pad_id = tok.token_to_id(pad) if pad and tok.token_to_id(pad) is not None else 0
        self.prompt = lru_cache(maxsize=4096)(self._prompt)

    @property
    def content_budget(self) -> int:
        """Tokens available for prompt + words once special tokens are added."""
        return self.max_tokens - len(self.prefix) - len(self.suffix)

    def encode_words(self, batch: list[list[str]]) -> list[EncodedWords]:
        encodings = self._tok.encode_batch(batch, is_pretokenized=True, add_special_tokens=False)
        out = []
        for words, enc in zip(batch, encodings):
            ids = np.asarray(enc.ids, dtype=np.int64)
            wids = np.asarray([w for w in enc.word_ids], dtype=np.int64) if ids.size else np.zeros(0, np.int64)
            counts = np.bincount(wids, minlength=len(words)).astype(np.int64)
            out.append(EncodedWords(ids, wids, counts))
        return out

    def _prompt(self, labels: tuple[str, ...]) -> EncodedWords:
        words: list[str] = []
        for label in labels:
            words.append(self.ent_token)
            if label:  # gliner: an empty label adds no prompt word
                words.append(label)
        words.append(self.sep_token)
        return self.encode_words([words])[0]

    def prompt_words(self, labels: tuple[str, ...]) -> int:
        return len(labels) + sum(1 for label in labels if label) + 1

    def build_row(self, labels: tuple[str, ...], text: EncodedWords, start: int, end: int) -> Row:
        """Row for words ``[start, end)`` of ``text`` under the prompt for ``labels``."""
        prompt = self.prompt(labels)
        n_prompt = self.prompt_words(labels)
        sel = (text.word_ids >= start) & (text.word_ids < end)
        ids = np.concatenate([prompt.ids, text.ids[sel]])
        wids = np.concatenate([prompt.word_ids, text.word_ids[sel] - start + n_prompt])
        budget = self.content_budget
        if ids.size > budget:  # same right-truncation as the HF tokenizer call in gliner
            ids, wids = ids[:budget], wids[:budget]
        first = np.ones(wids.size, dtype=bool)
        first[1:] = wids[1:] != wids[:-1]
        seen = np.cumsum(first)
        mask = np.where(first & (seen > n_prompt), seen - n_prompt, 0)
        n_special = len(self.prefix)
        full_ids = np.concatenate([self.prefix, ids, self.suffix])
        full_mask = np.zeros(full_ids.size, dtype=np.int64)
        full_mask[n_special:n_special + mask.size] = mask
        return Row(full_ids, full_mask, end - start)
