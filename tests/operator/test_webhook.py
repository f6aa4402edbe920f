"""The validating admission webhook refuses invalid definitions at ``kubectl apply``.

A second operator process serves the webhook (it watches an empty namespace, so it never acts on
runs); the ValidatingWebhookConfiguration applies to this test's namespace only, through a label.
"""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from tests.operator.cluster import Cluster, OperatorProcess, flow, flowrun


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def guarded_namespace(simulator_only: Cluster, namespace: str, tmp_path: Path) -> Iterator[str]:
    cluster = simulator_only
    assert cluster.operator is not None
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    tls = tmp_path / "tls"
    tls.mkdir()
    cert.private_key_pem.write_to_path(str(tls / "tls.key"))
    cert.cert_chain_pems[0].write_to_path(str(tls / "tls.crt"))
    port = _free_port()
    server = OperatorProcess(
        cluster.operator.kubeconfig,
        tmp_path / "webhook-operator.log",
        extra_args=["--webhook-port", str(port), "--webhook-tls-dir", str(tls)],
        scope=["--namespace", "nothing-here"],
    )
    server.start()
    ca_bundle = base64.b64encode(ca.cert_pem.bytes()).decode()
    cluster.kubectl("label", "namespace", namespace, "flowlib.dev/webhook-test=yes")

    def hook(name: str, resource: str, path: str, operations: list[str]) -> dict[str, object]:
        return {
            "name": f"{name}.{namespace}.flowlib.dev",
            "admissionReviewVersions": ["v1"],
            "sideEffects": "None",
            "failurePolicy": "Fail",
            "timeoutSeconds": 10,
            "clientConfig": {"url": f"https://127.0.0.1:{port}{path}", "caBundle": ca_bundle},
            "namespaceSelector": {
                "matchLabels": {"flowlib.dev/webhook-test": "yes", "kubernetes.io/metadata.name": namespace}
            },
            "rules": [
                {
                    "apiGroups": ["flowlib.dev"],
                    "apiVersions": ["v1alpha1"],
                    "operations": operations,
                    "resources": [resource],
                }
            ],
        }

    config = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": f"flowlib-test-{namespace}"},
        "webhooks": [
            hook("flows", "flows", "/validate-flow", ["CREATE", "UPDATE"]),
            hook("flowruns", "flowruns", "/validate-flowrun", ["CREATE"]),
            hook("flowschedules", "flowschedules", "/validate-flowschedule", ["CREATE", "UPDATE"]),
        ],
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(config))

    def serving() -> bool:
        probe = cluster.try_kubectl(
            "apply",
            "--dry-run=server",
            "-n",
            namespace,
            "-f",
            "-",
            input=json.dumps(flow("probe", {"nodes": {"a": {}}})),
        )
        return probe.returncode == 0

    try:
        cluster.wait_for("the webhook to serve", serving, timeout=30, interval=0.5)
        yield namespace
    finally:
        cluster.kubectl("delete", "validatingwebhookconfiguration", f"flowlib-test-{namespace}", check=False)
        server.stop()
        time.sleep(0.1)


def test_an_invalid_flow_is_refused_with_lint_messages(simulator_only: Cluster, guarded_namespace: str) -> None:
    bad = flow("bad", {"nodes": {"a": {"run": {"python": "1 +"}, "next": {"default": "nowhere"}}}})
    refused = simulator_only.try_kubectl("apply", "-n", guarded_namespace, "-f", "-", input=json.dumps(bad))
    assert refused.returncode != 0
    assert 'admission webhook "flows.' in refused.stderr
    assert "nodes.a.next.default: target 'nowhere' does not exist" in refused.stderr
    assert "nodes.a.run.python" in refused.stderr
    assert simulator_only.get("flow", "bad", guarded_namespace) is None


def test_valid_definitions_pass_even_when_a_sub_flow_comes_later(
    simulator_only: Cluster, guarded_namespace: str
) -> None:
    parent = flow("parent", {"nodes": {"sub": {"type": "flow", "flow": "child-not-yet"}}})
    simulator_only.apply(guarded_namespace, parent)
    assert simulator_only.get("flow", "parent", guarded_namespace) is not None


def test_an_inline_flowrun_is_checked_and_cancel_is_never_refused(
    simulator_only: Cluster, guarded_namespace: str
) -> None:
    cluster = simulator_only
    bad_run = flowrun("bad-run", flow={"nodes": {"a": {"action": "{{ broken"}}})
    refused = cluster.try_kubectl("apply", "-n", guarded_namespace, "-f", "-", input=json.dumps(bad_run))
    assert refused.returncode != 0
    assert "spec.flow.nodes.a.action" in refused.stderr
    good_run = flowrun("good-run", flow={"nodes": {"a": {"run": {"python": "1"}}}})
    cluster.apply(guarded_namespace, good_run)
    cluster.kubectl(
        "patch", "flowrun", "good-run", "-n", guarded_namespace, "--type", "merge", "-p", '{"spec":{"cancel":true}}'
    )
    assert cluster.wait_phase("good-run", guarded_namespace, "Succeeded", "Cancelled", "Failed")["phase"] in (
        "Succeeded",
        "Cancelled",
    )


def test_the_webhook_lets_a_run_borrow_only_what_its_author_may_use(
    simulator_only: Cluster, guarded_namespace: str, tmp_path: Path
) -> None:
    cluster, namespace = simulator_only, guarded_namespace
    runs_only = [{"apiGroups": ["flowlib.dev"], "resources": ["flowruns"], "verbs": ["get", "create"]}]
    alice = cluster.user(namespace, "alice", runs_only, tmp_path)
    reader = [*runs_only, {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["db"], "verbs": ["get"]}]
    bob = cluster.user(namespace, "bob", reader, tmp_path)
    pods = [*runs_only, {"apiGroups": [""], "resources": ["pods"], "verbs": ["create"]}]
    carol = cluster.user(namespace, "carol", pods, tmp_path)
    cluster.sim.ensure_service_account(namespace, "deployer")
    inline = {"nodes": {"a": {"run": {"python": "1"}}}}
    with_secret = flowrun("with-secret", flow=inline)
    with_secret["spec"]["env"] = [{"name": "PW", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}]
    as_deployer = flowrun("as-deployer", flow=inline, serviceAccountName="deployer")

    def create(kubeconfig: Path, document: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        return cluster.try_kubectl(
            "--kubeconfig",
            str(kubeconfig),
            "create",
            "--dry-run=server",
            "-n",
            namespace,
            "-f",
            "-",
            input=json.dumps(document),
        )

    refused = create(alice, with_secret)
    assert refused.returncode != 0
    assert (
        f"spec.env[0].valueFrom.secretKeyRef: system:serviceaccount:{namespace}:alice may not get secret 'db' in "
        f"namespace '{namespace}', so a FlowRun of theirs may not either" in refused.stderr
    ), refused.stderr
    refused = create(alice, as_deployer)
    assert refused.returncode != 0
    assert "may not create pods (what running as service account 'deployer' takes)" in refused.stderr
    assert create(bob, with_secret).returncode == 0
    assert create(bob, as_deployer).returncode != 0
    assert create(carol, as_deployer).returncode == 0
    assert create(carol, with_secret).returncode != 0
    # What a namespace admin opened is open to every author.
    cluster.kubectl("label", "serviceaccount", "deployer", "-n", namespace, "flowlib.dev/runner-access=true")
    assert create(alice, as_deployer).returncode == 0


def test_a_flow_too_big_to_run_is_refused_at_the_door(simulator_only: Cluster, guarded_namespace: str) -> None:
    """Random base64 does not compress: this Flow fits etcd but its snapshot never fits a ConfigMap."""
    nodes: dict[str, Any] = {}
    for index in range(48):
        noise = base64.b64encode(__import__("os").urandom(22_500)).decode()
        nodes[f"n{index}"] = {"run": {"python": f"{index}  # {noise}"}}
        if index:
            nodes[f"n{index - 1}"]["next"] = {"default": f"n{index}"}
    big = json.dumps(flow("noise", {"start": "n0", "nodes": nodes}))
    refused = simulator_only.try_kubectl("create", "-n", guarded_namespace, "-f", "-", input=big)
    assert refused.returncode != 0
    assert "KiB even compressed, over the 1024 KiB a run's snapshot ConfigMap may hold" in refused.stderr, (
        refused.stderr
    )
    assert simulator_only.get("flow", "noise", guarded_namespace) is None


def test_a_schedule_is_checked_as_a_run_of_its_template_by_its_author(
    simulator_only: Cluster, guarded_namespace: str, tmp_path: Path
) -> None:
    """The operator creates scheduled runs: the schedule's author is checked at the schedule's door."""
    cluster, namespace = simulator_only, guarded_namespace
    schedules = [{"apiGroups": ["flowlib.dev"], "resources": ["flowschedules"], "verbs": ["get", "create"]}]
    alice = cluster.user(namespace, "sched-alice", schedules, tmp_path)
    reader = [*schedules, {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["db"], "verbs": ["get"]}]
    bob = cluster.user(namespace, "sched-bob", reader, tmp_path)
    template = {"flow": {"nodes": {"a": {"run": {"python": "1"}}}}}
    template["env"] = [{"name": "PW", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}]
    document = {
        "apiVersion": "flowlib.dev/v1alpha1",
        "kind": "FlowSchedule",
        "metadata": {"name": "nightly"},
        "spec": {"schedule": "@daily", "template": {"spec": template}},
    }

    def create(kubeconfig: Path, body: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        return cluster.try_kubectl(
            "--kubeconfig",
            str(kubeconfig),
            "create",
            "--dry-run=server",
            "-n",
            namespace,
            "-f",
            "-",
            input=json.dumps(body),
        )

    refused = create(alice, document)
    assert refused.returncode != 0 and "spec.template.spec.env[0].valueFrom.secretKeyRef" in refused.stderr
    assert create(bob, document).returncode == 0, create(bob, document).stderr
    broken = json.loads(json.dumps(document))
    broken["spec"]["template"]["spec"]["flow"] = {"nodes": {"a": {"next": {"default": "missing"}}}}
    invalid = create(bob, broken)
    assert invalid.returncode != 0 and "spec.template.spec.flow" in invalid.stderr
