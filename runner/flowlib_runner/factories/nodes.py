"""The flowlib node classes that YAML nodes become.

Each class is a flowlib async node plus ``SpecBehaviour``: prep/exec/post delegate to the node's
``Code`` (from its run kind), exec's result goes to ``shared[output]``, the ``action`` template picks
the next edge, and a node with an ``error`` edge turns its final failure into that edge with
``shared["error"] = {"node", "type", "message"}``. Class names show up as the ``kind`` of flowlib's
``NodeStarted`` events; ``node_type`` holds the YAML type.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterable
from typing import Any

import flowlib

from ..runkinds import Code
from ..runkinds.python import PLAIN_RESULTS, NodeInfo
from ..schema import DEFAULT_ACTION, ERROR_ACTION
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
    """prep/exec/post for a node generated from a spec; see the module docstring."""

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

    def set_params(self, params: dict[str, Any]) -> None:
        # ParamsAndErrorEdge's merge without its super() chain (flowlib's set_params only assigns):
        # flows call this on every visit.
        self.params = {**self.param_defaults, **params} if self.param_defaults else params

    async def _run_async(self, shared: Any) -> Any:
        # ParamsAndErrorEdge's error edge plus the code's visit context in one coroutine: a loop
        # visiting a trivial node 10,000 times pays for every extra layer here.
        var = self.code.visit_context
        token = None if var is None else var.set(self)
        try:
            return await super(ParamsAndErrorEdge, self)._run_async(shared)  # type: ignore[misc]
        except Exception as exc:
            if not self.error_edge:
                raise
            shared["error"] = error_info(self, exc)
            return ERROR_ACTION
        finally:
            if var is not None and token is not None:
                var.reset(token)

    async def prep_async(self, shared: Any) -> Any:
        self.shared = shared
        code = self.code
        # Once per visit (params are set by then), not once per item: see Code.expression.
        self.node_info = NodeInfo(self) if code.expression_uses_node else None
        if code.has_prep:
            if code.sync_prep is not None:
                return await _settled(code.sync_prep(shared))
            return await code.prep(self, shared)
        if self.is_batch and self.items_path is not None:
            return resolve_items(shared, self.items_path, f"nodes.{self.name}.batch.items")
        return [] if self.is_batch else None

    async def exec_async(self, prep_res: Any) -> Any:
        # The per-item hot path of batch nodes: a direct call, no coroutine of the code's own.
        code = self.code
        expression = code.expression
        if expression is not None:
            result = expression(prep_res, self.shared, self.params, self.node_info)
        elif code.sync_exec is not None:
            result = code.sync_exec(prep_res)
        elif code.has_exec:
            return await code.exec(self, prep_res)
        else:
            return None  # e.g. inline code defining only prep/post: nothing to run, nothing stored
        if type(result) in PLAIN_RESULTS or not inspect.isawaitable(result):
            return result
        return await result

    async def exec_fallback_async(self, prep_res: Any, exc: Exception) -> Any:
        code = self.code
        if code.sync_fallback is not None:
            return await _settled(code.sync_fallback(prep_res, exc))
        if code.has_fallback:
            return await code.fallback(self, prep_res, exc)
        raise exc

    async def post_async(self, shared: Any, prep_res: Any, exec_res: Any) -> Any:
        code = self.code
        if code.has_exec and self.output:
            shared[self.output] = exec_res
        action: Any = None
        if code.sync_post is not None:
            action = code.sync_post(shared, prep_res, exec_res)
            if type(action) not in PLAIN_RESULTS and inspect.isawaitable(action):
                action = await action
        elif code.has_post:
            action = await code.post(self, shared, prep_res, exec_res)
        if self.action_template is not None:
            context = self.template_context()
            context["result"] = exec_res
            action = self.action_template.render(context).strip() or None
        return action


async def _settled(result: Any) -> Any:
    """``result``, awaited if it is awaitable (a sync hook may return a coroutine)."""
    if type(result) in PLAIN_RESULTS or not inspect.isawaitable(result):
        return result
    return await result


class YamlNode(SpecBehaviour, flowlib.AsyncNode):
    """type: base."""


class YamlBatchNode(SpecBehaviour, flowlib.AsyncBatchNode):
    """type: batch and async_batch: items one after another."""

    is_batch = True


class YamlParallelBatchNode(SpecBehaviour, flowlib.AsyncParallelBatchNode):
    """type: parallel_batch: every item at once, or at most ``max_parallel`` when set."""

    is_batch = True
    max_parallel: int | None = None

    async def prep_async(self, shared: Any) -> Any:
        self._limit = asyncio.Semaphore(self.max_parallel) if self.max_parallel else None
        return await super().prep_async(shared)

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
