"""``type: approval``: a node that waits for a person to choose the action (the edge) it takes.

Why the run stops instead of waiting: a decision may take days, and a pod held that long costs a
pod. The node asks the run's ``ApprovalDesk`` (installed by the execution layer in ``APPROVALS``)
for the decision. The desk answers with an action, from a decision given beforehand (the FlowRun's
``spec.approvals``, ``flowctl run --approve``) or asked on a terminal, or answers ``timeout`` when
the node's ``timeout`` has passed since the run first stopped there; otherwise it raises
``SuspendRun``. That exception is a ``BaseException``, so no retry, error edge or item policy takes
it: it ends the walk, the runner checkpoints the run at this node and exits, and a later pod of the
run visits the node again, this time with a decision.

Where it cannot stop: inside a batch item or the ``finally`` node there is no position to resume
at, so the desk is absent there and the node fails saying so.
"""

from __future__ import annotations

from typing import Any

import flowlib
from flowlib_api.flowspec import ERROR_ACTION, NodeSpec

from ..problems import Problem, join_path
from ..templates import Template, template_problems
from . import BuildContext, ValidationContext
from .nodes import ParamsAndErrorEdge
from .pause import APPROVALS, TIMEOUT_ACTION, ApprovalError, ApprovalRequest


class _AskTheDesk(flowlib.AsyncNode):
    """The flowlib node of ``type: approval``: its action is the desk's decision."""

    message: Template | None = None
    actions: tuple[str, ...] = ()
    edges: tuple[str, ...] = ()
    approval_timeout: float | None = None
    params: dict[str, Any]

    async def _run_async(self, shared: Any) -> Any:
        from flowlib.context import current_path

        desk = APPROVALS.get()
        path = tuple(current_path()) or (self.name,)
        if desk is None:
            raise ApprovalError(
                f"approval node {'/'.join(path)} cannot wait here: inside a batch item, a parallel sub-flow or "
                "the finally node a run cannot stop and resume; put the approval on the flow's main line"
            )
        context = {"shared": shared, "params": self.params, "node": {"name": self.name, "type": "approval"}}
        message = self.message.render(context) if self.message is not None else None
        return desk.decide(ApprovalRequest(path, message, self.actions, self.approval_timeout, self.edges))


class ApprovalNode(ParamsAndErrorEdge, _AskTheDesk):
    """An approval node with the node's default params and its ``error`` edge (which takes an
    ``ApprovalError``: a timeout without a timeout edge, or an action the node has no edge for)."""


class ApprovalNodeFactory:
    """``type: approval`` (see the module docstring)."""

    type_name = "approval"
    batch = False

    def validate(self, name: str, node: NodeSpec, path: str, ctx: ValidationContext) -> list[Problem]:
        problems: list[Problem] = []
        for field, why in (
            ("run", "it runs nothing, it waits for a decision; put the work in the node before or after it"),
            ("batch", "it waits once, not per item"),
            ("flow", "only type flow runs a sub-flow"),
            ("retry", "there is nothing to retry"),
            ("output", "it writes nothing to shared"),
            ("action", "its action is the decision; name the actions as its next edges"),
        ):
            if getattr(node, field) is not None:
                problems.append(Problem(join_path(path, field), f"not supported on type approval: {why}"))
        if not node.next:
            problems.append(
                Problem(
                    join_path(path, "next"),
                    "an approval node needs at least one edge: the actions a person may choose, e.g. "
                    "next: {approve: deploy, reject: notify}",
                )
            )
        if TIMEOUT_ACTION in node.next and node.timeout is None:
            problems.append(
                Problem(
                    join_path(path, "next", TIMEOUT_ACTION),
                    "the timeout edge is taken when the node's timeout passes; set timeout (e.g. 24h) or remove it",
                    "warning",
                )
            )
        if node.approval is not None and node.approval.message is not None:
            for text in template_problems(node.approval.message):
                problems.append(Problem(join_path(path, "approval", "message"), text))
        return problems

    def build(self, name: str, node: NodeSpec, ctx: BuildContext) -> Any:
        built = ApprovalNode(name=name)
        message = node.approval.message if node.approval is not None else None
        built.message = Template(message, f"nodes.{name}.approval.message") if message else None
        built.edges = tuple(a for a in node.next if a != ERROR_ACTION)
        built.actions = tuple(a for a in built.edges if a != TIMEOUT_ACTION)
        built.approval_timeout = node.timeout
        built.param_defaults = dict(node.params or {})
        built.error_edge = ERROR_ACTION in node.next
        return built


__all__ = ["ApprovalNode", "ApprovalNodeFactory"]
