"""GLiNER2's word splitter (``WhitespaceTokenSplitter``): URLs, e-mails and @handles stay whole;
words are runs of ``\\w``, combining marks and ZWNJ/ZWJ joined by ``-``/``_``; any other
non-space character is a word of its own. Offsets index the text it was given."""

from __future__ import annotations

import re
from functools import cache

from stream.engine.splitter import MARK_CATEGORIES, _class, joiner_ranges, split_with
from stream.engine.types import Words


@cache
def word_pattern() -> re.Pattern:
    word = rf"[\w{_class(joiner_ranges(categories=MARK_CATEGORIES))}\u200c\u200d]"
    return re.compile(
        rf"""(?:https?://[^\s]+|www\.[^\s]+)
        |[a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{{2,}}
        |@[a-z0-9_]+
        |{word}+(?:[-_]{word}+)*
        |\S""",
        re.VERBOSE | re.IGNORECASE,
    )


def split_words(text: str) -> Words:
    return split_with(word_pattern(), text)
