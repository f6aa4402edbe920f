"""Approval nodes on the simulator: a run stops at one (Suspended, no pod kept), goes on in a new pod
once a decision is given (flowctl approve, or an entry added to spec.approvals as a GitOps change
would), along the chosen edge, and takes its timeout edge when nobody decides in time.

The nodes report what ran to the test's HTTP witness (``test_durable_runs``), so "the node before
the approval ran once" is a count.
"""

from __future__ import annotations

import pytest

from tests.flowctl.test_cluster import flowctl
from tests.operator.cluster import Cluster, flow, flowrun
from tests.operator.test_durable_runs import REPORT, WAIT, Witness, witness

__all__ = ["witness"]  # the fixture, used by name
CLEARED = '{"spec": {"approvals": []}}'


def say(what: str) -> dict[str, str]:
    return {"python": REPORT + f"def exec(prep_res):\n    said({what!r})\n    return {what!r}\n"}


GATED = {
    "nodes": {
        "build": {"run": say("build"), "next": {"default": "gate"}},
        "gate": {
            "type": "approval",
            "approval": {"message": "deploy {{ shared.build }}?"},
            "next": {"approve": "deploy", "reject": "stop", "timeout": "expired"},
        },
        "deploy": {"run": say("deploy")},
        "stop": {"run": say("stop")},
        "expired": {"run": say("expired")},
    }
}


def pods(cluster: Cluster, namespace: str, run: str) -> list[str]:
    return [p["metadata"]["name"] for p in cluster.list("pod", namespace, f"flowlib.dev/flowrun={run}")]


def suspended(cluster: Cluster, namespace: str, run: str) -> dict[str, object]:
    status = cluster.wait_phase(run, namespace, "Suspended", "Succeeded", "Failed", timeout=WAIT)
    assert status["phase"] == "Suspended", status
    # No pod is kept while it waits: its Job is deleted, and the pod with it.
    cluster.wait_for("the suspended run's pods to be gone", lambda: not pods(cluster, namespace, run), timeout=WAIT)
    assert cluster.get("job", f"{run}-run", namespace) is None
    return status


@pytest.mark.parametrize("how", ["flowctl", "manifest"])
def test_an_approval_suspends_the_run_and_the_decision_resumes_it(
    simulator_only: Cluster, namespace: str, witness: Witness, how: str
) -> None:
    cluster = simulator_only
    gated = {**GATED, "params": {"base": witness.base}}
    cluster.apply(namespace, flow("gated", gated), flowrun("rel", "gated"))
    status = suspended(cluster, namespace, "rel")
    waiting = status["suspended"]
    assert isinstance(waiting, dict)
    assert waiting["node"] == "gate"
    assert waiting["message"] == "deploy build?"
    assert waiting["actions"] == ["approve", "reject"]
    assert status["nodes"]["gate"]["phase"] == "Waiting"  # type: ignore[index]
    assert witness.said == ["build"]
    if how == "flowctl":
        followed = flowctl(cluster, "logs", "-f", "rel", "-n", namespace)  # returns: nothing more comes
        assert "rel is Suspended at gate: deploy build?" in followed.stderr, followed.stderr
        assert "flowctl approve rel --action approve|reject" in followed.stderr
    action = "approve" if how == "flowctl" else "reject"
    if how == "flowctl":
        done = flowctl(cluster, "approve", "rel", "--action", action, "-n", namespace)
        assert done.returncode == 0, done.stderr
        assert "resumes in a new pod" in done.stdout
    else:
        patch = '{"spec": {"approvals": [{"node": "gate", "action": "reject", "by": "gitops"}]}}'
        cluster.kubectl("patch", "flowrun", "rel", "-n", namespace, "--type", "merge", "-p", patch)
    final = cluster.wait_phase("rel", namespace, "Succeeded", "Failed", timeout=WAIT)
    assert final["phase"] == "Succeeded", final
    assert witness.said == ["build", "deploy" if action == "approve" else "stop"]  # build ran once
    assert final["attempt"] == 2
    assert final["jobName"] == "rel-run-2"
    assert "suspended" not in final
    assert final["nodes"]["gate"]["action"] == action
    log = cluster.kubectl("logs", "-n", namespace, "job/rel-run-2")
    assert f"approval: action '{action}'" in log, log
    if how == "manifest":
        # Decisions are a record: they may be added, never changed or removed.
        with pytest.raises(AssertionError, match="entries may be added, not changed or removed"):
            cluster.kubectl("patch", "flowrun", "rel", "-n", namespace, "--type", "merge", "-p", CLEARED)


def test_an_approval_nobody_gives_takes_the_timeout_edge(
    simulator_only: Cluster, namespace: str, witness: Witness
) -> None:
    cluster = simulator_only
    gated = {**GATED, "params": {"base": witness.base}}
    gated["nodes"] = {**GATED["nodes"], "gate": {**GATED["nodes"]["gate"], "timeout": "3s"}}
    cluster.apply(namespace, flow("gated", gated), flowrun("late", "gated"))
    status = suspended(cluster, namespace, "late")
    assert status["suspended"]["deadline"]  # type: ignore[index]
    final = cluster.wait_phase("late", namespace, "Succeeded", "Failed", timeout=WAIT)
    assert final["phase"] == "Succeeded", final
    assert witness.said == ["build", "expired"]
    assert final["nodes"]["gate"]["action"] == "timeout"
