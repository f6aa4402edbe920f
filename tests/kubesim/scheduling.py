"""The scheduler's filters: which nodes a pod may be bound to.

Follows the kube-scheduler's filter plugins as documented in
https://kubernetes.io/docs/concepts/scheduling-eviction/assign-pod-node/ (``nodeSelector``,
required node affinity with ``In``/``NotIn``/``Exists``/``DoesNotExist``/``Gt``/``Lt`` and
``matchFields`` on ``metadata.name``) and
https://kubernetes.io/docs/concepts/scheduling-eviction/taint-and-toleration/ (``NoSchedule`` and
``NoExecute`` taints must be tolerated, ``PreferNoSchedule`` only steers; a cordoned node,
``spec.unschedulable``, carries ``node.kubernetes.io/unschedulable:NoSchedule``). A pod no node
admits stays Pending with ``PodScheduled=False``/``Unschedulable`` and a ``FailedScheduling``
Event whose message counts the nodes by reason, as the scheduler's does. Scoring, resources and
inter-pod affinity are not simulated: among feasible nodes the first by name is taken.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

JSON = dict[str, Any]
UNSCHEDULABLE_TAINT = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}


def _tolerates(toleration: JSON, taint: JSON) -> bool:
    if toleration.get("effect") and toleration["effect"] != taint.get("effect"):
        return False
    operator = toleration.get("operator") or "Equal"
    if not toleration.get("key"):
        return operator == "Exists"
    if toleration["key"] != taint.get("key"):
        return False
    return operator == "Exists" or (toleration.get("value") or "") == (taint.get("value") or "")


def untolerated_taint(pod: JSON, node: JSON) -> JSON | None:
    """The first ``NoSchedule``/``NoExecute`` taint of ``node`` that ``pod`` does not tolerate."""
    taints = list((node.get("spec") or {}).get("taints") or [])
    if (node.get("spec") or {}).get("unschedulable"):
        taints.append(UNSCHEDULABLE_TAINT)
    tolerations = (pod.get("spec") or {}).get("tolerations") or []
    for taint in taints:
        if taint.get("effect") not in ("NoSchedule", "NoExecute"):
            continue
        if not any(_tolerates(t, taint) for t in tolerations):
            return taint
    return None


def _expression_holds(expression: JSON, values: dict[str, str]) -> bool:
    key, operator = expression.get("key"), expression.get("operator")
    wanted = [str(v) for v in expression.get("values") or []]
    present = key in values
    if operator == "In":
        return present and values[key] in wanted
    if operator == "NotIn":
        return not present or values[key] not in wanted
    if operator == "Exists":
        return present
    if operator == "DoesNotExist":
        return not present
    if operator in ("Gt", "Lt") and present and len(wanted) == 1:
        try:
            have, bound = int(values[key]), int(wanted[0])
        except ValueError:
            return False
        return have > bound if operator == "Gt" else have < bound
    return False


def _term_holds(term: JSON, node: JSON) -> bool:
    labels = node["metadata"].get("labels") or {}
    fields = {"metadata.name": node["metadata"]["name"]}
    expressions = term.get("matchExpressions") or []
    field_expressions = term.get("matchFields") or []
    if not expressions and not field_expressions:
        return False  # an empty term matches no node
    return all(_expression_holds(e, labels) for e in expressions) and all(
        _expression_holds(e, fields) for e in field_expressions
    )


def selects(pod: JSON, node: JSON) -> bool:
    """Whether the pod's ``nodeSelector`` and required node affinity admit ``node``."""
    spec = pod.get("spec") or {}
    labels = node["metadata"].get("labels") or {}
    if any(labels.get(k) != v for k, v in (spec.get("nodeSelector") or {}).items()):
        return False
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    )
    if not required:
        return True
    return any(_term_holds(term, node) for term in required.get("nodeSelectorTerms") or [])


def _reason(pod: JSON, node: JSON) -> str | None:
    if not selects(pod, node):
        return "node(s) didn't match Pod's node affinity/selector"
    taint = untolerated_taint(pod, node)
    if taint is not None:
        value = f": {taint['value']}" if taint.get("value") else ""
        return f"node(s) had untolerated taint {{{taint.get('key')}{value}}}"
    return None


def place(pod: JSON, nodes: list[JSON]) -> tuple[str | None, str]:
    """The node to bind ``pod`` to, or None and the scheduler's message saying why none fits."""
    reasons: Counter[str] = Counter()
    for node in sorted(nodes, key=lambda n: n["metadata"]["name"]):
        reason = _reason(pod, node)
        if reason is None:
            return node["metadata"]["name"], ""
        reasons[reason] += 1
    counted = ", ".join(f"{count} {reason}" for reason, count in sorted(reasons.items()))
    total = len(nodes)
    message = f"0/{total} nodes are available: {counted}." if counted else f"0/{total} nodes are available."
    return (
        None,
        f"{message} preemption: 0/{total} nodes are available: {total} Preemption is not helpful for scheduling.",
    )
