"""Turn a pydantic model's JSON Schema into a Kubernetes *structural* schema.

Why: a CRD's `openAPIV3Schema` must be structural (every node has a `type`, no `$ref`, no `anyOf`
with `null`, no `const`), or the API server rejects it. Pydantic emits plain JSON Schema, so the
models that describe CRD data (the FlowRun status here, the Flow spec in the loader) pass through
this one converter. Opaque data (user outputs, inputs, params) is marked on the field with
`json_schema_extra=PRESERVE_UNKNOWN` and becomes an object that keeps unknown fields.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

PRESERVE_UNKNOWN: dict[str, Any] = {"x-kubernetes-preserve-unknown-fields": True}
"""Field extra that marks opaque data: any JSON object, kept as is by the API server."""

# Keys a structural schema may keep; pydantic's `title`, `default` and the like are dropped because
# defaults in a status schema would be applied by the API server, and titles only add bytes.
_KEEP = {
    "type",
    "format",
    "description",
    "enum",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "pattern",
    "nullable",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-int-or-string",
}


class SchemaError(ValueError):
    """The model uses a construct that has no structural equivalent (say so, rather than emit junk)."""


def structural_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's serialized (by alias) JSON Schema, rewritten to be structural."""
    raw = model.model_json_schema(by_alias=True, mode="serialization")
    defs: dict[str, Any] = raw.get("$defs", {})
    return _convert(raw, defs, where=model.__name__)


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if ref is None:
        return node
    target = defs[ref.rsplit("/", 1)[-1]]
    # Sibling keys (a field's own description) win over the referenced definition's.
    merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return _resolve(merged, defs)


def _convert(node: dict[str, Any], defs: dict[str, Any], where: str) -> dict[str, Any]:
    node = _resolve(node, defs)
    nullable = False
    if "anyOf" in node:
        options = [_resolve(o, defs) for o in node["anyOf"]]
        non_null = [o for o in options if o.get("type") != "null"]
        nullable = len(non_null) < len(options)
        if len(non_null) != 1:
            raise SchemaError(f"{where}: a union of several types cannot be expressed structurally")
        inner = {k: v for k, v in node.items() if k != "anyOf"}
        node = {**non_null[0], **inner}
    if "const" in node:
        node = {**{k: v for k, v in node.items() if k != "const"}, "enum": [node["const"]]}
    out: dict[str, Any] = {k: v for k, v in node.items() if k in _KEEP}
    if nullable:
        out["nullable"] = True
    if out.get("x-kubernetes-preserve-unknown-fields"):
        out["type"] = "object"
        return out
    kind = node.get("type")
    if kind == "object" or "properties" in node:
        out["type"] = "object"
        props = node.get("properties")
        if props:
            out["properties"] = {k: _convert(v, defs, f"{where}.{k}") for k, v in props.items()}
            if node.get("required"):
                out["required"] = list(node["required"])
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            if extra:
                out["additionalProperties"] = _convert(extra, defs, f"{where}.*")
            else:
                out["x-kubernetes-preserve-unknown-fields"] = True
        elif not props:
            out["x-kubernetes-preserve-unknown-fields"] = True
    elif kind == "array":
        out["items"] = _convert(node.get("items", {}), defs, f"{where}[]")
    elif kind is None:
        raise SchemaError(f"{where}: no type; mark opaque data with PRESERVE_UNKNOWN")
    return out
