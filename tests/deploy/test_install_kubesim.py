"""The install itself, on the Kubernetes API simulator: the real kubectl applies the real manifests
(the cluster-wide one with a single ``kubectl apply -k``, as the README says, on a fresh cluster; the
namespaced one with ``hack/deploy.sh``, as ``make deploy`` does), the simulated kubelet starts the
operator from the Deployment (as UID 65532, with the service account token of ``flowlib-operator``,
so the simulator's RBAC checks the installed rules), and a FlowRun runs to the end. This is the part
of ``make e2e`` that needs no Docker; the same manifests on a real cluster are the e2e job's.

Only the metrics and health ports are moved (to free ones), since the simulated pods share this
machine's network; everything else is the overlay as a user applies it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.manifests import ROOT, flag_values, operator_container, render

pytestmark = [pytest.mark.kubesim, pytest.mark.slow]
OPERATOR_USER = "system:serviceaccount:flowlib-system:flowlib-operator"

HELLO = {
    "apiVersion": "flowlib.dev/v1alpha1",
    "kind": "Flow",
    "metadata": {"name": "hello"},
    "spec": {
        "params": {"name": "world"},
        "nodes": {
            "greet": {"run": {"python": "'Hello, ' + params['name'] + '!'"}, "next": {"default": "shout"}},
            "shout": {"run": {"python": "shared['greet'].upper()"}},
        },
    },
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _kustomization_with_free_ports(directory: str, target: Path) -> Path:
    """A kustomization of ``directory`` that changes only the operator's metrics and health ports
    (the flags and the named container ports, which the Deployment's probes use)."""
    container = operator_container(render(directory))
    args = container["args"]
    metrics, health = _free_port(), _free_port()
    (liveness,) = flag_values(args, "--liveness")
    ports = [p["name"] for p in container["ports"]]
    ops = [
        {"op": "replace", "path": f"/spec/template/spec/containers/0/args/{args.index(liveness)}",
         "value": f"http://0.0.0.0:{health}/healthz"},
        {"op": "replace", "path": f"/spec/template/spec/containers/0/args/{args.index('--metrics-port') + 1}",
         "value": str(metrics)},
        {"op": "replace", "path": f"/spec/template/spec/containers/0/ports/{ports.index('health')}/containerPort",
         "value": health},
        {"op": "replace", "path": f"/spec/template/spec/containers/0/ports/{ports.index('metrics')}/containerPort",
         "value": metrics},
    ]  # fmt: skip
    target.mkdir()
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [os.path.relpath(ROOT / directory, target)],
        "patches": [
            {"target": {"kind": "Deployment", "name": "flowlib-operator"}, "patch": json.dumps(ops)},
        ],
    }
    (target / "kustomization.yaml").write_text(yaml.safe_dump(kustomization), encoding="utf-8")
    return target


def _deploy(sim: Any, directory: Path) -> None:
    env = {**os.environ, "KUBECONFIG": str(sim.kubeconfig), "ROLLOUT_TIMEOUT": "90s"}
    done = subprocess.run(
        ["bash", str(ROOT / "hack/deploy.sh"), str(directory)],
        capture_output=True, text=True, timeout=180, check=False, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def _apply_once(sim: Any, directory: Path) -> None:
    """The README's install: one ``kubectl apply -k``, then the rollout. Any failure of the apply
    (e.g. "ensure CRDs are installed first") fails the test: there is no second try."""
    done = sim.kubectl("apply", "-k", str(directory), check=False, timeout=120)
    assert done.returncode == 0, f"the first apply failed:\n{done.stdout}{done.stderr}"
    assert "ensure CRDs are installed first" not in done.stderr, done.stderr
    rollout = sim.kubectl(
        "-n", "flowlib-system", "rollout", "status", "deployment/flowlib-operator", "--timeout=90s",
        check=False, timeout=120,
    )  # fmt: skip
    assert rollout.returncode == 0, rollout.stdout + rollout.stderr


def _apply(sim: Any, namespace: str, obj: dict[str, Any]) -> None:
    sim.kubectl("-n", namespace, "apply", "-f", "-", input=json.dumps(obj))


def _flowrun(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "flowlib.dev/v1alpha1",
        "kind": "FlowRun",
        "metadata": {"name": name},
        "spec": {"flowRef": {"name": "hello"}, "params": {"name": "Ada"}, "outputs": ["shout"]},
    }


def _wait_for_phase(sim: Any, namespace: str, name: str, deadline: float = 90.0) -> dict[str, Any]:
    """The FlowRun's status once it has a final phase (bounded wait; the test asserts on the result)."""
    give_up = time.monotonic() + deadline
    status: dict[str, Any] = {}
    while time.monotonic() < give_up:
        got = sim.kubectl("-n", namespace, "get", "flowrun", name, "-o", "json", check=False)
        if got.returncode == 0:
            status = json.loads(got.stdout).get("status") or {}
            if status.get("phase") in ("Succeeded", "Failed", "Cancelled"):
                return status
        time.sleep(0.5)
    logs = sim.kubectl("-n", "flowlib-system", "logs", "deployment/flowlib-operator", check=False)
    raise AssertionError(f"{namespace}/{name} did not finish: {status}\noperator log:\n{logs.stdout[-4000:]}")


def _create_namespace(sim: Any, name: str) -> None:
    sim.kubectl("create", "namespace", name)


def test_one_apply_on_a_fresh_cluster_installs_an_operator_that_runs_a_flow(kubesim: Any, tmp_path: Path) -> None:
    """`kubectl apply -k deploy/` once, then a FlowRun succeeds; the ClusterKopfPeering that kopf waits
    for is the one the operator created itself, with its installed permissions."""
    with kubesim.auditing() as audit:
        _apply_once(kubesim, _kustomization_with_free_ports("deploy", tmp_path / "install"))
        _create_namespace(kubesim, "team-a")
        _apply(kubesim, "team-a", HELLO)
        _apply(kubesim, "team-a", _flowrun("hello-1"))
        status = _wait_for_phase(kubesim, "team-a", "hello-1")
    assert status["phase"] == "Succeeded", status
    assert status["output"] == {"shout": "HELLO, ADA!"}
    peering = json.loads(kubesim.kubectl("get", "clusterkopfpeering", "flowlib-operator", "-o", "json").stdout)
    assert peering["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "flowlib-operator"
    pods = json.loads(kubesim.kubectl("-n", "flowlib-system", "get", "pods", "-o", "json").stdout)["items"]
    assert set(peering["status"]) == {p["metadata"]["name"] for p in pods}, "POD_ID names the replica"
    calls = [(attrs.verb, allowed) for user, attrs, allowed in audit
             if user == OPERATOR_USER and attrs.resource == "clusterkopfpeerings"]  # fmt: skip
    assert ("create", True) in calls, "the operator created its peering object"
    assert all(allowed for _, allowed in calls), f"peering calls refused: {calls}"


def test_namespaced_install_acts_only_in_its_namespaces(kubesim: Any, tmp_path: Path) -> None:
    (watched,) = flag_values(operator_container(render("deploy/overlays/namespaced"))["args"], "--namespace")
    for namespace in (watched, "elsewhere"):
        _create_namespace(kubesim, namespace)
    _deploy(kubesim, _kustomization_with_free_ports("deploy/overlays/namespaced", tmp_path / "install"))
    for namespace in (watched, "elsewhere"):
        _apply(kubesim, namespace, HELLO)
        _apply(kubesim, namespace, _flowrun("hello-1"))
    status = _wait_for_phase(kubesim, watched, "hello-1")
    assert status["phase"] == "Succeeded", status
    ignored = json.loads(kubesim.kubectl("-n", "elsewhere", "get", "flowrun", "hello-1", "-o", "json").stdout)
    assert not ignored.get("status"), "the operator acted outside its namespaces"
    jobs = json.loads(kubesim.kubectl("-n", "elsewhere", "get", "jobs", "-o", "json").stdout)["items"]
    assert jobs == []
    # The operator peers through a KopfPeering it created in each watched namespace, and only there.
    peerings = json.loads(kubesim.kubectl("get", "kopfpeerings", "-A", "-o", "json").stdout)["items"]
    assert [(p["metadata"]["namespace"], p["metadata"]["name"]) for p in peerings] == [(watched, "flowlib-operator")]
    assert peerings[0].get("status"), "kopf writes the replica's heartbeat into it"
