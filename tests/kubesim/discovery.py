"""Discovery documents (https://kubernetes.io/docs/concepts/overview/kubernetes-api/#discovery-api).

Only the unaggregated format is served: clients that ask for the aggregated
``apidiscovery.k8s.io/v2`` documents get the legacy ones with ``application/json`` and fall back,
as they do against servers older than 1.26.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from .resources import Registry, ResourceType

JSON = dict[str, Any]
GIT_VERSION = "v1.32.0-kubesim"
_SUBRESOURCE_VERBS = {
    "status": ["get", "patch", "update"],
    "log": ["get"],
    "scale": ["get", "patch", "update"],
    "token": ["create"],
    "finalize": ["update"],
}


def version_info() -> JSON:
    return {
        "major": "1",
        "minor": "32",
        "gitVersion": GIT_VERSION,
        "gitCommit": "0" * 40,
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.23",
        "compiler": "gc",
        "platform": "linux/amd64",
    }


def version_priority(version: str) -> tuple[int, int, int]:
    """Kube-aware ordering: GA before beta before alpha, higher numbers first."""
    m = re.match(r"^v(\d+)(?:(alpha|beta)(\d+))?$", version)
    if not m:
        return (3, 0, 0)
    stage = {"": 0, "beta": 1, "alpha": 2}[m.group(2) or ""]
    return (stage, -int(m.group(1)), -int(m.group(3) or 0))


def _resource_entries(rt: ResourceType) -> list[JSON]:
    entry: JSON = {
        "name": rt.plural,
        "singularName": rt.singular,
        "namespaced": rt.namespaced,
        "kind": rt.kind,
        "verbs": list(rt.verbs),
        "storageVersionHash": hashlib.sha256(f"{rt.group}/{rt.plural}".encode()).hexdigest()[:12],
    }
    if rt.short_names:
        entry["shortNames"] = rt.short_names
    if rt.categories:
        entry["categories"] = rt.categories
    out = [entry]
    for sub in rt.subresources:
        item: JSON = {
            "name": f"{rt.plural}/{sub}",
            "singularName": "",
            "namespaced": rt.namespaced,
            "kind": rt.kind,
            "verbs": _SUBRESOURCE_VERBS.get(sub, ["get"]),
        }
        if sub == "token":
            item.update(group="authentication.k8s.io", version="v1", kind="TokenRequest")
        if sub == "scale":
            item.update(group="autoscaling", version="v1", kind="Scale")
        out.append(item)
    return out


def resource_list(registry: Registry, group: str, version: str) -> JSON | None:
    types = [rt for rt in registry.all() if rt.group == group and rt.version == version]
    if not types:
        return None
    resources = [e for rt in sorted(types, key=lambda r: r.plural) for e in _resource_entries(rt)]
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": resources,
    }


def _group(name: str, versions: list[str]) -> JSON:
    ordered = sorted(versions, key=version_priority)
    entries = [{"groupVersion": f"{name}/{v}", "version": v} for v in ordered]
    return {"name": name, "versions": entries, "preferredVersion": entries[0]}


def api_versions(address: str) -> JSON:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": address}],
    }


def group_list(registry: Registry) -> JSON:
    groups = [_group(name, versions) for name, versions in sorted(registry.groups().items()) if name]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def group(registry: Registry, name: str) -> JSON | None:
    versions = registry.groups().get(name)
    if not versions:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(name, versions)}
