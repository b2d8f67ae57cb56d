"""Word splitting: GLiNER's ``WhitespaceTokenSplitter`` regex, with invisible characters kept in
their word.

GLiNER splits on ``\\w+(?:[-_]\\w+)*|\\S``. Combining marks (an NFD accent, a Devanagari vowel
sign) and format characters (soft hyphen, zero-width space and joiners, BOM, direction marks)
are not ``\\w``, so it cuts "Lon\\u00addon" into "Lon", "\\u00ad", "don" and the model sees three
words where the reader sees one. Here such characters continue the word they sit in (a format
character only inside it: a word, and so an entity, never starts or ends on an invisible
character), and on their own they are not words at all. On text without them the words are
exactly GLiNER's. Words' character spans map entities back to exact offsets in the original text.
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache

from stream.engine.types import Words

MARK_CATEGORIES = frozenset({"Mn", "Mc", "Me"})
"Combining marks: part of the character before them, so a word may end with one."
FORMAT_CATEGORIES = frozenset({"Cf"})
"Format characters (soft hyphen, zero-width space and joiners, BOM): inside a word, never at its edges."
JOINING_CATEGORIES = MARK_CATEGORIES | FORMAT_CATEGORIES
"Part of a word, never a word of their own."
_PLANES_WITH_JOINERS = (range(0, 0x20000), range(0xE0000, 0xE1000))
"Every Mn/Mc/Me/Cf code point lies in planes 0, 1 and 14 (tests check this against a full scan)."

GLINER_WORD_PATTERN = re.compile(r"\w+(?:[-_]\w+)*|\S")


def _class(ranges: list[tuple[int, int]]) -> str:
    return "".join(re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in ranges)


def joiner_ranges(code_points=None, categories=JOINING_CATEGORIES) -> list[tuple[int, int]]:
    """Inclusive code point ranges of ``categories`` (in this Python's Unicode version)."""
    ranges: list[tuple[int, int]] = []
    for cp in (c for plane in (code_points or _PLANES_WITH_JOINERS) for c in plane):
        if unicodedata.category(chr(cp)) in categories:
            if ranges and ranges[-1][1] == cp - 1:
                ranges[-1] = (ranges[-1][0], cp)
            else:
                ranges.append((cp, cp))
    return ranges


@cache
def word_pattern() -> re.Pattern:
    """GLiNER's pattern with joiners continuing a word; built once per process (~50 ms)."""
    marks = _class(joiner_ranges(categories=MARK_CATEGORIES))
    formats = _class(joiner_ranges(categories=FORMAT_CATEGORIES))
    part = rf"\w(?:[\w{marks}{formats}]*[\w{marks}])?"  # ends on a letter or a mark, never on a format char
    symbol = rf"[^\s{marks}{formats}][{marks}]*"  # a symbol with its variation selector or keycap mark
    joint = rf"[{formats}]*[-_][{formats}]*"
    return re.compile(rf"{part}(?:{joint}{part})*|{symbol}")


def split_with(pattern: re.Pattern, text: str) -> Words:
    """Every match of ``pattern`` in ``text`` as a word, with its character span."""
    words: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    for match in pattern.finditer(text):
        words.append(match.group())
        starts.append(match.start())
        ends.append(match.end())
    return Words(words, starts, ends)


def split_words(text: str) -> Words:
    return split_with(word_pattern(), text)


def is_invisible(text: str) -> bool:
    """True when ``text`` has nothing but whitespace and joiners (it names nothing a model can see)."""
    return all(ch.isspace() or unicodedata.category(ch) in JOINING_CATEGORIES for ch in text)

