"""Pod controls and namespace defaults against the operator: a team whose batch nodes are tainted
and labelled, whose Secrets are mounted as files, and whose platform team sets the defaults once.

The simulator's scheduler (``tests/kubesim/scheduling.py``) honours node selectors, required node
affinity and taints, so a run without the toleration stays Pending, saying why, as in a cluster.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from tests.operator.cluster import Cluster, flow, flowrun

READ_FILE = {"run": {"python": "open('/etc/team/password').read()"}}


@pytest.fixture
def batch_node(simulator_only: Cluster) -> Iterator[str]:
    """A node of the batch pool: labelled pool=<unique>, tainted dedicated=<same>:NoSchedule."""
    pool = f"batch-{secrets.token_hex(3)}"
    node = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": pool, "labels": {"pool": pool, "kubernetes.io/os": "linux"}},
        "spec": {"taints": [{"key": "dedicated", "value": pool, "effect": "NoSchedule"}]},
    }
    simulator_only.kubectl("apply", "-f", "-", input=json.dumps(node))
    try:
        yield pool
    finally:
        simulator_only.kubectl("delete", "node", pool, "--wait=false", check=False)


def _pod_of(cluster: Cluster, namespace: str, run: str) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        pods = cluster.list("pods", namespace, f"flowlib.dev/flowrun={run}")
        return pods[0] if pods else None

    pod: dict[str, Any] = cluster.wait_for(f"the pod of {run}", found)
    return pod


def test_a_run_reaches_tainted_batch_nodes_only_with_the_toleration(
    batch_node: str, simulator_only: Cluster, namespace: str
) -> None:
    cluster = simulator_only
    cluster.apply(namespace, flow("hello", {"nodes": {"hi": {"run": {"python": "'hi'"}}}}))
    placed = {"nodeSelector": {"pool": batch_node}, "labels": {"team": "a"}, "annotations": {"example.com/o": "x"}}
    tolerated = {**placed, "tolerations": [{"key": "dedicated", "value": batch_node, "effect": "NoSchedule"}]}
    cluster.apply(namespace, flowrun("stuck", "hello", pod=placed), flowrun("placed", "hello", pod=tolerated))

    cluster.wait_phase("placed", namespace, "Succeeded")
    pod = _pod_of(cluster, namespace, "placed")
    assert pod["spec"]["nodeName"] == batch_node
    assert pod["metadata"]["labels"]["team"] == "a"
    assert pod["metadata"]["annotations"]["example.com/o"] == "x"

    def said_why() -> str | None:
        message = cluster.run_status("stuck", namespace).get("message") or ""
        return message if "untolerated taint" in message else None

    message = cluster.wait_for("the stuck run to say why it waits", said_why)
    assert "dedicated" in message
    assert cluster.run_status("stuck", namespace).get("phase") == "Pending"
    assert "nodeName" not in _pod_of(cluster, namespace, "stuck")["spec"]
    cluster.kubectl("patch", "flowrun", "stuck", "-n", namespace, "--type=merge", "-p", '{"spec":{"cancel":true}}')
    cluster.wait_phase("stuck", namespace, "Cancelled")


def test_a_secret_volume_is_borrowed_like_a_secret_reference(simulator_only: Cluster, namespace: str) -> None:
    cluster = simulator_only
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "team-db"}, "stringData": {"password": "pw"}}
    cluster.apply(namespace, secret, flow("reader", {"nodes": {"read": READ_FILE}}))
    pod = {
        "volumes": [{"name": "team", "secret": {"secretName": "team-db"}}],
        "volumeMounts": [{"name": "team", "mountPath": "/etc/team", "readOnly": True}],
    }
    cluster.apply(namespace, flowrun("closed", "reader", pod=pod, outputs=["read"]))
    status = cluster.wait_phase("closed", namespace, "Failed")
    condition = next(c for c in status["conditions"] if c["type"] == "Succeeded")
    assert condition["reason"] == "Forbidden"
    assert "spec.pod.volumes[0].secret.secretName: Secret 'team-db'" in status["message"]
    assert cluster.list("jobs", namespace, "flowlib.dev/flowrun=closed") == []

    cluster.kubectl("label", "secret", "team-db", "-n", namespace, "flowlib.dev/runner-access=true")
    cluster.apply(namespace, flowrun("opened", "reader", pod=pod, outputs=["read"]))
    status = cluster.wait_phase("opened", namespace, "Succeeded")
    assert status["output"] == {"read": "pw"}


def test_bad_pod_controls_fail_the_run_before_its_job(simulator_only: Cluster, namespace: str) -> None:
    cluster = simulator_only
    cluster.apply(namespace, flow("hello", {"nodes": {"hi": {"run": {"python": "'hi'"}}}}))
    cluster.apply(namespace, flowrun("forged", "hello", pod={"labels": {"flowlib.dev/flowrun": "someone-else"}}))
    status = cluster.wait_phase("forged", namespace, "Failed")
    condition = next(c for c in status["conditions"] if c["type"] == "Succeeded")
    assert condition["reason"] == "InvalidSpec"
    assert "spec.pod.labels: key 'flowlib.dev/flowrun' is set by the operator" in status["message"]
    assert cluster.list("jobs", namespace, "flowlib.dev/flowrun=forged") == []
    # The CRD itself refuses a volume kind the restricted standard forbids.
    refused = cluster.try_kubectl(
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        input=json.dumps(flowrun("host", "hello", pod={"volumes": [{"name": "root", "hostPath": {"path": "/"}}]})),
    )
    assert refused.returncode != 0
    assert "hostPath" in refused.stderr


def test_namespace_defaults_apply_under_the_flow_and_the_run(simulator_only: Cluster, namespace: str) -> None:
    cluster = simulator_only
    defaults = {
        "apiVersion": "flowlib.dev/v1alpha1",
        "kind": "FlowRunDefaults",
        "metadata": {"name": "default"},
        "spec": {
            "timeout": "2h",
            "ttlSecondsAfterFinished": 3600,
            "resources": {"limits": {"memory": "512Mi"}},
            "pod": {"labels": {"team": "a", "tier": "batch"}, "annotations": {"example.com/cost": "team-a"}},
        },
    }
    cluster.apply(namespace, defaults)
    spec = {"nodes": {"hi": {"run": {"python": "'hi'"}}}, "pod": {"labels": {"tier": "interactive"}}}
    cluster.apply(namespace, flow("hello", spec))
    cluster.apply(namespace, flowrun("defaulted", "hello", pod={"labels": {"owner": "me"}}, timeout="10m"))
    status = cluster.wait_phase("defaulted", namespace, "Succeeded")
    assert status["defaults"] == {
        "name": "default",
        "generation": 1,
        "fields": ["resources", "ttlSecondsAfterFinished", "pod.labels", "pod.annotations"],
        "ttlSecondsAfterFinished": 3600,
    }
    job = cluster.list("jobs", namespace, "flowlib.dev/flowrun=defaulted")[0]
    assert job["spec"]["activeDeadlineSeconds"] == 600  # the run's own timeout wins
    assert job["spec"]["ttlSecondsAfterFinished"] == 3600
    template = job["spec"]["template"]
    assert {k: template["metadata"]["labels"][k] for k in ("team", "tier", "owner")} == {
        "team": "a",
        "tier": "interactive",
        "owner": "me",
    }
    assert template["spec"]["containers"][0]["resources"]["limits"] == {"memory": "512Mi"}
    wide = cluster.kubectl("get", "flowrun", "defaulted", "-n", namespace, "-o", "wide")
    assert "DEFAULTS" in wide.splitlines()[0] and "default" in wide.splitlines()[1]

    # One FlowRunDefaults per namespace, named default: another name is refused at the door.
    other = {**defaults, "metadata": {"name": "gpu"}}
    refused = cluster.try_kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(other))
    assert refused.returncode != 0 and "named default" in refused.stderr

    # Broken defaults fail the run, naming the object and the field, rather than being skipped.
    broken = {**defaults, "spec": {"pod": {"labels": {"app.kubernetes.io/managed-by": "me"}}}}
    cluster.apply(namespace, broken)
    cluster.apply(namespace, flowrun("misdefaulted", "hello"))
    status = cluster.wait_phase("misdefaulted", namespace, "Failed")
    assert "FlowRunDefaults 'default' is invalid: spec.pod" in status["message"]
    assert "app.kubernetes.io/managed-by" in status["message"]
