"""The typed-params checker (``flowlib_api.params``): one function behind the webhook, the operator
and flowctl, so its messages and its JSON-type rules are pinned here."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowlib_api.flowspec import FlowSpec
from flowlib_api.params import (
    ParamSpec,
    coerce_text,
    flow_params,
    parse_schema,
    run_params_problems,
    schema_problems,
    value_problems,
)


def spec(**fields: Any) -> ParamSpec:
    """A declaration from its wire fields (as a Flow's YAML has them)."""
    return ParamSpec.model_validate(fields)


SCHEMA = parse_schema(
    {
        "n": {"type": "integer", "required": True, "minimum": 1, "maximum": 100000},
        "mode": {"type": "string", "enum": ["fast", "slow"], "default": "fast"},
        "region": {"type": "string", "required": True, "pattern": "^[a-z]+-[0-9]$"},
        "debug": {"type": "boolean"},
        "ratio": {"type": "number"},
        "tags": {"type": "array"},
    }
)


def test_each_mistake_is_named_with_its_fix() -> None:
    problems = run_params_problems(
        SCHEMA, {}, {"n": "20000", "mode": "quick", "debug": "true", "regoin": "eu-1"}, prefix="params"
    )
    assert problems == [
        "params.regoin: not declared by the flow (declared: debug, mode, n, ratio, region, tags); "
        "fix the name or declare it in the flow's spec.paramSchema",
        'params.n: expected an integer, got the string "20000" (write 20000 without quotes)',
        'params.mode: must be one of fast, slow; got "quick"',
        "params.region: required by the flow (paramSchema.region) and not given: set params.region",
        'params.debug: expected a boolean (true or false), got the string "true" (write true without quotes)',
    ]


def test_a_good_run_passes_and_spec_params_satisfy_required() -> None:
    assert run_params_problems(SCHEMA, {"region": "eu-1"}, {"n": 5}) == []
    assert run_params_problems(SCHEMA, {}, {"n": 5, "region": "eu-1", "ratio": 2, "tags": []}) == []


@pytest.mark.parametrize(
    ("declared", "value", "expected"),
    [
        ({"type": "integer"}, True, "expected an integer, got the boolean true"),
        ({"type": "number"}, False, "expected a number, got the boolean false"),
        ({"type": "integer"}, 1.5, "expected an integer, got the number 1.5"),
        ({"type": "string"}, 7, 'expected a string, got the integer 7 (quote it: "7")'),
        ({"type": "integer", "minimum": 1}, 0, "must be at least 1; got 0"),
        ({"type": "string", "maxLength": 2}, "abc", "must be at most 2 characters long; got 3"),
        ({"enum": [1, 2]}, True, "must be one of 1, 2; got true"),
        ({"type": "object"}, None, "expected an object (a mapping), got null"),
    ],
)
def test_json_types_not_pythons(declared: dict[str, Any], value: object, expected: str) -> None:
    assert value_problems(ParamSpec.model_validate(declared), value) == [expected]


def test_integral_numbers_are_integers_as_in_json_schema() -> None:
    assert value_problems(spec(type="integer"), 3.0) == []
    assert value_problems(spec(type="number"), 3) == []


def test_without_a_schema_anything_goes() -> None:
    assert run_params_problems({}, {}, {"anything": "at all"}) == []


def test_precedence_spec_params_over_declared_defaults() -> None:
    assert flow_params(SCHEMA, {"mode": "slow"}) == {"mode": "slow"}
    assert flow_params(SCHEMA, {}) == {"mode": "fast"}


def test_lint_checks_the_declaration() -> None:
    schema = parse_schema(
        {
            "a": {"type": "integer", "default": "3", "required": True, "enum": [1, "2"]},
            "b": {"type": "integer", "minimum": 5, "maximum": 1, "pattern": "x"},
        }
    )
    found = {(path, severity) for path, _, severity in schema_problems(schema, {"b": "9"})}
    assert found == {
        ("paramSchema.a.default", "error"),
        ("paramSchema.a.required", "warning"),
        ("paramSchema.a.enum[1]", "error"),
        ("paramSchema.b.minimum", "error"),
        ("paramSchema.b.pattern", "warning"),
        ("params.b", "error"),
    }


def test_the_model_refuses_a_bad_declaration() -> None:
    with pytest.raises(ValueError, match="regular expression"):
        ParamSpec.model_validate({"type": "string", "pattern": "("})
    with pytest.raises(ValueError):
        FlowSpec.model_validate({"nodes": {"a": {}}, "paramSchema": {"x": {"type": "float"}}})
    spec = FlowSpec.model_validate({"nodes": {"a": {}}, "paramSchema": {"x": {"type": "integer", "minLength": 1}}})
    assert spec.param_schema["x"].min_length == 1


def test_cli_text_is_read_as_the_declared_type() -> None:
    assert coerce_text(spec(type="string"), "007", 7) == "007"
    assert coerce_text(spec(type="integer"), "20000", 20000) == 20000
    assert coerce_text(spec(type="number"), "1.5", 1.5) == 1.5
    assert coerce_text(spec(type="boolean"), "yes", "yes") is True
    assert coerce_text(spec(type="integer"), "abc", "abc") == "abc"  # left for the check to name
    assert coerce_text(None, "[1]", [1]) == [1]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)
TYPES = ["string", "integer", "number", "boolean", "object", "array"]


@given(json_values, st.sampled_from(TYPES))
def test_a_value_passes_its_type_exactly_when_json_schema_says_so(value: object, kind: str) -> None:
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is a dev dependency")
    expected = jsonschema.Draft202012Validator({"type": kind}).is_valid(value)
    assert (value_problems(ParamSpec.model_validate({"type": kind}), value) == []) == expected


BIG = 2**53  # bounds are floats: exact for integers up to here


@given(st.integers(-BIG, BIG), st.integers(-BIG, BIG), st.integers(-BIG, BIG))
def test_bounds_match_json_schema(value: int, low: int, high: int) -> None:
    bounded = spec(type="integer", minimum=low, maximum=high)
    assert (value_problems(bounded, value) == []) == (low <= value <= high)
