"""Retries (``spec.retryOf``) on the simulator, as the operator sees them: which sources it refuses
and why, and for one it accepts, what the retry gets (its source's definition snapshot and store
location, the Role to read that store) and what it keeps alive (the source's store chunks).

A chunk is created here with the source run's own token, as its runner would: the runner's
checkpoints are not what these tests look at.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.operator.cluster import Cluster, flow, flowrun

QUICK = {"nodes": {"a": {"run": {"python": "1"}}}}
SLOW = {"nodes": {"a": {"run": {"python": "import time\ndef exec(_):\n    time.sleep(60)\n"}}}}
FINISHED = ("Succeeded", "Failed", "Cancelled")


def opened(run: dict[str, Any]) -> dict[str, Any]:
    """A source FlowRun its author opened to retries (without the webhook, a retry needs the label)."""
    run["metadata"]["labels"] = {"flowlib.dev/runner-access": "true"}
    return run


def _refused(cluster: Cluster, name: str, namespace: str, reason: str) -> str:
    status = cluster.wait_phase(name, namespace, *FINISHED, timeout=30)
    assert status["phase"] == "Failed", status
    assert status["conditions"][0]["reason"] == reason, status
    assert cluster.get("job", f"{name}-run", namespace) is None
    events = cluster.kubectl("get", "events", "-n", namespace, "--field-selector", f"involvedObject.name={name}")
    assert reason in events
    message: str = status["message"]
    return message


def _env(job: dict[str, Any]) -> dict[str, Any]:
    container = job["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def _owners(obj: dict[str, Any] | None) -> set[str]:
    return {owner["name"] for owner in ((obj or {}).get("metadata") or {}).get("ownerReferences") or []}


def test_a_retry_of_what_cannot_be_retried_fails_saying_why(simulator_only: Cluster, namespace: str) -> None:
    cluster = simulator_only
    cluster.apply(
        namespace,
        flow("slow", SLOW),
        opened(flowrun("busy", "slow")),
        opened(flowrun("unstarted", flow=QUICK, cancel=True)),  # cancelled before a runner ran: no store
        opened(flowrun("storeless", flow=QUICK, store={"enabled": False})),
    )
    cluster.wait_for("busy to start", lambda: cluster.get("job", "busy-run", namespace))
    cluster.wait_phase("unstarted", namespace, "Cancelled", timeout=30)
    cluster.wait_phase("storeless", namespace, "Succeeded", "Failed", timeout=60)
    cluster.apply(
        namespace,
        flowrun("of-nothing", retryOf="nowhere"),
        flowrun("of-busy", retryOf="busy"),
        flowrun("of-unstarted", retryOf="unstarted"),
        flowrun("of-storeless", retryOf="storeless", resubmit=True),
        flowrun("of-itself", retryOf="of-itself"),
    )
    message = _refused(cluster, "of-nothing", namespace, "RetrySourceNotFound")
    assert message == (
        f"spec.retryOf: FlowRun 'nowhere' does not exist in namespace '{namespace}'; name a finished FlowRun of "
        f"this namespace (kubectl get flowruns -n {namespace})"
    )
    message = _refused(cluster, "of-busy", namespace, "RetrySourceNotFinished")
    assert message.startswith("spec.retryOf: FlowRun 'busy' has not finished (phase "), message
    assert "then delete this FlowRun and create it again" in message
    for name in ("of-unstarted", "of-storeless"):
        message = _refused(cluster, name, namespace, "NothingToRetry")
        assert f"spec.retryOf: FlowRun '{name[3:]}' ran without a store" in message, message
    assert "cannot retry itself" in _refused(cluster, "of-itself", namespace, "NothingToRetry")
    cluster.kubectl("patch", "flowrun", "busy", "-n", namespace, "--type", "merge", "-p", '{"spec":{"cancel":true}}')


def test_a_retry_resumes_from_its_source_and_keeps_its_store_alive(
    simulator_only: Cluster, namespace: str, tmp_path: Path
) -> None:
    cluster = simulator_only
    cluster.apply(namespace, flow("quick", QUICK), opened(flowrun("first", "quick", input={"x": 1}, outputs=["a"])))
    source_status = cluster.wait_phase("first", namespace, "Succeeded", "Failed", timeout=60)
    first = cluster.get("flowrun", "first", namespace)
    assert first is not None
    first_uid = first["metadata"]["uid"]
    # A checkpoint chunk, written with the source run's own token as its runner would write one.
    kubeconfig = str(cluster.sim.kubeconfig_for(namespace, "first-runner", tmp_path / "first.kubeconfig"))
    chunk = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "first-store-7",
            "ownerReferences": [
                {
                    "apiVersion": "flowlib.dev/v1alpha1",
                    "kind": "FlowRun",
                    "name": "first",
                    "uid": first_uid,
                    "controller": True,
                }
            ],
        },
        "data": {"checkpoint": "{}"},
    }
    written = cluster.try_kubectl(
        "--kubeconfig", kubeconfig, "-n", namespace, "create", "-f", "-", input=json.dumps(chunk)
    )
    assert written.returncode == 0, written.stderr
    # The Flow changes after the source ran: the retry still runs the definition the source ran.
    cluster.apply(namespace, flow("quick", {"nodes": {"a": {"run": {"python": "2"}}}}))
    cluster.apply(namespace, flowrun("again", retryOf="first"), flowrun("over", retryOf="first", resubmit=True))
    for name, mode in (("again", "retry"), ("over", "resubmit")):
        job = cluster.wait_for(f"the Job of {name}", lambda n=name: cluster.get("job", f"{n}-run", namespace))
        env = _env(job)
        assert env["FLOWLIB_RESUME_FROM"] == source_status["store"]["ref"], name
        assert env["FLOWLIB_RESUME_MODE"] == mode
        assert json.loads(env["FLOWLIB_STORE"])["root"] == f"{name}-store"  # its own store, not the source's
    snapshots = {name: cluster.get("configmap", f"{name}-flow", namespace) or {} for name in ("first", "again")}
    assert snapshots["again"]["binaryData"] == snapshots["first"]["binaryData"]
    assert _owners(snapshots["again"]) == {"again"}
    again = cluster.wait_phase("again", namespace, *FINISHED, timeout=60)
    assert again["flow"] == source_status["flow"] == "quick"
    assert again["store"]["ref"] != source_status["store"]["ref"]
    role = cluster.get("role", "again-runner", namespace)
    assert role is not None
    assert {
        "apiGroups": [""],
        "resources": ["configmaps"],
        "resourceNames": [f"first-store-{i}" for i in range(8)],
        "verbs": ["get"],
    } in role["rules"]
    assert {
        "apiGroups": ["flowlib.dev"],
        "resources": ["flowruns"],
        "resourceNames": ["first"],
        "verbs": ["get"],
    } in role["rules"]
    retry_token = str(cluster.sim.kubeconfig_for(namespace, "again-runner", tmp_path / "again.kubeconfig"))

    def can(*args: str) -> str:
        done = cluster.try_kubectl("--kubeconfig", retry_token, "-n", namespace, "auth", "can-i", *args)
        return done.stdout.strip()

    assert (can("get", "configmap/first-store-7"), can("patch", "configmap/first-store-7")) == ("yes", "no")
    assert (can("get", "flowrun/first"), can("patch", "flowrun/first", "--subresource=status")) == ("yes", "no")
    # The source's chunk has the retries as further owners: it outlives the source while they exist.
    assert _owners(cluster.get("configmap", "first-store-7", namespace)) == {"first", "again", "over"}
    cluster.kubectl("delete", "flowrun", "first", "-n", namespace)
    cluster.wait_for(
        "the source's snapshot to be collected", lambda: cluster.get("configmap", "first-flow", namespace) is None
    )
    assert _owners(cluster.get("configmap", "first-store-7", namespace)) >= {"again", "over"}
    cluster.kubectl("delete", "flowrun", "again", "over", "-n", namespace)
    cluster.wait_for(
        "the chunk to go with its last owner", lambda: cluster.get("configmap", "first-store-7", namespace) is None
    )


def test_a_retry_may_name_a_definition_of_its_own(simulator_only: Cluster, namespace: str) -> None:
    cluster = simulator_only
    cluster.apply(namespace, opened(flowrun("first", flow=QUICK)))
    cluster.wait_phase("first", namespace, "Succeeded", "Failed", timeout=60)
    fixed = {"nodes": {"b": {"run": {"python": "2"}}}}
    cluster.apply(namespace, flowrun("fixed", flow=fixed, retryOf="first"))
    job = cluster.wait_for("the Job of fixed", lambda: cluster.get("job", "fixed-run", namespace))
    assert "FLOWLIB_RESUME_FROM" in _env(job)
    snapshots = [cluster.get("configmap", f"{name}-flow", namespace) or {} for name in ("first", "fixed")]
    assert snapshots[0]["binaryData"] != snapshots[1]["binaryData"]


def test_a_retry_borrows_what_its_sources_store_names(simulator_only: Cluster, namespace: str) -> None:
    """Without the webhook the source's Secret must still be open to runs: the retry's pod reads it."""
    cluster = simulator_only
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s3-keys"}, "stringData": {"k": "v"}}
    store = {"type": "s3", "s3": {"bucket": "runs", "secretName": "s3-keys"}}
    cluster.apply(namespace, secret, opened(flowrun("first", flow=QUICK, store=store, cancel=True)))
    cluster.wait_phase("first", namespace, "Cancelled", timeout=30)
    cluster.apply(namespace, flowrun("again", retryOf="first"))
    message = _refused(cluster, "again", namespace, "Forbidden")
    assert (
        "spec.retryOf: FlowRun 'first' has spec.store.s3.secretName: Secret 's3-keys' does not exist or is not open"
        in message
    ), message
