"""A Flow's history on the simulator with the real operator: the oldest finished runs beyond
``spec.history`` (or the operator's ``--history-succeeded``/``--history-failed``) are deleted, and
nothing else is (runs of other Flows, inline runs, runs still going)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.operator.cluster import Cluster, flow, flowrun, own_operator

# fail=1 divides by zero: one Flow whose runs succeed or fail by a param.
MAYBE = {"params": {"fail": 0}, "nodes": {"a": {"run": {"python": "1 // (1 - params['fail'])"}}}}
QUICK = {"nodes": {"a": {"run": {"python": "1"}}}}


def _names(cluster: Cluster, namespace: str) -> set[str]:
    return {r["metadata"]["name"] for r in cluster.list("flowrun", namespace)}


def _settled(cluster: Cluster, namespace: str, expected: set[str]) -> set[str]:
    """Wait until exactly ``expected`` FlowRuns are left in ``namespace``."""

    def left() -> set[str] | None:
        names = _names(cluster, namespace)
        return names if names == expected else None

    found: set[str] = cluster.wait_for(f"only {sorted(expected)} to be left", left)
    return found


def _finish(cluster: Cluster, namespace: str, runs: dict[str, str]) -> None:
    for name, phase in runs.items():
        cluster.wait_phase(name, namespace, phase)


def test_the_oldest_runs_beyond_the_flows_history_are_deleted(cluster: Cluster, namespace: str) -> None:
    cluster.apply(
        namespace,
        flow("maybe", {**MAYBE, "history": {"succeeded": 2, "failed": 1}}),
        flow("other", QUICK),
    )
    # Applied together they share a creation second: the name breaks the tie (s1 is the oldest).
    cluster.apply(
        namespace,
        *(flowrun(f"s{i}", "maybe") for i in range(1, 5)),
        *(flowrun(f"f{i}", "maybe", params={"fail": 1}) for i in range(1, 3)),
        flowrun("other-1", "other"),
        flowrun("inline-1", flow=QUICK),
    )
    _settled(cluster, namespace, {"s3", "s4", "f2", "other-1", "inline-1"})
    for name in ("s3", "s4", "f2"):
        body = cluster.get("flowrun", name, namespace)
        assert body is not None and body["metadata"]["labels"]["flowlib.dev/flow"] == "maybe"
    assert cluster.run_status("f2", namespace)["phase"] == "Failed"
    events = cluster.list("events", namespace, None)
    said = [e["message"] for e in events if e.get("reason") == "DeletedRuns" and e["involvedObject"]["name"] == "maybe"]
    assert said and all("succeeded 2, failed 1" in m for m in said)
    assert {"s1", "s2", "f1"} <= {n for m in said for n in m.split(": ", 1)[1].split(", ")}

    # A retry of a failed run is one more run of the Flow: it fails again, and is the one kept.
    cluster.kubectl("label", "flowrun", "f2", "-n", namespace, "flowlib.dev/runner-access=true")
    cluster.apply(namespace, {**flowrun("f2-retry"), "spec": {"retryOf": "f2"}})
    cluster.wait_phase("f2-retry", namespace, "Failed")
    _settled(cluster, namespace, {"s3", "s4", "f2-retry", "other-1", "inline-1"})

    # Lowering the Flow's limit applies at once to the runs already there.
    cluster.kubectl(
        "patch", "flow", "maybe", "-n", namespace, "--type=merge", "-p", '{"spec":{"history":{"succeeded":0}}}'
    )
    _settled(cluster, namespace, {"f2-retry", "other-1", "inline-1"})


def test_an_inline_flow_cannot_ask_for_a_history(cluster: Cluster, namespace: str) -> None:
    body = flowrun("inline-history", flow={**QUICK, "history": {"succeeded": 1}})
    refused = cluster.try_kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(body))
    assert refused.returncode != 0
    assert "spec.flow.history: an inline flow has no other runs" in refused.stderr


@pytest.fixture
def own(kubesim: Any, tmp_path: Path) -> Iterator[Cluster]:
    with own_operator(kubesim, tmp_path) as cluster:
        yield cluster


def test_the_operators_default_applies_where_the_flow_says_nothing_also_after_a_restart(
    own: Cluster,
) -> None:
    cluster, operator = own, own.operator
    assert operator is not None
    namespace = "team"
    cluster.kubectl("create", "namespace", namespace)
    cluster.apply(namespace, flow("maybe", MAYBE), flow("keeps", {**QUICK, "history": {"succeeded": 2}}))
    runs = {f"m{i}": "Succeeded" for i in range(1, 4)} | {"m-bad": "Failed"}
    runs |= {f"k{i}": "Succeeded" for i in range(1, 4)}
    cluster.apply(
        namespace,
        *(flowrun(name, "maybe" if name.startswith("m") else "keeps") for name in runs if name != "m-bad"),
        flowrun("m-bad", "maybe", params={"fail": 1}),
    )
    _finish(cluster, namespace, {name: phase for name, phase in runs.items() if name != "k1"})  # k1: deleted
    # Without the operator's default only "keeps" is limited.
    _settled(cluster, namespace, set(runs) - {"k1"})

    operator.extra_args = ["--history-succeeded", "1", "--history-failed", "0"]
    operator.stop()
    operator.start()  # found finished at start: the runs already there are pruned too
    _settled(cluster, namespace, {"m3", "k2", "k3"})
