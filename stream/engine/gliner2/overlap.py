"""Span overlap policies, as gliner2 defines them (``gliner2.inference.overlap``).

``None`` is the span models' default: greedy by confidence (stable), dropping any span that
overlaps one already kept. Named policies first collapse exact duplicates, then:
``allow`` keeps all; ``nested`` rejects crossings but keeps containment; ``disallow`` (``flat``)
takes the maximum-total-score non-overlapping set; ``longest`` drops spans strictly inside another.
Results are ranked by confidence, then start, then end. Written here (pure Python, ~80 lines)
because gliner2 ships it inside a package that imports torch.
"""

from __future__ import annotations

import bisect
from typing import NamedTuple


class RawSpan(NamedTuple):
    text: str
    confidence: float
    start: int
    end: int


ALIASES = {
    "allow": "allow", "all": "allow", "none": "allow",
    "nested": "nested", "allow_nested": "nested",
    "flat": "disallow", "disallow": "disallow", "no_overlap": "disallow", "non_overlapping": "disallow",
    "longest": "longest", "keep_longest": "longest",
}


def normalize_policy(policy: str | None) -> str | None:
    """The canonical policy, ``None`` for the default; ``ValueError`` for an unknown name."""
    if policy is None:
        return None
    key = str(policy).strip().lower().replace("-", "_")
    if key not in ALIASES:
        raise ValueError(f"unknown overlap_policy {policy!r}; expected one of: allow, nested, flat/disallow, longest")
    return ALIASES[key]


def _overlaps(a: RawSpan, b: RawSpan) -> bool:
    return a.start < b.end and b.start < a.end


def greedy(spans: list[RawSpan]) -> list[RawSpan]:
    """Confidence-first (stable), skipping spans that overlap a kept one. Kept spans never
    overlap, so sorted by start their ends rise too: one bisect finds the only candidate clash."""
    kept: list[RawSpan] = []
    starts: list[int] = []
    ends: list[int] = []
    for s in sorted(spans, key=lambda s: s.confidence, reverse=True):
        i = bisect.bisect_left(starts, s.end)  # kept spans starting before s ends: [0, i)
        if i and ends[i - 1] > s.start:
            continue
        kept.append(s)
        starts.insert(i, s.start)
        ends.insert(i, s.end)
    return kept


def first(spans: list[RawSpan], policy: str | None) -> RawSpan | None:
    """``resolve(spans, policy)[0]`` (a relation's head or tail, a ``str`` field), without
    resolving the rest when the policy is the default greedy one."""
    if policy is None:
        return max(spans, key=lambda s: s.confidence, default=None)  # max keeps the first of equals, as the stable sort
    kept = resolve(spans, policy)
    return kept[0] if kept else None


def resolve(spans: list[RawSpan], policy: str | None) -> list[RawSpan]:
    if policy is None:
        return greedy(spans)
    if not spans:
        return []

    def rank(row):
        index, s = row
        return (-float(s.confidence), s.start, s.end, index)

    distinct, seen = [], set()
    for row in sorted(enumerate(spans), key=rank):
        if (row[1].start, row[1].end) not in seen:
            seen.add((row[1].start, row[1].end))
            distinct.append(row)
    if policy == "allow":
        return [s for _, s in distinct]
    if policy == "nested":
        kept: list[tuple[int, RawSpan]] = []
        for row in distinct:
            c = row[1]
            if not any(_overlaps(c, e) and not ((c.start <= e.start and e.end <= c.end)
                                                or (e.start <= c.start and c.end <= e.end)) for _, e in kept):
                kept.append(row)
        return [s for _, s in kept]
    if policy == "longest":
        return [c for _, c in distinct
                if not any(o.start <= c.start and c.end <= o.end and (o.start < c.start or c.end < o.end)
                           for _, o in distinct)]
    # disallow: weighted interval scheduling; ties prefer more spans, then the better ranking
    by_end = sorted(distinct, key=lambda row: (row[1].end, row[1].start, -float(row[1].confidence), row[0]))
    ends = [s.end for _, s in by_end]
    pred = [bisect.bisect_right(ends, s.start, 0, i) - 1 for i, (_, s) in enumerate(by_end)]
    best: list[tuple[float, tuple[int, ...]]] = [(0.0, ())]

    def selection_key(selection):
        return tuple(rank(row) for row in sorted((by_end[i] for i in selection), key=rank))

    for i, (_, s) in enumerate(by_end):
        prev_score, prev_sel = best[pred[i] + 1]
        with_item = (prev_score + float(s.confidence), prev_sel + (i,))
        without = best[i]
        if with_item[0] != without[0]:
            best.append(with_item if with_item[0] > without[0] else without)
        elif len(with_item[1]) != len(without[1]):
            best.append(with_item if len(with_item[1]) > len(without[1]) else without)
        else:
            best.append(with_item if selection_key(with_item[1]) < selection_key(without[1]) else without)
    return [s for _, s in sorted((by_end[i] for i in best[-1][1]), key=rank)]
