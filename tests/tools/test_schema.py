"""The argument validator (the JSON-schema subset tools use) and schemas derived from signatures."""

import math

import pytest

from mmrft.tools.schema import derive_schema, validate_arguments

BOX_SCHEMA = {
    "type": "object",
    "properties": {
        "bbox_2d": {"type": "array", "items": {"type": "number"}, "minItems": 4, "maxItems": 4},
        "image_index": {"type": "integer", "minimum": 0},
        "label": {"type": "string"},
        "mode": {"type": "string", "enum": ["fast", "slow"]},
        "flag": {"type": "boolean"},
        "point": {"type": "array", "prefixItems": [{"type": "integer"}, {"type": "integer"}]},
        "maybe": {"type": "integer", "nullable": True},
        "either": {"type": ["integer", "string"]},
        "options": {"type": "object", "properties": {"k": {"type": "integer"}}, "required": ["k"]},
    },
    "required": ["bbox_2d"],
}


@pytest.mark.parametrize("arguments, expected", [
    ({"bbox_2d": [1, 2, 3, 4]}, {"bbox_2d": [1, 2, 3, 4]}),
    ({"bbox_2d": [1.5, 2, 3, 4e2], "image_index": 2, "label": "x"}, {"bbox_2d": [1.5, 2, 3, 400.0],
                                                                      "image_index": 2, "label": "x"}),
    ({"bbox_2d": [1, 2, 3, 4], "image_index": 2.0}, {"bbox_2d": [1, 2, 3, 4], "image_index": 2}),  # -> int
    ({"bbox_2d": [1, 2, 3, 4], "mode": "slow", "flag": False}, {"bbox_2d": [1, 2, 3, 4], "mode": "slow",
                                                                 "flag": False}),
    ({"bbox_2d": [1, 2, 3, 4], "point": [3, 4], "maybe": None, "either": "a"},
     {"bbox_2d": [1, 2, 3, 4], "point": [3, 4], "maybe": None, "either": "a"}),
    ({"bbox_2d": [1, 2, 3, 4], "options": {"k": 1}}, {"bbox_2d": [1, 2, 3, 4], "options": {"k": 1}}),
])
def test_valid_arguments(arguments, expected):
    got, problem = validate_arguments(arguments, BOX_SCHEMA)
    assert problem is None
    assert got == expected
    assert type(got.get("image_index", 0)) is int


@pytest.mark.parametrize("arguments, message", [
    ({}, "missing required argument 'bbox_2d'"),
    ({"bbox_2d": [1, 2, 3]}, "'bbox_2d' must have exactly 4 items, got 3"),
    ({"bbox_2d": [1, 2, 3, 4, 5]}, "'bbox_2d' must have exactly 4 items, got 5"),
    ({"bbox_2d": "1, 2, 3, 4"}, "'bbox_2d' must be an array, got a string"),
    ({"bbox_2d": [1, 2, "3", 4]}, "'bbox_2d[2]' must be a number, got a string"),
    ({"bbox_2d": [1, 2, True, 4]}, "'bbox_2d[2]' must be a number, got a boolean"),
    ({"bbox_2d": [1, 2, math.nan, 4]}, "'bbox_2d[2]' must be a finite number"),
    ({"bbox_2d": [1, 2, math.inf, 4]}, "'bbox_2d[2]' must be a finite number"),
    ({"bbox_2d": [1, 2, 3, 4], "image_index": 1.5}, "'image_index' must be an integer, got a number"),
    ({"bbox_2d": [1, 2, 3, 4], "image_index": True}, "'image_index' must be an integer, got a boolean"),
    ({"bbox_2d": [1, 2, 3, 4], "image_index": -1}, "'image_index' must be at least 0, got -1"),
    ({"bbox_2d": [1, 2, 3, 4], "flag": 1}, "'flag' must be a boolean, got a number"),
    ({"bbox_2d": [1, 2, 3, 4], "mode": "medium"}, "'mode' must be one of 'fast', 'slow', got 'medium'"),
    ({"bbox_2d": [1, 2, 3, 4], "zoom": 2}, "unexpected argument 'zoom'"),
    ({"bbox_2d": [1, 2, 3, 4], "point": [3, 4.5]}, "'point[1]' must be an integer"),
    ({"bbox_2d": [1, 2, 3, 4], "maybe": "x"}, "'maybe' must be an integer, got a string"),
    ({"bbox_2d": [1, 2, 3, 4], "either": [1]}, "'either' must be an integer or a string, got an array"),
    ({"bbox_2d": [1, 2, 3, 4], "options": {}}, "'options' is missing the key 'k'"),
    ({"bbox_2d": [1, 2, 3, 4], "options": {"k": 1, "j": 2}}, "unexpected key in 'options' 'j'"),
    ({"bbox_2d": [1, 2, 3, 4], "label": None}, "'label' must be a string, got null"),
])
def test_invalid_arguments_name_the_problem(arguments, message):
    _, problem = validate_arguments(arguments, BOX_SCHEMA)
    assert problem is not None and message in problem, problem


def test_enum_does_not_confuse_booleans_and_numbers():
    schema = {"type": "object", "properties": {"v": {"enum": [1, 0]}}}
    assert validate_arguments({"v": 1}, schema)[1] is None
    assert validate_arguments({"v": True}, schema)[1] is not None


def test_additional_properties_true_allows_extra_keys():
    schema = {"type": "object", "properties": {"a": {}}, "additionalProperties": True}
    assert validate_arguments({"a": 1, "b": 2}, schema) == ({"a": 1, "b": 2}, None)


def test_any_of():
    schema = {"type": "object", "properties": {"v": {"anyOf": [{"type": "integer"}, {"type": "string"}]}}}
    assert validate_arguments({"v": "x"}, schema)[1] is None
    assert "matches none" in validate_arguments({"v": []}, schema)[1]


def test_arguments_must_be_an_object():
    assert "must be an object" in validate_arguments([1, 2], BOX_SCHEMA)[1]


# ----------------------------------------------------------------------------------------------- derived schemas


def documented(ctx, factor: float, sizes: list[int], image_index: int = 0, mode: str = "fast") -> str:
    """Scale an image.

    Second paragraph, not part of the summary.

    Args:
        ctx: the context, not in the schema
        factor: how much larger
        sizes: some sizes
        image_index: which image
        mode: how (choices: ["fast", "slow"])
    """


def test_derived_schema_from_signature_and_docstring():
    spec = derive_schema(documented)
    assert spec["description"].startswith("Scale an image.")
    params = spec["parameters"]
    assert params["type"] == "object"
    assert set(params["properties"]) == {"factor", "sizes", "image_index", "mode"}  # no ctx
    assert params["properties"]["factor"]["type"] == "number"
    assert params["properties"]["sizes"] == {"type": "array", "items": {"type": "integer"}, "description": "some sizes"}
    assert params["properties"]["mode"]["enum"] == ["fast", "slow"]
    assert params["required"] == ["factor", "sizes"]


def test_derived_schema_falls_back_to_a_minimal_one():
    def bare(ctx, x, y=2, *args, **kwargs):
        return x

    spec = derive_schema(bare)
    assert spec == {"description": "", "parameters": {"type": "object", "properties": {"x": {}, "y": {}},
                                                      "required": ["x"], "additionalProperties": True}}
    assert validate_arguments({"x": [1], "z": 3}, spec["parameters"])[1] is None
    assert "missing required argument 'x'" in validate_arguments({}, spec["parameters"])[1]


def test_derived_schema_with_a_missing_argument_description_falls_back():
    def half(ctx, a: int, b: int) -> int:
        """Adds.

        Args:
            a: first
        """

    spec = derive_schema(half)
    assert spec["description"] == "Adds."
    assert spec["parameters"] == {"type": "object", "properties": {"a": {}, "b": {}}, "required": ["a", "b"]}
