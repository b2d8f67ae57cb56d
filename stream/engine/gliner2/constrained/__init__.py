"""gliner2's constrained classification (``gliner2.classification``: tasks with cardinality
bounds, defaults and orders, a constraint DSL across tasks, independent / exact / beam decoders
and the relax → min_violations → raise ladder), torch-free.

gliner2 2.1.0 cannot be imported without torch, so its pure-Python modules are adapted here
(Apache-2.0; NOTICE beside this file lists them and what changed). What is spanstream's own:
the logits come from the engine's classifier head on the compiled tasks' prompt (the same
prompt gliner2's ``Classifier`` builds), long texts take each label's highest logit over the
windows and decode once (gliner2's ``classify_long`` with ``aggregate="max"``), and errors
become ``InvalidInput`` naming the key.

In a schema dict: ``"constrained_classification": {"version": 3, "tasks": {...},
"constraints": [...], "config": {...}}`` — ``ClassificationSchema.to_dict()``'s form, plus the
``ClassificationConfig`` fields that apply to decoding. The result, under the same key, is
``ClassificationResult.to_dict()``.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Mapping, Sequence

from stream.errors import InvalidInput

from .compiler import CompiledClassificationSchema, compile_schema
from .decoding import build_problem, decode as _decode
from .errors import InfeasibleError, SchemaError
from .result import ResultBuilder
from .schema import ClassificationSchema
from .scores import ClassificationScores

RESULT_KEY = "constrained_classification"

_DECODERS = ("auto", "independent", "exact", "beam")
_ON_INFEASIBLE = ("relax", "min_violations", "raise")
_NOT_HERE = {"calibrator": "calibration is not supported", "batch_size": "batching is the server's",
             "max_len": "long texts are windowed by the server"}


@dataclass(frozen=True)
class ClassificationConfig:
    """gliner2's ``ClassificationConfig`` less what the server owns (batching, length)."""

    decoder: str = "auto"
    exact_node_budget: int = 200_000
    beam_size: int = 16
    candidate_threshold: float = 0.5
    max_candidates_per_task: int = 64
    include_confidence: bool = True
    on_infeasible: str = "relax"


@dataclass(frozen=True)
class Constrained:
    compiled: CompiledClassificationSchema
    config: ClassificationConfig

    @property
    def classifications(self) -> tuple:
        """The tasks as spanstream classification tasks: what the prompt carries."""
        return self.compiled.build()


def _bad(where: str, message: str) -> InvalidInput:
    return InvalidInput("invalid_schema", f"{where}: {message}")


def _config(raw: Any, where: str) -> ClassificationConfig:
    if raw is None:
        return ClassificationConfig()
    if not isinstance(raw, Mapping):
        raise _bad(where, "must be an object")
    known = {f.name for f in fields(ClassificationConfig)}
    for key in raw:
        if key in _NOT_HERE:
            raise _bad(f"{where}.{key}", _NOT_HERE[key])
        if key not in known:
            raise _bad(f"{where}.{key}", f"unknown key (known: {', '.join(sorted(known))})")
    cfg = ClassificationConfig(**raw)
    checks = (
        ("decoder", cfg.decoder in _DECODERS, f"must be one of {list(_DECODERS)}"),
        ("on_infeasible", cfg.on_infeasible in _ON_INFEASIBLE, f"must be one of {list(_ON_INFEASIBLE)}"),
        ("exact_node_budget", _int(cfg.exact_node_budget) and cfg.exact_node_budget > 0, "must be a positive integer"),
        ("beam_size", _int(cfg.beam_size) and cfg.beam_size > 0, "must be a positive integer"),
        ("max_candidates_per_task", _int(cfg.max_candidates_per_task) and cfg.max_candidates_per_task > 0,
         "must be a positive integer"),
        ("candidate_threshold", _number(cfg.candidate_threshold) and 0 <= cfg.candidate_threshold <= 1,
         "must be a number in [0, 1]"),
        ("include_confidence", isinstance(cfg.include_confidence, bool), "must be a boolean"),
    )
    for key, ok, message in checks:
        if not ok:
            raise _bad(f"{where}.{key}", message)
    return cfg


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def parse(raw: Any, where: str) -> Constrained:
    """The schema dict's ``constrained_classification`` value, validated and compiled with
    gliner2's rules; ``InvalidInput('invalid_schema')`` naming the key when it is refused."""
    if not isinstance(raw, Mapping):
        raise _bad(where, "must be an object {version, tasks, constraints, config}")
    unknown = sorted(set(raw) - {"version", "tasks", "constraints", "config"})
    if unknown:
        raise _bad(f"{where}.{unknown[0]}", "unknown key (known: version, tasks, constraints, config)")
    if raw.get("version", 3) != 3:
        raise _bad(f"{where}.version", "only version 3 (gliner2 2.1's ClassificationSchema) is supported")
    tasks = raw.get("tasks")
    if not isinstance(tasks, Mapping) or not tasks:
        raise _bad(f"{where}.tasks", "must be a non-empty object {task: {labels, ...}}")
    for name, spec in tasks.items():
        if not isinstance(spec, Mapping) or "labels" not in spec:
            raise _bad(f"{where}.tasks.{name}", "must be an object with labels")
    if not isinstance(raw.get("constraints", []), list):
        raise _bad(f"{where}.constraints", "must be a list")
    try:
        compiled = compile_schema(ClassificationSchema.from_dict(
            {"tasks": tasks, "constraints": raw.get("constraints", [])}))
    except TypeError as exc:  # an unknown task key reaches TaskSpec(**kwargs)
        raise _bad(f"{where}.tasks", str(exc).replace("ClassificationSchema.task() ", "")) from None
    except (SchemaError, ValueError, KeyError) as exc:
        raise _bad(where, str(exc)) from None
    return Constrained(compiled, _config(raw.get("config"), f"{where}.config"))


def decode(constrained: Constrained, logits: Mapping[str, Sequence[float]], text: str) -> dict:
    """One text's result from each task's label logits (in label order), as gliner2's
    ``Classifier.decode(...).to_dict()``; ``InvalidInput('infeasible_classification')`` when
    ``on_infeasible`` is ``raise`` and no assignment satisfies the constraints."""
    compiled, config = constrained.compiled, constrained.config
    scores = ClassificationScores(
        text=text,
        tasks={spec.name: {label: float(v) for label, v in zip(spec.label_names, logits[spec.name])}
               for spec in compiled.task_specs},
        fingerprint=compiled.fingerprint,
        specs={spec.name: spec for spec in compiled.task_specs})
    problem = build_problem(compiled, scores, config)

    def widen():
        return build_problem(compiled, scores, config, full_retention_tasks=problem.task_order)

    try:
        solution = _decode(problem, config, widen=widen)
    except InfeasibleError as exc:
        raise InvalidInput("infeasible_classification",
                           f"{exc}: {'; '.join(str(v) for v in exc.violations)}") from None
    result = ResultBuilder().build(compiled, scores, solution, active_order=problem.task_order,
                                   include_confidence=config.include_confidence)
    return result.to_dict()
