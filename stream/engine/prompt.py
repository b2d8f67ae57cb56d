"""Sub-word encoding of the GLiNER prompt and text: ``[CLS] <<ENT>> l1 <<ENT>> l2 <<SEP>> words [SEP]``.

Mirrors gliner's ``prepare_inputs`` + ``prepare_word_mask`` (first-subtoken pooling): the text
words are encoded once per text, label prompts once per label set (cached), and each model row
is assembled from those pieces, so windows of one text never re-tokenize it.

Deliberate differences: gliner numbers words by *distinct* word ids in the encoding, so a word
that tokenizes to nothing (a lone U+FFFD, a control character) shifts every later word by one
and entities come back a word off. Here such words are dropped before rows are built
(``drop_silent_words``), and a word's number is its position (as gline-rs does); on text where
every word has a sub-token all three agree.

Label sets are checked before any work is queued (``check_labels``): every label must have a
visible character and a token, and the prompt must leave at least half of the model's window to
the text, so that windows make progress.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import numpy as np
from tokenizers import Tokenizer

from stream.engine.splitter import is_invisible
from stream.engine.types import Words
from stream.errors import InvalidInput, ModelLoadError

_HUGE = 10**6


class EncodedWords(NamedTuple):
    """Sub-word ids of a word list, with the index of the word each id came from."""

    ids: np.ndarray
    "int64 [tokens]"
    word_ids: np.ndarray
    "int64 [tokens]; words that produce no sub-word simply have no entry"
    word_token_counts: np.ndarray
    "int64 [words]"


def drop_silent_words(words: Words, encoded: EncodedWords) -> tuple[Words, EncodedWords]:
    """Remove the words the tokenizer turns into nothing (a lone U+FFFD or control character):
    the model cannot see them, and as empty words they would still take a place in the word
    sequence the span layers read. The text is then scored exactly as if they were spaces."""
    keep = encoded.word_token_counts > 0
    if keep.all():
        return words, encoded
    new_index = np.cumsum(keep) - 1
    kept = np.flatnonzero(keep).tolist()
    return (Words([words.words[i] for i in kept], [words.starts[i] for i in kept], [words.ends[i] for i in kept]),
            EncodedWords(encoded.ids, new_index[encoded.word_ids], encoded.word_token_counts[keep]))


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

    def __init__(self, tokenizer_file: Path, tokenizer_config: dict, ent_token: str, sep_token: str,
                 max_positions: int | None = None):
        """``max_positions``: the encoder's ``max_position_embeddings``; the token limit is the
        smaller of it and the tokenizer's ``model_max_length``."""
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
        if max_positions:
            self.max_tokens = min(self.max_tokens, int(max_positions))
        pad = tokenizer_config.get("pad_token")
        pad = pad.get("content") if isinstance(pad, dict) else pad
        self.pad_id = tok.token_to_id(pad) if pad and tok.token_to_id(pad) is not None else 0
        self.prompt = lru_cache(maxsize=4096)(self._prompt)
        self._refusal = lru_cache(maxsize=4096)(self._refuse)

    @property
    def content_budget(self) -> int:
        """Tokens available for prompt + words once special tokens are added."""
        return self.max_tokens - len(self.prefix) - len(self.suffix)

    @property
    def max_prompt_tokens(self) -> int:
        """The most tokens a label prompt may take: half the content budget (the rest is text)."""
        return self.content_budget // 2

    def check_labels(self, labels: tuple[str, ...]) -> None:
        """Raise ``InvalidInput`` for a label set this model cannot take; the verdict is cached per
        label set (it is asked per request and per event)."""
        refusal = self._refusal(labels)
        if refusal is not None:  # a fresh exception: re-raising one instance would grow its traceback
            raise InvalidInput(refusal.reason, refusal.message)

    def _refuse(self, labels: tuple[str, ...]) -> InvalidInput | None:
        for label in labels:
            if is_invisible(label):
                return InvalidInput("invalid_label", f"label {label!r} has no visible character")
        prompt = self.prompt(labels)
        counts = np.bincount(prompt.word_ids, minlength=self.prompt_words(labels))
        for label, count in zip(labels, counts[1::2]):  # words: <<ENT>> label <<ENT>> label ... <<SEP>>
            if count == 0:
                return InvalidInput("invalid_label", f"label {label!r} has no token in this model's vocabulary")
        if prompt.ids.size > self.max_prompt_tokens:
            return InvalidInput("labels_too_long", f"the {len(labels)} labels take {prompt.ids.size} tokens; this "
                                f"model's window is {self.max_tokens} tokens and labels may use at most "
                                f"{self.max_prompt_tokens}, so that the rest is left to the text")
        return None

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
        for label in labels:  # non-empty: ``check_labels`` rejects empty ones
            words += (self.ent_token, label)
        words.append(self.sep_token)
        return self.encode_words([words])[0]

    def prompt_words(self, labels: tuple[str, ...]) -> int:
        return 2 * len(labels) + 1

    def build_row(self, labels: tuple[str, ...], text: EncodedWords, start: int, end: int) -> Row:
        """Row for words ``[start, end)`` of ``text`` under the prompt for ``labels``."""
        prompt = self.prompt(labels)
        n_prompt = self.prompt_words(labels)
        lo, hi = np.searchsorted(text.word_ids, (start, end))  # word ids ascend: the window is a slice
        ids = np.concatenate([prompt.ids, text.ids[lo:hi]])
        wids = np.concatenate([prompt.word_ids, text.word_ids[lo:hi] - start + n_prompt])
        budget = self.content_budget
        if ids.size > budget:  # same right-truncation as the HF tokenizer call in gliner
            ids, wids = ids[:budget], wids[:budget]
        first = np.ones(wids.size, dtype=bool)
        first[1:] = wids[1:] != wids[:-1]
        mask = np.where(first & (wids >= n_prompt), wids - n_prompt + 1, 0)  # by position, not by count
        n_special = len(self.prefix)
        full_ids = np.concatenate([self.prefix, ids, self.suffix])
        full_mask = np.zeros(full_ids.size, dtype=np.int64)
        full_mask[n_special:n_special + mask.size] = mask
        return Row(full_ids, full_mask, end - start)
