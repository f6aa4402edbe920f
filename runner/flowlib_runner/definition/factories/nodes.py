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
import dataclasses
import time
from collections.abc import AsyncIterable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import flowlib
from flowlib.context import RUN_CONTEXT, current_path
from flowlib.gathering import gather_or_cancel
from flowlib.nodes import check_cancelled, sized_total
from flowlib_api.flowspec import DEFAULT_ACTION, ERROR_ACTION

from ..runkinds import Code
from ..runkinds.python import NodeInfo
from ..templates import Template, run_environment
from .durable import JOURNAL, ItemJournal, RecordedFailure, Resumable, WalkFrame, unjournaled
from .pause import no_approvals
from .scopes import ItemScope
from .threads import DEFAULT_ITEM_THREADS


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


@dataclass(slots=True)
class ErrorHandled:
    """An observer event of the runner's: a node failed and its ``error`` edge took the failure.

    Without it the failure would leave no trace but ``shared["error"]``: the run log gets a
    WARNING line with the error, and the node's status its message and ``handled: true``.
    """

    path: tuple[str, ...]
    error: BaseException
    time: float = field(default_factory=time.time)


def _report_handled(error: BaseException) -> None:
    """Tell the run's observer, when it takes the runner's own events (``runner_events``, as the
    runner's ``Dispatch`` does; a plain flowlib observer is never handed an event it does not know)."""
    ctx = RUN_CONTEXT.get()
    observer: Any = None if ctx is None else ctx.observer
    if observer is not None and getattr(observer, "runner_events", False):
        observer.on_event(ErrorHandled(tuple(current_path()), error))


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
            _report_handled(exc)
            return ERROR_ACTION

    def _run(self, shared: Any) -> Any:
        try:
            return super()._run(shared)  # type: ignore[misc]
        except Exception as exc:
            if not self.error_edge:
                raise
            shared["error"] = error_info(self, exc)
            _report_handled(exc)
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
            "env": run_environment(),
        }


class BatchFailures(RuntimeError):
    """More items of a batch failed than ``batch.maxFailures`` allows."""


def error_type(error: BaseException) -> str:
    """The name of an error's type (for a failure read back from a checkpoint, the type it had when it happened)."""
    return error.type_name if isinstance(error, RecordedFailure) else type(error).__name__


def error_text(error: BaseException) -> str:
    """An item's or a run's error as records and ``shared["run"]`` show it: ``Type: message``."""
    return f"{error_type(error)}: {error}"


def failure_limit(max_failures: int | str | None, total: int) -> int | None:
    """How many failed items a node tolerates: a count, or a share (``"1%"``) of ``total`` rounded down."""
    if max_failures is None:
        return None
    if isinstance(max_failures, int):
        return max_failures
    return int(float(max_failures.rstrip("%")) * total / 100)


def publish_failures(
    shared: Any, key: str, errors: list[dict[str, Any]], max_failures: int | str | None, total: int
) -> None:
    """The records of the items let through (``onItemError: continue``), and the node's failure
    when more of ``total`` items failed than ``max_failures`` allows."""
    shared[key] = errors
    limit = failure_limit(max_failures, total)
    if limit is not None and len(errors) > limit:
        first = errors[0]
        raise BatchFailures(
            f"{len(errors)} of {total} items failed, more than batch.maxFailures "
            f"({max_failures}) allows; the first, item {first['index']}: {first['error']}"
        )


class BatchItemPolicy:
    """What a batch node does when an item still fails after its retries (``batch.onItemError``).

    ``fail`` (the default): no new item starts, the items in flight finish, then the node fails with
    the first failure; the results finished by then are kept in ``shared[output]`` (null where an
    item did not finish). ``continue``: the item's result is null, a record ``{index, item, error,
    attempts}`` goes to ``shared[errors_output]``, the other items go on; once all ran, more
    failures than ``max_failures`` fail the node (results and records are kept). Cancellation is
    never an item failure.
    """

    name: str
    max_retries: int
    on_item_error = "fail"
    max_failures: int | str | None = None
    errors_output: str | None = None
    output: str | None = None
    keeps_output = False  # whether exec's results are stored (the code has an exec)

    _journal: ItemJournal | None = None

    async def _run_async(self, shared: Any) -> Any:
        self._item_shared = shared
        self._failures = 0
        self._first_failure: BaseException | None = None
        return await super()._run_async(shared)  # type: ignore[misc]

    async def _exec_item_async(self, prep_res: Any, index: int | None, stats: Any) -> Any:
        """An item reused from the journal, or run and then recorded there (no journal: flowlib's)."""
        journal = self._journal
        if journal is None or index is None:
            return await super()._exec_item_async(prep_res, index, stats)  # type: ignore[misc]
        reused = journal.reused
        if reused and index in reused:
            return self._reuse(reused[index], prep_res, stats)
        result = await super()._exec_item_async(prep_res, index, stats)  # type: ignore[misc]
        if type(result) is not _Failed:
            journal.record((index, result))
        elif self.on_item_error == "continue":
            journal.failed(index, prep_res, result.error, self.max_retries)
        return result

    def _reuse(self, result: Any, item: Any, stats: Any) -> Any:
        """A journaled item's result, counted in the batch's progress like a finished item."""
        if stats is not None:
            if isinstance(result, RecordedFailure):
                stats.failed += 1
                stats.report()
            else:
                stats.done += 1
                if stats.done >= stats.done_due:
                    stats.report()
        if isinstance(result, RecordedFailure):
            self._failures += 1
            return _Failed(item, result)
        return result

    async def exec_fallback_async(self, prep_res: Any, exc: Exception) -> Any:
        """An item failed after its retries (and the node's code has no fallback of its own): mark
        its place. Costs nothing while items succeed; the marks are read once the batch ends."""
        self._failures += 1
        if self._first_failure is None and self.on_item_error != "continue":
            self._first_failure = exc
        return _Failed(prep_res, exc)

    async def _exec(self, items: Any) -> Any:
        journal = JOURNAL.get()
        self._journal = None if journal is None else journal.items(tuple(current_path()), items)
        try:
            return await self._exec_items(items)
        finally:
            if self._journal is not None:
                self._journal.close()

    async def _exec_items(self, items: Any) -> Any:
        if self.on_item_error != "continue" and not isinstance(items, AsyncIterable):
            items = _UntilFailure(items, self)
        results = await super()._exec(items)  # type: ignore[misc]
        if not self._failures:
            return results
        shared = self._item_shared
        if self._first_failure is not None:
            total = sized_total(items)
            kept = [None if type(r) is _Failed else r for r in results]
            if total is not None and len(kept) < total:
                kept.extend([None] * (total - len(kept)))
            if self.keeps_output and self.output is not None:
                shared[self.output] = kept
            failure = self._first_failure
            done = sum(1 for r in results if type(r) is not _Failed)
            failure.add_note(f"nodes.{self.name}: {done} item(s) finished before the failure; kept in the output")
            raise failure
        errors = []
        for index, result in enumerate(results):
            if type(result) is _Failed:
                error = error_text(result.error)
                errors.append({"index": index, "item": result.item, "error": error, "attempts": self.max_retries})
                results[index] = None
        key = self.errors_output or f"{self.output or self.name}_errors"
        try:
            publish_failures(shared, key, errors, self.max_failures, len(results))
        except BatchFailures:
            if self.keeps_output and self.output is not None:
                shared[self.output] = results  # post, which would store them, does not run
            raise
        return results


class _Failed:
    """The place of an item that failed after its retries, in a batch's results."""

    __slots__ = ("error", "item")

    def __init__(self, item: Any, error: BaseException) -> None:
        self.item, self.error = item, error


class _UntilFailure:
    """The items of a batch whose ``onItemError`` is ``fail``: they stop coming once an item failed,
    so no new item starts while the ones in flight finish. Keeps the items' length."""

    __slots__ = ("items", "node")

    def __init__(self, items: Any, node: BatchItemPolicy) -> None:
        self.items, self.node = items, node

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Any]:
        node = self.node
        for item in self.items:
            if node._first_failure is not None:
                return
            yield item


class YamlNode(SpecBehaviour, flowlib.AsyncNode):
    """type: base."""


class YamlBatchNode(SpecBehaviour, BatchItemPolicy, flowlib.AsyncBatchNode):  # type: ignore[misc]
    """type: batch and async_batch: items one after another."""

    is_batch = True


class YamlParallelBatchNode(SpecBehaviour, BatchItemPolicy, flowlib.AsyncParallelBatchNode):
    """type: parallel_batch: every item at once, or at most ``max_parallel`` when set.

    When its per-item code runs on worker threads (``item_threads``, a sync exec or exec_fallback;
    see ``threads.py``) and ``max_parallel`` is not set, at most ``DEFAULT_ITEM_THREADS`` items run at
    once: "every item at once" would be a thread per item.
    """

    is_batch = True
    max_parallel: int | None = None
    item_threads = False

    async def _exec(self, items: Any) -> Any:  # type: ignore[override]
        bound = self.max_parallel or (DEFAULT_ITEM_THREADS if self.item_threads else None)
        self._limit = asyncio.Semaphore(bound) if bound else None
        return await super()._exec(items)

    async def _exec_item_async(self, prep_res: Any, index: int | None, stats: Any) -> Any:
        if self._limit is None:
            return await super()._exec_item_async(prep_res, index, stats)
        async with self._limit:
            return await super()._exec_item_async(prep_res, index, stats)


class YamlWorkerPoolBatchNode(SpecBehaviour, BatchItemPolicy, flowlib.WorkerPoolBatchNode):  # type: ignore[misc]
    """type: worker_pool (worker_pool_batch): at most ``max_parallel`` items in flight."""

    is_batch = True


class UnknownAction(RuntimeError):
    """A node returned an action its edges do not name, and it has no ``default`` edge."""


class StrictEdges:
    """YAML flows follow only the edges they name: an action with no edge of that name goes to the
    ``default`` edge, and without one fails the run, naming the node, the action and its edges
    (PocketFlow only warns and ends the flow, which let a typo end a run as Succeeded). A node
    without any edge but ``error`` ends the flow whatever it returns."""

    _journal_frame: WalkFrame | None = None
    """The frame of the walk being done (``durable.Resumable`` sets it; None: no journal)."""

    def get_next_node(self, curr: Any, action: Any) -> Any:
        successors = curr.successors
        nxt = successors.get(action or DEFAULT_ACTION)
        if nxt is None and action != ERROR_ACTION:
            nxt = successors.get(DEFAULT_ACTION)
        if nxt is None and any(edge != ERROR_ACTION for edge in successors):
            edges = ", ".join(sorted(map(str, successors)))
            name = getattr(curr, "name", type(curr).__name__)
            raise UnknownAction(
                f"nodes.{name} returned action {action!r}, but its edges are {edges} and there is no "
                f"default edge; add an edge for {action!r} under next, or return one of {edges}"
            )
        walk = self._journal_frame  # durable.Resumable's frame: once per step, so inline
        if walk is not None:
            walk.node = nxt
            walk.steps += 1
            walk.journal.moved(walk)
        return nxt


class _FailedNode:
    """Forwards a run's events, remembering the path of the last node that failed."""

    __slots__ = ("failed", "inner", "runner_events", "visit_events", "visit_interval")

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.failed: tuple[str, ...] | None = None
        self.runner_events = getattr(inner, "runner_events", False)
        self.visit_events = getattr(inner, "visit_events", None)
        self.visit_interval = getattr(inner, "visit_interval", 1.0)

    def on_event(self, event: Any) -> None:
        if type(event) is flowlib.events.NodeFailed:
            self.failed = event.path
        self.inner.on_event(event)


class FinalNode:
    """``spec.finally``: a node run once after the graph ends, whatever the end (success, failure,
    timeout, or a cancellation, within the pod's grace period). It sees ``shared["run"]``: the
    ``phase`` the graph ended with, its ``error`` and the ``failedNode`` (path), and its own events
    are those of any node. Its failure is reported (a failed node, ``shared["run"]["finallyError"]``)
    and never changes the run's result; a cancellation does not stop it (Argo's ``onExit``)."""

    final_node: Any = None
    name: str
    params: dict[str, Any]

    async def _run_async(self, shared: Any) -> Any:
        if self.final_node is None:
            return await super()._run_async(shared)  # type: ignore[misc]
        ctx = RUN_CONTEXT.get()
        watcher = None
        if ctx is not None and ctx.observer is not None:
            watcher = _FailedNode(ctx.observer)
            ctx.observer = watcher
        try:
            result = await super()._run_async(shared)  # type: ignore[misc]
        except BaseException as exc:
            phase = "Cancelled" if isinstance(exc, asyncio.CancelledError) else "Failed"
            await self._run_final(shared, ctx, watcher, phase, exc)
            raise
        await self._run_final(shared, ctx, watcher, "Succeeded", None)
        return result

    async def _run_final(
        self, shared: Any, ctx: Any, watcher: _FailedNode | None, phase: str, error: BaseException | None
    ) -> None:
        if watcher is not None:
            ctx.observer = watcher.inner
        failed = watcher.failed if watcher is not None else None
        shared["run"] = {
            "phase": phase,
            "error": None if error is None else error_text(error),
            "failedNode": None if failed is None else "/".join(failed),
        }
        # The graph's cancel token (if it fired) must not stop the final node.
        token = RUN_CONTEXT.set(None if ctx is None else dataclasses.replace(ctx, cancel=None))
        try:
            with unjournaled(), no_approvals():  # the graph has ended: its last checkpoint stays the resume point
                await YamlFlow(self.final_node, name=self.name)._orch_async(shared, {**self.params})
        except Exception as exc:
            shared["run"]["finallyError"] = error_text(exc)
        finally:
            RUN_CONTEXT.reset(token)


class YamlFlow(FinalNode, Resumable, StrictEdges, flowlib.AsyncFlow):
    """A YAML flow (the main one, or a sub-flow's graph), with its ``finally`` node if it has one."""


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


class YamlSubFlow(SubFlowBehaviour, FinalNode, Resumable, StrictEdges, flowlib.AsyncFlow):
    """type: flow without batch."""


class IsolatedItems(SubFlowBehaviour):
    """type: flow with batch: the sub-flow runs once per item, each in its own ``ItemScope``.

    Every item reads the parent's store as it was when the batch started and writes only to its
    scope; nothing leaks to the parent or to sibling items. The node's output (``shared[output]``)
    is the list, in item order, of each item's result: the keys its run wrote, as an object, or the
    value of ``item_output`` when set. At most ``max_parallel`` items run at once (1: one after
    another). ``batch.onItemError`` applies as to batch nodes: ``fail`` lets the running items end,
    starts no more and fails the node keeping the finished results; ``continue`` leaves null and a
    record in ``errors_output``.
    """

    max_parallel: int = 1
    output: str | None = None
    item_output: str | None = None

    on_item_error = "fail"
    max_failures: int | str | None = None
    errors_output: str | None = None

    async def _orch_async(self, shared: Any, params: dict[str, Any] | None = None) -> Any:
        """flowlib.AsyncFlow's walk of the sub-flow (next in the MRO), declared for the type checker."""
        return await super()._orch_async(shared, params)  # type: ignore[misc]

    async def _run_async(self, shared: Any) -> Any:
        items = await self.prep_async(shared) or []
        results: list[Any] = [None] * len(items)
        errors: list[dict[str, Any]] = []
        failures: list[BaseException] = []
        limit = asyncio.Semaphore(max(1, self.max_parallel))
        journal = JOURNAL.get()
        recorded = None if journal is None else journal.items(tuple(current_path()), items)
        reused = {} if recorded is None else recorded.reused

        async def run_item(index: int, params: dict[str, Any]) -> None:
            if index in reused:
                result = reused[index]
                if isinstance(result, RecordedFailure):
                    errors.append({"index": index, "item": params, "error": error_text(result)})
                else:
                    results[index] = result
                return
            async with limit:
                if failures:
                    return  # an earlier item failed the node: start no more
                scope = ItemScope(shared)
                try:
                    with unjournaled(), no_approvals():  # an item is recorded whole; walks inside it are no positions
                        await self._orch_async(scope, {**self.params, **params})
                except Exception as exc:
                    if self.on_item_error != "continue":
                        failures.append(exc)
                        return
                    errors.append({"index": index, "item": params, "error": error_text(exc)})
                    if recorded is not None:
                        recorded.failed(index, params, exc, 1)
                    return
                results[index] = scope.get(self.item_output) if self.item_output else scope.written()
                if recorded is not None:
                    recorded.record((index, results[index]))

        ctx = RUN_CONTEXT.get()
        check_cancelled(ctx)
        try:
            await gather_or_cancel((run_item(i, p) for i, p in enumerate(items)), paced=ctx is not None)
        finally:
            if recorded is not None:
                recorded.close()
        output = self.output or self.name
        shared[output] = results
        if failures:
            failures[0].add_note(f"nodes.{self.name}: the results of the items that finished are in shared.{output}")
            raise failures[0]
        if self.on_item_error == "continue":
            errors.sort(key=lambda e: int(e["index"]))
            publish_failures(shared, self.errors_output or f"{output}_errors", errors, self.max_failures, len(items))
        return await self.post_async(shared, items, results)


class YamlBatchFlow(IsolatedItems, StrictEdges, flowlib.AsyncFlow):
    """type: flow with batch: the sub-flow runs once per item, one after another, each isolated."""


class YamlParallelBatchFlow(IsolatedItems, StrictEdges, flowlib.AsyncFlow):
    """type: flow with batch.maxParallel > 1: at most maxParallel items at once, each isolated.

    Its items walk the sub-flow at the same time, so every node of the sub-flow (nested sub-flows
    included) runs its sync hooks on worker threads: the graph, built for this node alone, gets
    the nodes' threaded classes when the factory builds it (``specialise.run_graph_on_threads``;
    ``threads.py`` has the rule).
    """
