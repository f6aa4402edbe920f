"""More pod lifecycle rules (https://kubernetes.io/docs/concepts/workloads/pods/init-containers/,
https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/#container-states,
https://kubernetes.io/docs/tasks/debug/debug-application/determine-reason-pod-failure/#customizing-the-termination-message,
https://kubernetes.io/docs/tasks/configure-pod-container/configure-service-account/#opt-out-of-api-credential-automounting),
using the session-scoped simulator and a fresh namespace per test."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from tests.kubesim import Simulator

from .helpers import Raw, eventually

pytestmark = pytest.mark.kubesim


def get_pod(raw: Raw, ns: str, name: str) -> dict[str, Any]:
    return dict(raw.get(f"/api/v1/namespaces/{ns}/pods/{name}").body)


def test_init_containers_run_first_and_in_order(kubesim_session: Simulator, kubesim_namespace: str) -> None:
    raw, ns = Raw(kubesim_session), kubesim_namespace
    body = {
        "metadata": {"name": "init"},
        "spec": {
            "restartPolicy": "Never",
            "volumes": [{"name": "shared", "emptyDir": {}}],
            "initContainers": [
                {
                    "name": f"i{n}",
                    "image": "busybox",
                    "command": ["sh", "-c", f"echo i{n} >> /shared/order"],
                    "volumeMounts": [{"name": "shared", "mountPath": "/shared"}],
                }
                for n in (1, 2)
            ],
            "containers": [
                {
                    "name": "main",
                    "image": "busybox",
                    "command": ["cat", "/shared/order"],
                    "volumeMounts": [{"name": "shared", "mountPath": "/shared"}],
                }
            ],
        },
    }
    raw.post(f"/api/v1/namespaces/{ns}/pods", body)
    eventually(lambda: get_pod(raw, ns, "init")["status"].get("phase") == "Succeeded")
    assert raw.get(f"/api/v1/namespaces/{ns}/pods/init/log").raw == b"i1\ni2\n"
    statuses = get_pod(raw, ns, "init")["status"]["initContainerStatuses"]
    assert [s["state"]["terminated"]["reason"] for s in statuses] == ["Completed", "Completed"]


def test_failing_init_container_with_never_fails_the_pod(kubesim_session: Simulator, kubesim_namespace: str) -> None:
    raw, ns = Raw(kubesim_session), kubesim_namespace
    body = {
        "metadata": {"name": "badinit"},
        "spec": {
            "restartPolicy": "Never",
            "initContainers": [{"name": "i", "image": "busybox", "command": ["sh", "-c", "exit 4"]}],
            "containers": [{"name": "main", "image": "busybox", "command": ["true"]}],
        },
    }
    raw.post(f"/api/v1/namespaces/{ns}/pods", body)
    eventually(lambda: get_pod(raw, ns, "badinit")["status"].get("phase") == "Failed")
    assert "running" not in json.dumps(get_pod(raw, ns, "badinit")["status"]["containerStatuses"])


def test_multi_container_logs_need_a_container_name(kubesim_session: Simulator, kubesim_namespace: str) -> None:
    raw, ns = Raw(kubesim_session), kubesim_namespace
    body = {
        "metadata": {"name": "two"},
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {"name": "a", "image": "busybox", "command": ["echo", "from-a"]},
                {"name": "b", "image": "busybox", "command": ["sh", "-c", "echo from-b >&2"]},
            ],
        },
    }
    raw.post(f"/api/v1/namespaces/{ns}/pods", body)
    eventually(lambda: get_pod(raw, ns, "two")["status"].get("phase") == "Succeeded")
    ambiguous = raw.get(f"/api/v1/namespaces/{ns}/pods/two/log")
    assert (
        ambiguous.status == 400
        and "a container name must be specified for pod two, choose one of: [a b]" in ambiguous.body["message"]
    )
    assert raw.get(f"/api/v1/namespaces/{ns}/pods/two/log?container=b").raw == b"from-b\n"
    assert kubesim_session.kubectl("logs", "-n", ns, "two", "-c", "a").stdout == "from-a\n"


def test_missing_executable_is_start_error_and_fallback_message(
    kubesim_session: Simulator, kubesim_namespace: str
) -> None:
    raw, ns = Raw(kubesim_session), kubesim_namespace
    raw.post(
        f"/api/v1/namespaces/{ns}/pods",
        {
            "metadata": {"name": "noexec"},
            "spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "c", "image": "busybox", "command": ["/no/such/binary"]}],
            },
        },
    )
    raw.post(
        f"/api/v1/namespaces/{ns}/pods",
        {
            "metadata": {"name": "fallback"},
            "spec": {
                "restartPolicy": "Never",
                "containers": [
                    {
                        "name": "c",
                        "image": "busybox",
                        "command": ["sh", "-c", "echo last words; exit 1"],
                        "terminationMessagePolicy": "FallbackToLogsOnError",
                    }
                ],
            },
        },
    )
    eventually(lambda: get_pod(raw, ns, "noexec")["status"].get("phase") == "Failed")
    term = get_pod(raw, ns, "noexec")["status"]["containerStatuses"][0]["state"]["terminated"]
    assert term["reason"] == "StartError" and term["exitCode"] == 128 and "/no/such/binary" in term["message"]
    eventually(lambda: get_pod(raw, ns, "fallback")["status"].get("phase") == "Failed")
    term = get_pod(raw, ns, "fallback")["status"]["containerStatuses"][0]["state"]["terminated"]
    assert term["message"] == "last words\n"


def test_automount_opt_out_and_legacy_token_secret(kubesim_session: Simulator, kubesim_namespace: str) -> None:
    raw, ns = Raw(kubesim_session), kubesim_namespace
    pod = raw.post(
        f"/api/v1/namespaces/{ns}/pods",
        {
            "metadata": {"name": "notoken"},
            "spec": {
                "automountServiceAccountToken": False,
                "restartPolicy": "Never",
                "containers": [
                    {
                        "name": "c",
                        "image": "busybox",
                        "command": [
                            "sh",
                            "-c",
                            "ls /var/run/secrets/kubernetes.io/serviceaccount/token 2>/dev/null || echo none",
                        ],
                    }
                ],
            },
        },
    ).body
    assert not pod["spec"].get("volumes")
    eventually(lambda: get_pod(raw, ns, "notoken")["status"].get("phase") == "Succeeded")
    assert raw.get(f"/api/v1/namespaces/{ns}/pods/notoken/log").raw == b"none\n"
    secret = raw.post(
        f"/api/v1/namespaces/{ns}/secrets",
        {
            "metadata": {"name": "legacy", "annotations": {"kubernetes.io/service-account.name": "default"}},
            "type": "kubernetes.io/service-account-token",
        },
    ).body
    token = base64.b64decode(secret["data"]["token"]).decode()
    assert Raw(kubesim_session, token).get("/apis").status == 200
    assert base64.b64decode(secret["data"]["namespace"]).decode() == ns


def test_pod_without_service_account_is_forbidden(kubesim_session: Simulator, kubesim_namespace: str) -> None:
    raw, ns = Raw(kubesim_session), kubesim_namespace
    r = raw.post(
        f"/api/v1/namespaces/{ns}/pods",
        {
            "metadata": {"name": "nosa"},
            "spec": {"serviceAccountName": "ghost", "containers": [{"name": "c", "image": "busybox"}]},
        },
    )
    assert r.status == 403 and 'serviceaccount "ghost" not found' in r.body["message"]


def test_kubectl_describe_pod_and_get_pods_watch(kubesim_session: Simulator, kubesim_namespace: str) -> None:
    ns = kubesim_namespace
    kubesim_session.kubectl(
        "run", "-n", ns, "described", "--image=busybox", "--restart=Never", "--", "sh", "-c", "echo hi"
    )
    eventually(
        lambda: (
            kubesim_session.kubectl("get", "pod", "-n", ns, "described", "-o", "jsonpath={.status.phase}").stdout
            == "Succeeded"
        )
    )
    out = kubesim_session.kubectl("describe", "pod", "-n", ns, "described").stdout
    assert "Status:           Succeeded" in out and "Started container described" in out and "kubesim-node" in out
    lines = kubesim_session.kubectl("get", "pods", "-n", ns).stdout.splitlines()
    assert lines[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert lines[1].split()[:4] == ["described", "0/1", "Completed", "0"]


def test_restricted_pod_like_the_runner_pods(kubesim_session: Simulator, kubesim_namespace: str) -> None:
    """runAsUser/runAsNonRoot/fsGroup, an emptyDir over /tmp (which also hides the simulator's own
    files when they live under /tmp) and a read-only ConfigMap, as the operator's runner pods use."""
    raw, ns = Raw(kubesim_session), kubesim_namespace
    raw.post(f"/api/v1/namespaces/{ns}/configmaps", {"metadata": {"name": "def"}, "data": {"flow.yaml": "nodes: []\n"}})
    script = (
        "id -u; id -G; cat /etc/flow/flow.yaml; echo scratch > /tmp/x && cat /tmp/x; echo done > /dev/termination-log"
    )
    container = {
        "name": "runner",
        "image": "busybox",
        "command": ["sh", "-c", script],
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": [
            {"name": "definition", "mountPath": "/etc/flow", "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    spec = {
        "restartPolicy": "Never",
        "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001},
        "containers": [container],
        "volumes": [
            {"name": "definition", "configMap": {"name": "def"}},
            {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
        ],
    }
    raw.post(f"/api/v1/namespaces/{ns}/pods", {"metadata": {"name": "restricted"}, "spec": spec})
    eventually(lambda: get_pod(raw, ns, "restricted")["status"].get("phase") in ("Succeeded", "Failed"))
    assert raw.get(f"/api/v1/namespaces/{ns}/pods/restricted/log").raw == b"10001\n10001\nnodes: []\nscratch\n"
    term = get_pod(raw, ns, "restricted")["status"]["containerStatuses"][0]["state"]["terminated"]
    assert term["exitCode"] == 0 and term["message"] == "done\n"


def test_run_as_non_root_without_a_user_cannot_start(kubesim_session: Simulator, kubesim_namespace: str) -> None:
    raw, ns = Raw(kubesim_session), kubesim_namespace
    spec = {
        "securityContext": {"runAsNonRoot": True},
        "containers": [{"name": "c", "image": "busybox", "command": ["true"]}],
    }
    raw.post(f"/api/v1/namespaces/{ns}/pods", {"metadata": {"name": "rootless"}, "spec": spec})
    waiting = eventually(
        lambda: get_pod(raw, ns, "rootless")["status"].get("containerStatuses", [{}])[0].get("state", {}).get("waiting")
    )
    eventually(
        lambda: (
            get_pod(raw, ns, "rootless")["status"]["containerStatuses"][0]["state"]["waiting"]["reason"]
            == "CreateContainerConfigError"
        )
    )
    assert (
        "runAsNonRoot and image will run as root"
        in get_pod(raw, ns, "rootless")["status"]["containerStatuses"][0]["state"]["waiting"]["message"]
    )
    assert waiting
