"""Decoding rules of the built-in kinds: unknown fields and wrong JSON types.

A real API server decodes built-in objects into Go structs, so an unknown field is dropped (with a
``Warning`` header, or a 400 under ``fieldValidation=Strict``) and a value of the wrong JSON type is a
400 BadRequest. The field sets come from the Kubernetes 1.32 OpenAPI definitions that the
``kubernetes-validate`` package ships (its "strict" JSON schemas), so the simulator does not accept
what a real 1.32 server would not.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import kubernetes_validate

from .errors import bad_request

JSON = dict[str, Any]
SCHEMA_VERSION = "v1.32.0-local-strict"
_JSON_TYPES: dict[str, type | tuple[type, ...]] = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "integer": int,
    "number": (int, float),
}


def _schema_dir() -> Path:
    """The 1.32 strict schemas, or the newest strict set this kubernetes-validate ships."""
    root = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    if (root / SCHEMA_VERSION).is_dir():
        return root / SCHEMA_VERSION

    def version(path: Path) -> tuple[int, ...]:
        return tuple(int(p) for p in path.name[1:].split("-")[0].split("."))

    candidates = sorted(root.glob("v*-local-strict"), key=version)
    if not candidates:
        raise FileNotFoundError(f"kubernetes-validate ships no strict schemas under {root}")
    return candidates[-1]


@functools.cache
def _definitions() -> dict[str, JSON]:
    with open(_schema_dir() / "_definitions.json") as fh:
        defs: dict[str, JSON] = json.load(fh)["$defs"]
    return defs


@functools.cache
def _index() -> dict[tuple[str, str, str], str]:
    out = {}
    for name, schema in _definitions().items():
        for gvk in schema.get("x-kubernetes-group-version-kind") or []:
            out[(gvk.get("group", ""), gvk["version"], gvk["kind"])] = name
    return out


def _resolve(schema: JSON) -> JSON:
    ref = schema.get("$ref")
    if ref:
        return _definitions()[ref.rsplit("/", 1)[-1]]
    return schema


_INT_BOUNDS = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}
"""Go decodes an integer field into an int32 or int64: a number outside it is a 400, as on a real server
(``activeDeadlineSeconds`` from a 30-digit timeout, say), not a value stored as given."""


def _json_type(value: Any) -> str:
    for name, kind in (("bool", bool), ("string", str), ("number", (int, float)), ("object", dict), ("array", list)):
        if isinstance(value, kind):
            return name
    return "null"


def _type_ok(types: Any, value: Any) -> bool:
    allowed = [types] if isinstance(types, str) else list(types)
    if value is None:
        return "null" in allowed
    for name in allowed:
        if name == "null":
            continue
        kind = _JSON_TYPES.get(name)
        if kind is None or (
            isinstance(value, kind) and not (isinstance(value, bool) and name in ("integer", "number"))
        ):
            return True
        if name == "integer" and isinstance(value, float) and value.is_integer():
            return True
    return False


def _walk(schema: JSON, value: Any, path: str, unknown: list[str], errors: list[str]) -> None:
    schema = _resolve(schema)
    if "oneOf" in schema:
        if not any(_type_ok(_resolve(option).get("type", []), value) for option in schema["oneOf"]):
            got = _json_type(value)
            errors.append(f"json: cannot unmarshal {got} into Go struct field {path} of type int-or-string")
        return
    if "type" in schema and not _type_ok(schema["type"], value):
        wanted = [t for t in ([schema["type"]] if isinstance(schema["type"], str) else schema["type"]) if t != "null"]
        got = _json_type(value)
        errors.append(f"json: cannot unmarshal {got} into Go struct field {path} of type {'/'.join(wanted)}")
        return
    bounds = _INT_BOUNDS.get(schema.get("format", ""))
    number = isinstance(value, int) and not isinstance(value, bool)
    if number and bounds is not None and not bounds[0] <= value <= bounds[1]:
        go_type = schema["format"]
        errors.append(f"json: cannot unmarshal number {value} into Go struct field {path} of type {go_type}")
        return
    if isinstance(value, dict):
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        for key in list(value):
            sub = f"{path}.{key}" if path else key
            if props is not None and key in props:
                _walk(props[key], value[key], sub, unknown, errors)
            elif isinstance(extra, dict):
                _walk(extra, value[key], sub, unknown, errors)
            elif extra is False or props is not None:
                unknown.append(sub)
                del value[key]
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            _walk(schema["items"], item, f"{path}[{i}]", unknown, errors)


def decode_check(obj: JSON, group: str, version: str, kind: str) -> list[str]:
    """Prune fields the kind does not have (returned as paths); raise 400 on wrong JSON types."""
    name = _index().get((group, version, kind))
    if name is None:
        return []
    unknown: list[str] = []
    errors: list[str] = []
    root = _definitions()[name]
    for key in list(obj):
        if key in ("apiVersion", "kind"):
            continue
        if key not in (root.get("properties") or {}):
            unknown.append(key)
            del obj[key]
        else:
            _walk(root["properties"][key], obj[key], key, unknown, errors)
    if errors:
        raise bad_request(f'{kind} in version "{version}" cannot be handled as a {kind}: {errors[0]}')
    return unknown
