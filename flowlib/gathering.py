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

from .pacing import Pacer


class _Resumed(Coroutine[Any, Any, Any]):
    """A coroutine that already took its first step, in a form a task can drive.

    The task's first step gets back what the coroutine's first step yielded (the future it waits
    on); every later resumption, and any exception thrown in (cancellation, even before the task
    ever ran), goes straight into the coroutine at the point where it is suspended, so its
    ``except``/``finally`` blocks run exactly as if a task had started it.
    """

    __slots__ = ("_coro", "_first", "_handed_over")

    def __init__(self, coro: Coroutine[Any, Any, Any], first: Any) -> None:
        self._coro, self._first, self._handed_over = coro, first, False

    def send(self, value: Any) -> Any:
        if not self._handed_over:
            self._handed_over = True
            first, self._first = self._first, None
            return first
        return self._coro.send(value)

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        self._handed_over = True
        self._first = None
        if val is None and tb is None:
            return self._coro.throw(typ)
        return self._coro.throw(typ, val, tb)  # pragma: no cover - legacy three-argument form

    def close(self) -> None:
        self._coro.close()

    def __await__(self) -> Generator[Any, Any, Any]:  # pragma: no cover - only tasks drive it
        raise TypeError("a resumed coroutine is driven by its task, never awaited directly")


async def gather_or_cancel(coros: Iterable[Coroutine[Any, Any, Any]], *, paced: bool = False) -> list[Any]:
    """Run ``coros`` concurrently and return their results in order (see the module docstring).

    ``paced``: let the event loop in now and then while starting them (see pacing.py), for
    coroutines that may complete without suspending.
    """
    results: list[Any] = []
    started: list[tuple[int, asyncio.Task[Any]]] = []
    iterator = iter(coros)
    pacer = Pacer(enabled=paced)
    check_at = pacer.check_at
    try:
        for coro in iterator:
            index = len(results)
            if index >= check_at:
                try:
                    check_at = await pacer.turn(index)
                except BaseException:
                    coro.close()  # taken from the iterator, never started
                    raise
            results.append(None)
            context = contextvars.copy_context()
            try:
                first = context.run(coro.send, None)
            except StopIteration as stop:
                results[index] = stop.value
                continue
            started.append((index, asyncio.create_task(_Resumed(coro, first), context=context)))
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
            # Cancelled again while they clean up: they were already told to stop, so let their
            # cleanup finish rather than cut it short, then honour the cancellation.
            interrupted = e
        pending = [task for task in pending if not task.done()]
    for task in tasks:
        if not task.cancelled():
            task.exception()  # mark it retrieved: the first error is already being raised
    if interrupted is not None:
        raise interrupted
