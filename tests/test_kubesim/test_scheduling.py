"""The simulator's scheduler filters as the kube-scheduler documents them (``tests/kubesim/scheduling.py``)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.kubesim.scheduling import place, selects, untolerated_taint


def _node(name: str, labels: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels or {}}, "spec": spec}


def _pod(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "p"}, "spec": spec}


def _required(*expressions: dict[str, Any]) -> dict[str, Any]:
    term = {"matchExpressions": list(expressions)}
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}}


@pytest.mark.parametrize(
    ("expression", "admitted"),
    [
        ({"key": "zone", "operator": "In", "values": ["a", "b"]}, True),
        ({"key": "zone", "operator": "In", "values": ["c"]}, False),
        ({"key": "zone", "operator": "NotIn", "values": ["c"]}, True),
        ({"key": "gpu", "operator": "NotIn", "values": ["x"]}, True),
        ({"key": "zone", "operator": "Exists"}, True),
        ({"key": "gpu", "operator": "Exists"}, False),
        ({"key": "gpu", "operator": "DoesNotExist"}, True),
        ({"key": "cores", "operator": "Gt", "values": ["8"]}, True),
        ({"key": "cores", "operator": "Lt", "values": ["8"]}, False),
        ({"key": "zone", "operator": "Gt", "values": ["1"]}, False),
    ],
)
def test_required_node_affinity_operators(expression: dict[str, Any], admitted: bool) -> None:
    node = _node("n", {"zone": "a", "cores": "16"})
    assert selects(_pod(affinity=_required(expression)), node) is admitted


def test_terms_are_ored_and_an_empty_term_matches_nothing() -> None:
    node = _node("n", {"zone": "a"})
    terms = [
        {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]},
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n"]}]},
    ]
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}
    assert selects(_pod(affinity=affinity), node)
    empty = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{}]}}}
    assert not selects(_pod(affinity=empty), node)


def test_taints_need_a_matching_toleration_except_prefer_no_schedule() -> None:
    taint = {"key": "dedicated", "value": "batch", "effect": "NoSchedule"}
    node = _node("n", taints=[taint, {"key": "soft", "effect": "PreferNoSchedule"}])
    assert untolerated_taint(_pod(), node) == taint
    for toleration in (
        {"key": "dedicated", "value": "batch", "effect": "NoSchedule"},
        {"key": "dedicated", "operator": "Exists"},
        {"operator": "Exists"},
    ):
        assert untolerated_taint(_pod(tolerations=[toleration]), node) is None, toleration
    for toleration in (
        {"key": "dedicated", "value": "other"},
        {"key": "dedicated", "value": "batch", "effect": "NoExecute"},
        {"key": "other", "operator": "Exists"},
    ):
        assert untolerated_taint(_pod(tolerations=[toleration]), node) == taint, toleration
    cordoned = _node("c", unschedulable=True)
    assert untolerated_taint(_pod(), cordoned) == {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}


def test_place_takes_a_feasible_node_or_counts_the_reasons() -> None:
    nodes = [
        _node("a", {"pool": "web"}),
        _node("b", {"pool": "batch"}, taints=[{"key": "dedicated", "value": "batch", "effect": "NoSchedule"}]),
    ]
    assert place(_pod(), nodes) == ("a", "")
    node, why = place(_pod(nodeSelector={"pool": "batch"}), nodes)
    assert node is None
    assert why.startswith(
        "0/2 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, "
        "1 node(s) had untolerated taint {dedicated: batch}."
    )
    tolerated = _pod(nodeSelector={"pool": "batch"}, tolerations=[{"key": "dedicated", "operator": "Exists"}])
    assert place(tolerated, nodes) == ("b", "")
