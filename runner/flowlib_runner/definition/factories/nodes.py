"""The flowlib node classes that YAML nodes become.

Each class is a flowlib async node plus ``SpecBehaviour``: prep/exec/post delegate to the node's
``Code`` (from its run kind), exec's result goes to ``shared[output]``, the ``action`` template picks
the next edge, and a node with an ``error`` edge turns its final failure into that edge with
``shared["error"] = {"node", "type", "message"}``. The factory builds each node from a subclass
made for it (``specialise.py``), which carries those methods. Class names show up as the ``kind``
of flowlib's ``NodeStarted`` events; ``node_type`` holds the YAML type.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import flowlib
from flowlib_api.flowspec import DEFAULT_ACTION, ERROR_ACTION

from ..runkinds import Code
from ..runkinds.python import NodeInfo
from ..templates import Template


class ItemsError(RuntimeError):
    """``batch.items`` does not lead to a list of items in the shared store."""


def resolve_items(shared: Any, path: str, where: str) -> Iterable[Any]:
    """Follow a dotted path (dict keys, list indexes) into the shared store to the batch items."""
    value = shared
    walked: list[str] = []
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list | tuple) and part.lstrip("-").isdigit() and -len(value) <= int(part) < len(value):
            value = value[int(part)]
        else:
            at = ".".join(walked) or "the shared store"
            keys = f"; it has: {', '.join(sorted(map(str, value)))}" if isinstance(value, dict) else ""
            raise ItemsError(f"{where}: {at} has no '{part}'{keys}")
        walked.append(part)
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise ItemsError(f"{where}: '{path}' is a {type(value).__name__}, not a list of items")
    return value


def error_info(node: Any, exc: BaseException) -> dict[str, str]:
    """What ``shared["error"]`` says about a failure that took the ``error`` edge."""
    return {
        "node": str(getattr(node, "name", type(node).__name__)),
        "type": type(exc).__name__,
        "message": str(exc),
    }


class ParamsAndErrorEdge:
    """Default params under the incoming ones, and the ``error`` edge. Shared with user Node classes."""

    name: str
    param_defaults: dict[str, Any] = {}  # noqa: RUF012 (replaced per instance, never mutated)
    error_edge = False

    def set_params(self, params: dict[str, Any]) -> None:
        merged = {**self.param_defaults, **params} if self.param_defaults else params
        super().set_params(merged)  # type: ignore[misc]

    async def _run_async(self, shared: Any) -> Any:
        try:
            return await super()._run_async(shared)  # type: ignore[misc]
        except Exception as exc:
            if not self.error_edge:
                raise
            shared["error"] = error_info(self, exc)
            return ERROR_ACTION

    def _run(self, shared: Any) -> Any:
        try:
            return super()._run(shared)  # type: ignore[misc]
        except Exception as exc:
            if not self.error_edge:
                raise
            shared["error"] = error_info(self, exc)
            return ERROR_ACTION


class SpecBehaviour(ParamsAndErrorEdge):
    """The state of a node generated from a spec; its prep/exec/post come from ``specialise.py``.

    prep keeps the shared store (``shared``) and a ``NodeInfo`` snapshot (``node_info``) for the
    visit when the code or a template reads them, then runs the code's prep, or resolves
    ``batch.items`` (batch nodes); exec runs the code's exec (nothing is stored when the code has
    none); post stores exec's result under ``output``, runs the code's post, then renders the
    ``action`` template, which wins over post's action. ``error_edge`` comes from
    ``ParamsAndErrorEdge``, and the code's ``visit_context`` is set for the whole visit.
    """

    code: Code = Code()
    node_type = "base"
    output: str | None = None
    action_template: Template | None = None
    items_path: str | None = None
    is_batch = False
    shared: dict[str, Any]
    params: dict[str, Any]
    node_info: NodeInfo | None = None

    def template_context(self, item: Any = None) -> dict[str, Any]:
        return {
            "shared": self.shared,
            "params": self.params,
            "item": item,
            "node": {"name": self.name, "type": self.node_type},
        }


class YamlNode(SpecBehaviour, flowlib.AsyncNode):
    """type: base."""


class YamlBatchNode(SpecBehaviour, flowlib.AsyncBatchNode):
    """type: batch and async_batch: items one after another."""

    is_batch = True


class YamlParallelBatchNode(SpecBehaviour, flowlib.AsyncParallelBatchNode):
    """type: parallel_batch: every item at once, or at most ``max_parallel`` when set."""

    is_batch = True
    max_parallel: int | None = None

    async def _exec(self, items: Any) -> Any:  # type: ignore[override]
        self._limit = asyncio.Semaphore(self.max_parallel) if self.max_parallel else None
        return await super()._exec(items)

    async def _exec_item_async(self, prep_res: Any, index: int | None, stats: Any) -> Any:
        if self._limit is None:
            return await super()._exec_item_async(prep_res, index, stats)
        async with self._limit:
            return await super()._exec_item_async(prep_res, index, stats)


class YamlWorkerPoolBatchNode(SpecBehaviour, flowlib.WorkerPoolBatchNode):
    """type: worker_pool (worker_pool_batch): at most ``max_parallel`` items in flight."""

    is_batch = True


class SubFlowBehaviour(ParamsAndErrorEdge):
    """type: flow: the sub-flow's own params are defaults under those passed in.

    The action is the ``action`` template if set; otherwise the sub-flow's last action when this
    node has an edge for it, else ``default`` (so a sub-flow ending on, say, ``done`` does not end
    the parent flow by surprise).
    """

    node_type = "flow"
    action_template: Template | None = None
    items_path: str | None = None
    successors: dict[str, Any]
    params: dict[str, Any]

    async def prep_async(self, shared: Any) -> Any:
        self.shared = shared
        if self.items_path is None:
            return None
        items = resolve_items(shared, self.items_path, f"nodes.{self.name}.batch.items")
        return [item if isinstance(item, dict) else {"item": item} for item in items]

    async def post_async(self, shared: Any, prep_res: Any, exec_res: Any) -> Any:
        if self.action_template is not None:
            context = {"shared": shared, "params": self.params, "item": None, "result": exec_res}
            context["node"] = {"name": self.name, "type": self.node_type}
            return self.action_template.render(context).strip() or None
        if isinstance(exec_res, str) and exec_res in self.successors:
            return exec_res
        return DEFAULT_ACTION


class YamlSubFlow(SubFlowBehaviour, flowlib.AsyncFlow):
    """type: flow without batch."""


class YamlBatchFlow(SubFlowBehaviour, flowlib.AsyncBatchFlow):
    """type: flow with batch: the sub-flow runs once per item, one after another."""


class YamlParallelBatchFlow(SubFlowBehaviour, flowlib.AsyncParallelBatchFlow):
    """type: flow with batch.maxParallel > 1: sub-flow runs at once, at most maxParallel of them."""

    max_parallel: int = 1

    async def _run_async(self, shared: Any) -> Any:
        self._limit = asyncio.Semaphore(self.max_parallel)
        return await super()._run_async(shared)

    async def _orch_async(self, shared: Any, params: dict[str, Any] | None = None) -> Any:
        async with self._limit:
            return await super()._orch_async(shared, params)
