"""Asynchronous nodes: ``AsyncNode`` and the three async batch strategies.

- ``AsyncBatchNode`` runs items one after another.
- ``AsyncParallelBatchNode`` starts every item at once.
- ``WorkerPoolBatchNode`` runs at most ``max_parallel`` items at once, pulling items lazily, so a
  million-item generator never becomes a million pending tasks.

Every strategy returns results in item order. When an item finally fails, the items still running
are cancelled and awaited before the error is raised (PocketFlow's ``asyncio.gather`` leaves them
running in the background); cancelling the node's task cancels all of its items the same way.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import AsyncIterable, Iterable, Iterator
from typing import Any

from .context import RUN_CONTEXT, RunContext
from .errors import NodeTimeout
from .gathering import gather_or_cancel
from .naming import node_name
from .nodes import BatchNode, Node, _ItemStats, check_cancelled, sized_total
from .pacing import Pacer
from .runs import run_root_async


class AsyncNode(Node):
    """A node whose steps are coroutines: ``prep_async``, ``exec_async``, ``post_async``.

    ``timeout`` (seconds) bounds each exec attempt: an attempt that runs longer fails with
    :class:`~flowlib.NodeTimeout` and is retried like any other failure.
    """

    def __init__(
        self,
        max_retries: int = 1,
        wait: float = 0,
        *,
        timeout: float | None = None,
        backoff: str = "fixed",
        max_wait: float | None = None,
        jitter: float = 0.0,
        name: str | None = None,
    ) -> None:
        super().__init__(max_retries, wait, backoff=backoff, max_wait=max_wait, jitter=jitter, name=name)
        if timeout is not None and timeout <= 0:
            raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
        self.timeout = timeout

    async def prep_async(self, shared: Any) -> Any:
        pass

    async def exec_async(self, prep_res: Any) -> Any:
        pass

    async def exec_fallback_async(self, prep_res: Any, exc: Exception) -> Any:
        raise exc

    async def post_async(self, shared: Any, prep_res: Any, exec_res: Any) -> Any:
        pass

    async def _attempt(self, prep_res: Any) -> Any:
        timeout = getattr(self, "timeout", None)
        if timeout is None:
            return await self.exec_async(prep_res)
        deadline = asyncio.timeout(timeout)
        try:
            async with deadline:
                return await self.exec_async(prep_res)
        except TimeoutError as e:
            if deadline.expired():
                raise NodeTimeout(node_name(self), timeout) from e
            raise  # the user's own TimeoutError, not our deadline

    async def _exec(self, prep_res: Any) -> Any:
        return await self._exec_item_async(prep_res, None, None)

    async def _exec_item_async(self, prep_res: Any, index: int | None, stats: _ItemStats | None) -> Any:
        for attempt in range(self.max_retries):
            self.cur_retry = attempt
            try:
                result = await self._attempt(prep_res)
            except Exception as e:
                if attempt == self.max_retries - 1:
                    if stats is not None:
                        stats.failed += 1
                        stats.report()
                    return await self.exec_fallback_async(prep_res, e)
                delay = self._before_retry(attempt + 1, e, index)
                if delay > 0:
                    await asyncio.sleep(delay)
            else:
                if stats is not None:
                    stats.done += 1
                    if stats.done >= stats.done_due:
                        stats.report()
                return result
        return None

    async def run_async(self, shared: Any, *, observer: Any = None, cancel: Any = None) -> Any:
        """Run this node (or flow) alone and return its action; see :meth:`BaseNode.run`."""
        if self.successors:
            warnings.warn("Node won't run successors. Use AsyncFlow.")  # noqa: B028 - PocketFlow's attribution
        return await run_root_async(self, shared, observer, cancel, self._run_async)

    async def _run_async(self, shared: Any) -> Any:
        p = await self.prep_async(shared)
        e = await self._exec(p)
        return await self.post_async(shared, p, e)

    def _run(self, shared: Any) -> Any:
        raise RuntimeError("Use run_async.")


def _batch_stats(items: Any) -> tuple[RunContext | None, _ItemStats | None]:
    ctx = RUN_CONTEXT.get()
    if ctx is None or ctx.observer is None:
        return ctx, None
    stats = _ItemStats(ctx, sized_total(items))
    stats.report()
    return ctx, stats


class AsyncBatchNode(AsyncNode, BatchNode):
    """Runs ``exec_async`` once per item, one item after another.

    Async batches do not poll the cancel token per item: a run given a token cancels its task the
    moment the token flips, which stops the item in flight and everything after it.
    """

    async def _exec(self, items: Iterable[Any]) -> list[Any]:  # type: ignore[override]
        ctx, stats = _batch_stats(items)
        check_cancelled(ctx)
        results = []
        pacer = Pacer(enabled=ctx is not None)
        check_at = pacer.check_at
        for index, item in enumerate(items):
            results.append(await self._exec_item_async(item, index, stats))
            if index >= check_at:
                check_at = await pacer.turn(index)
        if stats is not None:
            stats.flush()
        return results


class AsyncParallelBatchNode(AsyncNode, BatchNode):
    """Runs ``exec_async`` for every item at once and returns the results in item order."""

    async def _exec(self, items: Iterable[Any]) -> list[Any]:  # type: ignore[override]
        ctx, stats = _batch_stats(items)
        check_cancelled(ctx)
        run_item = self._exec_item_async
        coros = (run_item(item, index, stats) for index, item in enumerate(items))
        results = await gather_or_cancel(coros, paced=ctx is not None)
        if stats is not None:
            stats.flush()
        return results


class WorkerPoolBatchNode(AsyncNode, BatchNode):
    """Runs ``exec_async`` over the items with at most ``max_parallel`` of them in flight.

    Items are pulled one at a time from any iterable or async iterable returned by ``prep_async``,
    only when a worker is free, so memory stays flat however many items there are. Results come
    back as a list in item order.
    """

    def __init__(
        self,
        max_retries: int = 1,
        wait: float = 0,
        *,
        max_parallel: int = 8,
        timeout: float | None = None,
        backoff: str = "fixed",
        max_wait: float | None = None,
        jitter: float = 0.0,
        name: str | None = None,
    ) -> None:
        super().__init__(
            max_retries, wait, timeout=timeout, backoff=backoff, max_wait=max_wait, jitter=jitter, name=name
        )
        if not isinstance(max_parallel, int) or isinstance(max_parallel, bool) or max_parallel < 1:
            raise ValueError(f"max_parallel must be a whole number >= 1, not {max_parallel!r}")
        self.max_parallel = max_parallel

    async def _exec(self, items: Iterable[Any] | AsyncIterable[Any]) -> list[Any]:  # type: ignore[override]
        ctx, stats = _batch_stats(items)
        check_cancelled(ctx)
        results: list[Any] = []
        run_item = self._exec_item_async
        workers = self.max_parallel
        total = sized_total(items)
        if total is not None:
            workers = min(workers, total)

        if isinstance(items, AsyncIterable):
            source = aiter(items)
            lock = asyncio.Lock()

            async def async_worker() -> None:
                while True:
                    async with lock:
                        try:
                            item = await anext(source)
                        except StopAsyncIteration:
                            return
                        index = len(results)
                        results.append(None)
                    results[index] = await run_item(item, index, stats)

            await gather_or_cancel([async_worker() for _ in range(workers)])
            if stats is not None:
                stats.flush()
            return results

        iterator: Iterator[Any] = iter(items)
        pacer = Pacer(enabled=ctx is not None)
        check_at = pacer.check_at

        async def worker() -> None:
            nonlocal check_at
            # No await between next() and append(): workers share one event loop thread, so
            # claiming an index is atomic without a lock.
            for item in iterator:
                index = len(results)
                results.append(None)
                results[index] = await run_item(item, index, stats)
                if index >= check_at:
                    check_at = await pacer.turn(index)

        await gather_or_cancel([worker() for _ in range(workers)])
        if stats is not None:
            stats.flush()
        return results
