"""A FlowRun ``timeout`` past 8784h (366 days) is refused by every check, naming the field: the API
server (the CRD's pattern, for a number too long for an int64 deadline), the webhook, and the
operator without the webhook (before, the run stayed Pending: its Job could not exist)."""

from __future__ import annotations

import json

from flowlib_operator.admission import flowrun_problems

from tests.operator.cluster import Cluster, flowrun

QUICK = {"nodes": {"a": {"run": {"python": "1"}}}}
BOUND = "longer than the longest duration flowlib takes, 8784h (366 days)"


def test_the_api_server_refuses_a_timeout_no_int64_holds(simulator_only: Cluster, namespace: str) -> None:
    run = flowrun("huge", flow=QUICK, timeout="9" * 30 + "h")
    refused = simulator_only.try_kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(run))
    assert refused.returncode != 0 and "spec.timeout" in refused.stderr, refused.stderr
    assert simulator_only.get("flowrun", "huge", namespace) is None


def test_the_operator_refuses_a_timeout_past_the_bound(simulator_only: Cluster, namespace: str) -> None:
    cluster = simulator_only
    cluster.apply(namespace, flowrun("long", flow=QUICK, timeout="9000h"))
    status = cluster.wait_phase("long", namespace, "Failed", "Succeeded", timeout=30)
    assert status["phase"] == "Failed" and status["conditions"][0]["reason"] == "InvalidSpec", status
    assert status["message"] == f"invalid FlowRun: spec.timeout: '9000h' is {BOUND}", status
    assert cluster.get("job", "long-run", namespace) is None
    events = cluster.kubectl("get", "events", "-n", namespace, "--field-selector", "involvedObject.name=long")
    assert "InvalidSpec" in events


def test_the_webhook_refuses_a_timeout_past_the_bound() -> None:
    assert flowrun_problems(flowrun("long", flow=QUICK, timeout="9000h")) == [f"spec.timeout: '9000h' is {BOUND}"]
    assert flowrun_problems(flowrun("fine", flow=QUICK, timeout="8784h")) == []
