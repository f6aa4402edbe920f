"""CustomResourceDefinition lifecycle: validation, serving, and per-version schemas.

https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/:
a CRD named ``<plural>.<group>`` becomes Established and its served versions appear in discovery;
deleting it removes every custom resource first (finalizer ``customresourcecleanup.apiextensions.k8s.io``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import schema
from .errors import invalid
from .meta import timestamp
from .resources import ResourceType

if TYPE_CHECKING:
    from .core import Api

JSON = dict[str, Any]
CLEANUP = "customresourcecleanup.apiextensions.k8s.io"
Cause = tuple[str, str, str]


def default_crd(crd: JSON) -> None:
    spec = crd.setdefault("spec", {})
    names = spec.setdefault("names", {})
    if names.get("kind"):
        names.setdefault("listKind", names["kind"] + "List")
        names.setdefault("singular", names["kind"].lower())
    spec.setdefault("conversion", {"strategy": "None"})
    for version in spec.get("versions") or []:
        if isinstance(version, dict):
            version.setdefault("subresources", None)
            if version["subresources"] is None:
                del version["subresources"]


def validate_crd(crd: JSON, old: JSON | None) -> list[Cause]:
    causes: list[Cause] = []
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    group = spec.get("group")
    for field, value in (
        ("spec.group", group),
        ("spec.names.plural", names.get("plural")),
        ("spec.names.kind", names.get("kind")),
    ):
        if not value:
            causes.append(("FieldValueRequired", field, "Required value"))
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        causes.append(
            (
                "FieldValueNotSupported",
                "spec.scope",
                f'Unsupported value: "{spec.get("scope")}": supported values: "Cluster", "Namespaced"',
            )
        )
    expected = f"{names.get('plural')}.{group}"
    if crd["metadata"].get("name") != expected:
        causes.append(
            (
                "FieldValueInvalid",
                "metadata.name",
                f'Invalid value: "{crd["metadata"].get("name")}": must be spec.names.plural+"."+spec.group',
            )
        )
    versions = spec.get("versions") or []
    if not versions:
        causes.append(
            (
                "FieldValueRequired",
                "spec.versions",
                "Required value: must have exactly one version marked as storage version",
            )
        )
    if sum(1 for v in versions if v.get("storage")) != 1:
        causes.append(
            (
                "FieldValueInvalid",
                "spec.versions",
                "Invalid value: must have exactly one version marked as storage version",
            )
        )
    for i, version in enumerate(versions):
        root = (version.get("schema") or {}).get("openAPIV3Schema")
        where = f"spec.versions[{i}].schema.openAPIV3Schema"
        if not isinstance(root, dict):
            causes.append(("FieldValueRequired", where, "Required value: schemas are required"))
            continue
        if root.get("type") != "object":
            causes.append(("FieldValueRequired", f"{where}.type", "Required value: must be object at the root"))
        causes.extend(_structural(root, where))
        causes.extend(
            ("FieldValueInvalid", f"{where}.x-kubernetes-validations", msg) for msg in schema.compile_errors(root)
        )
        for j, column in enumerate(version.get("additionalPrinterColumns") or []):
            if not column.get("jsonPath") or not column.get("name") or not column.get("type"):
                causes.append(
                    (
                        "FieldValueRequired",
                        f"spec.versions[{i}].additionalPrinterColumns[{j}]",
                        "Required value: name, type and jsonPath",
                    )
                )
    if old is not None and (old.get("spec") or {}).get("scope") != spec.get("scope"):
        causes.append(("FieldValueInvalid", "spec.scope", "Invalid value: field is immutable"))
    return causes


def _structural(node: JSON, where: str) -> list[Cause]:
    """The structural-schema rule that every specified field has a type (unless it preserves unknown
    fields or is int-or-string)."""
    causes: list[Cause] = []
    for name, sub in (node.get("properties") or {}).items():
        path = f"{where}.properties[{name}]"
        if not isinstance(sub, dict):
            continue
        if (
            "type" not in sub
            and not sub.get("x-kubernetes-preserve-unknown-fields")
            and not sub.get("x-kubernetes-int-or-string")
        ):
            causes.append(
                (
                    "FieldValueRequired",
                    f"{path}.type",
                    "Required value: must not be empty for specified object fields",
                )
            )
        causes.extend(_structural(sub, path))
    if isinstance(node.get("items"), dict):
        causes.extend(_structural(node["items"], f"{where}.items"))
    if isinstance(node.get("additionalProperties"), dict):
        causes.extend(_structural(node["additionalProperties"], f"{where}.additionalProperties"))
    return causes


def register(api: Api, crd: JSON) -> None:
    """Serve the CRD's versions and mark it Established, as the CRD controllers do."""
    spec = crd["spec"]
    names = spec["names"]
    api.registry.remove_group_resource(spec["group"], names["plural"])
    for version in spec["versions"]:
        if not version.get("served", True):
            continue
        subs: tuple[str, ...] = tuple(k for k in ("status", "scale") if k in (version.get("subresources") or {}))
        api.registry.add(
            ResourceType(
                group=spec["group"],
                version=version["name"],
                plural=names["plural"],
                singular=names.get("singular", names["kind"].lower()),
                kind=names["kind"],
                namespaced=spec["scope"] == "Namespaced",
                short_names=list(names.get("shortNames") or []),
                categories=list(names.get("categories") or []),
                subresources=subs,
                crd=crd,
                crd_version=version,
            )
        )


def status_for(crd: JSON) -> JSON:
    now = timestamp()
    spec = crd["spec"]
    return {
        "acceptedNames": spec["names"],
        "storedVersions": [v["name"] for v in spec["versions"] if v.get("storage")],
        "conditions": [
            {
                "type": "NamesAccepted",
                "status": "True",
                "reason": "NoConflicts",
                "message": "no conflicts found",
                "lastTransitionTime": now,
            },
            {
                "type": "Established",
                "status": "True",
                "reason": "InitialNamesAccepted",
                "message": "the initial names have been accepted",
                "lastTransitionTime": now,
            },
        ],
    }


def unregister(api: Api, crd: JSON) -> None:
    spec = crd["spec"]
    api.registry.remove_group_resource(spec["group"], spec["names"]["plural"])


def apply_schema(rt: ResourceType, obj: JSON, old: JSON | None) -> list[str]:
    """Default, prune, validate; raises 422 with every cause. Returns pruned (unknown) field paths."""
    assert rt.crd_version is not None
    root = rt.crd_version["schema"]["openAPIV3Schema"]
    schema.apply_defaults(root, obj)
    unknown: list[str] = []
    schema.prune(root, obj, "", unknown, root=True)
    causes = schema.validate(
        _without_meta(root),
        _without_meta_obj(obj),
        "",
        _without_meta_obj(old) if old else None,
        old is not None,
    )
    if causes:
        raise invalid(rt.group, rt.kind, obj["metadata"].get("name", ""), causes)
    return unknown


def _without_meta(root: JSON) -> JSON:
    props = {k: v for k, v in (root.get("properties") or {}).items() if k not in ("metadata", "apiVersion", "kind")}
    return {**root, "properties": props}


def _without_meta_obj(obj: JSON) -> JSON:
    """The object as the schema's rules see it: the root's CEL rules may read ``apiVersion``,
    ``kind``, ``metadata.name`` and ``metadata.generateName``, and no other metadata
    (https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#validation-rules)."""
    view = {k: v for k, v in obj.items() if k != "metadata"}
    meta = obj.get("metadata") or {}
    view["metadata"] = {k: meta[k] for k in ("name", "generateName") if k in meta}
    return view
