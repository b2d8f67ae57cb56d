"""gliner2's schema dict form: accepted as gliner2 accepts it, refused with a reason naming the key."""

from __future__ import annotations

import pytest

from stream.engine.gliner2.prompt import choice_prefix, schema_tasks
from stream.engine.gliner2.schema import parse_field_spec, parse_schema
from stream.errors import InvalidInput


def test_to_dict_forms_parse():
    s = parse_schema({
        "entities": {"person": "a human", "org": {"threshold": 0.7, "dtype": "str"}, "place": ""},
        "structures": {"product": {"fields": [{"name": "name", "dtype": "str"}, "price::str::the price",
                                              "kind::[a|b]"]}},
        "classifications": [{"task": "sentiment", "labels": {"pos": "good", "neg": "bad"}, "multi_label": True,
                             "cls_threshold": 0.3, "top_k": 1, "examples": [["great", "pos"]]}],
        "relations": {"works_for": {"description": "employment", "threshold": 0.6}, "born_in": ""},
    })
    assert [e.name for e in s.entities] == ["person", "org", "place"]
    assert s.entities[1].threshold == 0.7 and s.entities[1].dtype == "str"
    assert s.entities[2].description == ""  # gliner2 renders an empty description into the prompt
    f = s.structures[0].fields
    assert (f[1].dtype, f[1].description) == ("str", "the price")
    assert (f[2].dtype, f[2].choices) == ("str", ("a", "b"))
    assert s.classifications[0].label_descriptions == (("pos", "good"), ("neg", "bad"))
    assert s.relations[0].threshold == 0.6 and s.relations[1].description is None


def test_field_spec_strings_follow_gliner2():
    assert parse_field_spec("tags::[x|y]::list") == {"name": "tags", "choices": ["x", "y"], "dtype": "list"}
    assert parse_field_spec("name") == {"name": "name"}


def test_prompt_order_is_structures_entities_relations_classifications():
    s = parse_schema({"classifications": [{"task": "c", "labels": ["a", "b"]}], "relations": ["r"],
                      "entities": ["e"], "structures": {"s": {"fields": [{"name": "f", "choices": ["x", "y"]}]}}})
    assert [t.kind for t in schema_tasks(s)] == ["structure", "entities", "relation", "classification"]
    assert choice_prefix(s) == ("(", "s:", "f", "(", "x", "|", "y", ")", ")")


@pytest.mark.parametrize("raw, where", [
    ({}, "schema: at least one"),
    ({"entity": ["x"]}, "unknown key"),
    ({"entities": []}, "schema.entities: cannot be empty"),
    ({"entities": ["a", "a"]}, "must be unique"),
    ({"entities": {"a": {"threshold": 2}}}, "schema.entities.a.threshold"),
    ({"entities": {"a": {"dtype": "set"}}}, "schema.entities.a.dtype"),
    ({"classifications": [{"task": "t", "labels": ["only"]}]}, "at least 2 labels"),
    ({"classifications": [{"task": "t", "labels": ["a", "b"], "top_k": 0}]}, "top_k"),
    ({"classifications": [{"task": "t", "labels": ["a", "b"]}, {"task": "t", "labels": ["c", "d"]}]}, "unique"),
    ({"structures": {"p": {"fields": []}}}, "schema.structures.p.fields"),
    ({"structures": {"p": {"fields": [{"name": "f", "choices": []}]}}}, "choices"),
    ({"structures": {"p": {"fields": [{"name": "f", "colour": "red"}]}}}, "unknown key"),
    ({"relations": "works_for"}, "schema.relations"),
    ({"entity_attributes": {"g": {"labels": ["a"]}}}, "schema.entity_attributes: needs entities"),
    ({"entities": ["x"], "entity_attributes": {}}, "schema.entity_attributes"),
    ({"entities": ["x"], "entity_attributes": {"text": {"labels": ["a"]}}}, "schema.entity_attributes.text"),
    ({"entities": ["x"], "entity_attributes": {"g": {"labels": []}}}, "schema.entity_attributes.g.labels"),
    ({"entities": ["x"], "entity_attributes": {"g": {"labels": ["a", "a"]}}}, "schema.entity_attributes.g.labels[1]"),
    ({"entities": ["x"], "entity_attributes": {"g": {"labels": ["a"]}, "h": {"labels": ["a"]}}},
     "also in group 'g'"),
    ({"entities": ["x"], "entity_attributes": {"g": {"labels": ["a"], "applies_to": ["y"]}}}, "unknown entity type"),
    ({"entities": ["x"], "entity_attributes": {"g": {"labels": ["a"], "threshold": 2}}}, "g.threshold"),
    ({"entities": ["x"], "entity_attributes": {"g": {"labels": ["a"], "colour": 1}}}, "unknown key"),
    ({"entities": ["x", "a"], "entity_attributes": {"g": {"labels": ["a"]}}}, "set qualify_labels"),
    ([1, 2], "must be an object"),
    # gliner2 would silently overwrite one result with the other
    ({"structures": {"x": {"fields": ["f"]}}, "classifications": [{"task": "x", "labels": ["a", "b"]}]}, "two tasks"),
    ({"classifications": [{"task": "entities", "labels": ["a", "b"]}]}, "two tasks"),
])
def test_bad_schemas_are_refused_with_the_key(raw, where):
    with pytest.raises(InvalidInput) as err:
        parse_schema(raw)
    assert where in err.value.message
    assert err.value.reason == "invalid_schema"


def test_entity_attributes_join_the_entity_prompt_after_the_types_sorted():
    """gliner2 2.1 adds attribute labels (qualified as "group: label" when asked) to the entity
    task after the entity types, sorted; the request's label count includes them."""
    from stream.engine.gliner2.prompt import schema_tasks
    from stream.engine.gliner2.schema import schema_size

    schema = parse_schema({"entities": ["person", "company"],
                           "entity_attributes": {"sentiment": {"labels": ["positive", "negative"]},
                                                 "role": {"labels": ["ceo", "a"], "qualify_labels": True,
                                                          "applies_to": ["person"], "multi_label": True}}})
    (task,) = schema_tasks(schema)
    assert task.fields == ("person", "company", "negative", "positive", "role: a", "role: ceo")
    assert schema_size(schema) == 6
    role = next(g for g in schema.attributes if g.name == "role")
    assert role.applies_to == ("person",) and role.multi_label and role.threshold == 0.5
