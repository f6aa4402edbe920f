"""What the deploy checks look at: the rendered kustomizations, the CRDs and generated runner Jobs.

Rendering goes through the real ``kubectl kustomize`` (the kustomize built into kubectl 1.32), the
same code path as ``kubectl apply -k``; results are cached per directory for the whole session.
"""

from __future__ import annotations

import copy
import functools
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES_VERSION = "1.32.0"
OPERATOR_NAMESPACE = "flowlib-system"
# Every kustomization a user may apply: the default install and each overlay.
KUSTOMIZATIONS = ("deploy", "deploy/base", "deploy/overlays/namespaced", "deploy/overlays/webhook")


def kubectl() -> str:
    found = shutil.which("kubectl")
    if found is None:
        raise RuntimeError("kubectl is not on PATH; the deploy checks render with `kubectl kustomize`")
    return found


@functools.cache
def _render(directory: str) -> str:
    done = subprocess.run(
        [kubectl(), "kustomize", str(ROOT / directory)], capture_output=True, text=True, timeout=60, check=False
    )
    if done.returncode != 0:
        raise AssertionError(f"kubectl kustomize {directory} failed:\n{done.stderr}")
    return done.stdout


def render(directory: str) -> list[dict[str, Any]]:
    """The objects ``kubectl apply -k directory`` would apply (a fresh copy each call)."""
    return [doc for doc in yaml.safe_load_all(_render(directory)) if doc]


def find(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]


def one(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = find(objects, kind, name)
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def operator_container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    deployment = one(objects, "Deployment", "flowlib-operator")
    containers = deployment["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if c["name"] == "operator")


def flag_values(args: list[str], flag: str) -> list[str]:
    """Values of ``flag`` in an argv, in both ``--flag value`` and ``--flag=value`` spellings."""
    values = []
    for index, arg in enumerate(args):
        if arg == flag and index + 1 < len(args):
            values.append(args[index + 1])
        elif arg.startswith(flag + "="):
            values.append(arg.split("=", 1)[1])
    return values


def project_crds() -> list[dict[str, Any]]:
    paths = sorted((ROOT / "crds").glob("*.flowlib.dev.yaml"))
    return [yaml.safe_load(path.read_text(encoding="utf-8")) for path in paths]


EVERY_POD_CONTROL: dict[str, Any] = {
    "nodeSelector": {"pool": "batch", "kubernetes.io/os": "linux"},
    "tolerations": [
        {"key": "dedicated", "operator": "Equal", "value": "batch", "effect": "NoSchedule"},
        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 60},
    ],
    "affinity": {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]}]}]
            }
        },
        "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 10,
                    "podAffinityTerm": {
                        "topologyKey": "kubernetes.io/hostname",
                        "labelSelector": {"matchLabels": {"team": "a"}},
                    },
                }
            ]
        },
    },
    "volumes": [
        {"name": "models", "persistentVolumeClaim": {"claimName": "models", "readOnly": True}},
        {"name": "config", "configMap": {"name": "settings", "items": [{"key": "a", "path": "a.yaml"}]}},
        {"name": "certs", "secret": {"secretName": "tls", "defaultMode": 0o440}},
        {"name": "scratch", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
        {
            "name": "bundle",
            "projected": {
                "sources": [
                    {"secret": {"name": "api"}},
                    {"configMap": {"name": "settings"}},
                    {"downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}},
                    {"serviceAccountToken": {"path": "token", "audience": "vault", "expirationSeconds": 3600}},
                ]
            },
        },
        {"name": "podinfo", "downwardAPI": {"items": [{"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}]}},
        {"name": "inline", "csi": {"driver": "secrets-store.csi.k8s.io", "readOnly": True}},
        {
            "name": "cache",
            "ephemeral": {
                "volumeClaimTemplate": {
                    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
                }
            },
        },
    ],
    "volumeMounts": [
        {"name": "models", "mountPath": "/models", "readOnly": True},
        {"name": "config", "mountPath": "/config"},
        {"name": "certs", "mountPath": "/certs", "readOnly": True},
        {"name": "scratch", "mountPath": "/scratch"},
        {"name": "bundle", "mountPath": "/bundle"},
        {"name": "podinfo", "mountPath": "/podinfo"},
        {"name": "inline", "mountPath": "/inline"},
        {"name": "cache", "mountPath": "/cache", "subPath": "runs"},
    ],
    "imagePullSecrets": [{"name": "registry"}],
    "labels": {"team": "a", "cost-center": "42"},
    "annotations": {"example.com/owner": "team-a", "cluster-autoscaler.kubernetes.io/safe-to-evict": "false"},
    "priorityClassName": "batch-low",
}
"""Every pod control (``flowlib_api.podcontrols``) with every volume kind the restricted standard allows."""


def sample_flowruns() -> list[dict[str, Any]]:
    """FlowRuns that exercise every branch of ``runner_job``: defaults, and every optional field set."""
    base: dict[str, Any] = {
        "apiVersion": "flowlib.dev/v1alpha1",
        "kind": "FlowRun",
        "metadata": {"name": "hello-1", "namespace": "team-a", "uid": "0b6f3c4e-4a55-4b8e-9d0e-2a8f1c7d9e10"},
        "spec": {"flowRef": {"name": "hello"}},
    }
    full = copy.deepcopy(base)
    full["metadata"]["name"] = "a-very-long-flowrun-name-that-needs-shortening-to-fit-in-a-label-value"
    full["spec"].update(
        {
            "timeout": "1h30m",
            "retries": 3,
            "ttlSecondsAfterFinished": 600,
            "image": "registry.example/team/flows:1.2.3",
            "serviceAccountName": "flows-with-secrets",
            "env": [
                {"name": "LEVEL", "value": "debug"},
                {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "api", "key": "token"}}},
            ],
            "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"cpu": 2, "memory": "2Gi"}},
            "pod": EVERY_POD_CONTROL,
        }
    )
    zero = copy.deepcopy(base)
    zero["metadata"]["name"] = "no-retries"
    zero["spec"].update({"retries": 0, "ttlSecondsAfterFinished": 0})
    return [base, full, zero]


def runner_jobs() -> list[dict[str, Any]]:
    """The Jobs the operator would create for :func:`sample_flowruns`, with its default settings."""
    from flowlib_operator.jobspec import RunnerSettings, runner_job
    from flowlib_operator.main import DEFAULT_IMAGE

    settings = RunnerSettings(image=DEFAULT_IMAGE)
    return [runner_job(run, "hello", settings) for run in sample_flowruns()]
