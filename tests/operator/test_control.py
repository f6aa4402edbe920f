"""Runs that go wrong or are driven from outside: invalid flows, cancel, delete, restarts, faults."""

from __future__ import annotations

import json
import subprocess
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flowlib_operator.reconcile import CANCEL_GRACE, CANCEL_SEEN_ANNOTATION

from tests.operator.cluster import Cluster, flow, flowrun

SLEEP = "import asyncio\nasync def exec(prep_res):\n    await asyncio.sleep({seconds})\n    return {value!r}\n"


def slow_flow(name: str, seconds: float = 2.0, value: str = "first") -> dict[str, Any]:
    """Two nodes: a quick one, then one that takes ``seconds``; publishes ``value`` as ``result``."""
    return flow(
        name,
        {
            "nodes": {
                "quick": {"run": {"python": "'quick'"}, "next": {"default": "slow"}},
                "slow": {"run": {"python": SLEEP.format(seconds=seconds, value=value)}, "output": "result"},
            }
        },
    )


def pool_flow(name: str, items: int = 40, seconds: float = 0.5) -> dict[str, Any]:
    return flow(
        name,
        {
            "nodes": {
                "items": {"run": {"python": f"list(range({items}))"}, "next": {"default": "pool"}},
                "pool": {
                    "type": "worker_pool",
                    "batch": {"items": "items", "maxParallel": 2},
                    "run": {"python": SLEEP.format(seconds=seconds, value="x")},
                },
            }
        },
    )


def running_pod(cluster: Cluster, namespace: str, run: str) -> str:
    def pod() -> str | None:
        status = cluster.run_status(run, namespace)
        return status.get("podName") if status.get("phase") == "Running" else None

    name: str = cluster.wait_for(f"{run} to be Running", pod, timeout=60)
    return name


def ended_pods(cluster: Cluster, namespace: str, run: str) -> list[dict[str, Any]] | None:
    """The run's pods once none is still going (None before), none of them deleted."""
    pods = cluster.list("pods", namespace, f"flowlib.dev/flowrun={run}")
    going = [p for p in pods if p["status"].get("phase") not in ("Succeeded", "Failed")]
    if not pods or going or any(p["metadata"].get("deletionTimestamp") for p in pods):
        return None
    return pods


def pod_name(pod: dict[str, Any]) -> str:
    name: str = pod["metadata"]["name"]
    return name


def flowrun_events(cluster: Cluster, namespace: str, run: str) -> set[str]:
    return {
        e["reason"]
        for e in cluster.list("events", namespace)
        if e["involvedObject"]["kind"] == "FlowRun" and e["involvedObject"]["name"] == run
    }


def test_bounds_in_the_schema_are_refused_at_the_door(cluster: Cluster, namespace: str) -> None:
    bad = flow("door", {"nodes": {"b": {"type": "worker_pool", "batch": {"items": "x", "maxParallel": 0}}}})
    done = cluster.try_kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(bad))
    assert done.returncode != 0
    assert "spec.nodes.b.batch.maxParallel" in done.stderr


def test_an_invalid_flow_fails_the_run_with_every_problem_and_no_job(cluster: Cluster, namespace: str) -> None:
    bad = flow(
        "broken",
        {
            "nodes": {
                "a": {"run": {"python": "1 +"}, "next": {"default": "missing"}},
                "b": {"action": "{{ broken"},
            }
        },
    )
    cluster.apply(namespace, bad, flowrun("broken-1", "broken"))
    status = cluster.wait_phase("broken-1", namespace, "Failed", "Succeeded")
    assert status["phase"] == "Failed"
    assert status["conditions"][0]["reason"] == "InvalidFlow"
    message = status["message"]
    assert "nodes.a.next.default: target 'missing' does not exist" in message
    assert "nodes.a.run.python" in message
    assert "nodes.b.action" in message
    assert cluster.list("jobs", namespace) == []
    flow_status = cluster.wait_for(
        "the Flow to be reported not Ready",
        lambda: (cluster.get("flow", "broken", namespace) or {}).get("status", {}).get("conditions"),
    )
    assert flow_status[0]["status"] == "False" and flow_status[0]["reason"] == "InvalidFlow"
    reasons = {e["reason"] for e in cluster.list("events", namespace)}
    assert "InvalidFlow" in reasons


def test_a_missing_flow_is_named(cluster: Cluster, namespace: str) -> None:
    cluster.apply(namespace, flowrun("orphan-1", "nowhere"))
    status = cluster.wait_phase("orphan-1", namespace, "Failed")
    assert "Flow 'nowhere' does not exist" in status["message"]


def test_cancel_by_patch_stops_a_worker_pool_and_keeps_the_pod(cluster: Cluster, namespace: str) -> None:
    cluster.apply(namespace, pool_flow("pool"), flowrun("pool-1", "pool"))

    def some_items_done() -> bool:
        status = cluster.run_status("pool-1", namespace)
        done = (((status.get("nodes") or {}).get("pool") or {}).get("items") or {}).get("done", 0)
        return done >= 2

    cluster.wait_for("the pool to make progress", some_items_done)
    cluster.kubectl("patch", "flowrun", "pool-1", "-n", namespace, "--type", "merge", "-p", '{"spec":{"cancel":true}}')
    status = cluster.wait_phase("pool-1", namespace, "Cancelled", "Failed", "Succeeded", timeout=40)
    assert status["phase"] == "Cancelled", status
    assert status["conditions"][0]["reason"] == "Cancelled"
    pool = status["nodes"]["pool"]
    assert pool["items"]["done"] < 40  # stopped in the middle
    # The runner stopped by itself: its pod ended (not deleted) and stays with its log.
    pods = cluster.wait_for("the runner pod to end", lambda: ended_pods(cluster, namespace, "pool-1"), timeout=40)
    assert [p["status"]["phase"] for p in pods] == ["Succeeded"], pods
    assert "run cancelled: cancelled (spec.cancel)" in cluster.kubectl("logs", "-n", namespace, pod_name(pods[0]))
    job = cluster.get("job", "pool-1-run", namespace)
    assert job is not None and not job["metadata"].get("deletionTimestamp")
    # A cancelled run cannot be resumed.
    refused = cluster.try_kubectl(
        "patch", "flowrun", "pool-1", "-n", namespace, "--type", "merge", "-p", '{"spec":{"cancel":false}}'
    )
    assert refused.returncode != 0
    assert "a cancelled FlowRun cannot be un-cancelled" in refused.stderr
    after = cluster.get("flowrun", "pool-1", namespace)
    assert after is not None and after["spec"]["cancel"] is True


BLOCKING = "import time\ndef exec(prep_res):\n    print('blocking', flush=True)\n    time.sleep({seconds})\n"
"""A sync node: it holds the runner's event loop, so nothing in the runner can act on a cancel."""


def blocking_flow(name: str, seconds: float) -> dict[str, Any]:
    return flow(
        name,
        {
            "nodes": {
                "block": {"run": {"python": BLOCKING.format(seconds=seconds)}, "next": {"default": "after"}},
                "after": {"run": {"python": SLEEP.format(seconds=30, value="after")}, "output": "after"},
            }
        },
    )


def wait_blocking(cluster: Cluster, namespace: str, run: str) -> str:
    pod = running_pod(cluster, namespace, run)
    cluster.wait_for(
        f"{run}'s node to block",
        lambda: "blocking" in cluster.kubectl("logs", "-n", namespace, pod, check=False),
        timeout=60,
    )
    return pod


def test_a_cancel_gives_the_runner_its_grace_before_any_hard_stop(cluster: Cluster, namespace: str) -> None:
    """A node that holds the runner for a few seconds (well within the grace): the operator records
    when it saw the cancel and waits; the runner notices once its node lets go, stops the (async)
    node after it at once, and keeps its pod."""
    cluster.apply(namespace, blocking_flow("held", seconds=4), flowrun("held-1", "held", outputs=["after"]))
    wait_blocking(cluster, namespace, "held-1")
    cluster.kubectl("patch", "flowrun", "held-1", "-n", namespace, "--type", "merge", "-p", '{"spec":{"cancel":true}}')
    seen = cluster.wait_for(
        "the operator to record the cancel",
        lambda: ((cluster.get("flowrun", "held-1", namespace) or {})["metadata"].get("annotations") or {}).get(
            CANCEL_SEEN_ANNOTATION
        ),
        timeout=30,
    )
    assert seen.endswith("Z"), seen
    status = cluster.wait_phase("held-1", namespace, "Cancelled", "Succeeded", "Failed", timeout=60)
    assert status["phase"] == "Cancelled" and status["message"] == "cancelled: cancelled (spec.cancel)", status
    assert "after" not in (status.get("output") or {})  # the node after the blocked one never ran
    pods = cluster.wait_for("the runner pod to end", lambda: ended_pods(cluster, namespace, "held-1"), timeout=40)
    assert [p["status"]["phase"] for p in pods] == ["Succeeded"], pods
    assert cluster.get("job", "held-1-run", namespace) is not None
    reasons = flowrun_events(cluster, namespace, "held-1")
    assert "Cancelling" in reasons and "CancelGraceExpired" not in reasons, reasons


def test_a_runner_that_does_not_stop_within_the_grace_is_stopped_by_deleting_its_job(
    simulator_only: Cluster, namespace: str
) -> None:
    """A node that holds the runner for good. The grace is measured from the moment the operator
    recorded in the FlowRun's annotation (so a restart does not start it again); the test sets that
    moment an hour back, as a clock would, instead of waiting the 30 s."""
    cluster = simulator_only
    cluster.apply(namespace, blocking_flow("stuck", seconds=600), flowrun("stuck-1", "stuck"))
    pod = wait_blocking(cluster, namespace, "stuck-1")
    long_ago = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    patch = {"metadata": {"annotations": {CANCEL_SEEN_ANNOTATION: long_ago}}, "spec": {"cancel": True}}
    cluster.kubectl("patch", "flowrun", "stuck-1", "-n", namespace, "--type", "merge", "-p", json.dumps(patch))
    cluster.wait_for(
        "the hard stop to delete the Job", lambda: cluster.get("job", "stuck-1-run", namespace) is None, timeout=30
    )
    assert "CancelGraceExpired" in flowrun_events(cluster, namespace, "stuck-1")
    assert cluster.run_status("stuck-1", namespace)["phase"] == "Running"  # the runner has not said anything
    # Its pod got SIGTERM, which a runner held by its node cannot act on either: the kubelet would
    # kill it at the end of its termination grace period; the test does it now.
    cluster.wait_for(
        "the pod to be terminating",
        lambda: (cluster.get("pod", pod, namespace) or {"metadata": {"deletionTimestamp": "gone"}})["metadata"].get(
            "deletionTimestamp"
        ),
        timeout=30,
    )
    cluster.sim.kill_pod_process(namespace, pod)
    status = cluster.wait_phase("stuck-1", namespace, "Cancelled", "Failed", "Succeeded", timeout=60)
    assert status["phase"] == "Cancelled", status
    assert status["conditions"][0]["reason"] == "Cancelled"
    assert f"the runner did not stop within {CANCEL_GRACE:g}s of spec.cancel" in status["message"], status


def test_the_spec_is_immutable_except_cancel(cluster: Cluster, namespace: str) -> None:
    cluster.apply(namespace, slow_flow("imm", seconds=0.1), flowrun("imm-1", "imm", params={"a": 1}))
    done = cluster.try_kubectl(
        "patch", "flowrun", "imm-1", "-n", namespace, "--type", "merge", "-p", '{"spec":{"params":{"a":2}}}'
    )
    assert done.returncode != 0
    assert "spec.params cannot change after the FlowRun is created" in done.stderr


def test_deleting_a_run_removes_its_job_and_pod(cluster: Cluster, namespace: str) -> None:
    cluster.apply(namespace, slow_flow("del", seconds=30), flowrun("del-1", "del"))
    running_pod(cluster, namespace, "del-1")
    cluster.kubectl("delete", "flowrun", "del-1", "-n", namespace, "--wait=false")
    cluster.wait_for(
        "the Job, pod and snapshot to be garbage-collected",
        lambda: (
            not cluster.list("jobs", namespace)
            and not cluster.list("pods", namespace)
            and not cluster.list("configmaps", namespace, "flowlib.dev/flowrun")
        ),
        timeout=45,
    )


def test_kubectl_logs_follow_shows_node_lines_while_running(cluster: Cluster, namespace: str) -> None:
    cluster.apply(namespace, slow_flow("logs", seconds=4), flowrun("logs-1", "logs"))
    pod = running_pod(cluster, namespace, "logs-1")
    follow = subprocess.Popen(
        ["kubectl", f"--kubeconfig={cluster.kubeconfig}", "logs", "-f", "-n", namespace, pod],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert follow.stdout is not None
        seen_while_running = False
        for line in follow.stdout:
            if "[quick#1] finished" in line:
                seen_while_running = cluster.run_status("logs-1", namespace).get("phase") == "Running"
                break
        assert seen_while_running, "the quick node's line should arrive while the slow node still runs"
        rest = follow.stdout.read()  # the stream ends when the container exits
        assert "[slow#1] finished" in rest
    finally:
        follow.kill()
        follow.wait()
    assert cluster.wait_phase("logs-1", namespace, "Succeeded")["phase"] == "Succeeded"


def test_operator_restart_mid_run_creates_no_duplicate_and_loses_nothing(cluster: Cluster, namespace: str) -> None:
    if cluster.operator is None:
        pytest.skip("the operator of a real cluster is restarted by the kind e2e script, not here")
    cluster.apply(namespace, slow_flow("restart", seconds=3), flowrun("restart-1", "restart", outputs=["result"]))
    running_pod(cluster, namespace, "restart-1")
    cluster.operator.restart()
    # A run submitted while the operator is (re)starting is picked up too.
    cluster.apply(namespace, flowrun("restart-2", "restart", outputs=["result"]))
    for run in ("restart-1", "restart-2"):
        status = cluster.wait_phase(run, namespace, "Succeeded", "Failed", timeout=60)
        assert status["phase"] == "Succeeded", status
        assert status["output"] == {"result": "first"}
    jobs = sorted(j["metadata"]["name"] for j in cluster.list("jobs", namespace))
    assert jobs == ["restart-1-run", "restart-2-run"]
    assert len(cluster.list("pods", namespace, "flowlib.dev/flowrun=restart-1")) == 1


def test_a_killed_runner_is_run_again_by_the_job(simulator_only: Cluster, namespace: str) -> None:
    cluster = simulator_only
    cluster.apply(namespace, slow_flow("retry", seconds=3), flowrun("retry-1", "retry", retries=1, outputs=["result"]))
    pod = running_pod(cluster, namespace, "retry-1")
    cluster.sim.kill_pod_process(namespace, pod)
    status = cluster.wait_phase("retry-1", namespace, "Succeeded", "Failed", timeout=60)
    assert status["phase"] == "Succeeded", status
    assert status["attempt"] == 2
    assert status["podName"] != pod
    assert status["output"] == {"result": "first"}
    assert len(cluster.list("pods", namespace, "flowlib.dev/flowrun=retry-1")) == 2


def test_a_killed_runner_without_retries_fails_the_run(simulator_only: Cluster, namespace: str) -> None:
    cluster = simulator_only
    cluster.apply(namespace, slow_flow("crash", seconds=10), flowrun("crash-1", "crash"))
    pod = running_pod(cluster, namespace, "crash-1")
    cluster.sim.kill_pod_process(namespace, pod)
    status = cluster.wait_phase("crash-1", namespace, "Failed", "Succeeded", timeout=60)
    assert status["phase"] == "Failed"
    assert status["conditions"][0]["reason"] == "RunnerFailed"
    assert "exit code 137" in status["message"]
    # A failed run keeps its Job and its pod, with the pod's log, until the FlowRun goes.
    job = cluster.get("job", "crash-1-run", namespace)
    assert job is not None and not job["metadata"].get("deletionTimestamp")
    kept = cluster.get("pod", pod, namespace)
    assert kept is not None and kept["status"]["phase"] == "Failed" and not kept["metadata"].get("deletionTimestamp")
    assert "[quick#1] finished" in cluster.kubectl("logs", "-n", namespace, pod)


def test_status_patches_survive_server_errors(simulator_only: Cluster, namespace: str) -> None:
    cluster = simulator_only
    faults = cluster.sim.faults
    status_path = rf"/namespaces/{namespace}/flowruns/[^/]+/status"
    faults.fail("PATCH", status_path, 500, times=2)
    faults.fail("PATCH", status_path, 429, times=2, retry_after=1)
    faults.fail("PATCH", status_path, 409, times=2)
    try:
        cluster.apply(namespace, slow_flow("faulty", seconds=1), flowrun("faulty-1", "faulty", outputs=["result"]))
        status = cluster.wait_phase("faulty-1", namespace, "Succeeded", "Failed", timeout=60)
    finally:
        faults.clear()
    assert status["phase"] == "Succeeded", status
    assert status["output"] == {"result": "first"}
    assert status["progress"] == "2/2"


def test_a_flow_edited_during_a_run_does_not_change_it(cluster: Cluster, namespace: str) -> None:
    cluster.apply(
        namespace, slow_flow("edited", seconds=2, value="before"), flowrun("edited-1", "edited", outputs=["result"])
    )
    running_pod(cluster, namespace, "edited-1")
    cluster.apply(namespace, slow_flow("edited", seconds=0.1, value="after"))
    assert cluster.wait_phase("edited-1", namespace, "Succeeded")["output"] == {"result": "before"}
    cluster.apply(namespace, flowrun("edited-2", "edited", outputs=["result"]))
    assert cluster.wait_phase("edited-2", namespace, "Succeeded")["output"] == {"result": "after"}


def test_a_pod_that_cannot_start_fails_the_run_with_the_reason(cluster: Cluster, namespace: str) -> None:
    cluster.apply(namespace, slow_flow("img", seconds=0.1), flowrun("img-1", "img", image="registry.invalid/nothing:1"))
    status = cluster.wait_phase("img-1", namespace, "Failed", "Succeeded", timeout=90)
    assert status["phase"] == "Failed"
    assert status["conditions"][0]["reason"] in ("ImagePullBackOff", "ErrImagePull")
    assert "could not start within" in status["message"]
    cluster.wait_for("the Job to be deleted", lambda: cluster.list("jobs", namespace) == [], timeout=30)


def test_a_run_past_its_timeout_fails_with_reason_timeout(cluster: Cluster, namespace: str) -> None:
    cluster.apply(namespace, slow_flow("late", seconds=60), flowrun("late-1", "late", timeout="3s"))
    status = cluster.wait_phase("late-1", namespace, "Failed", "Succeeded", timeout=60)
    assert status["phase"] == "Failed"
    assert status["conditions"][0]["reason"] == "Timeout"
    assert "timeout (3s)" in status["message"]
    # The Job controller stopped the pod (Kubernetes does, past activeDeadlineSeconds); the operator
    # leaves the failed Job in place.
    job = cluster.get("job", "late-1-run", namespace)
    assert job is not None and not job["metadata"].get("deletionTimestamp")
    assert any(c["type"] == "Failed" and c["status"] == "True" for c in job["status"]["conditions"]), job["status"]


def test_finished_runs_are_deleted_after_their_ttl(cluster: Cluster, namespace: str) -> None:
    cluster.apply(namespace, slow_flow("ttl", seconds=0.1), flowrun("ttl-1", "ttl", ttlSecondsAfterFinished=1))
    cluster.wait_phase("ttl-1", namespace, "Succeeded")
    started = time.monotonic()
    cluster.wait_for(
        "the FlowRun to be deleted", lambda: cluster.get("flowrun", "ttl-1", namespace) is None, timeout=30
    )
    assert time.monotonic() - started < 30


def test_a_job_that_cannot_create_its_pod_fails(simulator_only: Cluster, namespace: str) -> None:
    """The borrowed account is deleted after the checks and before the Job's pod: the Job cannot
    create it (the ServiceAccount admission refuses it), and the run fails instead of waiting."""
    cluster = simulator_only
    cluster.sim.ensure_service_account(namespace, "short-lived")
    cluster.kubectl("label", "serviceaccount", "short-lived", "-n", namespace, "flowlib.dev/runner-access=true")
    cluster.apply(namespace, slow_flow("ident", seconds=0.1))
    # Holding the snapshot's creation back holds the Job back, long enough to delete the account.
    cluster.sim.faults.latency(4.0, "POST", f"/api/v1/namespaces/{namespace}/configmaps", times=1)
    cluster.apply(namespace, flowrun("ident-2", "ident", serviceAccountName="short-lived"))
    cluster.wait_for("the run's binding", lambda: cluster.get("rolebinding", "ident-2-runner", namespace))
    cluster.kubectl("delete", "serviceaccount", "short-lived", "-n", namespace)
    status = cluster.wait_phase("ident-2", namespace, "Failed", "Succeeded", timeout=90)
    assert status["conditions"][0]["reason"] == "PodCreationFailed", status
    assert "kubectl describe job ident-2-run" in status["message"]
