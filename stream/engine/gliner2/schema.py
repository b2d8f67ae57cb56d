"""A GLiNER2 extraction schema: parsed from gliner2's own dict form, validated, typed.

Accepts what ``gliner2.Schema.from_dict`` reads (and ``Schema.to_dict`` writes)::

    {"entities": ["person"] | {"person": "description" | {"description", "dtype", "threshold"}},
     "structures": {"product": {"fields": [{"name", "dtype", "choices", "description", "threshold"},
                                            "name::str::[a|b]::description", ...]}},
     "classifications": [{"task", "labels": [..] | {label: description}, "multi_label",
                          "cls_threshold", "top_k", "class_act", "prompt", "examples"}],
     "relations": ["works_for"] | {"works_for": "description" | {"description", "threshold"}},
     "entity_attributes": {"sentiment": {"labels": [..], "multi_label", "threshold", "applies_to",
                                         "qualify_labels"}}}

Field entries may also be gliner2's field-spec strings (``extract_json``'s form). Unknown keys
and bad values are refused with ``InvalidInput('invalid_schema', ...)`` naming the key, as
gliner2's pydantic models refuse them. Record modes (``mode``, ``anchor``, ``cardinality``,
``exclusive``) decode through the record head on boundary checkpoints that have one and, as in
gliner2's span models, do not change decoding elsewhere.
``entity_attributes`` adds its labels (``"group: label"`` when qualified) to the entity prompt,
after the entity types, sorted, as gliner2 2.1 does; each kept entity span gets the groups that
apply to its type.
``constrained_classification`` takes gliner2's ``ClassificationSchema.to_dict()`` form (tasks,
cross-task constraints) plus decoding ``config`` (``constrained`` package): its tasks join the
prompt as classification tasks, and their logits are decoded jointly under the constraints.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from stream.errors import InvalidInput

__all__ = ["AttributeGroup", "Classification", "EntityType", "Field", "RelationType", "Schema", "Structure",
           "parse_schema", "schema_size"]


@dataclass(frozen=True)
class EntityType:
    name: str
    description: str | None = None
    dtype: str = "list"
    threshold: float | None = None


@dataclass(frozen=True)
class Field:
    name: str
    dtype: str = "list"
    choices: tuple[str, ...] | None = None
    description: str | None = None
    threshold: float | None = None
    cardinality: str | None = None
    "Records: optional_one | required_one | zero_or_more | one_or_more (gliner2's default when None)."
    exclusive: bool = False
    "Records: a mention bound to this field in one record cannot be bound in another."


@dataclass(frozen=True)
class Structure:
    name: str
    fields: tuple[Field, ...]
    mode: str | None = None
    "Records (boundary checkpoints): natural | latent | anchorless; None is the legacy decoder."
    anchor: str | None = None
    "The natural mode's anchor field (the first field when not named)."


@dataclass(frozen=True)
class Classification:
    task: str
    labels: tuple[str, ...]
    label_descriptions: tuple[tuple[str, str], ...] = ()
    multi_label: bool = False
    cls_threshold: float = 0.5
    top_k: int | None = None
    class_act: str = "auto"
    prompt: str | None = None
    examples: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class RelationType:
    name: str
    description: str | None = None
    threshold: float | None = None


@dataclass(frozen=True)
class AttributeGroup:
    """gliner2's ``AttributeGroup``: values given to extracted entity spans."""

    name: str
    labels: tuple[str, ...]
    multi_label: bool = False
    threshold: float = 0.5
    applies_to: tuple[str, ...] | None = None
    qualify_labels: bool = False

    def prompt_label(self, label: str) -> str:
        """The label as the model reads it (the result names it unqualified)."""
        return f"{self.name}: {label}" if self.qualify_labels else label


@dataclass(frozen=True)
class Schema:
    """One extraction request: every task runs in one encoder pass."""

    entities: tuple[EntityType, ...] = ()
    structures: tuple[Structure, ...] = ()
    classifications: tuple[Classification, ...] = ()
    relations: tuple[RelationType, ...] = ()
    attributes: tuple[AttributeGroup, ...] = ()
    constrained: Any = None
    "``constrained.Constrained``: its tasks are the last of ``classifications``."
    joint: Any = None
    "``jointie.request.Joint``: joint entity–relation decoding; its types are ``entities`` and ``relations``."

    @property
    def prompt_entities(self) -> tuple[EntityType, ...]:
        """The entity types, then the attribute labels (sorted): the entity task's prompt."""
        labels = sorted({g.prompt_label(label) for g in self.attributes for label in g.labels})
        return self.entities + tuple(EntityType(label) for label in labels)


def schema_size(schema: Schema) -> int:
    """Prompt labels (entity types and attribute labels) + fields + relations + classes: what a
    request's label limit counts."""
    return (len(schema.prompt_entities) + len(schema.relations) + sum(len(s.fields) for s in schema.structures)
            + sum(len(c.labels) for c in schema.classifications))


def _bad(where: str, message: str) -> InvalidInput:
    return InvalidInput("invalid_schema", f"{where}: {message}")


def _keys(obj: Any, where: str, allowed: set[str], required: tuple[str, ...] = ()) -> dict:
    if not isinstance(obj, dict):
        raise _bad(where, f"must be an object, got {type(obj).__name__}")
    if extra := sorted(set(obj) - allowed):
        raise _bad(where, f"unknown key(s) {extra}; allowed: {sorted(allowed)}")
    for key in required:
        if key not in obj:
            raise _bad(where, f"{key!r} is required")
    return obj


def _name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _bad(where, "must be a non-empty string")
    return value


def _text(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _bad(where, "must be a string")
    return value


def _threshold(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not 0.0 <= value <= 1.0:
        raise _bad(where, f"must be a number in [0, 1], got {value!r}")
    return float(value)


def _dtype(value: Any, where: str) -> str:
    if value is None:
        return "list"
    if value not in ("str", "list"):
        raise _bad(where, f"must be 'str' or 'list', got {value!r}")
    return value


def _unique(names: list[str], where: str, kind: str) -> None:
    if len(names) != len(set(names)):
        raise _bad(where, f"{kind} names must be unique")


def _named_types(raw: Any, where: str, kind: str, allowed: set[str]) -> list[tuple[str, dict]]:
    """entities / relations: a list of names, or {name: description | config}."""
    if isinstance(raw, list):
        items = [(_name(n, f"{where}[{i}]"), {}) for i, n in enumerate(raw)]
    elif isinstance(raw, dict):
        items = []
        for name, config in raw.items():
            _name(name, f"{where} key")
            if isinstance(config, str):
                config = {"description": config}
            elif config is None:
                config = {}
            items.append((name, dict(_keys(config, f"{where}.{name}", allowed))))
    else:
        raise _bad(where, "must be a list of names or an object")
    if not items:
        raise _bad(where, "cannot be empty")
    _unique([n for n, _ in items], where, kind)
    return items


def parse_field_spec(spec: str) -> dict:
    """gliner2's ``"name::dtype::[a|b]::description"`` (any order after the name)."""
    parts = spec.split("::")
    out: dict[str, Any] = {"name": parts[0]}
    dtype_set = False
    for part in parts[1:]:
        if part in ("str", "list"):
            out["dtype"], dtype_set = part, True
        elif part.startswith("[") and part.endswith("]"):
            out["choices"] = [c.strip() for c in part[1:-1].split("|")]
            if not dtype_set:
                out["dtype"] = "str"
        else:
            out["description"] = part
    return out


_FIELD_KEYS = {"name", "dtype", "choices", "description", "threshold", "cardinality", "exclusive"}
_CARDINALITIES = {"optional_one", "required_one", "zero_or_more", "one_or_more"}


def _field(raw: Any, where: str) -> Field:
    if isinstance(raw, str):
        raw = parse_field_spec(raw)
    _keys(raw, where, _FIELD_KEYS, ("name",))
    choices = raw.get("choices")
    if choices is not None:
        if not isinstance(choices, list) or not choices or not all(isinstance(c, str) for c in choices):
            raise _bad(f"{where}.choices", "must be a non-empty list of strings")
        choices = tuple(choices)
    if raw.get("cardinality") is not None and raw["cardinality"] not in _CARDINALITIES:
        raise _bad(f"{where}.cardinality", f"must be one of {sorted(_CARDINALITIES)}")
    if not isinstance(raw.get("exclusive", False), bool):
        raise _bad(f"{where}.exclusive", "must be a boolean")
    return Field(name=_name(raw["name"], f"{where}.name"), dtype=_dtype(raw.get("dtype"), f"{where}.dtype"),
                 choices=choices, description=_text(raw.get("description"), f"{where}.description") or None,
                 threshold=_threshold(raw.get("threshold"), f"{where}.threshold"),
                 cardinality=raw.get("cardinality"), exclusive=raw.get("exclusive", False))


def _structure(name: str, raw: Any, where: str) -> Structure:
    if isinstance(raw, list):  # extract_json's {"product": ["name::str", ...]}
        raw = {"fields": raw}
    _keys(raw, where, {"fields", "mode", "anchor", "occurrence_policy"}, ("fields",))
    if raw.get("mode") not in (None, "natural", "latent", "anchorless"):
        raise _bad(f"{where}.mode", "must be 'natural', 'latent' or 'anchorless'")
    if raw.get("occurrence_policy") not in (None, "all", "first", "error_on_ambiguous", "latent_all"):
        raise _bad(f"{where}.occurrence_policy", "must be 'all', 'first', 'error_on_ambiguous' or 'latent_all'")
    fields_raw = raw["fields"]
    if not isinstance(fields_raw, list) or not fields_raw:
        raise _bad(f"{where}.fields", "must be a non-empty list")
    fields = tuple(_field(f, f"{where}.fields[{i}]") for i, f in enumerate(fields_raw))
    names = [f.name for f in fields]
    anchor = raw.get("anchor")
    if anchor is not None:
        if raw.get("mode") != "natural":
            raise _bad(f"{where}.anchor", "only a 'natural' structure has an anchor")
        if anchor not in names:
            raise _bad(f"{where}.anchor", f"{anchor!r} is not a declared field")
    # gliner2 keeps the last declaration of a repeated field name, at its first position
    dedup: dict[str, Field] = {}
    for f in fields:
        dedup[f.name] = f
    mode = raw.get("mode")
    if mode == "natural" and anchor is None:
        anchor = names[0]
    return Structure(name, tuple(dedup.values()), mode, anchor)


_CLS_KEYS = {"task", "labels", "multi_label", "cls_threshold", "top_k", "class_act", "prompt", "examples"}


def _classification(raw: Any, where: str) -> Classification:
    _keys(raw, where, _CLS_KEYS, ("task", "labels"))
    task = _name(raw["task"], f"{where}.task")
    labels_raw = raw["labels"]
    if isinstance(labels_raw, dict):
        labels = list(labels_raw)
        descs = tuple((k, _text(v, f"{where}.labels.{k}") or "") for k, v in labels_raw.items())
    elif isinstance(labels_raw, list):
        labels, descs = labels_raw, ()
    else:
        raise _bad(f"{where}.labels", "must be a list of labels or {label: description}")
    if len(labels) < 2:
        raise _bad(f"{where}.labels", "needs at least 2 labels")
    if not all(isinstance(label, str) and label.strip() for label in labels):
        raise _bad(f"{where}.labels", "labels must be non-empty strings")
    if len(labels) != len(set(labels)):
        raise _bad(f"{where}.labels", "labels must be unique")
    multi = raw.get("multi_label", False)
    if not isinstance(multi, bool):
        raise _bad(f"{where}.multi_label", "must be a boolean")
    top_k = raw.get("top_k")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise _bad(f"{where}.top_k", "must be an integer >= 1")
    act = raw.get("class_act") or "auto"
    if act not in ("auto", "sigmoid", "softmax"):
        raise _bad(f"{where}.class_act", "must be 'auto', 'sigmoid' or 'softmax'")
    examples = raw.get("examples") or []
    if not isinstance(examples, list) or not all(
            isinstance(e, (list, tuple)) and len(e) == 2 and all(isinstance(x, str) for x in e) for e in examples):
        raise _bad(f"{where}.examples", "must be a list of [input, label] pairs")
    cls_threshold = _threshold(raw.get("cls_threshold", 0.5), f"{where}.cls_threshold")
    return Classification(task=task, labels=tuple(labels), label_descriptions=descs, multi_label=multi,
                          cls_threshold=0.5 if cls_threshold is None else cls_threshold, top_k=top_k,
                          class_act=act, prompt=_text(raw.get("prompt"), f"{where}.prompt"),
                          examples=tuple((a, b) for a, b in examples))


_ATTRIBUTE_KEYS = {"labels", "multi_label", "threshold", "applies_to", "qualify_labels"}
_RESERVED_GROUPS = {"text", "confidence", "start", "end"}


def _attributes(raw: Any, entities: tuple[EntityType, ...], where: str) -> tuple[AttributeGroup, ...]:
    """gliner2's ``Schema.entity_attributes`` checks, each refusal naming the key."""
    if not isinstance(raw, dict) or not raw:
        raise _bad(where, "must be a non-empty object {group: {labels: [...]}}")
    names = {e.name for e in entities}
    groups, owner = [], {}
    for group, cfg in raw.items():
        at = f"{where}.{group}"
        if not isinstance(group, str) or not group or group in _RESERVED_GROUPS:
            raise _bad(at, f"a group name must be non-empty and not one of {sorted(_RESERVED_GROUPS)}")
        _keys(cfg, at, _ATTRIBUTE_KEYS, ("labels",))
        labels = cfg["labels"]
        if not isinstance(labels, list) or not labels:
            raise _bad(f"{at}.labels", "must be a non-empty list of strings")
        for i, label in enumerate(labels):
            if not isinstance(label, str) or not label.strip():
                raise _bad(f"{at}.labels[{i}]", "must be a non-empty string")
            if label in owner:
                where_else = "this group" if owner[label] == group else f"group {owner[label]!r}"
                raise _bad(f"{at}.labels[{i}]", f"{label!r} is also in {where_else}")
            owner[label] = group
        applies_to = cfg.get("applies_to")
        if applies_to is not None:
            if not isinstance(applies_to, list) or not all(isinstance(a, str) for a in applies_to):
                raise _bad(f"{at}.applies_to", "must be a list of entity type names")
            if unknown := sorted(set(applies_to) - names):
                raise _bad(f"{at}.applies_to", f"unknown entity type(s) {unknown}")
        for flag in ("multi_label", "qualify_labels"):
            if not isinstance(cfg.get(flag, False), bool):
                raise _bad(f"{at}.{flag}", "must be a boolean")
        threshold = _threshold(cfg.get("threshold", 0.5), f"{at}.threshold")
        groups.append(AttributeGroup(group, tuple(labels), cfg.get("multi_label", False),
                                     0.5 if threshold is None else threshold,
                                     None if applies_to is None else tuple(applies_to),
                                     cfg.get("qualify_labels", False)))
    if clash := sorted({g.prompt_label(label) for g in groups for label in g.labels} & names):
        raise _bad(where, f"attribute labels {clash} are also entity types; set qualify_labels")
    return tuple(groups)


_TOP_KEYS = {"entities", "structures", "classifications", "relations", "entity_attributes",
             "constrained_classification", "joint"}


def _joint(raw: dict, where: str) -> Schema:
    """``{"joint": JointSchema.to_dict() + config}``: the prompt is the one gliner2's JointIE builds
    (its entity types with their descriptions, its relations), so joint decoding stands alone."""
    from stream.engine.gliner2.jointie.request import parse as parse_joint

    if others := sorted(k for k, v in raw.items() if k != "joint" and v is not None):
        raise _bad(f"{where}.{others[0]}", "joint decoding builds its own prompt from schema.joint: send other "
                                           "tasks in a separate request")
    joint = parse_joint(raw["joint"], f"{where}.joint")
    compiled = joint.compiled
    entities = tuple(EntityType(name, spec.description) for name, spec in compiled.entity_specs.items())
    relations = tuple(RelationType(name, None, None) for name in compiled.relation_order)
    return Schema(entities=entities, relations=relations, joint=joint)


def parse_schema(raw: Any, where: str = "schema") -> Schema:
    """Validate gliner2's dict form into a ``Schema``; ``InvalidInput('invalid_schema')`` if bad."""
    if isinstance(raw, Schema):
        return raw
    _keys(raw, where, _TOP_KEYS)
    if raw.get("joint") is not None:
        return _joint(raw, where)
    entities: tuple[EntityType, ...] = ()
    if raw.get("entities") is not None:
        entities = tuple(
            EntityType(name, _text(c.get("description"), f"{where}.entities.{name}.description"),
                       _dtype(c.get("dtype"), f"{where}.entities.{name}.dtype"),
                       _threshold(c.get("threshold"), f"{where}.entities.{name}.threshold"))
            for name, c in _named_types(raw["entities"], f"{where}.entities", "entity",
                                        {"description", "dtype", "threshold"}))
    structures: tuple[Structure, ...] = ()
    if raw.get("structures") is not None:
        if not isinstance(raw["structures"], dict) or not raw["structures"]:
            raise _bad(f"{where}.structures", "must be a non-empty object {name: {fields: [...]}}")
        structures = tuple(_structure(_name(n, f"{where}.structures key"), s, f"{where}.structures.{n}")
                           for n, s in raw["structures"].items())
    classifications: tuple[Classification, ...] = ()
    if raw.get("classifications") is not None:
        items = raw["classifications"]
        if not isinstance(items, list) or not items:
            raise _bad(f"{where}.classifications", "must be a non-empty list")
        classifications = tuple(_classification(c, f"{where}.classifications[{i}]") for i, c in enumerate(items))
        _unique([c.task for c in classifications], f"{where}.classifications", "task")
    relations: tuple[RelationType, ...] = ()
    if raw.get("relations") is not None:
        relations = tuple(
            RelationType(name, _text(c.get("description"), f"{where}.relations.{name}.description") or None,
                         _threshold(c.get("threshold"), f"{where}.relations.{name}.threshold"))
            for name, c in _named_types(raw["relations"], f"{where}.relations", "relation",
                                        {"description", "threshold"}))
    keys = [s.name for s in structures] + [c.task for c in classifications]
    if clash := sorted({k for k in keys if keys.count(k) > 1 or k in ("entities", "relation_extraction")}):
        raise _bad(where, f"{clash} would be the result key of two tasks; structures and classification "
                          "tasks need distinct names, other than 'entities' and 'relation_extraction'")
    attributes: tuple[AttributeGroup, ...] = ()
    if raw.get("entity_attributes") is not None:
        if not entities:
            raise _bad(f"{where}.entity_attributes", "needs entities")
        attributes = _attributes(raw["entity_attributes"], entities, f"{where}.entity_attributes")
    constrained = None
    if raw.get("constrained_classification") is not None:
        from stream.engine.gliner2.constrained import parse as parse_constrained

        constrained = parse_constrained(raw["constrained_classification"], f"{where}.constrained_classification")
        if clash := sorted({c.task for c in constrained.classifications} & {c.task for c in classifications}):
            raise _bad(f"{where}.constrained_classification.tasks", f"{clash} are classification tasks already: "
                                                                    "a task name is the prompt's name for it")
        classifications += constrained.classifications
    schema = Schema(entities, structures, classifications, relations, attributes, constrained)
    if not (entities or structures or classifications or relations):
        raise _bad(where, "at least one of entities, structures, classifications, relations or "
                          "constrained_classification is required")
    return schema
