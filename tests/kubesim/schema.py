"""Structural-schema handling for custom resources, following
https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/
(validation, defaulting, pruning, ``x-kubernetes-preserve-unknown-fields``, CEL validation rules).

The order is the API server's: default, prune (recording unknown fields for field validation), then
validate the result, including ``x-kubernetes-validations`` (transition rules only on update, where
the old value exists).
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from . import cel

JSON = dict[str, Any]
Cause = tuple[str, str, str]
_METADATA_KEEP = {
    "name",
    "generateName",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
    "selfLink",
}
_compiled: dict[str, cel.Node] = {}


def _rule(text: str) -> cel.Node:
    node = _compiled.get(text)
    if node is None:
        node = _compiled[text] = cel.compile_rule(text)
    return node


def compile_errors(schema: JSON, path: str = "") -> list[str]:
    """Rules that do not compile, so that a CRD carrying them is rejected at create time."""
    errors: list[str] = []
    for rule in schema.get("x-kubernetes-validations") or []:
        try:
            _rule(rule["rule"])
        except cel.CelError as exc:
            errors.append(f"{path or '<root>'}: compilation failed: {exc}")
    for name, sub in (schema.get("properties") or {}).items():
        errors.extend(compile_errors(sub, f"{path}.{name}" if path else name))
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            errors.extend(compile_errors(schema[key], f"{path}[*]"))
    return errors


def apply_defaults(schema: JSON, value: Any) -> Any:
    if isinstance(value, dict) and schema.get("type", "object") == "object":
        for name, sub in (schema.get("properties") or {}).items():
            if name not in value and "default" in sub:
                value[name] = copy.deepcopy(sub["default"])
            if name in value:
                value[name] = apply_defaults(sub, value[name])
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for name in value:
                value[name] = apply_defaults(extra, value[name])
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [apply_defaults(schema["items"], v) for v in value]
    return value


def prune(schema: JSON, value: Any, path: str, unknown: list[str], root: bool = False) -> Any:
    """Drop fields the schema does not specify; record their paths."""
    if isinstance(value, dict):
        if schema.get("x-kubernetes-preserve-unknown-fields") and not schema.get("properties"):
            return value
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        preserve = bool(schema.get("x-kubernetes-preserve-unknown-fields"))
        for name in list(value):
            sub_path = f"{path}.{name}" if path else name
            if root and name in ("apiVersion", "kind"):
                continue
            if root and name == "metadata":
                if isinstance(value[name], dict):
                    for key in list(value[name]):
                        if key not in _METADATA_KEEP:
                            unknown.append(f"metadata.{key}")
                            del value[name][key]
                continue
            if name in props:
                value[name] = prune(props[name], value[name], sub_path, unknown)
            elif isinstance(extra, dict):
                value[name] = prune(extra, value[name], sub_path, unknown)
            elif extra is True or preserve:
                continue
            else:
                unknown.append(sub_path)
                del value[name]
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [prune(schema["items"], v, f"{path}[{i}]", unknown) for i, v in enumerate(value)]
    return value


def _type_ok(schema: JSON, value: Any) -> bool:
    kind = schema.get("type")
    if schema.get("x-kubernetes-int-or-string"):
        return isinstance(value, (int, str)) and not isinstance(value, bool)
    if kind is None:
        return True
    checks = {
        "object": lambda v: isinstance(v, dict),
        "array": lambda v: isinstance(v, list),
        "string": lambda v: isinstance(v, str),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
    }
    return checks.get(kind, lambda v: True)(value)


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return '"object"'
    if isinstance(value, list):
        return '"array"'
    return json.dumps(value)


_JSON_TYPE = {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer", float: "number"}


def validate(schema: JSON, value: Any, path: str, old: Any = None, has_old: bool = False) -> list[Cause]:
    """Check ``value`` against ``schema``; ``old`` is the previous value at this path on update."""
    causes: list[Cause] = []
    where = path or "<root>"
    if value is None:
        if not schema.get("nullable"):
            causes.append(
                (
                    "FieldValueInvalid",
                    where,
                    f'Invalid value: "null": {where} in body must be of type {schema.get("type", "object")}: "null"',
                )
            )
        return causes
    if not _type_ok(schema, value):
        got = _JSON_TYPE.get(type(value), "unknown")
        causes.append(
            (
                "FieldValueInvalid",
                where,
                f'Invalid value: "{got}": {where} in body must be of type {schema.get("type")}: "{got}"',
            )
        )
        return causes
    if "enum" in schema and value not in schema["enum"]:
        allowed = ", ".join(json.dumps(v) for v in schema["enum"])
        causes.append(
            (
                "FieldValueNotSupported",
                where,
                f"Unsupported value: {json.dumps(value)}: supported values: {allowed}",
            )
        )
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and (
            value < schema["minimum"] or (schema.get("exclusiveMinimum") and value == schema["minimum"])
        ):
            causes.append(
                (
                    "FieldValueInvalid",
                    where,
                    f"Invalid value: {value}: {where} in body should be greater than or equal to {schema['minimum']}",
                )
            )
        if "maximum" in schema and (
            value > schema["maximum"] or (schema.get("exclusiveMaximum") and value == schema["maximum"])
        ):
            causes.append(
                (
                    "FieldValueInvalid",
                    where,
                    f"Invalid value: {value}: {where} in body should be less than or equal to {schema['maximum']}",
                )
            )
    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            causes.append(
                (
                    "FieldValueInvalid",
                    where,
                    f'Invalid value: "{value}": {where} in body should be at least {schema["minLength"]} chars long',
                )
            )
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            causes.append(("FieldValueTooLong", where, f"Too long: may not be more than {schema['maxLength']} bytes"))
        if "pattern" in schema and not re.search(schema["pattern"], value):
            causes.append(
                (
                    "FieldValueInvalid",
                    where,
                    f"Invalid value: \"{value}\": {where} in body should match '{schema['pattern']}'",
                )
            )
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            causes.append(
                (
                    "FieldValueInvalid",
                    where,
                    f"Invalid value: {len(value)}: {where} in body should have at least {schema['minItems']} items",
                )
            )
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            causes.append(
                (
                    "FieldValueTooMany",
                    where,
                    f"Too many: {len(value)}: must have at most {schema['maxItems']} items",
                )
            )
        if isinstance(schema.get("items"), dict):
            for i, item in enumerate(value):
                causes.extend(validate(schema["items"], item, f"{path}[{i}]"))
    if isinstance(value, dict):
        for name in schema.get("required") or []:
            if name not in value:
                sub = f"{path}.{name}" if path else name
                causes.append(("FieldValueRequired", sub, "Required value"))
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        old_map = old if has_old and isinstance(old, dict) else None
        for name, item in value.items():
            sub_schema = props.get(name) or (extra if isinstance(extra, dict) else None)
            if sub_schema is None:
                continue
            sub = f"{path}.{name}" if path else name
            in_old = old_map is not None and name in old_map
            causes.extend(validate(sub_schema, item, sub, old_map.get(name) if in_old and old_map else None, in_old))
        if "minProperties" in schema and len(value) < schema["minProperties"]:
            causes.append(
                (
                    "FieldValueInvalid",
                    where,
                    f"Invalid value: {len(value)}: {where} in body should have at least "
                    f"{schema['minProperties']} properties",
                )
            )
    if not causes:
        causes.extend(_cel_rules(schema, value, path, old, has_old))
    return causes


def _cel_rules(schema: JSON, value: Any, path: str, old: Any, has_old: bool) -> list[Cause]:
    causes: list[Cause] = []
    for rule in schema.get("x-kubernetes-validations") or []:
        node = _rule(rule["rule"])
        transition = cel.uses_old_self(node)
        if transition and not has_old:
            continue
        env = {"self": value}
        if transition:
            env["oldSelf"] = old
        field = path
        if rule.get("fieldPath"):
            field = f"{path}{rule['fieldPath']}" if path else rule["fieldPath"].lstrip(".")
        where = field or "<root>"
        try:
            ok = cel.evaluate(node, env)
        except cel.CelError as exc:
            causes.append(
                (
                    "FieldValueInvalid",
                    where,
                    f"Invalid value: {_show(value)}: {exc} evaluating rule: {rule['rule']}",
                )
            )
            continue
        if ok is not True:
            message = rule.get("message") or f"failed rule: {rule['rule']}"
            reason = {
                "FieldValueForbidden": "FieldValueForbidden",
                "FieldValueRequired": "FieldValueRequired",
                "FieldValueDuplicate": "FieldValueDuplicate",
            }.get(rule.get("reason", ""), "FieldValueInvalid")
            text = message if reason != "FieldValueInvalid" else f"Invalid value: {_show(value)}: {message}"
            causes.append((reason, where, text))
    return causes
