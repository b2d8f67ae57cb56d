"""Per-label logits of the constrained classification tasks, and the numeric helpers the
decoders share (adapted from gliner2 2.1.0: ``classification/scoring.py``'s
``ClassificationScores`` without its torch scorer, ``joint_ie/candidates.py``'s
``probability_to_logit``, ``center_logit``, ``sigmoid`` and ``joint_ie/result.py``'s
``_geometric_mean``, imported from their ports in ``jointie``; Apache-2.0, see NOTICE). The
logits come from spanstream's own engine."""
from __future__ import annotations

import math
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Iterable, Mapping, Optional, Sequence

from stream.engine.gliner2.jointie.candidates import center_logit, probability_to_logit, sigmoid  # noqa: F401
from stream.engine.gliner2.jointie.result import _geometric_mean as geometric_mean  # noqa: F401

from .errors import SchemaError


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
