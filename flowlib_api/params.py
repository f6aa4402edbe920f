"""Typed params: what a Flow declares of its params (``spec.paramSchema``) and the one check of them.

A FlowRun's params were only checked by the run failing (``n: "20000"`` where a number was meant, a
missing required param). A Flow may now declare each param in the shape of a small JSON Schema
(``type``, ``enum``, ``required``, bounds, ``default``), and the same function below checks a run's
params wherever they enter: the admission webhook, the operator before the Job exists, ``flowctl
submit``/``flowctl run``; ``flowctl lint`` checks the declaration itself (``schema_problems``).

The rules, stated once (docs/params.md says them for users):

- Precedence: a run's params > the flow's ``spec.params`` > a declared param's ``default``.
- A declared param that is ``required`` must have a value from one of them.
- When a flow declares any param, a run's param the flow neither declares nor sets in ``spec.params``
  is refused (a typo would otherwise be silently ignored); a flow without ``paramSchema`` takes any.
- Values are never coerced here: ``"20000"`` is not an integer. (``flowctl -p`` coerces its own
  command-line text with ``coerce_text``; the FlowRun API never does.)
- Only the top flow's params are checked; a sub-flow's ``paramSchema`` gives its own defaults only.

Only the standard library and pydantic: the contract package imports nothing else.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

ParamType = Literal["string", "integer", "number", "boolean", "object", "array"]
_TYPE_WORDS: dict[str, str] = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean (true or false)",
    "object": "an object (a mapping)",
    "array": "an array (a list)",
}
LISTED = 10
"""Names or enum values a message lists before cutting the list short."""


class ParamSpec(BaseModel):
    """One declared param: its type, default, allowed values and bounds (a small JSON Schema)."""

    model_config = ConfigDict(alias_generator=to_camel, extra="forbid", frozen=True)

    type: ParamType | None = Field(
        None,
        description="The param's JSON type: string, integer, number, boolean, object or array; "
        "default: any value. An integer is also a number; true/false are never numbers.",
    )
    description: str | None = Field(None, description="What the param means (documentation only).")
    default: Any = Field(
        None,
        description="The value a run gets when neither the run's params nor the flow's spec.params set it; "
        "checked against type, enum and bounds by flowctl lint.",
    )
    enum: list[Any] | None = Field(None, min_length=1, description="The only values allowed, if given.")
    required: bool = Field(
        False, description="A run must give the param (in its params, or the flow's spec.params must set it)."
    )
    minimum: float | None = Field(None, description="Smallest allowed value of an integer or number param.")
    maximum: float | None = Field(None, description="Largest allowed value of an integer or number param.")
    min_length: int | None = Field(None, ge=0, description="Fewest characters of a string param.")
    max_length: int | None = Field(None, ge=0, description="Most characters of a string param.")
    pattern: str | None = Field(
        None, description="A regular expression (Python syntax) a string param must contain a match of."
    )

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        """A broken pattern is a definition error, reported by lint, never a run's."""
        if value is not None:
            try:
                re.compile(value)
            except re.error as error:
                raise ValueError(f"not a valid regular expression: {error}") from None
        return value

    @property
    def has_default(self) -> bool:
        """Whether a default is given; ``default: null`` is none (canonical dumps leave nulls out)."""
        return self.default is not None


ParamSchema = dict[str, ParamSpec]


def parse_schema(raw: object) -> ParamSchema:
    """A raw ``spec.paramSchema`` as models, leaving out the declarations that are invalid (lint
    reports them; the others are still checked, so one pass shows every problem)."""
    if not isinstance(raw, Mapping):
        return {}
    schema: ParamSchema = {}
    for name, declared in raw.items():
        try:
            schema[str(name)] = ParamSpec.model_validate(declared)
        except ValidationError:
            continue
    return schema


def schema_defaults(schema: Mapping[str, ParamSpec]) -> dict[str, Any]:
    """The declared defaults, by param name."""
    return {name: spec.default for name, spec in schema.items() if spec.has_default}


def flow_params(schema: Mapping[str, ParamSpec], params: Mapping[str, Any] | None) -> dict[str, Any]:
    """The params a flow gives every node before a run's: its ``spec.params`` over the declared defaults."""
    return {**schema_defaults(schema), **(params or {})}


def describe(value: object) -> str:
    """A value as a message names it, with its JSON type (``the string "20000"``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {'true' if value else 'false'}"
    if isinstance(value, int):
        return f"the integer {_short(value)}"
    if isinstance(value, float):
        return f"the number {_short(value)}"
    if isinstance(value, str):
        return f"the string {_short(value)}"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "an array"
    return f"a {type(value).__name__}"


def _short(value: object) -> str:
    try:
        text = json.dumps(value) if value is None or isinstance(value, str | int | float) else str(value)
    except ValueError:  # an integer of more digits than Python converts to text
        return "a number too long to show"
    return text if len(text) <= 60 else text[:57] + "..."


def _is_type(value: object, kind: str) -> bool:
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":  # bool is an int in Python, never in JSON; 3.0 is an integer in JSON Schema
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer()
        )
    if kind == "number":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and math.isfinite(value)
        )
    if kind == "object":
        return isinstance(value, Mapping)
    return isinstance(value, list | tuple)


def _hint(value: object, kind: str) -> str:
    """The fix for the usual mistakes: a number or boolean written in quotes, or the other way round."""
    if isinstance(value, str):
        text = value.strip()
        if kind in ("integer", "number") and re.fullmatch(r"[-+]?\d+(\.\d+)?([eE][-+]?\d+)?", text):
            return f" (write {text} without quotes)"
        if kind == "boolean" and text.lower() in ("true", "false"):
            return f" (write {text.lower()} without quotes)"
    if kind == "string" and isinstance(value, int | float | bool):
        return f' (quote it: "{json.dumps(value)}")'
    return ""


def _same(a: object, b: object) -> bool:
    """JSON equality: true is not 1, 1 is 1.0."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    return a == b


def _listed(values: list[str]) -> str:
    shown = ", ".join(values[:LISTED])
    return shown if len(values) <= LISTED else f"{shown} … and {len(values) - LISTED} more"


def value_problems(spec: ParamSpec, value: object) -> list[str]:
    """What is wrong with ``value`` for ``spec`` (each message without the param's path)."""
    if spec.type is not None and not _is_type(value, spec.type):
        return [f"expected {_TYPE_WORDS[spec.type]}, got {describe(value)}{_hint(value, spec.type)}"]
    problems: list[str] = []
    if spec.enum is not None and not any(_same(value, allowed) for allowed in spec.enum):
        shown = _listed([a if isinstance(a, str) else json.dumps(a) for a in spec.enum])
        problems.append(f"must be one of {shown}; got {_short(value) if value is not None else 'null'}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if spec.minimum is not None and value < spec.minimum:
            problems.append(f"must be at least {_number(spec.minimum)}; got {_short(value)}")
        if spec.maximum is not None and value > spec.maximum:
            problems.append(f"must be at most {_number(spec.maximum)}; got {_short(value)}")
    if isinstance(value, str):
        if spec.min_length is not None and len(value) < spec.min_length:
            problems.append(f"must be at least {spec.min_length} characters long; got {len(value)}")
        if spec.max_length is not None and len(value) > spec.max_length:
            problems.append(f"must be at most {spec.max_length} characters long; got {len(value)}")
        if spec.pattern is not None and re.search(spec.pattern, value) is None:
            problems.append(f"must match the pattern {spec.pattern}; got {_short(value)}")
    return problems


def _number(value: float) -> str:
    return str(int(value)) if value.is_integer() else str(value)


def run_params_problems(
    schema: Mapping[str, ParamSpec],
    flow_params_: Mapping[str, Any] | None,
    run_params: Mapping[str, Any] | None,
    *,
    prefix: str = "params",
) -> list[str]:
    """Every problem of a run's params against its flow, each naming the param (``params.n: ...``).

    ``flow_params_`` is the flow's ``spec.params`` (checked by lint, so only the run's values and
    what is missing are reported here). Empty when the flow declares nothing.
    """
    if not schema:
        return []
    given = dict(run_params or {})
    own = dict(flow_params_ or {})
    problems: list[str] = []
    known = set(schema) | set(own)
    for name in given:
        if name not in known:
            problems.append(
                f"{prefix}.{name}: not declared by the flow (declared: {_listed(sorted(known))}); "
                "fix the name or declare it in the flow's spec.paramSchema"
            )
    for name, spec in schema.items():
        if name in given:
            problems += [f"{prefix}.{name}: {p}" for p in value_problems(spec, given[name])]
        elif spec.required and name not in own and not spec.has_default:
            problems.append(
                f"{prefix}.{name}: required by the flow (paramSchema.{name}) and not given: set {prefix}.{name}"
            )
    return problems


def schema_problems(
    schema: Mapping[str, ParamSpec], params: Mapping[str, Any] | None
) -> list[tuple[str, str, Literal["error", "warning"]]]:
    """``flowctl lint``'s checks of a declaration: (path, message, severity) for each problem.

    Each default and enum value against its own param's type and bounds, the bounds against each
    other, and the flow's ``spec.params`` values of declared params against their declaration.
    """
    found: list[tuple[str, str, Literal["error", "warning"]]] = []
    for name, spec in schema.items():
        path = f"paramSchema.{name}"
        if spec.has_default:
            found += [(f"{path}.default", p, "error") for p in value_problems(spec, spec.default)]
            if spec.required:
                found.append(
                    (
                        f"{path}.required",
                        "a required param with a default is never missing, so required does nothing; "
                        "drop required or the default",
                        "warning",
                    )
                )
        if spec.enum is not None and spec.type is not None:
            for index, allowed in enumerate(spec.enum):
                if not _is_type(allowed, spec.type):
                    found.append(
                        (
                            f"{path}.enum[{index}]",
                            f"expected {_TYPE_WORDS[spec.type]} like the param, got {describe(allowed)}"
                            f"{_hint(allowed, spec.type)}",
                            "error",
                        )
                    )
        if spec.minimum is not None and spec.maximum is not None and spec.minimum > spec.maximum:
            found.append((f"{path}.minimum", "minimum is over maximum: no value can pass", "error"))
        if spec.min_length is not None and spec.max_length is not None and spec.min_length > spec.max_length:
            found.append((f"{path}.minLength", "minLength is over maxLength: no value can pass", "error"))
        numeric = spec.type in (None, "integer", "number")
        stringy = spec.type in (None, "string")
        for bound, applies in (
            ("minimum", numeric),
            ("maximum", numeric),
            ("minLength", stringy),
            ("maxLength", stringy),
            ("pattern", stringy),
        ):
            if not applies and getattr(spec, to_snake(bound)) is not None:
                kind = _TYPE_WORDS[str(spec.type)].split(" (")[0]
                found.append((f"{path}.{bound}", f"{bound} does not apply to {kind} param and is ignored", "warning"))
        if params and name in params:
            found += [(f"params.{name}", p, "error") for p in value_problems(spec, params[name])]
    return found


def to_snake(name: str) -> str:
    """``minLength`` -> ``min_length``: the attribute of a wire name."""
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


_DIGITS = re.compile(r"[-+]?\d+")
_BOOLEANS = {"true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False, "0": False}


def coerce_text(spec: ParamSpec | None, text: str, parsed: object) -> object:
    """A command-line value (``-p n=20000``) read as its declared type: what a user expects of a CLI.

    ``parsed`` is how the CLI reads the text without a declaration (JSON, else the text). Only
    flowctl calls this; a FlowRun's params are never coerced. A text that does not read as the type
    is left as ``parsed``, so the check then names the param and the type.
    """
    if spec is None or spec.type is None:
        return parsed
    stripped = text.strip()
    if spec.type == "string":
        return text
    if spec.type == "integer" and _DIGITS.fullmatch(stripped):
        return int(stripped)
    if spec.type == "number":
        try:
            number = float(stripped)
        except ValueError:
            return parsed
        return int(stripped) if _DIGITS.fullmatch(stripped) else number
    if spec.type == "boolean" and stripped.lower() in _BOOLEANS:
        return _BOOLEANS[stripped.lower()]
    return parsed


__all__ = [
    "ParamSchema",
    "ParamSpec",
    "ParamType",
    "coerce_text",
    "describe",
    "flow_params",
    "parse_schema",
    "run_params_problems",
    "schema_defaults",
    "schema_problems",
    "value_problems",
]
