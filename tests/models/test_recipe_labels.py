"""Training labels from WordNet classes: whole-chunk consistency and held-out types never used."""

from __future__ import annotations

import random

from models.recipe.data import (
    CORE_NEGATIVE_RATE,
    PLACE_CLASSES,
    SPECIFIC_RATE,
    TEACHER_NAMES,
    _with_negatives,
    core_negatives,
    label_names,
    place_negatives,
    prefer_specific,
    wordnet_spans,
)
from models.recipe.labels import UNSEEN_TYPES
from models.recipe.wordnet import Synset


class FakeWordNet:
    synsets = {
        "weapon": Synset(("weapon", "arm", "weapon system"), (), ()),
        "gun": Synset(("gun",), ("weapon",), ()),
        "drug": Synset(("drug",), (), ()),
        "place": Synset(("location",), (), ()),
        PLACE_CLASSES[0]: Synset(("country", "state", "land"), (), ()),
        PLACE_CLASSES[1]: Synset(("city", "metropolis"), (), ()),
    }


def test_every_mention_of_a_chosen_class_is_labelled():
    mentions = [(0, 5, frozenset({"weapon", "gun"})), (10, 15, frozenset({"weapon"})), (20, 25, frozenset({"gun"}))]
    for seed in range(20):
        spans = wordnet_spans(FakeWordNet(), mentions, random.Random(seed))
        for name in {label for *_, label in spans}:
            cls = next(c for c, s in FakeWordNet.synsets.items() if name in s.lemmas)
            labelled = {(s, e) for s, e, label in spans if label == name}
            assert labelled == {(s, e) for s, e, classes in mentions if cls in classes}


def test_names_sharing_a_word_with_unseen_types_or_teacher_labels_are_never_used():
    assert label_names(FakeWordNet(), "drug") == []          # "drug" ~ medication (held out)
    assert label_names(FakeWordNet(), "place") == []         # teacher label, left to the teacher
    assert label_names(FakeWordNet(), "weapon") == ["weapon", "arm"]  # first two names only
    assert "location" in TEACHER_NAMES


def test_negatives_never_include_unseen_types_or_present_classes():
    pool = sorted(UNSEEN_TYPES) + ["planet", "ship", "vehicle"] * 3
    for seed in range(50):
        row = _with_negatives({"tokenized_text": ["a"], "ner": [[0, 0, "ship"]]}, pool, ["gun", "river"] * 4,
                              {"river"}, random.Random(seed))
        assert not set(row["ner_negatives"]) & (UNSEEN_TYPES | {"ship", "river"})


def test_place_classes_are_labelled_often_and_never_on_the_wrong_place():
    country, city = PLACE_CLASSES[:2]
    mentions = [(0, 6, frozenset({country})), (10, 15, frozenset({city})), (20, 25, frozenset({"gun"}))]
    picked = 0
    for seed in range(100):
        spans = wordnet_spans(FakeWordNet(), mentions, random.Random(seed))
        names = {(s, label) for s, _, label in spans}
        picked += any(label in ("country", "state") for _, label in names)
        assert not {(0, "city"), (0, "metropolis"), (10, "country"), (10, "state")} & names
    assert picked >= 60  # chosen far more often than a random class among a chunk's classes


def test_hard_negatives_are_added_unless_present():
    row = _with_negatives({"tokenized_text": ["Paris"], "ner": [[0, 0, "city"]]}, ["planet"] * 16, ["gun"] * 8,
                          {"city", "metropolis"}, random.Random(0), hard=["country", "city"])
    assert "country" in row["ner_negatives"] and "city" not in row["ner_negatives"]


class PlacesWordNet(FakeWordNet):
    known = {"france": (PLACE_CLASSES[0],), "paris": (PLACE_CLASSES[1],)}

    def instance_ancestors(self, lemma):
        return self.known.get(lemma, ())

    def name(self, offset):
        return self.synsets[offset].lemmas[0] if offset in self.synsets else "continent"


def test_place_negatives_only_when_every_place_is_known():
    text = "Paris is in France. Springfield is elsewhere."
    paris, france, springfield = (0, 5, "GPE"), (12, 18, "GPE"), (20, 31, "GPE")
    only_paris = place_negatives(PlacesWordNet(), text, [paris], {PLACE_CLASSES[1]})
    assert "country" in only_paris and "city" not in only_paris
    assert place_negatives(PlacesWordNet(), text, [paris, france], {PLACE_CLASSES[0], PLACE_CLASSES[1]}) == ["continent"]
    # an unknown town could be a city: no place negatives at all
    assert place_negatives(PlacesWordNet(), text, [paris, springfield], {PLACE_CLASSES[1]}) == []
    assert place_negatives(PlacesWordNet(), text, [(0, 5, "PERSON")], set()) == []


def test_core_types_absent_from_a_chunk_are_asked_for_as_negatives():
    names = {"PERSON": "individual", "ORG": "organisation", "GPE": "place", "DATE": "date"}
    ents = [(0, 5, "PERSON"), (10, 15, "LOC")]  # LOC counts as location: never a negative here
    asked = [core_negatives(ents, names, random.Random(seed)) for seed in range(200)]
    assert all(set(a) <= {"organisation", "date"} for a in asked)
    share = sum("organisation" in a for a in asked) / len(asked)
    assert abs(share - CORE_NEGATIVE_RATE) < 0.1


def test_the_finer_label_wins_where_teacher_and_wordnet_both_label_a_span():
    teacher = [(0, 6, "location"), (10, 15, "person")]
    fine = [(0, 6, "country"), (20, 25, "river")]
    dropped = 0
    for seed in range(200):
        kept, generic = prefer_specific(teacher, fine, random.Random(seed))
        assert (10, 15, "person") in kept  # no finer label there
        dropped += (0, 6, "location") not in kept
        assert generic == ([] if (0, 6, "location") in kept else ["location"])
    assert abs(dropped / 200 - SPECIFIC_RATE) < 0.1
