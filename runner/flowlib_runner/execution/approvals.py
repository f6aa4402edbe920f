"""The run's ``ApprovalDesk``: where approval nodes get their decisions, locally and in a pod.

Decisions come, in this order, from:

1. those given beforehand (the FlowRun's ``spec.approvals``, ``flowctl run --approve NODE=ACTION``),
   consumed in order per node: the node's first visit takes the first entry naming it, the next
   visit the next entry. How many a node took is kept in the run's checkpoint (``used``), so a
   resumed run never takes one twice;
2. the node's timeout: past ``since + timeout`` (``since``: when the run first stopped at this
   visit, from the checkpoint), the node takes its ``timeout`` edge, or fails without one;
3. a person at a terminal (``ask``, for ``flowctl run`` on a TTY);
4. otherwise the run stops (``SuspendRun``) when it can be resumed (it has a store), and the node
   fails with a message saying how to decide when it cannot.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from flowlib_api.flowspec import DEFAULT_ACTION
from flowlib_api.times import human_duration, rfc3339_millis
from flowlib_runner.definition.factories.pause import TIMEOUT_ACTION, ApprovalError, ApprovalRequest, SuspendRun

CLOCK_SKEW = 2.0
"""Seconds before its deadline at which an approval counts as timed out: the operator starts the
pod that takes the timeout edge once its own clock says the deadline passed, and the pod's clock
may be a little behind; without this margin that pod would stop at the node again."""

Ask = Callable[[ApprovalRequest], str | None]
"""Asks a person for the action (None: no answer, the run stops)."""


@dataclass
class Approvals:
    """The desk of one run (see the module docstring)."""

    given: Sequence[Mapping[str, Any]] = ()
    used: dict[str, int] = field(default_factory=dict)
    """Node path -> how many given decisions it took (kept in the checkpoint)."""
    cumulative: bool = True
    """Whether ``given`` holds every decision of the run since it started (``spec.approvals``), or
    only this invocation's (``--approve``: its first entry for a node is that node's next decision)."""
    waiting: Mapping[str, Any] | None = None
    """The suspension this run resumes from (``{"node", "since", ...}``), if any."""
    suspensions: int = 0
    """How many times the run was suspended before."""
    ask: Ask | None = None
    can_suspend: bool = True
    hint: str = "give the decision with --approve NODE=ACTION"
    clock: Callable[[], float] = time.time
    suspended: dict[str, Any] | None = None
    """Set when the run stops: what ``status.suspended`` and the checkpoint record."""
    tell: Callable[[str, str], None] | None = None
    """Told (node, text) of each decision taken, for the run log."""
    _before: dict[str, int] = field(default_factory=dict)

    def decide(self, request: ApprovalRequest) -> str:
        node = request.node
        used = self.used.get(node, 0)
        entries = [g for g in self.given if g.get("node") == node]
        index = used if self.cumulative else used - self._before.get(node, 0)
        if len(entries) > index:
            entry = entries[index]
            action = str(entry.get("action") or DEFAULT_ACTION)
            self.used[node] = used + 1
            self._check(request, action, f"approval {used + 1} for {node}")
            by = f" by {entry['by']}" if entry.get("by") else ""
            self._told(node, f"approval: action {action!r} (decision {used + 1} given for this node{by})")
            return action
        waiting = self.waiting if self.waiting is not None and self.waiting.get("node") == node else None
        since = float(waiting["since"]) if waiting is not None else self.clock()
        deadline = since + request.timeout if request.timeout is not None else None
        if deadline is not None and self.clock() >= deadline - CLOCK_SKEW:
            waited = human_duration(request.timeout or 0.0)
            if TIMEOUT_ACTION in request.edges:
                self._told(node, f"approval: no decision within {waited}; taking the timeout edge")
                return TIMEOUT_ACTION
            raise ApprovalError(
                f"approval node {node} got no decision within its timeout ({waited}); add a timeout edge "
                "(next: {timeout: NODE}) to go on without one"
            )
        if self.ask is not None:
            answer = self.ask(request)
            if answer is not None:
                self._check(request, answer, "the answer")
                self._told(node, f"approval: action {answer!r} (answered on the terminal)")
                return answer
        if not self.can_suspend:
            raise ApprovalError(f"approval node {node} needs a decision and this run cannot wait for one: {self.hint}")
        self.suspended = {
            "node": node,
            "message": request.message,
            "actions": list(request.actions),
            "since": since,
            "deadline": deadline,
            "count": self.suspensions + 1,
            "taken": used,
        }
        raise SuspendRun(request, since=since, deadline=deadline)

    def resume(self, meta: Mapping[str, Any]) -> None:
        """Take up where the run's checkpoint ``meta`` left the desk."""
        self.used = {str(k): int(v) for k, v in (meta.get("approvals") or {}).items()}
        self._before = dict(self.used)
        self.waiting = meta.get("suspended")
        self.suspensions = int(meta.get("suspensions") or 0)

    def _told(self, node: str, text: str) -> None:
        if self.tell is not None:
            self.tell(node, text)

    def checkpoint_meta(self) -> dict[str, Any]:
        """What a checkpoint keeps of the desk: decisions taken per node, and the suspension."""
        return {
            "approvals": dict(self.used),
            "suspended": None if self.suspended is None else dict(self.suspended),
            "suspensions": self.suspensions + (1 if self.suspended is not None else 0),
        }

    @staticmethod
    def _check(request: ApprovalRequest, action: str, what: str) -> None:
        if action not in request.edges:
            choices = ", ".join(request.actions) or "none"
            raise ApprovalError(
                f"{what} chose action {action!r}, which approval node {request.node} has no edge for; "
                f"its actions: {choices}"
            )

    def status(self) -> dict[str, Any] | None:
        """``status.suspended`` for the run that stopped (None: it did not)."""
        if self.suspended is None:
            return None
        s = self.suspended
        return {
            "node": s["node"],
            "message": s["message"],
            "actions": s["actions"],
            "since": rfc3339_millis(s["since"]),
            "deadline": None if s["deadline"] is None else rfc3339_millis(s["deadline"]),
            "count": s["count"],
            "taken": s["taken"],
        }


def parse_decisions(texts: Sequence[str]) -> list[dict[str, Any]]:
    """``--approve NODE=ACTION`` (or ``NODE`` alone: the default action) as given decisions."""
    decisions: list[dict[str, Any]] = []
    for text in texts:
        node, _, action = text.partition("=")
        if not node.strip():
            raise ValueError(f"--approve {text!r}: expected NODE=ACTION (e.g. --approve gate=approve)")
        decisions.append({"node": node.strip(), "action": action.strip() or DEFAULT_ACTION, "by": "--approve"})
    return decisions


__all__ = ["CLOCK_SKEW", "Approvals", "Ask", "parse_decisions"]
