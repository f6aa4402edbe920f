"""Flows: graphs of nodes walked from a start node, following the action each node returns.

A flow is itself a node, so flows nest. Each visit runs a fresh shallow copy of the node (as in
PocketFlow), with the flow's params. The walk ends when a node returns an action it has no
successor for; if the node has successors but none for that action, PocketFlow's
``Flow ends: '<action>' not found in [...]`` warning says so.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Coroutine
from time import perf_counter
from typing import Any

from .async_nodes import AsyncNode
from .context import FRAME, RUN_CONTEXT, Frame, RunContext, VisitRecord
from .copying import PLAIN_CLASSES, shallow_copy
from .errors import Cancelled, MaxStepsExceeded
from .gathering import gather_or_cancel
from .naming import node_name
from .nodes import BaseNode, check_cancelled
from .pacing import YIELD_INTERVAL
from .visits import began, ended, failed, flush, record_for, summarise_all

_NEVER = float("inf")  # when a sync walk lets the event loop in


def _run_at_once(walk: Coroutine[Any, Any, Any]) -> Any:
    """Run a walk made with ``awaits=False`` to its end in one step and return its result.

    Such a walk never awaits, so one ``send`` runs all of it, without an event loop. What it raises
    comes out as raised, as from a plain function, but for one thing undone here: a
    ``StopIteration`` (user code's, say ``next()`` on an exhausted iterator) leaving a coroutine
    becomes a ``RuntimeError`` caused by it (PEP 479).
    """
    try:
        walk.send(None)
    except StopIteration as end:
        return end.value
    except RuntimeError as error:
        stop, tb = error.__cause__, error.__traceback__
        # PEP 479's error is raised where the coroutine was left: its traceback holds this frame only.
        if not isinstance(stop, StopIteration) or tb is None or tb.tb_next is not None:
            raise
    else:  # pragma: no cover - nothing in a walk with awaits=False awaits
        walk.close()
        raise RuntimeError("a sync flow walk awaited")
    raise stop


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
        p = params or {**self.params}
        frame = Frame(FRAME.get())
        frame_token = FRAME.set(frame)
        try:
            if ctx is not None:
                return _run_at_once(self._walk_observed(shared, p, ctx, frame, awaits=False))
            return self._walk(shared, p, frame)
        finally:
            FRAME.reset(frame_token)

    def _walk(self, shared: Any, p: dict[str, Any], frame: Frame) -> Any:
        """The walk of a run without context: PocketFlow's loop, nothing added but ``max_steps``."""
        curr = shallow_copy(self.start_node)
        last_action = None
        max_steps = getattr(self, "max_steps", None)
        steps = 0
        while curr:
            if max_steps is not None:
                steps += 1
                if steps > max_steps:
                    raise MaxStepsExceeded(node_name(self), node_name(curr), max_steps)
            curr.set_params(p)
            frame.node = curr
            last_action = curr._run(shared)
            nxt = self.get_next_node(curr, last_action)
            # Inlined shallow_copy(nxt): this line runs once per step.
            if nxt is not None and PLAIN_CLASSES.get(nxt.__class__):
                curr = object.__new__(nxt.__class__)
                curr.__dict__.update(nxt.__dict__)
            else:
                curr = shallow_copy(nxt)
        return last_action

    async def _walk_observed(
        self, shared: Any, p: dict[str, Any], ctx: RunContext, frame: Frame, *, awaits: bool
    ) -> Any:
        """The walk of an observed or cancellable run, for a sync flow and an async one alike.

        Why one coroutine for both: the two walks differ only in how a node runs (an async flow
        awaits its async nodes) and in letting the event loop in (see pacing.py), so the visit
        bookkeeping is written once, in one loop. A sync flow passes ``awaits=False``: then nothing
        here awaits, and :func:`_run_at_once` runs the coroutine to its end in one step, with no
        event loop. Sharing it through helpers called per visit instead (an object's methods)
        cost observed walks 7-15% more time per trivial visit; this costs the async walk nothing,
        and the sync one a coroutine per walk (a few microseconds) and ~5% per trivial visit.

        Each visit is reported or quiet (visits.py). A quiet visit costs one clock read. Its time
        is counted in spans: consecutive quiet visits of the same node (a self-loop) are one span,
        added to the node's record when it ends.
        """
        token = ctx.cancel
        records: dict[int, VisitRecord] = {}
        orig = self.start_node
        curr = shallow_copy(orig)
        last_action = None
        max_steps = getattr(self, "max_steps", None)
        steps = 0
        span: VisitRecord | None = None  # the node whose quiet visits are running, since span_started
        span_started = 0.0
        last_orig: BaseNode | None = None
        record: VisitRecord
        is_async = False
        unsummed: list[VisitRecord] = []  # nodes with quiet visits no event has covered yet
        yield_at = perf_counter() + YIELD_INTERVAL if awaits else _NEVER
        try:
            while curr:
                started = perf_counter()
                if started >= yield_at:
                    if span is not None:  # the event loop's turn is nobody's visit
                        span.seconds += started - span_started
                        span = None
                    await asyncio.sleep(0)
                    started = perf_counter()
                    yield_at = started + YIELD_INTERVAL
                if max_steps is not None:
                    steps += 1
                    if steps > max_steps:
                        raise MaxStepsExceeded(node_name(self), node_name(curr), max_steps)
                if token is not None and token.is_set:
                    raise Cancelled(token.reason or "run cancelled")
                curr.set_params(p)
                frame.node = curr
                if orig is not last_orig:  # a node visited twice in a row (a self-loop) skips the lookup
                    found = records.get(id(orig))
                    if found is None:
                        path = (*frame.prefix, node_name(curr))
                        found = records[id(orig)] = record_for(ctx, path, type(curr).__name__)
                    record = found
                    last_orig = orig
                    is_async = awaits and isinstance(curr, AsyncNode)  # a copy of the same node: the same class
                record.visits += 1
                reported = started >= record.due
                if reported:
                    if span is not None:
                        span.seconds += started - span_started
                        span = None
                    if unsummed:
                        summarise_all(ctx, unsummed, but=record)
                    began(ctx, record, started)
                elif span is not record:
                    if span is not None:
                        span.seconds += started - span_started
                    span, span_started = record, started
                    if record.reported == record.visits - 1:  # its first quiet visit since an event
                        unsummed.append(record)
                try:
                    last_action = await curr._run_async(shared) if is_async else curr._run(shared)  # type: ignore[attr-defined]
                except BaseException as e:
                    if not reported:
                        record.seconds += started - span_started  # the span's visits before this one
                        span = None
                        summarise_all(ctx, unsummed, but=record)
                    failed(ctx, record, e, started)
                    raise
                if reported:
                    ended(ctx, record, last_action, started)
                else:
                    record.action = last_action
                orig = self.get_next_node(curr, last_action)
                # Inlined shallow_copy(orig): this line runs once per step.
                if orig is not None and PLAIN_CLASSES.get(orig.__class__):
                    curr = object.__new__(orig.__class__)
                    curr.__dict__.update(orig.__dict__)
                else:
                    curr = shallow_copy(orig)
        finally:
            if span is not None:
                span.seconds += perf_counter() - span_started
            flush(ctx, records)
        return last_action

    def _run(self, shared: Any) -> Any:
        p = self.prep(shared)
        o = self._orch(shared)
        return self.post(shared, p, o)

    def post(self, shared: Any, prep_res: Any, exec_res: Any) -> Any:
        return exec_res


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
        p = params or {**self.params}
        frame = Frame(FRAME.get())
        frame_token = FRAME.set(frame)
        try:
            if ctx is not None:
                return await self._walk_observed(shared, p, ctx, frame, awaits=True)
            return await self._walk_async(shared, p, frame)
        finally:
            FRAME.reset(frame_token)

    async def _walk_async(self, shared: Any, p: dict[str, Any], frame: Frame) -> Any:
        """The walk of a run without context: PocketFlow's loop, nothing added but ``max_steps``."""
        curr = shallow_copy(self.start_node)
        last_action = None
        max_steps = getattr(self, "max_steps", None)
        steps = 0
        while curr:
            if max_steps is not None:
                steps += 1
                if steps > max_steps:
                    raise MaxStepsExceeded(node_name(self), node_name(curr), max_steps)
            curr.set_params(p)
            frame.node = curr
            if isinstance(curr, AsyncNode):
                last_action = await curr._run_async(shared)
            else:
                last_action = curr._run(shared)
            nxt = self.get_next_node(curr, last_action)
            # Inlined shallow_copy(nxt): this line runs once per step.
            if nxt is not None and PLAIN_CLASSES.get(nxt.__class__):
                curr = object.__new__(nxt.__class__)
                curr.__dict__.update(nxt.__dict__)
            else:
                curr = shallow_copy(nxt)
        return last_action

    async def _run_async(self, shared: Any) -> Any:
        p = await self.prep_async(shared)
        o = await self._orch_async(shared)
        return await self.post_async(shared, p, o)

    async def post_async(self, shared: Any, prep_res: Any, exec_res: Any) -> Any:
        return exec_res


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
        ctx = RUN_CONTEXT.get()
        check_cancelled(ctx)
        await gather_or_cancel((self._orch_async(shared, {**self.params, **bp}) for bp in pr), paced=ctx is not None)
        return await self.post_async(shared, pr, None)
