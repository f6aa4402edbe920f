"""Run many coroutines at once, fail fast, and leave no task behind.

``gather_or_cancel`` is ``asyncio.gather`` with two differences that parallel batches need:

* The first failure cancels every other coroutine and waits until they have ended before it is
  raised as is (``asyncio.gather`` lets the others run on; ``TaskGroup`` wraps the error in an
  ``ExceptionGroup``). Cancelling the awaiting task does the same.
* Each coroutine starts eagerly, in the spirit of Python 3.12's ``asyncio.eager_task_factory``:
  its first step runs right away in its own copy of the context, and only a coroutine that
  actually suspends becomes a task. A batch of 100,000 items whose ``exec_async`` completes
  without waiting never pays for 100,000 tasks. Every coroutine still starts before any result
  is awaited, so "all items at once" holds.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Coroutine, Generator, Iterable, Sequence
from typing import Any


class _Suspended:
    """Hands a coroutine that already took its first step over to a task.

    The task waits on whatever the coroutine's first step yielded (the future it awaits), then
    forwards each resumption or thrown exception (cancellation) into the coroutine, exactly as
    ``await coro`` would have from the start.
    """

    __slots__ = ("coro", "first")

    def __init__(self, coro: Coroutine[Any, Any, Any], first: Any) -> None:
        self.coro, self.first = coro, first

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, pending = self.coro, self.first
        while True:
            try:
                value = yield pending
            except BaseException as thrown:
                try:
                    pending = coro.throw(thrown)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    pending = coro.send(value)
                except StopIteration as stop:
                    return stop.value


async def _resume(coro: Coroutine[Any, Any, Any], first: Any) -> Any:
    return await _Suspended(coro, first)


async def gather_or_cancel(coros: Iterable[Coroutine[Any, Any, Any]]) -> list[Any]:
    """Run ``coros`` concurrently and return their results in order (see the module docstring)."""
    results: list[Any] = []
    started: list[tuple[int, asyncio.Task[Any]]] = []
    iterator = iter(coros)
    try:
        for coro in iterator:
            index = len(results)
            results.append(None)
            context = contextvars.copy_context()
            try:
                first = context.run(coro.send, None)
            except StopIteration as stop:
                results[index] = stop.value
                continue
            started.append((index, asyncio.create_task(_resume(coro, first), context=context)))
        if started:
            values = await asyncio.gather(*(task for _, task in started))
            for (index, _), value in zip(started, values, strict=True):
                results[index] = value
    except BaseException:
        for coro in iterator:  # never started: close them so Python does not warn about them
            coro.close()
        await cancel_all([task for _, task in started])
        raise
    return results


async def cancel_all(tasks: Sequence[asyncio.Future[Any]]) -> None:
    """Cancel ``tasks`` and wait until every one has ended, even if cancelled meanwhile."""
    for task in tasks:
        task.cancel()
    pending = [task for task in tasks if not task.done()]
    interrupted: asyncio.CancelledError | None = None
    while pending:
        try:
            await asyncio.wait(pending)
        except asyncio.CancelledError as e:
            # Cancelled again while cleaning up: finish the cleanup, then honour it.
            interrupted = e
            for task in pending:
                task.cancel()
        pending = [task for task in pending if not task.done()]
    for task in tasks:
        if not task.cancelled():
            task.exception()  # mark it retrieved: the first error is already being raised
    if interrupted is not None:
        raise interrupted
