"""Synchronous nodes: ``BaseNode``, ``Node`` (= ``NodeWithRetry``) and ``BatchNode``.

The behaviour, return values, exceptions and warning texts are PocketFlow's, so programs written for
``pocketflow`` run unchanged. The additions (retry backoff, cancellation between items, observer
events, node names) are keyword-only and cost nothing when unused.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterable
from typing import Any

from .context import RUN_CONTEXT, RunContext, current_path
from .errors import Cancelled
from .events import BatchProgress, RetryScheduled
from .retry import check_retry_settings, retry_delay
from .runs import run_root


class BaseNode:
    """A step of a flow: ``prep`` reads the shared store, ``exec`` computes, ``post`` writes back.

    ``post`` returns the action that chooses the next node (``None`` means ``"default"``).
    Successors are wired with ``a >> b`` (default action) or ``a - "action" >> b``.
    """

    def __init__(self, *, name: str | None = None) -> None:
        self.params: dict[str, Any] = {}
        self.successors: dict[str, BaseNode] = {}
        if name is not None:
            self.name = name

    def set_params(self, params: dict[str, Any]) -> None:
        self.params = params

    def next(self, node: BaseNode, action: str = "default") -> BaseNode:
        """Make ``node`` the successor for ``action``; returns ``node`` so wiring can chain."""
        if action in self.successors:
            warnings.warn(f"Overwriting successor for action '{action}'")  # noqa: B028 - PocketFlow's attribution
        self.successors[action] = node
        return node

    def prep(self, shared: Any) -> Any:
        pass

    def exec(self, prep_res: Any) -> Any:
        pass

    def post(self, shared: Any, prep_res: Any, exec_res: Any) -> Any:
        pass

    def _exec(self, prep_res: Any) -> Any:
        return self.exec(prep_res)

    def _run(self, shared: Any) -> Any:
        p = self.prep(shared)
        e = self._exec(p)
        return self.post(shared, p, e)

    def run(self, shared: Any, *, observer: Any = None, cancel: Any = None) -> Any:
        """Run this node (or flow) alone and return its action.

        ``observer`` receives :mod:`flowlib.events`; ``cancel`` is a :class:`~flowlib.CancelToken`.
        Without either, a run started from inside another run's node joins that run's context.
        """
        if self.successors:
            warnings.warn("Node won't run successors. Use Flow.")  # noqa: B028 - PocketFlow's attribution
        return run_root(self, shared, observer, cancel)

    def __rshift__(self, other: BaseNode) -> BaseNode:
        return self.next(other)

    def __sub__(self, action: str) -> _ConditionalTransition:
        if isinstance(action, str):
            return _ConditionalTransition(self, action)
        raise TypeError("Action must be a string")


class _ConditionalTransition:
    """The ``node - "action"`` half of ``node - "action" >> successor``."""

    def __init__(self, src: BaseNode, action: str) -> None:
        self.src, self.action = src, action

    def __rshift__(self, tgt: BaseNode) -> BaseNode:
        return self.src.next(tgt, self.action)


class _ItemStats:
    """Item counts of one batch execution, reported through ``BatchProgress`` events.

    Counts are cumulative, so intermediate reports can be coalesced without losing anything: every
    item is reported for the first ``EVERY_ITEM`` items, then about ``REPORTS`` times per batch
    (every ``UNSIZED_STEP`` items when the total is unknown), and the last count always is. An
    observer of a million-item batch gets a thousand events, not a million.
    """

    __slots__ = ("ctx", "done", "done_due", "failed", "next_report", "path", "reported", "step", "total")
    EVERY_ITEM = 100
    REPORTS = 1000
    UNSIZED_STEP = 1000

    def __init__(self, ctx: RunContext, total: int | None) -> None:
        self.ctx = ctx
        self.path = current_path()
        self.total = total
        self.done = 0
        self.failed = 0
        self.reported = -1
        self.step = max(1, total // self.REPORTS) if total is not None else self.UNSIZED_STEP
        self.next_report = 0
        # `next_report` in terms of `done` alone, so an item that succeeds costs one comparison.
        self.done_due = 0

    def report(self) -> None:
        """Report if this count is due. Callers may skip the call while ``finished < next_report``."""
        finished = self.done + self.failed
        if finished > self.EVERY_ITEM and finished < self.next_report and finished != self.total:
            self.done_due = self.next_report - self.failed  # a failure moved it
            return
        self.next_report = finished + (1 if finished < self.EVERY_ITEM else self.step)
        if self.total is not None and finished < self.total:
            self.next_report = min(self.next_report, self.total)
        self.done_due = self.next_report - self.failed
        self._emit(finished)

    def flush(self) -> None:
        """Report the final count if the last item's report was coalesced away."""
        finished = self.done + self.failed
        if finished != self.reported:
            self._emit(finished)

    def _emit(self, finished: int) -> None:
        self.reported = finished
        self.ctx.emit(BatchProgress(self.path, self.total, self.done, self.failed))


def sized_total(items: Any) -> int | None:
    """The number of items when it is known without consuming them."""
    try:
        return len(items)
    except TypeError:
        return None


class Node(BaseNode):
    """A node whose ``exec`` is retried: up to ``max_retries`` attempts, ``wait`` seconds apart.

    When every attempt fails, ``exec_fallback(prep_res, exc)`` decides (by default it re-raises).
    ``cur_retry`` holds the 0-based number of the attempt in progress (as in PocketFlow it belongs
    to the node, so concurrent items of a parallel batch overwrite each other's). Beyond PocketFlow:
    ``backoff="exponential"`` doubles the wait after each failure up to ``max_wait`` seconds, and
    ``jitter`` (0..1) spreads each wait by up to that fraction either way.
    """

    def __init__(
        self,
        max_retries: int = 1,
        wait: float = 0,
        *,
        backoff: str = "fixed",
        max_wait: float | None = None,
        jitter: float = 0.0,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        check_retry_settings(max_retries, wait, backoff, max_wait, jitter)
        self.max_retries, self.wait = max_retries, wait
        self.backoff, self.max_wait, self.jitter = backoff, max_wait, jitter

    def exec_fallback(self, prep_res: Any, exc: Exception) -> Any:
        raise exc

    def _retry_delay(self, attempt: int) -> float:
        # getattr: PocketFlow-style subclasses may skip Node.__init__ and set only max_retries/wait.
        backoff = getattr(self, "backoff", "fixed")
        jitter = getattr(self, "jitter", 0.0)
        max_wait = getattr(self, "max_wait", None)
        if backoff == "fixed" and not jitter and max_wait is None:
            return self.wait
        return retry_delay(attempt, self.wait, backoff=backoff, max_wait=max_wait, jitter=jitter)

    def _before_retry(self, attempt: int, error: Exception, item: int | None) -> float:
        """Report a failed attempt and return how long to wait before the next."""
        delay = self._retry_delay(attempt)
        ctx = RUN_CONTEXT.get()
        if ctx is not None and ctx.observer is not None:
            path = current_path()
            record = ctx.visits.get(path)
            visit = 1
            if record is not None:
                visit = record.visits
                if item is None:  # the visit's own attempts (a batch item's are the item's)
                    record.retry_visit, record.retry_attempts = visit, attempt + 1
            ctx.emit(RetryScheduled(path, attempt, error, delay, item, visit=visit))
        return delay

    def _exec(self, prep_res: Any) -> Any:
        # The same loop as _exec_item without item bookkeeping: this is every node's hot path,
        # and the single-attempt default skips the loop altogether.
        if self.max_retries == 1:
            self.cur_retry = 0
            try:
                return self.exec(prep_res)
            except Exception as e:
                return self.exec_fallback(prep_res, e)
        for attempt in range(self.max_retries):
            self.cur_retry = attempt
            try:
                return self.exec(prep_res)
            except Exception as e:
                if attempt == self.max_retries - 1:
                    return self.exec_fallback(prep_res, e)
                delay = self._before_retry(attempt + 1, e, None)
                if delay > 0:
                    _sleep(delay)
        return None

    def _exec_item(self, prep_res: Any, index: int | None, stats: _ItemStats | None) -> Any:
        for attempt in range(self.max_retries):
            self.cur_retry = attempt
            try:
                result = self.exec(prep_res)
            except Exception as e:
                if attempt == self.max_retries - 1:
                    if stats is not None:
                        stats.failed += 1
                    return self.exec_fallback(prep_res, e)
                delay = self._before_retry(attempt + 1, e, index)
                if delay > 0:
                    _sleep(delay)
            else:
                if stats is not None:
                    stats.done += 1
                return result
        return None


# PocketFlow's retrying node under the seed plan's name.
NodeWithRetry = Node


def _sleep(seconds: float) -> None:
    """Wait between attempts; a cancelled run wakes up at once instead of sleeping on."""
    ctx = RUN_CONTEXT.get()
    token = ctx.cancel if ctx is not None else None
    if token is None:
        time.sleep(seconds)
    elif token.wait(seconds):
        raise Cancelled(token.reason or "run cancelled")


def check_cancelled(ctx: RunContext | None) -> None:
    """Raise :class:`Cancelled` if the run's token has been cancelled."""
    if ctx is not None and ctx.cancel is not None and ctx.cancel.is_set:
        raise Cancelled(ctx.cancel.reason or "run cancelled")


class BatchNode(Node):
    """A node whose ``exec`` runs once per item of what ``prep`` returns (any iterable).

    Results come back as a list in item order. Each item is retried on its own.
    """

    def _exec(self, items: Iterable[Any] | None) -> list[Any]:
        ctx = RUN_CONTEXT.get()
        if ctx is None or (ctx.observer is None and ctx.cancel is None):
            run_item = self._exec_item
            return [run_item(i, None, None) for i in (items or [])]
        return self._exec_observed(items or [], ctx)

    def _exec_observed(self, items: Iterable[Any], ctx: RunContext) -> list[Any]:
        stats = _ItemStats(ctx, sized_total(items)) if ctx.observer is not None else None
        if stats is not None:
            stats.report()
        results = []
        for index, item in enumerate(items):
            check_cancelled(ctx)
            results.append(self._exec_item(item, index, stats))
            if stats is not None:
                stats.report()
        if stats is not None:
            stats.flush()
        return results
