"""The CRDs as a cluster serves them: `kubectl explain` documents each field, printer columns show."""

from __future__ import annotations

from tests.operator.cluster import Cluster, flow, flowrun


def test_kubectl_explain_documents_every_flowrun_spec_field(cluster: Cluster) -> None:
    text = cluster.kubectl("explain", "flowrun.spec")
    for field in (
        "flowRef",
        "flow",
        "input",
        "params",
        "outputs",
        "cancel",
        "timeout",
        "retries",
        "image",
        "serviceAccountName",
        "env",
        "resources",
        "ttlSecondsAfterFinished",
    ):
        assert f"\n  {field}\t" in text, f"{field} missing from `kubectl explain flowrun.spec`:\n{text}"
    assert "Set exactly one of flowRef and flow" in text
    status = cluster.kubectl("explain", "flowrun.status.conditions")
    assert "Succeeded" in status


def test_printer_columns_and_short_names(cluster: Cluster, namespace: str) -> None:
    cluster.apply(namespace, flow("cols", {"nodes": {"a": {"run": {"python": "1"}}}}), flowrun("cols-1", "cols"))
    cluster.wait_phase("cols-1", namespace, "Succeeded")
    wide = cluster.kubectl("get", "fr", "-n", namespace, "-o", "wide")
    header, row = wide.splitlines()[:2]
    assert header.split() == [
        "NAME",
        "FLOW",
        "PHASE",
        "PROGRESS",
        "NODE",
        "AGE",
        "JOB",
        "POD",
        "DURATION",
        "DEFAULTS",
        "QUEUE",
    ]
    assert row.split()[:4] == ["cols-1", "cols", "Succeeded", "1/1"]
    flows = cluster.kubectl("get", "fl", "-n", namespace)
    assert flows.splitlines()[0].split() == ["NAME", "NODES", "READY", "AGE"]
    assert flows.splitlines()[1].split()[:3] == ["cols", "1", "True"]
    everything = cluster.kubectl("get", "flowlib", "-n", namespace, "-o", "name")
    assert {"flow.flowlib.dev/cols", "flowrun.flowlib.dev/cols-1"} <= set(everything.split())
