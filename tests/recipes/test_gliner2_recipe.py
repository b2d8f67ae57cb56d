"""The GLiNER2 recipe's pure parts: corpus readers, mention finding, scoring (no corpora needed)."""

from __future__ import annotations

from collections import Counter

from models.gliner2_recipe.corpora import Span, find_mention, predicate_words, read_bio, read_io, read_scierc, read_webnlg
from models.gliner2_recipe.evaluate import _char_spans, span_f1

WEBNLG = """<?xml version='1.0' encoding='utf-8'?>
<benchmark><entries>
  <entry category="Politician" eid="Id1" size="2">
    <modifiedtripleset>
      <mtriple>Aaron_S._Daggett | award | Purple_Heart</mtriple>
      <mtriple>Aaron_S._Daggett | birthPlace | Greene,_Maine</mtriple>
    </modifiedtripleset>
    <lex comment="good" lid="Id1">Aaron S Daggett, born in Greene, was awarded the Purple Heart.</lex>
  </entry>
  <entry category="City" eid="Id2" size="1"><modifiedtripleset></modifiedtripleset><lex>No triple.</lex></entry>
</entries></benchmark>"""


def test_bio_reads_iob2_and_iob1_spans():
    text = "1\tAda\tB-PER\n2\tLovelace\tI-PER\n3\tmet\tO\n4\tIBM\tI-ORG\n5\tstaff\tO\n\nParis\tB-LOC\n"
    first, second = read_bio(text)
    assert first.words == ["Ada", "Lovelace", "met", "IBM", "staff"]
    assert first.spans == [Span(0, 1, "PER"), Span(3, 3, "ORG")]  # an I- after O starts a span (IOB1)
    assert second.spans == [Span(0, 0, "LOC")]


def test_io_tags_make_a_span_of_each_run_of_one_type():
    text = "Ada\tperson-scholar\nLovelace\tperson-scholar\nwrote\tO\nNotes\tart-writtenart\nG\tart-writtenart\n" \
           "Babbage\tperson-other\n\nParis\tlocation-GPE\n"
    first, second = read_io(text)
    assert first.words == ["Ada", "Lovelace", "wrote", "Notes", "G", "Babbage"]
    # IO has no B- tag: a change of type ends a span and starts the next one
    assert first.spans == [Span(0, 1, "person-scholar"), Span(3, 4, "art-writtenart"), Span(5, 5, "person-other")]
    assert second.spans == [Span(0, 0, "location-GPE")]


def test_scierc_sentences_get_local_indices_and_typed_relations():
    doc = ('{"sentences": [["We", "use", "CRF", "-LRB-", "x", "-RRB-", "."], ["BLEU", "scores", "MT", "."]], '
           '"ner": [[[2, 2, "Method"]], [[7, 7, "Metric"], [9, 9, "Task"]]], '
           '"relations": [[], [[7, 7, 9, 9, "EVALUATE-FOR"], [7, 7, 4, 4, "USED-FOR"]]]}')
    first, second = read_scierc(doc)
    assert first.words[3:6] == ["(", "x", ")"] and first.spans == [Span(2, 2, "Method")]
    assert second.spans == [Span(0, 0, "Metric"), Span(2, 2, "Task")]  # document indices made sentence-local
    # a relation whose argument is not a span of the sentence is dropped
    assert second.relations == [(Span(0, 0, "Metric"), Span(2, 2, "Task"), "EVALUATE-FOR")]


def test_webnlg_entries_and_mentions_as_the_text_spells_them():
    (entry,) = read_webnlg(WEBNLG)  # an entry without triples is skipped
    assert entry.category == "Politician" and entry.triples[1] == ("Aaron_S._Daggett", "birthPlace", "Greene,_Maine")
    text = entry.texts[0]
    assert find_mention(text, "Aaron_S._Daggett") == "Aaron S Daggett"  # periods optional
    assert find_mention(text, "Greene,_Maine") == "Greene"  # the part before the comma
    assert find_mention(text, "Purple_Heart") == "Purple Heart"
    assert find_mention(text, "Heart_of_Gold") is None
    assert find_mention("the Purple Hearts", "Purple_Heart") is None  # word bounds
    assert predicate_words("birthPlace") == "birth place"


def test_exact_span_and_string_scoring():
    text, gold = _char_spans(["Ada", "met", "Bob"], [Span(0, 0, "person"), Span(2, 2, "person")])
    assert text == "Ada met Bob" and gold == {(0, 3, "person"), (8, 11, "person")}
    pred = [[(0, 3, "person", 0.9), (4, 7, "person", 0.6), (8, 11, "person", 0.4)]]
    assert span_f1([gold], pred, 0.5) == {"p": 0.5, "r": 0.5, "f1": 0.5}
    assert span_f1([gold], pred, 0.3)["r"] == 1.0
    strings = [Counter({("person", "ada"): 1, ("person", "bob"): 1})]
    assert span_f1(strings, pred, 0.5, [text]) == {"p": 0.5, "r": 0.5, "f1": 0.5}


def test_a_test_sentence_inside_a_longer_training_text_is_caught():
    """The first check compared whole texts: 54 training rows of the session-11 run held a
    CrossNER/MIT sentence inside a multi-sentence row or chunk and went through."""
    from models.gliner2_recipe.mix import ZeroShotOverlap

    in_tests = ZeroShotOverlap(["Orwell wrote the book between November 1943 and February 1944 .", "a bar nearby"])
    assert in_tests("Animal Farm is short. orwell wrote the book between November 1943 and February 1944, when")
    assert in_tests("A bar nearby!")  # short test texts: the whole text
    assert not in_tests("Orwell wrote the book in 1944 after a long break from novels and essays .")
