"""Typed params at the door (``admission``): an inline flow's params are checked with it, a
``flowRef`` run's against the Flow when the webhook found it; a missing Flow or a retry is left to
the operator (GitOps order; a retry's params may be its source's)."""

from __future__ import annotations

import json
from typing import Any

from flowlib_operator.admission import flowref_params_problems, flowrun_problems

from tests.operator import test_webhook
from tests.operator.cluster import Cluster, flow, flowrun

guarded_namespace = test_webhook.guarded_namespace
"""The webhook tests' fixture: a namespace whose Flows and FlowRuns go through the admission webhook."""

SPEC: dict[str, Any] = {
    "paramSchema": {"count": {"type": "integer", "required": True}},
    "nodes": {"a": {"run": {"python": "params['count']"}}},
}


def test_an_inline_run_with_bad_params_is_refused_naming_them() -> None:
    assert flowrun_problems(flowrun("r", flow=SPEC, params={"count": "3"})) == [
        'spec.params.count: expected an integer, got the string "3" (write 3 without quotes)'
    ]
    assert flowrun_problems(flowrun("r", flow=SPEC)) == [
        "spec.params.count: required by the flow (paramSchema.count) and not given: set spec.params.count"
    ]
    assert flowrun_problems(flowrun("r", flow=SPEC, params={"count": 3})) == []


def test_a_flowref_run_is_checked_against_the_flow_found() -> None:
    body = flowrun("r", "typed", params={"count": 1.5, "extra": 1})
    found = flowref_params_problems(body, flow("typed", SPEC))
    assert [p.split(":")[0] for p in found] == ["spec.params.extra", "spec.params.count"]
    assert flowref_params_problems(body, None) == []  # not there yet: accepted (GitOps order)
    retry = flowrun("r", "typed", retryOf="first", params={"count": "x"})
    assert (
        flowref_params_problems(retry, flow("typed", SPEC)) == []
    )  # the operator checks a retry (its params may be its source's)


def test_the_webhook_refuses_bad_params_of_a_flow_it_finds(simulator_only: Cluster, guarded_namespace: str) -> None:
    cluster = simulator_only
    early = flowrun("early", "later", params={"count": "x"})
    cluster.apply(guarded_namespace, early)  # its Flow does not exist yet: accepted (GitOps order)
    cluster.apply(guarded_namespace, flow("typed", SPEC))
    bad = flowrun("bad", "typed", params={"count": "3"})
    refused = cluster.try_kubectl("apply", "-n", guarded_namespace, "-f", "-", input=json.dumps(bad))
    assert refused.returncode != 0
    assert 'spec.params.count: expected an integer, got the string "3"' in refused.stderr, refused.stderr
    inline = flowrun("inline-bad", flow=SPEC)
    refused = cluster.try_kubectl("apply", "-n", guarded_namespace, "-f", "-", input=json.dumps(inline))
    assert "spec.params.count: required by the flow" in refused.stderr, refused.stderr
    assert [r["metadata"]["name"] for r in cluster.list("flowruns", guarded_namespace)] == ["early"]
