"""The simplest kopf operator that does what ours does up to a run's Job: one Job per FlowRun.

The baseline of ``operator_vs_kopf_bench``: the same kopf settings as ours (progress and diff base
in annotations, kopf's own Events off, the same watch timeout and error back-offs), no validation,
no store, no status. Run: ``python -m benchmarks.kopf_baseline_operator`` with ``KUBECONFIG`` set;
``BASELINE_IMAGE`` names the Job's image.
"""

from __future__ import annotations

import asyncio
import functools
import os
from typing import Any

import kopf

IMAGE = os.environ.get("BASELINE_IMAGE", "bench/standin:1")


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="baseline.example")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="baseline.example", key="last-handled-configuration"
    )
    settings.posting.enabled = False
    settings.watching.server_timeout = 300
    settings.networking.error_backoffs = [1, 2, 5, 10, 20]


@kopf.on.create("flowlib.dev", "v1alpha1", "flowruns")
def create_job(name: str, namespace: str, uid: str, **_: Any) -> None:
    """kopf's canonical example: a sync handler (kopf runs it in its thread pool) and the
    kubernetes client."""
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": f"{name}-run",
            "ownerReferences": [
                {"apiVersion": "flowlib.dev/v1alpha1", "kind": "FlowRun", "name": name, "uid": uid, "controller": True}
            ],
        },
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "runner", "image": IMAGE, "command": ["flowlib-runner"]}],
                }
            },
        },
    }
    batch().create_namespaced_job(namespace, job)


@functools.cache
def batch() -> Any:
    from kubernetes import client, config

    config.load_kube_config()
    return client.BatchV1Api()


def main() -> None:
    asyncio.run(kopf.operator(standalone=True, clusterwide=True))


if __name__ == "__main__":
    main()
