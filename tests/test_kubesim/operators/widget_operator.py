"""A small kopf operator used to prove that kopf works unchanged against the simulator.

Run as ``kopf run --standalone --namespace default widget_operator.py`` with KUBECONFIG set.
"""

from __future__ import annotations

from typing import Any

import kopf
import kubernetes

GROUP, VERSION, PLURAL = "test.kubesim.dev", "v1alpha1", "widgets"


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.persistence.finalizer = "test.kubesim.dev/kopf"
    settings.watching.server_timeout = 30
    settings.watching.client_timeout = 40
    kubernetes.config.load_kube_config()


@kopf.on.create(GROUP, VERSION, PLURAL)
def created(spec: kopf.Spec, name: str, namespace: str, patch: kopf.Patch, **_: Any) -> dict[str, str]:
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"{name}-cfg"},
        "data": {"image": spec["image"]},
    }
    kopf.adopt(config_map)
    kubernetes.client.CoreV1Api().create_namespaced_config_map(namespace, config_map)
    patch.status["phase"] = "Created"
    return {"configMap": f"{name}-cfg"}


@kopf.on.update(GROUP, VERSION, PLURAL, field="spec.size")
def resized(new: Any, patch: kopf.Patch, **_: Any) -> None:
    patch.status["phase"] = f"Resized-{new}"


@kopf.on.delete(GROUP, VERSION, PLURAL)
def deleted(name: str, namespace: str, **_: Any) -> None:
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"{name}-tombstone"}}
    kubernetes.client.CoreV1Api().create_namespaced_config_map(namespace, body)
