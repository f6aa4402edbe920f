"""The runner Job of a FlowRun, as a manifest (pure: no API calls, so it is tested as data).

The pod passes the Kubernetes "restricted" Pod Security Standard: non-root with a fixed UID, no
privilege escalation, every capability dropped, the RuntimeDefault seccomp profile and a read-only
root filesystem (``/tmp`` is an emptyDir for user code that needs scratch space). It never retries
by itself (``restartPolicy: Never``): pod-level retries are the Job's ``backoffLimit``, which the
FlowRun's ``retries`` sets, so each attempt is a new pod with its own logs.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from flowlib_api.meta import ANNOTATION_FLOWRUN, GROUP_VERSION, KIND_FLOWRUN, LABEL_COMPONENT, RUNNER_NAME
from flowlib_api.runnerpod import (
    ENV_DEFINITION,
    ENV_FLOWRUN,
    ENV_NAMESPACE,
    ENV_POD_NAME,
    RUNNER_CONTAINER,
    SNAPSHOT_KEY,
    SNAPSHOT_MOUNT,
    SNAPSHOT_PATH,
    TERMINATION_LOG,
)
from flowlib_api.times import deadline_seconds
from flowlib_api.views import FlowRunView
from flowlib_operator.naming import identity_name, job_name, run_labels, snapshot_name

RUNNER_UID = 65532
TERMINATION_GRACE_SECONDS = 30


@dataclass(frozen=True)
class RunnerSettings:
    """Operator-wide defaults for runner pods (flags or environment of the operator)."""

    image: str
    image_pull_policy: str = "IfNotPresent"
    default_requests: tuple[tuple[str, str], ...] = (("cpu", "100m"), ("memory", "128Mi"))
    default_limits: tuple[tuple[str, str], ...] = (("memory", "1Gi"),)


def owner_reference(flowrun: dict[str, Any]) -> dict[str, Any]:
    meta = flowrun["metadata"]
    return {
        "apiVersion": flowrun.get("apiVersion", GROUP_VERSION),
        "kind": flowrun.get("kind", KIND_FLOWRUN),
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def snapshot_configmap(flowrun: dict[str, Any], flow_name: str | None, snapshot: bytes) -> dict[str, Any]:
    """The immutable ConfigMap that freezes the resolved (compressed) definition for this run."""
    meta = flowrun["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": snapshot_name(meta["name"]),
            "namespace": meta["namespace"],
            "labels": run_labels(meta["name"], flow_name),
            "ownerReferences": [owner_reference(flowrun)],
        },
        "immutable": True,
        "binaryData": {SNAPSHOT_KEY: base64.b64encode(snapshot).decode("ascii")},
    }


def _restricted_container_security() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "runAsUser": RUNNER_UID,
        "runAsGroup": RUNNER_UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _resources(run: FlowRunView, settings: RunnerSettings) -> dict[str, Any]:
    wanted = run.resources
    return {
        "requests": wanted.get("requests", dict(settings.default_requests)),
        "limits": wanted.get("limits", dict(settings.default_limits)),
    }


def runner_account(run: FlowRunView) -> str:
    """The service account the run's pod runs as: the one it names, else its own (see ``identity``)."""
    return run.service_account_name or identity_name(run.name)


def runner_job(flowrun: dict[str, Any], flow_name: str | None, settings: RunnerSettings) -> dict[str, Any]:
    """The Job that runs ``flowrun``; deterministic, so creating it twice is a 409, never a second Job."""
    run = FlowRunView(flowrun)
    name, namespace = run.name, run.namespace
    labels = run_labels(name, flow_name)
    env: list[dict[str, Any]] = [
        {"name": ENV_FLOWRUN, "value": name},
        {"name": ENV_NAMESPACE, "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": ENV_POD_NAME, "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": ENV_DEFINITION, "value": SNAPSHOT_PATH},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
        {"name": "HOME", "value": "/tmp"},
        *run.env,
    ]
    container = {
        "name": RUNNER_CONTAINER,
        "image": run.image or settings.image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": ["flowlib-runner"],
        "env": env,
        "resources": _resources(run, settings),
        "securityContext": _restricted_container_security(),
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [
            {"name": "definition", "mountPath": SNAPSHOT_MOUNT, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    pod_spec = {
        "restartPolicy": "Never",
        "serviceAccountName": runner_account(run),
        "automountServiceAccountToken": True,
        "terminationGracePeriodSeconds": TERMINATION_GRACE_SECONDS,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUNNER_UID,
            "runAsGroup": RUNNER_UID,
            "fsGroup": RUNNER_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": [
            {"name": "definition", "configMap": {"name": snapshot_name(name)}},
            {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
        ],
    }
    job_spec: dict[str, Any] = {
        "backoffLimit": run.retries,
        "template": {
            "metadata": {
                "labels": labels,
                "annotations": {
                    "kubectl.kubernetes.io/default-container": RUNNER_CONTAINER,
                    ANNOTATION_FLOWRUN: name,
                },
            },
            "spec": pod_spec,
        },
    }
    if run.timeout:
        job_spec["activeDeadlineSeconds"] = deadline_seconds(run.timeout)
    if run.ttl_seconds_after_finished is not None:
        job_spec["ttlSecondsAfterFinished"] = run.ttl_seconds_after_finished
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(name),
            "namespace": namespace,
            "labels": {**labels, LABEL_COMPONENT: RUNNER_NAME},
            "ownerReferences": [owner_reference(flowrun)],
        },
        "spec": job_spec,
    }
