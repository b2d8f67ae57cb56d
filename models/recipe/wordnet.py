"""WordNet 3.0 (Debian's wordnet-base) as a source of fine-grained, natural label names.

Two kinds of supervision come from it:
- instance-of links for named mentions (Mozart → composer, Nile → river), and
- hypernym chains for common nouns in text (cello → stringed instrument → device), which teach
  the model that a label names a *class* and a span belongs to it — the core of zero-shot
  behaviour that named-entity teachers alone never show.
Both use a lemma's most frequent sense (the first synset in index.noun).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

WORDNET_DIR = Path("/usr/share/wordnet")

PEOPLE = "00007846"  # person.n.01
PHYSICAL = "00001930"  # physical_entity.n.01
# Subtrees never used as labels or negatives, so the gold set's unseen types stay unseen:
# drug/medication, disease, food (both senses), musical instrument, award, programming language,
# team, and people (roles and occupations would teach "job title").
HELD_OUT_SYNSETS = frozenset({
    "03247620", "03740161", "14070360", "00021265", "07555863", "03800933", "06696483", "00087663",
    "06898352", "08208560", PEOPLE,
})
# Common nouns are labelled only under these roots (concrete things, substances, living things,
# fields of study, sports, languages); abstract senses are too noisy with first-sense lookup.
NOUN_ROOTS = frozenset({PHYSICAL, "05996646", "00523513", "06282651"})
# Common nouns under these are left to the teacher or too often a wrong sense: locations
# ("the state" is a polity, not a region), processes/phenomena ("currents" of thought).
NOUN_EXCLUDED = frozenset({"00027167", "00029677"})
# Classes too generic to be a useful label even when deep enough.
GENERIC = frozenset({"organism", "instrumentality", "activity", "diversion", "area", "seat", "center", "thing",
                     "part", "relation", "component", "unit", "whole", "object", "artifact", "matter",
                     "natural object", "causal agent", "living thing", "abstraction", "psychological feature",
                     "possession", "group", "measure", "attribute", "communication", "event", "act", "content",
                     "cognition", "state", "process", "physical entity", "entity"})
# Label names sharing a word with the gold set's unseen types are never used either.
HELD_OUT_WORDS = frozenset({"medication", "medicine", "drug", "disease", "illness", "food", "instrument", "team",
                            "award", "prize", "job", "occupation", "programming"})
ROOT = "00001740"  # entity.n.01
MIN_LABEL_DEPTH = 3  # classes nearer the root say nothing (deeper generic ones: GENERIC)


@dataclass(frozen=True)
class Synset:
    lemmas: tuple[str, ...]
    hypernyms: tuple[str, ...]
    instance_of: tuple[str, ...]


def _clean(lemma: str) -> str:
    return lemma.split("(")[0].replace("_", " ").lower()


class WordNet:
    def __init__(self, wordnet_dir: Path = WORDNET_DIR):
        data = wordnet_dir / "data.noun"
        if not data.exists():
            raise FileNotFoundError(f"{data} missing: apt-get install wordnet-base")
        self.synsets: dict[str, Synset] = {}
        for line in data.read_text(encoding="latin-1").splitlines():
            if line.startswith("  "):
                continue
            fields = line.split(" | ")[0].split()
            offset, w_cnt = fields[0], int(fields[3], 16)
            lemmas = tuple(_clean(fields[4 + 2 * i]) for i in range(w_cnt))
            pos = 4 + 2 * w_cnt
            ptrs = [fields[pos + 1 + 4 * i: pos + 5 + 4 * i] for i in range(int(fields[pos]))]
            self.synsets[offset] = Synset(lemmas, tuple(p[1] for p in ptrs if p[0] == "@"),
                                          tuple(p[1] for p in ptrs if p[0] == "@i"))
        self._ancestors: dict[str, frozenset[str]] = {}
        self.first_sense: dict[str, str] = {}
        self.n_senses: dict[str, int] = {}
        for line in (wordnet_dir / "index.noun").read_text(encoding="latin-1").splitlines():
            if line.startswith("  "):
                continue
            fields = line.split()
            synset_cnt, p_cnt = int(fields[2]), int(fields[3])
            offsets = fields[6 + p_cnt: 6 + p_cnt + synset_cnt]
            if offsets:
                self.first_sense[fields[0].replace("_", " ").lower()] = offsets[0]
                self.n_senses[fields[0].replace("_", " ").lower()] = len(offsets)
        # SemCor tag counts per sense number, to keep only nouns whose first sense dominates.
        self.sense_counts: dict[str, dict[int, int]] = {}
        for line in (wordnet_dir / "cntlist.rev").read_text(encoding="latin-1").splitlines():
            key, number, count = line.split()
            lemma, _, rest = key.partition("%")
            if rest.startswith("1:"):
                self.sense_counts.setdefault(lemma.replace("_", " "), {})[int(number)] = int(count)
    def ancestors(self, offset: str) -> frozenset[str]:
        """Every hypernym (and instance class) above ``offset``, itself included."""
        return self._ancestors.get(offset) or self._walk(offset)

    def _walk(self, offset: str) -> frozenset[str]:
        syn = self.synsets.get(offset)
        out = {offset}
        if syn:
            for parent in syn.hypernyms + syn.instance_of:
                out |= self.ancestors(parent)
        result = frozenset(out)
        self._ancestors[offset] = result
        return result

    @cached_property
    def depth(self) -> dict[str, int]:
        """Shortest hypernym distance from entity.n.01."""
        children: dict[str, list[str]] = {}
        for off, syn in self.synsets.items():
            for parent in syn.hypernyms + syn.instance_of:
                children.setdefault(parent, []).append(off)
        depth, frontier = {ROOT: 0}, [ROOT]
        while frontier:
            nxt = []
            for off in frontier:
                for child in children.get(off, ()):
                    if child not in depth:
                        depth[child] = depth[off] + 1
                        nxt.append(child)
            frontier = nxt
        return depth

    def name(self, offset: str) -> str:
        return self.synsets[offset].lemmas[0]

    def noun_classes(self, lemma: str) -> tuple[str, ...]:
        """Label-worthy classes of a common noun's first sense (empty if held out or abstract)."""
        offset = self.first_sense.get(lemma)
        if offset is None or self.synsets[offset].instance_of or not self._dominant(lemma):
            return ()
        up = self.ancestors(offset)
        if up & (HELD_OUT_SYNSETS | NOUN_EXCLUDED) or not up & NOUN_ROOTS:
            return ()
        return tuple(sorted(a for a in up if a != offset and self._labelworthy(a)))

    def _dominant(self, lemma: str) -> bool:
        """One sense, or a first sense tagged at least 3 times and twice as often as the second."""
        if self.n_senses.get(lemma, 0) == 1:
            return True
        counts = self.sense_counts.get(lemma, {})
        return counts.get(1, 0) >= 3 and counts.get(1, 0) >= 2 * counts.get(2, 0)

    def _labelworthy(self, offset: str) -> bool:
        name = self.name(offset)
        return (self.depth.get(offset, 0) >= MIN_LABEL_DEPTH and name not in GENERIC
                and not set(name.split()) & HELD_OUT_WORDS)

    def instance_ancestors(self, lemma: str) -> tuple[str, ...]:
        """Classes above a named instance (Nile → river → stream → body of water), held-out free.

        Roles of named people (Mozart → composer) are kept: they type a name, not a job-title mention."""
        offset = self.first_sense.get(lemma)
        if offset is None or not self.synsets[offset].instance_of:
            return ()
        up = self.ancestors(offset) - {offset}
        # abstract classes of names ("imagination" for Zeus) are noise, hence PHYSICAL below
        held_out = HELD_OUT_SYNSETS - {PEOPLE}
        return tuple(sorted(a for a in up if self._labelworthy(a) and not self.ancestors(a) & held_out
                            and PHYSICAL in self.ancestors(a)))

