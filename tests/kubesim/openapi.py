"""OpenAPI documents, enough for clients that read them.

``kubectl`` (1.32) reads ``/openapi/v3`` to learn whether PATCH supports ``fieldValidation``
(then it relies on server-side validation) and whether a kind takes strategic merge patches.
Custom resources publish their CRD schemas; built-ins are described loosely
(``x-kubernetes-preserve-unknown-fields``), and their PATCH does not advertise strategic merge so
that kubectl computes it from its compiled-in types, which is what it does whenever the server's
OpenAPI lacks a kind. ``/openapi/v2`` is JSON for JSON clients; kubectl's protobuf request gets a
document without definitions (see ``V2_PROTOBUF``).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from .discovery import GIT_VERSION
from .resources import Registry, ResourceType

JSON = dict[str, Any]
_PATCH_TYPES = ["application/json-patch+json", "application/merge-patch+json", "application/apply-patch+yaml"]


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def _definition_name(rt: ResourceType) -> str:
    reversed_group = ".".join(reversed(rt.group.split("."))) if rt.group else "io.k8s.api.core"
    return f"{reversed_group}.{rt.version}.{rt.kind}"


def _schema(rt: ResourceType) -> JSON:
    gvk = [{"group": rt.group, "version": rt.version, "kind": rt.kind}]
    if rt.crd_version is not None:
        body = dict(rt.crd_version["schema"]["openAPIV3Schema"])
        props = dict(body.get("properties") or {})
        props.setdefault("apiVersion", {"type": "string"})
        props.setdefault("kind", {"type": "string"})
        props["metadata"] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        body["properties"] = props
    else:
        body = {
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": True,
            "properties": {
                "apiVersion": {"type": "string"},
                "kind": {"type": "string"},
                "metadata": {"type": "object"},
            },
        }
    body["x-kubernetes-group-version-kind"] = gvk
    return body


def _operations(rt: ResourceType, ref: str) -> JSON:
    gvk = {"group": rt.group, "version": rt.version, "kind": rt.kind}
    body = {"content": {"*/*": {"schema": {"$ref": ref}}}}
    params = [
        {"name": n, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
        for n in ("dryRun", "fieldManager", "fieldValidation")
    ]
    ok = {"200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": ref}}}}}
    patch_body = {"content": {t: {"schema": {"type": "object"}} for t in _PATCH_TYPES}}
    item = {
        "get": {"x-kubernetes-action": "get", "x-kubernetes-group-version-kind": gvk, "responses": ok},
        "put": {
            "x-kubernetes-action": "put",
            "x-kubernetes-group-version-kind": gvk,
            "parameters": params,
            "requestBody": body,
            "responses": ok,
        },
        "patch": {
            "x-kubernetes-action": "patch",
            "x-kubernetes-group-version-kind": gvk,
            "parameters": [*params, {"name": "force", "in": "query", "schema": {"type": "boolean"}}],
            "requestBody": patch_body,
            "responses": ok,
        },
        "delete": {"x-kubernetes-action": "delete", "x-kubernetes-group-version-kind": gvk, "responses": ok},
    }
    return item


def v3_root(registry: Registry) -> JSON:
    paths = {}
    for group, versions in registry.groups().items():
        for version in versions:
            doc = v3_group_version(registry, group, version)
            digest = hashlib.sha512(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:64].upper()
            path = _gv_path(group, version)
            paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={digest}"}
    return {"paths": paths}


def v3_group_version(registry: Registry, group: str, version: str) -> JSON:
    paths: JSON = {}
    schemas: JSON = {}
    for rt in registry.all():
        if rt.group != group or rt.version != version:
            continue
        name = _definition_name(rt)
        schemas[name] = _schema(rt)
        ref = f"#/components/schemas/{name}"
        base = f"/{_gv_path(group, version)}"
        prefix = f"{base}/namespaces/{{namespace}}/{rt.plural}" if rt.namespaced else f"{base}/{rt.plural}"
        paths[f"{prefix}/{{name}}"] = _operations(rt, ref)
        paths[prefix] = {
            "get": {
                "x-kubernetes-action": "list",
                "x-kubernetes-group-version-kind": {"group": group, "version": version, "kind": rt.kind},
                "responses": {"200": {"description": "OK"}},
            }
        }
        if "status" in rt.subresources:
            paths[f"{prefix}/{{name}}/status"] = _operations(rt, ref)
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": GIT_VERSION},
        "paths": paths,
        "components": {"schemas": schemas},
    }


# A gnostic ``openapi_v2.Document`` holding only ``swagger: "2.0"`` (field 1): no definitions.
V2_PROTOBUF = b"\x0a\x032.0"
V2_PROTOBUF_TYPE = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"


def v2(registry: Registry) -> JSON:
    definitions = {}
    for rt in registry.all():
        definitions[_definition_name(rt)] = _schema(rt)
    return {
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": GIT_VERSION},
        "paths": {},
        "definitions": definitions,
    }
