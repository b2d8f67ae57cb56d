"""Natural label names (with paraphrases) for the teacher's types, and PII types."""

from __future__ import annotations

# spaCy OntoNotes type → natural names; one is sampled per example so the model learns
# that paraphrases mean the same thing.
SPACY_LABELS: dict[str, list[str]] = {
    "PERSON": ["person", "people's names", "individual", "name of a person", "human"],
    # Not "company": spaCy's ORG is as often a party, university or club; WordNet's finer classes
    # (company, university, ...) label the mentions it knows.
    "ORG": ["organization", "organisation", "institution", "organization name"],
    # Not "country, city or state": that paraphrase taught the word "city" for every country.
    # Countries, cities and states get their own names from WordNet (data.PLACE_CLASSES).
    "GPE": ["location", "geopolitical entity", "place"],
    "LOC": ["location", "geographic feature", "place", "region"],
    "DATE": ["date", "calendar date", "day or year"],
    "TIME": ["time", "time of day"],
    "MONEY": ["money", "monetary amount", "price", "amount of money"],
    "PERCENT": ["percentage", "percent"],
    "NORP": ["nationality", "nationality, religious or political group", "demonym"],
    "FAC": ["facility", "building or infrastructure", "building"],
    "PRODUCT": ["product", "commercial product"],
    "EVENT": ["event", "named event"],
    "WORK_OF_ART": ["work of art", "title of a creative work"],
    "LAW": ["law", "legal document"],
    "LANGUAGE": ["language"],
    "QUANTITY": ["quantity", "measurement"],
    "ORDINAL": ["ordinal number"],
    "CARDINAL": ["number", "cardinal number"],
}

# The four core types of the teacher-agreement evaluation: canonical name → spaCy types.
CORE_TYPES: dict[str, tuple[str, ...]] = {
    "person": ("PERSON",),
    "organization": ("ORG",),
    "location": ("GPE", "LOC"),
    "date": ("DATE",),
}

PII_LABELS = [
    "email address", "phone number", "iban", "street address", "date of birth", "credit card number",
    "ip address", "url", "postal code", "username", "license plate", "social security number",
]

# The gold set's types that training never labels — not as positives, not as negatives.
UNSEEN_TYPES = frozenset({"programming language", "medication", "sports team", "musical instrument", "disease",
                          "food", "job title", "award"})

# Negatives beyond the teacher, PII and WordNet names (none of them an unseen gold type).
EXTRA_NEGATIVES = [
    "chemical element", "software", "film", "book", "song", "planet", "currency", "ship", "sport", "color",
    "emotion", "weapon", "plant", "mineral", "animal", "vehicle",
]
