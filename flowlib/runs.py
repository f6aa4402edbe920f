"""Starting a run: set up its context, report it to the observer, clean up after it.

A run is what ``run``/``run_async`` starts on any node or flow. Runs started from inside another
run's node without an observer or token of their own join the enclosing run, so a sub-flow that
user code runs by hand is still observed and still cancellable.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

from .cancel import CancelToken
from .context import FRAME, RUN_CONTEXT, RunContext
from .errors import Cancelled
from .events import FlowCancelled, FlowFailed, FlowFinished, FlowStarted, Observer


def _fresh_context(observer: Observer | None, cancel: CancelToken | None) -> RunContext | None:
    """The context for a new run, or None to keep the enclosing run's context."""
    if observer is None and cancel is None:
        return None  # nested: join the enclosing run; top level: a bare run, PocketFlow's own path
    if observer is not None and not callable(getattr(observer, "on_event", None)):
        raise TypeError(f"observer must have an on_event(event) method, got {type(observer).__name__}")
    if cancel is not None and not isinstance(cancel, CancelToken):
        raise TypeError(f"cancel must be a flowlib.CancelToken, got {type(cancel).__name__}")
    if observer is None:  # a token only: visits are counted, no events built
        return RunContext(None, cancel, visit_events=0, visit_interval=float("inf"))
    visit_events = getattr(observer, "visit_events", None)
    visit_interval = getattr(observer, "visit_interval", 1.0)
    if visit_events is not None and (not isinstance(visit_events, int) or visit_events < 0):
        raise TypeError(f"observer.visit_events must be None or a whole number >= 0, not {visit_events!r}")
    if not isinstance(visit_interval, int | float) or visit_interval < 0:
        raise TypeError(f"observer.visit_interval must be a number of seconds >= 0, not {visit_interval!r}")
    if visit_events is None:
        return RunContext(observer, cancel)  # every visit reported
    return RunContext(observer, cancel, visit_events=visit_events, visit_interval=float(visit_interval))


def run_root(node: Any, shared: Any, observer: Observer | None, cancel: CancelToken | None) -> Any:
    """Run ``node._run(shared)`` as a run of its own (sync)."""
    ctx = _fresh_context(observer, cancel)
    if ctx is None:
        return node._run(shared)
    with _reported(ctx, cancel) as run:
        run.action = node._run(shared)
    return run.action


async def run_root_async(
    node: Any,
    shared: Any,
    observer: Observer | None,
    cancel: CancelToken | None,
    body: Callable[[Any], Awaitable[Any]],
) -> Any:
    """Await ``body(shared)`` as a run of its own; a cancelled token cancels the running task."""
    ctx = _fresh_context(observer, cancel)
    if ctx is None:
        return await body(shared)
    with _reported(ctx, cancel, task=True) as run:
        run.action = await body(shared)
    return run.action


class _Run:
    """The ``with _reported(...)`` block's result: the action its body returned."""

    __slots__ = ("action",)

    def __init__(self) -> None:
        self.action: Any = None


@contextmanager
def _reported(ctx: RunContext, cancel: CancelToken | None, *, task: bool = False) -> Iterator[_Run]:
    """Everything a run does around its body, for ``run_root`` and ``run_root_async`` alike.

    Why a (sync) context manager: the two differ only in whether the body is called or awaited,
    and a ``with`` block may hold an ``await``, so each keeps just that line. It installs the run's
    context, refuses a token that is already cancelled, reports the run's start and end, and
    restores the context variables however the run ends. ``task=True`` (async runs): a flipped
    token also cancels the running task, and that task's ``CancelledError`` is raised as
    :class:`Cancelled`.
    """
    ctx_token = RUN_CONTEXT.set(ctx)
    path_token = FRAME.set(None)
    unregister = None
    try:
        if cancel is not None:
            if cancel.cancelled:
                raise Cancelled(cancel.reason or "run cancelled")
            if task:
                unregister = _cancel_task_on(cancel)
        ctx.emit(FlowStarted(()))
        run = _Run()
        try:
            yield run
        except asyncio.CancelledError as e:
            ctx.emit(FlowCancelled((), _reason(e, cancel)))
            if task and cancel is not None and cancel.cancelled and not isinstance(e, Cancelled):
                # The token cancelled our task: say so with flowlib's own exception type.
                raise Cancelled(cancel.reason or "run cancelled") from e
            raise
        except BaseException as e:
            ctx.emit(FlowFailed((), e))
            raise
        ctx.emit(FlowFinished((), run.action))
    finally:
        if unregister is not None:
            unregister()
        FRAME.reset(path_token)
        RUN_CONTEXT.reset(ctx_token)


def _cancel_task_on(token: CancelToken) -> Callable[[], None]:
    """Cancel the current task when ``token`` flips, from whichever thread flips it.

    The cancellation is delivered by a callback on the run's event loop, which runs only while the
    task is suspended, so it lands at an ``await`` inside the run. Once the run has ended (its own
    check between nodes may have stopped it first), a late callback does nothing: a cancellation
    meant for the run must never hit the code that awaits it afterwards.
    """
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    if task is None:  # pragma: no cover - run_async always runs inside a task
        return lambda: None
    live = True

    def deliver() -> None:
        if live:
            task.cancel(token.reason)

    def cancel_task() -> None:
        loop.call_soon_threadsafe(deliver)

    remove = token.add_callback(cancel_task)

    def finished() -> None:
        nonlocal live
        live = False  # on the loop's thread, like deliver(): no race between the two
        remove()

    return finished


def _reason(error: BaseException, cancel: CancelToken | None) -> str | None:
    if cancel is not None and cancel.reason:
        return cancel.reason
    return str(error) or None
