"""Query-style training rows and their dev counterpart: text and mentions rewritten alike."""

from __future__ import annotations

from models.gliner2_recipe import corpora as C
from models.gliner2_recipe.evaluate import query_spans
from models.gliner2_recipe.mix import query_style, query_words


def test_query_words_lowers_and_drops_punctuation_tokens_with_an_index_map():
    words, where = query_words(["Dr.", "Smith", ",", "of", "U.S.", "Steel", "."])
    assert words == ["dr.", "smith", "of", "u.s.", "steel"]
    assert where == [0, 1, None, 2, 3, 4, None]


def test_query_style_rewrites_every_mention_as_the_text_is_rewritten():
    row = {"input": "Smith , Jones and Co. met in New York .",
           "output": {"entities": {"organization": ["Smith , Jones and Co."], "location": ["New York"],
                                   "person": []}}}
    out = query_style(row)
    assert out == {"input": "smith jones and co. met in new york",
                   "output": {"entities": {"organization": ["smith jones and co."], "location": ["new york"],
                                           "person": []}}}


def test_a_mention_that_does_not_survive_as_whole_words_refuses_the_rewrite():
    row = {"input": "Paris , Texas", "output": {"entities": {"location": ["Paris ,"], "city": ["Par"]}}}
    assert query_style(row) is None


def test_dev_spans_follow_their_words_and_vanish_when_only_punctuation():
    words, spans = query_spans(["The", "U.N.", "(", "New", "York", ")", "!"],
                               [C.Span(1, 1, "org"), C.Span(2, 5, "loc"), C.Span(6, 6, "x")])
    assert words == ["the", "u.n.", "new", "york"]
    assert spans == [C.Span(1, 1, "org"), C.Span(2, 3, "loc")]
