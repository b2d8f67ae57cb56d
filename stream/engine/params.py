"""Decoding parameters with documented defaults."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class DecodeParams:
    """How logits become entities.

    ``threshold`` applies to every label unless ``label_thresholds`` names that label.
    ``flat_ner`` forbids any overlap (the GLiNER default); with it off, nested spans are kept but
    partially overlapping ones are not. ``multi_label`` lets one span carry several labels.
    """

    threshold: float = 0.5
    flat_ner: bool = True
    multi_label: bool = False
    label_thresholds: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, value in [("threshold", self.threshold), *self.label_thresholds.items()]:
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"threshold for {name!r} must be within [0, 1], got {value}")

    def threshold_for(self, label: str) -> float:
        return float(self.label_thresholds.get(label, self.threshold))
