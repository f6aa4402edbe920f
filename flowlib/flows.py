"""Flows: graphs of nodes walked from a start node, following the action each node returns.

A flow is itself a node, so flows nest. Each visit runs a fresh shallow copy of the node (as in
PocketFlow), with the flow's params. The walk ends when a node returns an action it has no
successor for; if the node has successors but none for that action, PocketFlow's
``Flow ends: '<action>' not found in [...]`` warning says so.
"""

from __future__ import annotations

import asyncio
import time
import warnings
from typing import Any

from .async_nodes import AsyncNode
from .context import FRAME, RUN_CONTEXT, Frame, RunContext
from .copying import PLAIN_CLASSES, shallow_copy
from .errors import MaxStepsExceeded
from .events import NodeCancelled, NodeFailed, NodeFinished, NodeStarted
from .gathering import gather_or_cancel
from .naming import node_name
from .nodes import BaseNode, check_cancelled


class Flow(BaseNode):
    """Runs a graph of nodes from ``start``; ``run`` returns the last node's action.

    ``max_steps`` (optional) bounds how many nodes one walk may start, which turns a loop that
    never ends into a :class:`~flowlib.MaxStepsExceeded` naming the node it kept returning to.
    """

    def __init__(self, start: BaseNode | None = None, *, max_steps: int | None = None, name: str | None = None) -> None:
        super().__init__(name=name)
        if max_steps is not None and (not isinstance(max_steps, int) or max_steps < 1):
            raise ValueError(f"max_steps must be a whole number >= 1, not {max_steps!r}")
        self.start_node = start
        self.max_steps = max_steps

    def start(self, start: BaseNode) -> BaseNode:
        self.start_node = start
        return start

    def get_next_node(self, curr: BaseNode, action: Any) -> BaseNode | None:
        nxt = curr.successors.get(action or "default")
        if not nxt and curr.successors:
            warnings.warn(f"Flow ends: '{action}' not found in {list(curr.successors)}")  # noqa: B028 - PocketFlow's attribution
        return nxt

    def _orch(self, shared: Any, params: dict[str, Any] | None = None) -> Any:
        ctx = RUN_CONTEXT.get()
        watched = ctx is not None and (ctx.observer is not None or ctx.cancel is not None)
        observer = ctx.observer if ctx is not None else None
        curr = shallow_copy(self.start_node)
        p = params or {**self.params}
        last_action = None
        max_steps = getattr(self, "max_steps", None)
        steps = 0
        frame = Frame(FRAME.get())
        frame_token = FRAME.set(frame)
        try:
            while curr:
                if max_steps is not None:
                    steps += 1
                    if steps > max_steps:
                        raise MaxStepsExceeded(node_name(self), node_name(curr), max_steps)
                if watched:
                    check_cancelled(ctx)
                curr.set_params(p)
                frame.node = curr
                if observer is not None:
                    last_action = _run_observed(curr, shared, ctx, (*frame.prefix, node_name(curr)))  # type: ignore[arg-type]
                else:
                    last_action = curr._run(shared)
                nxt = self.get_next_node(curr, last_action)
                # Inlined shallow_copy(nxt): this line runs once per step.
                if nxt is not None and PLAIN_CLASSES.get(nxt.__class__):
                    curr = object.__new__(nxt.__class__)
                    curr.__dict__.update(nxt.__dict__)
                else:
                    curr = shallow_copy(nxt)
        finally:
            FRAME.reset(frame_token)
        return last_action

    def _run(self, shared: Any) -> Any:
        p = self.prep(shared)
        o = self._orch(shared)
        return self.post(shared, p, o)

    def post(self, shared: Any, prep_res: Any, exec_res: Any) -> Any:
        return exec_res


def _run_observed(node: BaseNode, shared: Any, ctx: RunContext, path: tuple[str, ...]) -> Any:
    ctx.emit(NodeStarted(path, type(node).__name__))
    started = time.perf_counter()
    try:
        action = node._run(shared)
    except asyncio.CancelledError:
        ctx.emit(NodeCancelled(path, time.perf_counter() - started))
        raise
    except BaseException as e:
        ctx.emit(NodeFailed(path, e, time.perf_counter() - started))
        raise
    ctx.emit(NodeFinished(path, action, time.perf_counter() - started))
    return action


class BatchFlow(Flow):
    """Runs the whole flow once per params dict that ``prep`` returns (merged over the flow's)."""

    def _run(self, shared: Any) -> Any:
        pr = self.prep(shared) or []
        ctx = RUN_CONTEXT.get()
        for bp in pr:
            check_cancelled(ctx)
            self._orch(shared, {**self.params, **bp})
        return self.post(shared, pr, None)


class AsyncFlow(Flow, AsyncNode):
    """A flow that awaits async nodes and calls sync ones; start it with ``run_async``."""

    async def _orch_async(self, shared: Any, params: dict[str, Any] | None = None) -> Any:
        ctx = RUN_CONTEXT.get()
        watched = ctx is not None and (ctx.observer is not None or ctx.cancel is not None)
        observer = ctx.observer if ctx is not None else None
        curr = shallow_copy(self.start_node)
        p = params or {**self.params}
        last_action = None
        max_steps = getattr(self, "max_steps", None)
        steps = 0
        frame = Frame(FRAME.get())
        frame_token = FRAME.set(frame)
        try:
            while curr:
                if max_steps is not None:
                    steps += 1
                    if steps > max_steps:
                        raise MaxStepsExceeded(node_name(self), node_name(curr), max_steps)
                if watched:
                    check_cancelled(ctx)
                curr.set_params(p)
                frame.node = curr
                if observer is not None:
                    path = (*frame.prefix, node_name(curr))
                    last_action = await _run_observed_async(curr, shared, ctx, path)  # type: ignore[arg-type]
                elif isinstance(curr, AsyncNode):
                    last_action = await curr._run_async(shared)
                else:
                    last_action = curr._run(shared)
                curr = shallow_copy(self.get_next_node(curr, last_action))
        finally:
            FRAME.reset(frame_token)
        return last_action

    async def _run_async(self, shared: Any) -> Any:
        p = await self.prep_async(shared)
        o = await self._orch_async(shared)
        return await self.post_async(shared, p, o)

    async def post_async(self, shared: Any, prep_res: Any, exec_res: Any) -> Any:
        return exec_res


async def _run_observed_async(node: BaseNode, shared: Any, ctx: RunContext, path: tuple[str, ...]) -> Any:
    ctx.emit(NodeStarted(path, type(node).__name__))
    started = time.perf_counter()
    try:
        if isinstance(node, AsyncNode):
            action = await node._run_async(shared)
        else:
            action = node._run(shared)
    except asyncio.CancelledError:
        ctx.emit(NodeCancelled(path, time.perf_counter() - started))
        raise
    except BaseException as e:
        ctx.emit(NodeFailed(path, e, time.perf_counter() - started))
        raise
    ctx.emit(NodeFinished(path, action, time.perf_counter() - started))
    return action


class AsyncBatchFlow(AsyncFlow, BatchFlow):
    """Runs the whole flow once per params dict from ``prep_async``, one run after another."""

    async def _run_async(self, shared: Any) -> Any:
        pr = await self.prep_async(shared) or []
        ctx = RUN_CONTEXT.get()
        for bp in pr:
            check_cancelled(ctx)
            await self._orch_async(shared, {**self.params, **bp})
        return await self.post_async(shared, pr, None)


class AsyncParallelBatchFlow(AsyncFlow, BatchFlow):
    """Runs the whole flow once per params dict from ``prep_async``, all runs at once.

    The first run that fails cancels the others (PocketFlow lets them continue).
    """

    async def _run_async(self, shared: Any) -> Any:
        pr = await self.prep_async(shared) or []
        check_cancelled(RUN_CONTEXT.get())
        await gather_or_cancel(self._orch_async(shared, {**self.params, **bp}) for bp in pr)
        return await self.post_async(shared, pr, None)
