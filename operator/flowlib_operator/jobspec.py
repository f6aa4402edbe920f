"""The runner Job of a FlowRun, as a manifest (pure: no API calls, so it is tested as data).

The pod passes the Kubernetes "restricted" Pod Security Standard: non-root with a fixed UID, no
privilege escalation, every capability dropped, the RuntimeDefault seccomp profile and a read-only
root filesystem (``/tmp`` is an emptyDir for user code that needs scratch space). It never retries
by itself (``restartPolicy: Never``): pod-level retries are the Job's ``backoffLimit``, which the
FlowRun's ``retries`` sets, so each attempt is a new pod with its own logs.

The run's store (``stores``) reaches the pod as its resolved location (``ENV_STORE``) plus what
opening it takes: the S3 keys of a Secret as environment variables (the AWS SDK's default
credential chain reads them), or a PersistentVolumeClaim mounted at ``STORE_MOUNT`` (an allowed
volume type of the restricted standard). A retry also gets its source's location and how to resume
(``ENV_RESUME_FROM``, ``ENV_RESUME_MODE``), and whatever reaching that store takes.

A run under a borrowed service account also mounts its runner-token Secret (``runner_token``): a
secret volume (allowed by the restricted standard) at ``RUNNER_TOKEN_MOUNT``, without ``subPath``
so that a refreshed token reaches the running pod, whose ``items`` name the token's key, so that the
pod waits for the token rather than start without it; ``ENV_RUNNER_TOKEN_FILE`` points the runner
at the file.

The run's pod controls (``spec.pod`` laid over its Flow's and the namespace's defaults, as the
operator merged them into the body it passes here) place the pod and add volumes, mounts, pull
secrets, labels and annotations beside the runner's own; ``podcontrols`` keeps them within the
restricted standard and off the runner's names, paths and keys.
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
    ENV_RESUME_FROM,
    ENV_RESUME_MODE,
    ENV_RUNNER_TOKEN_FILE,
    ENV_STORE,
    RUNNER_CONTAINER,
    RUNNER_TOKEN_KEY,
    RUNNER_TOKEN_MOUNT,
    RUNNER_TOKEN_PATH,
    SNAPSHOT_KEY,
    SNAPSHOT_MOUNT,
    SNAPSHOT_PATH,
    TERMINATION_LOG,
)
from flowlib_api.storespec import S3_SECRET_KEYS, STORE_MOUNT, StoreLocation
from flowlib_api.times import deadline_seconds
from flowlib_api.views import FlowRunView
from flowlib_operator.naming import identity_name, job_name, run_labels, snapshot_name
from flowlib_operator.stores import Resume, credentials_secret, store_claim

RUNNER_UID = 65532
TERMINATION_GRACE_SECONDS = 30
STORE_VOLUME = "store"
RUNNER_TOKEN_VOLUME = "runner-token"
POD_SPEC_CONTROLS = ("nodeSelector", "tolerations", "affinity", "imagePullSecrets", "priorityClassName")
"""Pod controls (``flowlib_api.podcontrols``) copied into the pod spec as they are; volumes, mounts,
labels and annotations are added to the runner's own."""
OPTIONAL_S3_KEYS = frozenset({"AWS_SESSION_TOKEN"})
"""Keys of an S3 credentials Secret that may be missing; without the others the pod does not start
(CreateContainerConfigError, reported in the run's status), which says more than a failed upload."""


@dataclass(frozen=True)
class RunnerSettings:
    """Operator-wide defaults for runner pods (flags or environment of the operator)."""

    image: str
    image_pull_policy: str = "IfNotPresent"
    default_requests: tuple[tuple[str, str], ...] = (("cpu", "100m"), ("memory", "128Mi"))
    default_limits: tuple[tuple[str, str], ...] = (("memory", "1Gi"),)


def owner_reference(flowrun: dict[str, Any], *, controller: bool = True) -> dict[str, Any]:
    """The FlowRun as owner: its controller, blocking its deletion until the dependent is gone; or,
    with ``controller=False``, one owner more, neither controlling nor blocking."""
    meta = flowrun["metadata"]
    reference = {
        "apiVersion": flowrun.get("apiVersion", GROUP_VERSION),
        "kind": flowrun.get("kind", KIND_FLOWRUN),
        "name": meta["name"],
        "uid": meta["uid"],
    }
    return {**reference, "controller": True, "blockOwnerDeletion": True} if controller else reference


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


def runner_token_name(flowrun: str) -> str:
    """The Secret holding a run's runner token (``runner_token``): ``<run>-runner-token``. Secret
    names may be longer than the 63 characters ``naming`` keeps the run's other names to."""
    return f"{identity_name(flowrun)}-token"


def needs_runner_token(run: FlowRunView) -> bool:
    """Whether the runner authenticates with a token of the run's own account from a Secret: only
    when its pod runs under a borrowed account (otherwise the pod's projected token is the run's)."""
    return bool(run.service_account_name)


def store_env(store: StoreLocation | None, resume: Resume | None) -> list[dict[str, Any]]:
    """The variables that hand the runner its store and, for a retry, its source's (see the docstring).

    They come before the FlowRun's own ``spec.env``, so a variable the run sets itself wins.
    """
    env: list[dict[str, Any]] = []
    if store is not None:
        env.append({"name": ENV_STORE, "value": store.to_json()})
    if resume is not None:
        env += [{"name": ENV_RESUME_FROM, "value": resume.ref}, {"name": ENV_RESUME_MODE, "value": resume.mode}]
    secret = credentials_secret(store, resume)
    if secret:
        env += [
            {
                "name": key,
                "valueFrom": {"secretKeyRef": {"name": secret, "key": key, "optional": key in OPTIONAL_S3_KEYS}},
            }
            for key in S3_SECRET_KEYS
        ]
    return env


def runner_job(
    flowrun: dict[str, Any],
    flow_name: str | None,
    settings: RunnerSettings,
    *,
    store: StoreLocation | None = None,
    resume: Resume | None = None,
) -> dict[str, Any]:
    """The Job that runs ``flowrun``; deterministic, so creating it twice is a 409, never a second Job.

    ``store`` is the run's resolved store (None: it keeps none), ``resume`` what a retry resumes
    from; ``stores.store_conflict`` has ruled out a pair one pod cannot reach.
    """
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
        *store_env(store, resume),
        *run.env,
    ]
    mounts: list[dict[str, Any]] = [
        {"name": "definition", "mountPath": SNAPSHOT_MOUNT, "readOnly": True},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    volumes: list[dict[str, Any]] = [
        {"name": "definition", "configMap": {"name": snapshot_name(name)}},
        {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
    ]
    if needs_runner_token(run):
        env.insert(0, {"name": ENV_RUNNER_TOKEN_FILE, "value": RUNNER_TOKEN_PATH})
        mounts.append({"name": RUNNER_TOKEN_VOLUME, "mountPath": RUNNER_TOKEN_MOUNT, "readOnly": True})
        secret_source = {
            "secretName": runner_token_name(name),
            "items": [{"key": RUNNER_TOKEN_KEY, "path": RUNNER_TOKEN_KEY}],
        }
        volumes.append({"name": RUNNER_TOKEN_VOLUME, "secret": secret_source})
    pod = run.pod
    mounts += [dict(mount) for mount in pod.get("volumeMounts") or []]
    volumes += [dict(volume) for volume in pod.get("volumes") or []]
    claim = store_claim(store, resume)
    if claim is not None:
        claim_name, read_only = claim
        mounts.append({"name": STORE_VOLUME, "mountPath": STORE_MOUNT, "readOnly": read_only})
        volumes.append(
            {"name": STORE_VOLUME, "persistentVolumeClaim": {"claimName": claim_name, "readOnly": read_only}}
        )
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
        "volumeMounts": mounts,
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
        "volumes": volumes,
    }
    for field in POD_SPEC_CONTROLS:
        if pod.get(field):
            pod_spec[field] = pod[field]
    job_spec: dict[str, Any] = {
        "backoffLimit": run.retries,
        "template": {
            "metadata": {
                # The run's own keys are refused where they clash (``podcontrols``); ours win regardless.
                "labels": {**(pod.get("labels") or {}), **labels},
                "annotations": {
                    **(pod.get("annotations") or {}),
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
            "name": job_name(name, run.segment),
            "namespace": namespace,
            "labels": {**labels, LABEL_COMPONENT: RUNNER_NAME},
            "ownerReferences": [owner_reference(flowrun)],
        },
        "spec": job_spec,
    }
