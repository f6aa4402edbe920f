"""Typed params at the operator: a run whose params its Flow's ``spec.paramSchema`` refuses fails
before its Job exists, naming the param; a good one runs with the declared defaults applied."""

from __future__ import annotations

from tests.operator.cluster import Cluster, flow, flowrun

SCHEMA = {
    "count": {"type": "integer", "required": True, "minimum": 1},
    "mode": {"type": "string", "enum": ["fast", "slow"], "default": "fast"},
}
NODES = {"show": {"run": {"python": "[params['count'], params['mode']]"}, "output": "seen"}}


def test_bad_params_fail_at_once_and_a_default_reaches_the_node(cluster: Cluster, namespace: str) -> None:
    cluster.apply(
        namespace,
        flow("typed", {"paramSchema": SCHEMA, "nodes": NODES}),
        flowrun("typed-bad", "typed", params={"count": "20000", "mdoe": "slow"}),
        flowrun("typed-missing", "typed"),
        flowrun("typed-good", "typed", params={"count": 3}, outputs=["seen"]),
    )
    bad = cluster.wait_phase("typed-bad", namespace, "Succeeded", "Failed")
    assert bad["phase"] == "Failed", bad
    assert bad["conditions"][0]["reason"] == "InvalidParams", bad
    assert 'spec.params.count: expected an integer, got the string "20000"' in bad["message"], bad
    assert "spec.params.mdoe: not declared by the flow" in bad["message"], bad
    missing = cluster.wait_phase("typed-missing", namespace, "Succeeded", "Failed")
    assert missing["conditions"][0]["reason"] == "InvalidParams", missing
    assert "spec.params.count: required by the flow" in missing["message"], missing
    good = cluster.wait_phase("typed-good", namespace, "Succeeded", "Failed")
    assert good["phase"] == "Succeeded", good
    assert good["output"] == {"seen": [3, "fast"]}
    jobs = [j["metadata"]["name"] for j in cluster.list("jobs", namespace)]
    assert jobs == ["typed-good-run"], jobs  # the refused runs never got a Job
    events = {e["reason"] for e in cluster.list("events", namespace) if e["involvedObject"].get("name") == "typed-bad"}
    assert "InvalidParams" in events


def test_a_retry_is_checked_with_the_params_it_runs_with(cluster: Cluster, namespace: str) -> None:
    source = flowrun("first", "typed", params={"count": 3}, outputs=["seen"])
    source["metadata"]["labels"] = {"flowlib.dev/runner-access": "true"}  # opened to retries (no webhook)
    cluster.apply(namespace, flow("typed", {"paramSchema": SCHEMA, "nodes": NODES}), source)
    assert cluster.wait_phase("first", namespace, "Succeeded", "Failed")["phase"] == "Succeeded"
    cluster.apply(
        namespace,
        flowrun("again-bad", retryOf="first", resubmit=True, params={"mode": "quick"}),
        flowrun("again-same", retryOf="first", resubmit=True),
    )
    bad = cluster.wait_phase("again-bad", namespace, "Succeeded", "Failed")
    assert bad["conditions"][0]["reason"] == "InvalidParams", bad
    assert 'spec.params.mode: must be one of fast, slow; got "quick"' in bad["message"], bad
    assert "spec.params.count: required by the flow" in bad["message"], bad  # own params replace the source's
    same = cluster.wait_phase("again-same", namespace, "Succeeded", "Failed")
    assert same["phase"] == "Succeeded", same
    assert same["output"] == {"seen": [3, "fast"]}  # the source's params and outputs, the declared default


def test_kubectl_explain_documents_the_param_schema(cluster: Cluster) -> None:
    text = cluster.kubectl("explain", "flow.spec.paramSchema")
    assert "The params the flow declares" in text, text
    for field in ("type", "default", "enum", "required", "minimum", "maximum", "pattern", "minLength", "maxLength"):
        assert f"\n  {field}\t" in text, f"{field} missing from `kubectl explain flow.spec.paramSchema`:\n{text}"
