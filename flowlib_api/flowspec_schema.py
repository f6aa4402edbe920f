"""The canonical spec's JSON Schema in the form a CRD needs (a Kubernetes "structural" schema).

Kubernetes wants every field typed, no ``$ref``, and ``anyOf``/``oneOf`` only in narrow forms, so the
schema pydantic produces is rewritten here: references are inlined, ``Optional`` unions collapse to
their non-null branch, free-form values (params, JSON bodies) become
``x-kubernetes-preserve-unknown-fields``, and titles and empty defaults are dropped.
"""

from __future__ import annotations

import copy
from typing import Any

from flowlib_api.flowspec import FlowSpec

_DROP = ("title", "additionalProperties")


def flow_spec_json_schema() -> dict[str, Any]:
    """JSON Schema of ``FlowSpec`` (camelCase), structural, with a description on every field."""
    raw = FlowSpec.model_json_schema(by_alias=True, mode="validation")
    defs: dict[str, Any] = raw.pop("$defs", {})
    return _structural(raw, defs)


def _structural(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    schema = copy.deepcopy(schema)
    if "$ref" in schema:
        target = defs[schema.pop("$ref").rsplit("/", 1)[-1]]
        merged = {**copy.deepcopy(target), **schema}
        if "description" in schema:
            merged["description"] = schema["description"]
        return _structural(merged, defs)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            branches = [b for b in schema.pop(key) if b.get("type") != "null"]
            if len(branches) != 1:
                raise ValueError(f"cannot express a union of {len(branches)} types in a structural schema")
            merged = {**branches[0], **schema}
            return _structural(merged, defs)
    extra = schema.get("additionalProperties")
    out: dict[str, Any] = {k: v for k, v in schema.items() if k not in _DROP}
    if out.get("default") in (None, {}, []) or out.get("x-kubernetes-int-or-string"):
        out.pop("default", None)
    if "properties" in out:
        out["properties"] = {name: _structural(sub, defs) for name, sub in out["properties"].items()}
        if extra is True:
            # Plugins add keys (run kinds): keep them rather than let the API server prune them.
            out["x-kubernetes-preserve-unknown-fields"] = True
    elif isinstance(extra, dict) and extra:
        out["additionalProperties"] = _structural(extra, defs)
    elif out.get("type") == "object":
        out["x-kubernetes-preserve-unknown-fields"] = True
    if "items" in out:
        out["items"] = _structural(out["items"], defs)
    if "type" not in out and not out.get("x-kubernetes-int-or-string"):
        out["x-kubernetes-preserve-unknown-fields"] = True
    return out
