"""Check a kind cluster config (``kind.x-k8s.io/v1alpha4``) without kind.

kind decodes its config strictly: an unknown or mistyped field makes ``kind create cluster`` fail,
which on CI would only show after Docker and a node image download. The field list follows kind's
``pkg/apis/config/v1alpha4/types.go``. Usage: ``python hack/kindconfig.py hack/kind-config.yaml``.
"""

from __future__ import annotations

import ipaddress
import re
import sys
from pathlib import Path
from typing import Any

import yaml

API_VERSION = "kind.x-k8s.io/v1alpha4"
# One field spec: a Python type, an enum (a frozenset of strings), a nested object (a dict of field
# specs), a list of any of these (a one-element list), or a map (MapOf).


class MapOf:
    """A YAML mapping with string keys and values of one type (Go's map[string]T)."""

    def __init__(self, value: type) -> None:
        self.value = value


PATCH_JSON6902: dict[str, Any] = {"group": str, "version": str, "kind": str, "patch": str}
NODE: dict[str, Any] = {
    "role": frozenset({"control-plane", "worker"}),
    "image": str,
    "labels": MapOf(str),
    "extraMounts": [
        {
            "containerPath": str,
            "hostPath": str,
            "readOnly": bool,
            "selinuxRelabel": bool,
            "propagation": frozenset({"None", "HostToContainer", "Bidirectional"}),
        }
    ],
    "extraPortMappings": [
        {
            "containerPort": int,
            "hostPort": int,
            "listenAddress": str,
            "protocol": frozenset({"TCP", "UDP", "SCTP"}),
        }
    ],
    "gpus": str,
    "kubeadmConfigPatches": [str],
    "kubeadmConfigPatchesJSON6902": [PATCH_JSON6902],
}
CLUSTER: dict[str, Any] = {
    "kind": frozenset({"Cluster"}),
    "apiVersion": frozenset({API_VERSION}),
    "name": str,
    "nodes": [NODE],
    "networking": {
        "ipFamily": frozenset({"ipv4", "ipv6", "dual"}),
        "apiServerPort": int,
        "apiServerAddress": str,
        "podSubnet": str,
        "serviceSubnet": str,
        "disableDefaultCNI": bool,
        "kubeProxyMode": frozenset({"iptables", "ipvs", "nftables", "none"}),
        "dnsSearch": [str],
    },
    "featureGates": MapOf(bool),
    "runtimeConfig": MapOf(str),
    "kubeadmConfigPatches": [str],
    "kubeadmConfigPatchesJSON6902": [PATCH_JSON6902],
    "containerdConfigPatches": [str],
    "containerdConfigPatchesJSON6902": [str],
}
NODE_IMAGE = re.compile(r"^kindest/node:v(?P<minor>1\.\d+)\.\d+(@sha256:[0-9a-f]{64})?$")
CLUSTER_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def _check(value: Any, spec: Any, path: str, problems: list[str]) -> None:
    if isinstance(spec, dict):
        if not isinstance(value, dict):
            problems.append(f"{path}: expected a mapping, got {type(value).__name__}")
            return
        for key, item in value.items():
            if key not in spec:
                problems.append(f"{path}.{key}: unknown field (kind would refuse the config)")
            else:
                _check(item, spec[key], f"{path}.{key}", problems)
    elif isinstance(spec, list):
        if not isinstance(value, list):
            problems.append(f"{path}: expected a list, got {type(value).__name__}")
            return
        for index, item in enumerate(value):
            _check(item, spec[0], f"{path}[{index}]", problems)
    elif isinstance(spec, MapOf):
        if not isinstance(value, dict):
            problems.append(f"{path}: expected a mapping, got {type(value).__name__}")
            return
        for key, item in value.items():
            _check(item, spec.value, f"{path}.{key}", problems)
    elif isinstance(spec, frozenset):
        if value not in spec:
            problems.append(f"{path}: {value!r} is not one of {sorted(spec)}")
    elif spec is int:
        # YAML booleans are ints in Python; Go's decoder refuses them for an int32.
        if isinstance(value, bool) or not isinstance(value, int):
            problems.append(f"{path}: expected an integer, got {value!r}")
    elif not isinstance(value, spec):
        problems.append(f"{path}: expected {spec.__name__}, got {value!r}")


def check_config(config: Any, kubernetes_minor: str | None = None) -> list[str]:
    """Problems of a parsed kind config; empty when kind would accept it.

    Beyond the field types: the document must say what it is (kind/apiVersion), a cluster needs a
    control-plane node, names and addresses must be well formed, and with ``kubernetes_minor`` every
    node image must be a pinned ``kindest/node`` of that Kubernetes minor version.
    """
    problems: list[str] = []
    if not isinstance(config, dict):
        return ["the config is not a mapping"]
    for required in ("kind", "apiVersion"):
        if required not in config:
            problems.append(f"{required}: missing")
    _check(config, CLUSTER, "", problems)
    if problems:
        return problems
    name = config.get("name")
    if name is not None and not CLUSTER_NAME.match(name):
        problems.append(f".name: {name!r} is not a valid cluster name (lowercase letters, digits, '-')")
    nodes = config.get("nodes") or [{"role": "control-plane"}]
    if not any(node.get("role", "control-plane") == "control-plane" for node in nodes):
        problems.append(".nodes: no control-plane node")
    address = (config.get("networking") or {}).get("apiServerAddress")
    if address is not None:
        try:
            ipaddress.ip_address(address)
        except ValueError:
            problems.append(f".networking.apiServerAddress: {address!r} is not an IP address")
    for index, node in enumerate(nodes):
        for mapping in node.get("extraPortMappings") or []:
            for key in ("containerPort", "hostPort"):
                port = mapping.get(key)
                if port is not None and not (port == -1 or 0 < port < 65536):
                    problems.append(f".nodes[{index}].extraPortMappings.{key}: {port} is not a port")
        image = node.get("image")
        if kubernetes_minor is not None:
            match = NODE_IMAGE.match(image or "")
            if match is None:
                problems.append(f".nodes[{index}].image: {image!r} is not a pinned kindest/node image")
            elif match["minor"] != kubernetes_minor:
                problems.append(f".nodes[{index}].image: Kubernetes {match['minor']}, expected {kubernetes_minor}")
    return problems


def main(argv: list[str]) -> int:
    if len(argv) not in (1, 2):
        print("usage: kindconfig.py CONFIG [KUBERNETES_MINOR]", file=sys.stderr)
        return 2
    config = yaml.safe_load(Path(argv[0]).read_text(encoding="utf-8"))
    problems = check_config(config, argv[1] if len(argv) == 2 else None)
    for problem in problems:
        print(f"{argv[0]}: {problem}", file=sys.stderr)
    if not problems:
        print(f"{argv[0]}: a valid kind {API_VERSION} cluster config")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
