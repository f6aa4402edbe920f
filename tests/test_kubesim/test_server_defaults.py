"""Fields a real server always fills: the Node's ``status.nodeInfo``
(https://kubernetes.io/docs/reference/kubernetes-api/cluster-resources/node-v1/#NodeStatus) and the
pod fields set by the admission plugins ServiceAccount, DefaultTolerationSeconds and Priority
(https://kubernetes.io/docs/reference/access-authn-authz/admission-controllers/,
https://kubernetes.io/docs/concepts/scheduling-eviction/pod-priority-preemption/)."""

from __future__ import annotations

import platform
from typing import Any

import pytest
from kubernetes import client

from tests.kubesim import Simulator

from .helpers import Raw

pytestmark = pytest.mark.kubesim


def sleeper(name: str, **spec: Any) -> dict[str, Any]:
    container = {"name": "app", "image": "busybox", "command": ["sleep", "3600"]}
    return {"metadata": {"name": name}, "spec": {"terminationGracePeriodSeconds": 0, "containers": [container], **spec}}


def test_node_info_is_complete_for_the_python_client(kubesim_session: Simulator) -> None:
    with kubesim_session.api_client() as api:
        node = client.CoreV1Api(api).read_node("kubesim-node")  # parsing fails without every string
    info = node.status.node_info
    assert info.kernel_version == platform.release()
    assert info.container_runtime_version.startswith("containerd://")
    assert info.kubelet_version == info.kube_proxy_version == "v1.32.0-kubesim"
    assert all([info.boot_id, info.machine_id, info.system_uuid, info.os_image])
    assert info.operating_system == "linux" and info.architecture


def test_priority_admission_defaults_and_refusals(kubesim_session: Simulator, kubesim_namespace: str) -> None:
    raw, ns = Raw(kubesim_session), kubesim_namespace
    path = f"/api/v1/namespaces/{ns}/pods"
    created = raw.post(path, sleeper("plain"))
    assert created.status == 201
    assert (created.body["spec"]["priority"], created.body["spec"]["preemptionPolicy"]) == (0, "PreemptLowerPriority")
    with kubesim_session.api_client() as api:
        parsed = client.CoreV1Api(api).read_namespaced_pod("plain", ns)
    assert parsed.spec.preemption_policy == "PreemptLowerPriority" and parsed.spec.priority == 0
    # A value equal to the computed one is accepted; the system classes are built in.
    assert raw.post(path, sleeper("explicit", priority=0, preemptionPolicy="PreemptLowerPriority")).status == 201
    critical = raw.post(path, sleeper("critical", priorityClassName="system-node-critical")).body
    assert critical["spec"]["priority"] == 2000001000
    refused = raw.post(path, sleeper("high", priority=5))
    assert refused.status == 403 and refused.body["message"] == (
        'pods "high" is forbidden: the integer value of priority (5) must not be provided in pod spec; '
        "priority admission controller computed 0 from the given PriorityClass name"
    )
    refused = raw.post(path, sleeper("shy", preemptionPolicy="Never"))
    assert (
        refused.status == 403
        and "the string value of PreemptionPolicy (Never) must not be provided" in (refused.body["message"])
    )
    refused = raw.post(path, sleeper("gold", priorityClassName="gold"))
    assert refused.status == 403
    assert refused.body["message"] == 'pods "gold" is forbidden: no PriorityClass with name gold was found'


def test_token_volume_and_default_tolerations_are_added_only_where_missing(
    kubesim_session: Simulator, kubesim_namespace: str
) -> None:
    raw, ns = Raw(kubesim_session), kubesim_namespace
    path = f"/api/v1/namespaces/{ns}/pods"
    # A container that already mounts something at the token path needs no kube-api-access volume.
    own = sleeper("own-token", volumes=[{"name": "mine", "emptyDir": {}}])
    own["spec"]["containers"][0]["volumeMounts"] = [
        {"name": "mine", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}
    ]
    spec = raw.post(path, own).body["spec"]
    assert [v["name"] for v in spec["volumes"]] == ["mine"]
    # The not-ready/unreachable tolerations join the pod's own ones, unless it tolerates everything.
    gpu = {"key": "gpu", "operator": "Exists"}
    keys = [t.get("key") for t in raw.post(path, sleeper("gpu", tolerations=[gpu])).body["spec"]["tolerations"]]
    assert keys == ["gpu", "node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"]
    everything = raw.post(path, sleeper("all", tolerations=[{"operator": "Exists"}])).body["spec"]["tolerations"]
    assert everything == [{"operator": "Exists"}]
