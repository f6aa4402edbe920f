"""A Secret's value never shows in a FlowRun's status, its Events or its pod log (issue 12, point 3).

The run takes a value from a Secret (``spec.env[].valueFrom.secretKeyRef``, labelled for runner
access), a python node prints it, and a shell node echoes it to stdout and stderr, then fails: the
stderr tail lands in the status message, the Warning Event and the log, each masked.
"""

from __future__ import annotations

import pytest

from tests.operator.cluster import Cluster, flowrun

pytestmark = [pytest.mark.kubesim, pytest.mark.slow]

SECRET = "op-s3cret-c41f9e"


def test_a_secret_is_masked_in_status_events_and_logs(cluster: Cluster, namespace: str) -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "api", "labels": {"flowlib.dev/runner-access": "true"}},
        "stringData": {"token": SECRET},
    }
    leaky = flowrun(
        "leaky-1",
        flow={
            "nodes": {
                "talk": {
                    "run": {"python": "print('printed', __import__('os').environ['TOKEN'])"},
                    "next": {"default": "fail"},
                },
                "fail": {"run": {"shell": 'echo said {{ env.TOKEN }}; echo "denied for $TOKEN" >&2; exit 7'}},
            }
        },
    )
    leaky["spec"]["env"] = [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "api", "key": "token"}}}]
    cluster.apply(namespace, secret, leaky)
    status = cluster.wait_phase("leaky-1", namespace, "Succeeded", "Failed", timeout=90)
    assert status["phase"] == "Failed", status
    assert SECRET not in str(status)
    assert status["message"].endswith("exited with status 7: denied for ***"), status
    events = [e for e in cluster.list("events", namespace) if e["involvedObject"]["name"] == "leaky-1"]
    assert SECRET not in str(events)
    assert any(e["reason"] == "Failed" and e["message"].endswith("denied for ***") for e in events), events
    log = cluster.kubectl("-n", namespace, "logs", f"job/{status['jobName']}")
    assert SECRET not in log
    for line in ("stdout: printed ***", "stdout: said ***", "stderr: denied for ***"):
        assert line in log, f"{line!r} missing from:\n{log}"
