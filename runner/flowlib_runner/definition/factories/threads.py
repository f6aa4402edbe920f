"""Worker threads for blocking user code in nodes whose items run concurrently.

The rule (``specialise.py`` applies it when it builds a node's class): in a ``parallel_batch`` or
``worker_pool`` node, and in every node inside a parallel batch sub-flow (``type: flow`` with
``batch.maxParallel`` > 1), the hooks that are not ``async def`` -- inline Python's ``def prep``,
``def exec``, ``def post`` and ``def exec_fallback``, and a ``call`` target that is a plain
function -- run on worker threads, at most ``maxParallel`` at once. ``async def`` hooks, inline
expressions (``item + 1``), templates and the other run kinds (shell, http) stay on the event loop;
so does everything in the sequential types (base, batch, async_batch) outside a parallel sub-flow,
which keep calling their hooks (coroutine twins) without a thread hop.

Why: sync code on the event loop runs one item at a time (16 items of 0.5 s took 8 s at
``maxParallel: 8``), and while it runs nothing else does: status goes stale and a cancellation waits
until the call returns, or for the pod's grace period. On a worker thread the loop stays free, so
items overlap, progress is published and a cancellation ends the run at once.

The threads are our own daemon threads (``DaemonThreads``), not a ``concurrent.futures`` executor:
a cancelled or timed-out call is abandoned, not waited for -- its coroutine ends at once and its
thread runs on until the user's call returns, its result dropped -- and an executor's threads are
joined when the interpreter exits, so one ``time.sleep(3600)`` would keep ``flowctl run`` alive
after a cancellation. Daemon threads never delay the exit. Each call runs in a copy of the caller's
context (``contextvars.copy_context().run``), so ``flowlib.current_path()`` (the run log's
attribution of ``print``), the node inline code's ``params`` and ``node`` read, and the run's
context are those of the item that made the call.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import itertools
import queue
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from flowlib.errors import NodeTimeout
from flowlib.naming import node_name

from ..runkinds.twins import PLAIN_RESULTS

DEFAULT_ITEM_THREADS = 32
"""How many items of a ``parallel_batch`` without ``maxParallel`` run at once when their code runs
on threads (one thread per item in flight; set ``maxParallel`` for more)."""

IDLE_SECONDS = 60.0
"""A worker thread that has waited this long for work ends."""


class DaemonThreads:
    """A pool of daemon threads that grows to the number of calls in flight and shrinks when idle.

    It has no bound of its own: the nodes bound their items (``maxParallel``). ``submit`` hands the
    job to an idle thread, or starts one; a thread idle for ``idle_seconds`` ends.
    """

    def __init__(self, name: str, *, idle_seconds: float = IDLE_SECONDS) -> None:
        self._name = name
        self._idle_seconds = idle_seconds
        self._jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._idle = threading.Semaphore(0)  # one permit per thread waiting for a job
        self._numbers = itertools.count(1)

    def submit(self, job: Callable[[], None]) -> None:
        self._jobs.put(job)
        if not self._idle.acquire(blocking=False):
            name = f"{self._name}-{next(self._numbers)}"
            threading.Thread(target=self._work, name=name, daemon=True).start()

    def _work(self) -> None:
        jobs, idle = self._jobs, self._idle
        while True:
            try:
                job = jobs.get(timeout=self._idle_seconds)
            except queue.Empty:
                if idle.acquire(blocking=False):
                    return  # took our own permit: no submit counts on this thread any more
                continue  # a submit claimed the permit: its job is on its way
            try:
                job()
            except Exception:  # pragma: no cover - a job reports its own errors; keep the thread
                pass
            del job
            idle.release()


THREADS = DaemonThreads("flowlib-worker")


class _Call:
    """One call of a blocking hook on a worker thread; its outcome goes back to the loop."""

    __slots__ = ("args", "context", "fn", "future", "loop")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        future: asyncio.Future[tuple[bool, Any]],
        context: contextvars.Context,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
    ) -> None:
        self.loop, self.future, self.context, self.fn, self.args = loop, future, context, fn, args

    def __call__(self) -> None:
        if self.future.cancelled():
            return  # abandoned before a thread took it: never start it
        outcome: tuple[bool, Any]
        try:
            outcome = (True, self.context.run(self.fn, *self.args))
        except BaseException as exc:  # SystemExit too: raised on the loop, as if the call ran there
            outcome = (False, exc)
        try:
            self.loop.call_soon_threadsafe(_settle, self.future, outcome)
        except RuntimeError:
            pass  # the loop is closed: the run is over and nobody waits for this result
        del outcome, self.args


class UserCodeExit(RuntimeError):
    """User code on a worker thread raised ``SystemExit`` or ``KeyboardInterrupt``.

    Raised in its place: the call's result is taken in the item's asyncio task, and asyncio lets
    those two out of a task past every handler, ending the whole process. As an ordinary error it
    fails the item (the item error policy applies) and so the node, as any other failure would.
    """

    def __init__(self, raised: BaseException) -> None:
        super().__init__(
            f"user code raised {type(raised).__name__}({str(raised)!r}) on a worker thread; a node must not "
            "end the runner: raise an exception to fail it"
        )
        self.raised = raised


def _settle(future: asyncio.Future[tuple[bool, Any]], outcome: tuple[bool, Any]) -> None:
    if not future.done():  # cancelled meanwhile (a cancellation, a timeout): the call was abandoned
        future.set_result(outcome)


def on_thread(fn: Callable[..., Any]) -> Callable[..., Coroutine[Any, Any, Any]]:
    """A coroutine function calling ``fn`` on a worker thread with the same arguments.

    The call runs in a copy of the caller's context. Its result is returned, awaited first (on the
    loop) if it is awaitable, as a sync hook's always was; its exception is raised. Cancelling the
    awaiting coroutine (cancellation, a ``timeout``) ends it at once and abandons the call.
    """

    async def call_on_thread(*args: Any) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[bool, Any]] = loop.create_future()
        THREADS.submit(_Call(loop, future, contextvars.copy_context(), fn, args))
        ok, value = await future
        if not ok:
            try:
                if not isinstance(value, Exception):
                    raise UserCodeExit(value) from value
                raise value
            finally:
                del value  # no cycle through the traceback's frame
        if type(value) in PLAIN_RESULTS or not inspect.isawaitable(value):
            return value
        return await value

    call_on_thread.__name__ = getattr(fn, "__name__", call_on_thread.__name__)
    call_on_thread.__qualname__ = getattr(fn, "__qualname__", call_on_thread.__qualname__)
    return call_on_thread


def attempt_within_timeout(node: Any, prep_res: Any) -> Awaitable[Any]:
    """One exec attempt bounded by the node's ``timeout``: flowlib's ``AsyncNode._attempt``, for
    nodes whose items run concurrently (installed by ``specialise.py``). Not a coroutine itself:
    without a timeout flowlib awaits exec's own coroutine, one frame less per item.

    Why not flowlib's ``asyncio.timeout``: flowlib starts parallel items eagerly (each one's first
    step runs in the task that starts them, ``flowlib/gathering.py``), and ``asyncio.timeout``
    entered during that step belongs to the starting task, so an expired deadline cancelled the
    whole batch instead of failing the attempt. Here the attempt runs as a task of its own, which
    the deadline cancels; a thread it waits for is abandoned with it.
    """
    timeout = node.timeout
    if timeout is None:
        awaitable: Awaitable[Any] = node.exec_async(prep_res)
        return awaitable
    return _attempt_within(node, prep_res, seconds=timeout)


async def _attempt_within(node: Any, prep_res: Any, *, seconds: float) -> Any:
    loop = asyncio.get_running_loop()
    attempt = loop.create_task(node.exec_async(prep_res))
    expired = False

    def expire() -> None:
        nonlocal expired
        expired = True
        attempt.cancel()

    deadline = loop.call_later(seconds, expire)
    try:
        return await attempt  # a cancellation of ours cancels the attempt too
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if expired and attempt.cancelled() and (current is None or not current.cancelling()):
            raise NodeTimeout(node_name(node), seconds) from None
        raise
    finally:
        deadline.cancel()
