"""The CRDs are structural and documented, and crds/ is what the models generate.

A structural schema (https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#specifying-a-structural-schema)
is what lets the API server prune unknown fields, apply defaults and explain every field with
`kubectl explain`. The walk below applies those rules to every node, plus two of this project:
every property has a description (it is what `kubectl explain` and docs/reference.md show), and
`x-kubernetes-preserve-unknown-fields` appears only where the data is opaque by design.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest

from flowlib_api.podcontrols import RESTRICTED_VOLUME_KINDS
from tests.deploy.manifests import ROOT, find, project_crds, render

# Where free-form data is the point: the run's input and params, its published output, and in the
# flow definition the params, the node's `run` (plugins add run kinds) and an HTTP request's JSON body;
# a declared param's default and enum values (of the param's own type, which lint checks).
# Paths use `*` for map values and `[]` for array items. Adding one is a deliberate act: add it here.
# Pod controls keep the Kubernetes volume sources and affinity as they are (the API server checks
# them when the Job is created, and a refused Job fails the run with its message).
POD_OPAQUE = {".affinity", *(f".volumes[].{kind}" for kind in RESTRICTED_VOLUME_KINDS)}
OPAQUE = {
    "flows.flowlib.dev": {
        ".spec.params",
        ".spec.nodes.*.params",
        ".spec.nodes.*.run",
        ".spec.nodes.*.run.http.json",
        ".spec.paramSchema.*.default",
        ".spec.paramSchema.*.enum[]",
        *(f".spec.pod{path}" for path in POD_OPAQUE),
    },
    "flowruns.flowlib.dev": {
        ".spec.input",
        ".spec.params",
        ".status.output",
        ".spec.flow.params",
        ".spec.flow.nodes.*.params",
        ".spec.flow.nodes.*.run",
        ".spec.flow.nodes.*.run.http.json",
        ".spec.flow.paramSchema.*.default",
        ".spec.flow.paramSchema.*.enum[]",
        *(f".spec.pod{path}" for path in POD_OPAQUE),
        *(f".spec.flow.pod{path}" for path in POD_OPAQUE),
    },
    "flowrundefaults.flowlib.dev": {f".spec.pod{path}" for path in POD_OPAQUE},
    "clusterkopfpeerings.kopf.dev": {".status"},
    "kopfpeerings.kopf.dev": {".status"},
}
JUNCTORS = ("allOf", "anyOf", "oneOf", "not")


def _children(node: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any], bool]]:
    """(path, schema, is_property) of each child schema of ``node``."""
    for name, child in (node.get("properties") or {}).items():
        yield f"{path}.{name}", child, True
    if isinstance(node.get("additionalProperties"), dict):
        yield f"{path}.*", node["additionalProperties"], False
    if isinstance(node.get("items"), dict):
        yield f"{path}[]", node["items"], False


def structural_problems(schema: dict[str, Any]) -> tuple[list[str], set[str]]:
    """(problems, paths with x-kubernetes-preserve-unknown-fields) of a CRD version's openAPIV3Schema."""
    problems: list[str] = []
    preserved: set[str] = set()

    def walk(node: dict[str, Any], path: str, is_property: bool) -> None:
        where = path or "<root>"
        int_or_string = node.get("x-kubernetes-int-or-string") is True
        preserve = node.get("x-kubernetes-preserve-unknown-fields") is True
        if preserve:
            preserved.add(path)
        if "$ref" in node:
            problems.append(f"{where}: $ref is not allowed")
        for junctor in JUNCTORS:
            if junctor in node:
                problems.append(f"{where}: {junctor} is not used in these CRDs (structural rules restrict it)")
        if int_or_string:
            if "type" in node:
                problems.append(f"{where}: x-kubernetes-int-or-string must not also set type")
        elif not node.get("type") and not preserve:
            problems.append(f"{where}: no type")
        if node.get("type") == "array" and not isinstance(node.get("items"), dict):
            problems.append(f"{where}: an array needs one items schema")
        if "properties" in node and "additionalProperties" in node:
            problems.append(f"{where}: properties and additionalProperties are mutually exclusive")
        if node.get("additionalProperties") is False:
            problems.append(f"{where}: additionalProperties: false is not allowed")
        open_object = node.get("properties") or "additionalProperties" in node or preserve
        if node.get("type") == "object" and not open_object and path != ".metadata":
            problems.append(f"{where}: an object without properties loses all its fields to pruning")
        if is_property and not (node.get("description") or "").strip() and path != ".metadata":
            problems.append(f"{where}: no description")
        if "default" in node:
            try:
                jsonschema.Draft202012Validator({k: v for k, v in node.items() if k != "default"}).validate(
                    node["default"]
                )
            except jsonschema.ValidationError as error:
                problems.append(f"{where}: default {node['default']!r} does not fit: {error.message}")
        for child_path, child, child_is_property in _children(node, path):
            walk(child, child_path, child_is_property)

    walk(schema, "", False)
    if schema.get("type") != "object":
        problems.append("<root>: must be an object")
    metadata = (schema.get("properties") or {}).get("metadata")
    if metadata is not None and set(metadata) - {"type"} - {"properties"}:
        problems.append(".metadata: only type (and name/generateName restrictions) may be given at the root")
    return problems, preserved


def _all_crds() -> list[dict[str, Any]]:
    return find(render("deploy"), "CustomResourceDefinition")


@pytest.mark.parametrize("name", sorted(OPAQUE))
def test_crd_is_structural_documented_and_opaque_only_where_intended(name: str) -> None:
    (crd,) = [c for c in _all_crds() if c["metadata"]["name"] == name]
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    for version in crd["spec"]["versions"]:
        problems, preserved = structural_problems(version["schema"]["openAPIV3Schema"])
        assert problems == []
        assert preserved == OPAQUE[name]


def test_project_crds_have_one_storage_version_and_status_subresource() -> None:
    for crd in project_crds():
        versions = crd["spec"]["versions"]
        assert sum(v["storage"] for v in versions) == 1
        # A kind with a status has the status subresource (FlowRunDefaults has none: nothing reports on it).
        for version in versions:
            has_status = "status" in version["schema"]["openAPIV3Schema"]["properties"]
            assert (version.get("subresources") or {}).get("status") == ({} if has_status else None)
        assert crd["spec"]["names"]["categories"] == ["flowlib"]


BROKEN = {
    "no type": {"type": "object", "properties": {"a": {"description": "d"}}},
    "ref": {"type": "object", "properties": {"a": {"$ref": "#/x", "type": "string", "description": "d"}}},
    "junctor": {"type": "object", "properties": {"a": {"type": "string", "description": "d", "anyOf": []}}},
    "array without items": {"type": "object", "properties": {"a": {"type": "array", "description": "d"}}},
    "no description": {"type": "object", "properties": {"a": {"type": "string"}}},
    "pruned object": {"type": "object", "properties": {"a": {"type": "object", "description": "d"}}},
    "additionalProperties false": {
        "type": "object",
        "properties": {"a": {"type": "object", "description": "d", "additionalProperties": False}},
    },
    "bad default": {"type": "object", "properties": {"a": {"type": "integer", "description": "d", "default": "x"}}},
    "int-or-string with type": {
        "type": "object",
        "properties": {"a": {"type": "string", "x-kubernetes-int-or-string": True, "description": "d"}},
    },
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_walk_catches(case: str) -> None:
    problems, _ = structural_problems(BROKEN[case])
    assert problems, case


def test_walk_reports_preserved_paths() -> None:
    schema = {
        "type": "object",
        "properties": {"a": {"type": "object", "description": "d", "x-kubernetes-preserve-unknown-fields": True}},
    }
    assert structural_problems(schema) == ([], {".a"})


def test_crds_are_up_to_date_with_the_models() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "hack" / "crdgen.py"), "--check", "--dir", str(ROOT / "crds")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
