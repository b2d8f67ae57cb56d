"""WordNet instance-of links (Mozart → composer, Nile → river) from Debian's wordnet-base.

Reads the WordNet 3.0 database files directly: for each noun lemma whose most frequent sense
is an instance synset, the class it is an instance of gives a fine-grained label.
"""

from __future__ import annotations

from pathlib import Path

WORDNET_DIR = Path("/usr/share/wordnet")


def _synsets(data_noun: Path) -> dict[str, tuple[list[str], list[str]]]:
    """offset → (lemmas, instance-hypernym offsets)."""
    out = {}
    for line in data_noun.read_text(encoding="latin-1").splitlines():
        if line.startswith("  "):
            continue
        fields = line.split(" | ")[0].split()
        offset, w_cnt = fields[0], int(fields[3], 16)
        lemmas = [fields[4 + 2 * i] for i in range(w_cnt)]
        pos = 4 + 2 * w_cnt
        p_cnt = int(fields[pos])
        ptrs = [fields[pos + 1 + 4 * i: pos + 5 + 4 * i] for i in range(p_cnt)]
        out[offset] = (lemmas, [p[1] for p in ptrs if p[0] == "@i"])
    return out


def instance_classes(wordnet_dir: Path = WORDNET_DIR) -> dict[str, str]:
    """lower-cased instance name ('mozart', 'new york') → class name ('composer', 'city')."""
    data = wordnet_dir / "data.noun"
    index = wordnet_dir / "index.noun"
    if not data.exists():
        raise FileNotFoundError(f"{data} missing: apt-get install wordnet-base")
    synsets = _synsets(data)
    out: dict[str, str] = {}
    for line in index.read_text(encoding="latin-1").splitlines():
        if line.startswith("  "):
            continue
        fields = line.split()
        lemma, synset_cnt, p_cnt = fields[0], int(fields[2]), int(fields[3])
        offsets = fields[6 + p_cnt: 6 + p_cnt + synset_cnt]
        if not offsets:
            continue
        lemmas, classes = synsets.get(offsets[0], ([], []))
        if not classes:
            continue
        cls_lemmas = synsets.get(classes[0], ([], []))[0]
        if cls_lemmas:
            name = cls_lemmas[0].split("(")[0].replace("_", " ").lower()
            out[lemma.replace("_", " ").lower()] = name
    return out
