"""Per-label logits of the constrained classification tasks, and the numeric helpers the
decoders share (adapted from gliner2 2.1.0: ``classification/scoring.py``'s
``ClassificationScores`` without its torch scorer, ``joint_ie/candidates.py``'s
``probability_to_logit``, ``center_logit``, ``sigmoid`` and ``joint_ie/result.py``'s
``_geometric_mean``; Apache-2.0, see NOTICE). The logits come from spanstream's own engine."""
from __future__ import annotations

import math
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Iterable, Mapping, Optional, Sequence

from .errors import SchemaError


def probability_to_logit(probability: float) -> float:
    """Return the log-odds, accepting exact zero and one."""
    if not 0.0 <= probability <= 1.0:
        raise ValueError("probability must be between zero and one")
    if probability == 0.0:
        return -math.inf
    if probability == 1.0:
        return math.inf
    return math.log(probability) - math.log1p(-probability)


def center_logit(logit: float, threshold: float = 0.5) -> float:
    """Center a raw logit so positive utility means passing ``threshold``."""
    return float(logit) - probability_to_logit(threshold)


def sigmoid(value: float) -> float:
    value = float(value)
    if value >= 0:
        z = math.exp(-value)
        return 1.0 / (1.0 + z)
    z = math.exp(value)
    return z / (1.0 + z)


def geometric_mean(values: Iterable[float]) -> Optional[float]:
    values = list(values)
    if not values:
        return None
    if any(value < 0 or value > 1 for value in values):
        raise ValueError("confidence components must be probabilities in [0, 1]")
    if any(value == 0 for value in values):
        return 0.0
    return math.exp(sum(math.log(value) for value in values) / len(values))


def _softmax(values: Sequence[float]) -> list:
    m = max(values)
    exps = [math.exp(v - m) for v in values]
    total = sum(exps)
    return [e / total for e in exps]


@dataclass(frozen=True)
class ClassificationScores:
    """Raw per-label logits plus the compiled schema's fingerprint.

    ``probability`` is presentation (temperature then activation); ``utility`` is
    the objective (temperature then ``center_logit``). Two separate paths on
    purpose.
    """
    text: str
    tasks: Mapping[str, Mapping[str, float]]
    fingerprint: str
    specs: Mapping[str, Any]  # task name -> TaskSpec

    def __post_init__(self):
        frozen = MappingProxyType({
            t: MappingProxyType(dict(v)) for t, v in self.tasks.items()
        })
        object.__setattr__(self, "tasks", frozen)

    def _spec(self, task):
        try:
            return self.specs[task]
        except KeyError:
            raise SchemaError(f"unknown task {task!r}") from None

    def logit(self, task: str, label: str) -> float:
        return self.tasks[task][label]

    def probability(self, task: str, label: str) -> float:
        spec = self._spec(task)
        temp = spec.temperature
        activation = spec.activation
        if activation == "auto":
            activation = "sigmoid" if not spec.is_exclusive else "softmax"
        if activation == "softmax":
            names = list(self.tasks[task])
            scaled = [self.tasks[task][n] / temp for n in names]
            probs = _softmax(scaled)
            return probs[names.index(label)]
        return sigmoid(self.tasks[task][label] / temp)

    def utility(self, task: str, label: str) -> float:
        spec = self._spec(task)
        return center_logit(self.tasks[task][label] / spec.temperature, spec.threshold)
