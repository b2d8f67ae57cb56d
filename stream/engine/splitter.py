"""Word splitting: the same regex as GLiNER's default ``WhitespaceTokenSplitter``.

Words are the unit GLiNER scores spans over; their character spans let entities map back to
exact offsets in the original text.
"""

from __future__ import annotations

import re

from stream.engine.types import Words

WORD_PATTERN = re.compile(r"\w+(?:[-_]\w+)*|\S")


def split_words(text: str) -> Words:
    words: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    for match in WORD_PATTERN.finditer(text):
        words.append(match.group())
        starts.append(match.start())
        ends.append(match.end())
    return Words(words, starts, ends)
