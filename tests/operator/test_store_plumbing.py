"""What the operator writes for a run's store, on the simulator: the runner Job's environment and
volumes, ``status.store``, the run's Role, and what the run's own token may do with ConfigMaps.

The runner's side (checkpoints, resuming) is not tested here: these tests look at the objects the
operator creates and what their permissions allow, never at a run's outcome beyond "it finished".
A pvc store cannot get past the borrowing check on the simulator (it serves no
PersistentVolumeClaims to label), so its Job is checked as data (``test_store_decisions``) and here
only its refusal.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from flowlib_api.storespec import StoreLocation, StoreSpec, resolve
from tests.operator.cluster import Cluster, flow, flowrun

QUICK = {"nodes": {"a": {"run": {"python": "1"}}}}
S3 = {"type": "s3", "s3": {"bucket": "runs", "prefix": "flowlib", "secretName": "s3-keys"}}


def _keys(labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s3-keys", "labels": labels or {}},
        "stringData": {"AWS_ACCESS_KEY_ID": "AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "example-secret"},
    }


def _job_of(cluster: Cluster, name: str, namespace: str) -> dict[str, Any]:
    job: dict[str, Any] = cluster.wait_for(
        f"the Job of {name}", lambda: cluster.get("job", f"{name}-run", namespace), timeout=30
    )
    return job


def _env(job: dict[str, Any]) -> dict[str, Any]:
    container = job["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def _refused(cluster: Cluster, name: str, namespace: str, reason: str) -> str:
    status = cluster.wait_phase(name, namespace, "Failed", "Succeeded", "Cancelled", timeout=30)
    assert status["phase"] == "Failed", status
    assert status["conditions"][0]["reason"] == reason, status
    assert cluster.get("job", f"{name}-run", namespace) is None
    assert "store" not in status
    message: str = status["message"]
    return message


def test_a_run_gets_a_configmap_store_and_a_role_for_its_chunks_alone(
    simulator_only: Cluster, namespace: str, tmp_path: Path
) -> None:
    cluster = simulator_only
    cluster.apply(namespace, flow("quick", QUICK), flowrun("mine", "quick"), flowrun("theirs", "quick"))
    job = _job_of(cluster, "mine", namespace)
    for name in ("mine", "theirs"):
        cluster.wait_phase(name, namespace, "Succeeded", "Failed", timeout=60)
    body = cluster.get("flowrun", "mine", namespace)
    assert body is not None
    expected = resolve(StoreSpec(), namespace=namespace, run="mine", uid=body["metadata"]["uid"])
    assert body["status"]["store"] == expected.status()
    assert body["status"]["store"]["location"] == f"configmap {namespace}/mine-store-*"
    env = _env(job)
    assert StoreLocation.from_json(env["FLOWLIB_STORE"]) == expected
    assert "FLOWLIB_RESUME_FROM" not in env and "AWS_ACCESS_KEY_ID" not in env
    pod = cluster.list("pod", namespace, "flowlib.dev/flowrun=mine")[0]
    assert _env({"spec": {"template": pod}})["FLOWLIB_STORE"] == env["FLOWLIB_STORE"]
    role = cluster.get("role", "mine-runner", namespace)
    assert role is not None
    chunks = [f"mine-store-{i}" for i in range(8)]
    assert {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create"]} in role["rules"]
    assert {
        "apiGroups": [""],
        "resources": ["configmaps"],
        "resourceNames": chunks,
        "verbs": ["get", "update", "patch", "delete"],
    } in role["rules"]

    # The RBAC proof, with each run's own token: a run reaches its own chunks, not another run's.
    def token(run: str) -> str:
        return str(cluster.sim.kubeconfig_for(namespace, f"{run}-runner", tmp_path / f"{run}.kubeconfig"))

    mine, theirs = token("mine"), token("theirs")

    def as_run(kubeconfig: str, *args: str) -> subprocess.CompletedProcess[str]:
        return cluster.try_kubectl("--kubeconfig", kubeconfig, "-n", namespace, *args)

    def can(kubeconfig: str, *args: str) -> str:
        return as_run(kubeconfig, "auth", "can-i", *args).stdout.strip()

    assert as_run(theirs, "create", "configmap", "theirs-store-6", "--from-literal=k=theirs").returncode == 0
    created = as_run(mine, "create", "configmap", "mine-store-6", "--from-literal=k=v")
    assert created.returncode == 0, created.stderr
    assert as_run(mine, "get", "configmap", "mine-store-6").returncode == 0
    patch = '{"data":{"k":"w"}}'
    assert as_run(mine, "patch", "configmap", "mine-store-6", "--type=merge", "-p", patch).returncode == 0
    for verb in ("get", "update", "patch", "delete"):
        assert can(mine, verb, "configmap/mine-store-3") == "yes", verb
        assert can(mine, verb, "configmap/theirs-store-6") == "no", verb
    denied = as_run(mine, "get", "configmap", "theirs-store-6")
    assert denied.returncode != 0 and "forbidden" in denied.stderr.lower()
    denied = as_run(mine, "patch", "configmap", "theirs-store-6", "--type=merge", "-p", patch)
    assert denied.returncode != 0 and "forbidden" in denied.stderr.lower()
    denied = as_run(mine, "delete", "configmap", "theirs-store-6")
    assert denied.returncode != 0 and "forbidden" in denied.stderr.lower()
    assert cluster.get("configmap", "theirs-store-6", namespace) is not None
    assert can(mine, "list", "configmaps") == "no"
    assert can(mine, "get", "configmap/theirs-flow") == "no"  # nor another run's definition
    assert can(mine, "get", "configmap/mine-flow") == "no"  # its own is mounted, never read through the API
    assert as_run(mine, "delete", "configmap", "mine-store-6").returncode == 0


def test_an_s3_store_takes_its_keys_from_an_opened_secret(simulator_only: Cluster, namespace: str) -> None:
    cluster = simulator_only
    run = flowrun("bucketed", flow=QUICK, store=S3)
    cluster.apply(namespace, _keys({"flowlib.dev/runner-access": "true"}), run)
    job = _job_of(cluster, "bucketed", namespace)
    env = _env(job)
    location = StoreLocation.from_json(env["FLOWLIB_STORE"])
    body = cluster.get("flowrun", "bucketed", namespace)
    assert body is not None
    uid = body["metadata"]["uid"]
    assert (location.type, location.bucket, location.secret_name) == ("s3", "runs", "s3-keys")
    assert location.root == f"flowlib/{namespace}/bucketed-{uid[:8]}/"
    assert body["status"]["store"]["location"] == f"s3://runs/flowlib/{namespace}/bucketed-{uid[:8]}/"
    for key, optional in (("AWS_ACCESS_KEY_ID", False), ("AWS_SECRET_ACCESS_KEY", False), ("AWS_SESSION_TOKEN", True)):
        assert env[key] == {"secretKeyRef": {"name": "s3-keys", "key": key, "optional": optional}}, key
    role = cluster.get("role", "bucketed-runner", namespace)
    assert role is not None and all(rule["resources"] != ["configmaps"] for rule in role["rules"])


def test_a_store_the_run_may_not_borrow_is_refused(simulator_only: Cluster, namespace: str) -> None:
    cluster = simulator_only
    pvc = {"type": "pvc", "pvc": {"claimName": "shared"}}
    cluster.apply(
        namespace,
        _keys(),  # not opened to runs
        flowrun("no-keys", flow=QUICK, store=S3),
        flowrun("no-claim", flow=QUICK, store=pvc),
    )
    message = _refused(cluster, "no-keys", namespace, "Forbidden")
    assert "spec.store.s3.secretName: Secret 's3-keys' does not exist or is not open to FlowRuns" in message
    assert f"kubectl label secret s3-keys -n {namespace} flowlib.dev/runner-access=true" in message
    assert "example-secret" not in message
    message = _refused(cluster, "no-claim", namespace, "Forbidden")
    assert "spec.store.pvc.claimName: PersistentVolumeClaim 'shared' does not exist or is not open" in message


def test_an_unusable_store_fails_the_run_naming_the_field(simulator_only: Cluster, namespace: str) -> None:
    cluster = simulator_only
    cluster.apply(
        namespace,
        flowrun("half-s3", flow=QUICK, store={"type": "s3"}),
        flowrun("mixed", flow=QUICK, store={"type": "configmap", "pvc": {"claimName": "shared"}}),
    )
    message = _refused(cluster, "half-s3", namespace, "InvalidStore")
    assert (
        message
        == "invalid store: spec.store.type is s3: set spec.store.s3.bucket (and endpoint for a store other than AWS)"
    )
    message = _refused(cluster, "mixed", namespace, "InvalidStore")
    assert "spec.store.pvc is set but spec.store.type is configmap: remove one of them" in message


def test_a_run_may_keep_no_store(simulator_only: Cluster, namespace: str) -> None:
    cluster = simulator_only
    cluster.apply(namespace, flowrun("storeless", flow=QUICK, store={"enabled": False}))
    env = _env(_job_of(cluster, "storeless", namespace))
    assert "FLOWLIB_STORE" not in env
    status = cluster.wait_phase("storeless", namespace, "Succeeded", "Failed", timeout=60)
    assert "store" not in status
    role = cluster.get("role", "storeless-runner", namespace)
    assert role is not None and all(rule["resources"] != ["configmaps"] for rule in role["rules"])


@pytest.mark.parametrize(
    ("how", "message"),
    [
        (["--default-store", '{"type": "s3"}'], "--default-store.type is s3: set --default-store.s3.bucket"),
        (["--default-store", "type: [configmap"], "--default-store is neither JSON nor YAML"),
        ({"FLOWLIB_OPERATOR_DEFAULT_STORE": '{"type": "pvc"}'}, "--default-store.type is pvc: set"),
        ({"FLOWLIB_OPERATOR_DEFAULT_STORE": '{"kind": "configmap"}'}, "--default-store.kind: Extra inputs"),
    ],
)
def test_the_operator_refuses_to_start_with_a_bad_default_store(
    how: list[str] | dict[str, str], message: str, tmp_path: Path
) -> None:
    """Checked before the operator connects anywhere (the kubeconfig named here does not exist).

    Run in-process through click (never a second operator process: see test_ports.py)."""
    from click.testing import CliRunner
    from flowlib_operator.main import cli

    args, env = (how, {}) if isinstance(how, list) else ([], how)
    result = CliRunner().invoke(
        cli, ["--all-namespaces", *args], env={"KUBECONFIG": str(tmp_path / "none"), **env}, catch_exceptions=False
    )
    done = subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.stderr)
    assert done.returncode == 2, done.stderr
    assert "Invalid value for '--default-store'" in done.stderr and message in done.stderr, done.stderr
    assert "Give a store spec as JSON or YAML" in done.stderr
