"""Visit accounting for observed walks: which visits get events, and the counts of those that do not.

A flow walk that has a run context (an observer or a cancel token) runs each node visit either
*reported* -- ``NodeStarted``, then ``NodeFinished``/``NodeFailed``/``NodeCancelled``, as PocketFlow
users of an observer expect -- or *quiet*: counted in the node's :class:`VisitRecord` only, and
summed up later by a :class:`~flowlib.events.NodeVisits` event. Which one is the observer's choice
(``visit_events``, ``visit_interval``; see ``NodeVisits``); by default every visit is reported.

Why it lives apart from ``flows.py``: the walk loops there stay the hot path, doing per visit only
what a quiet visit needs (a clock read, a few counter updates); everything that builds events is
here and runs once per reported visit, failure or summary.
"""

from __future__ import annotations

import asyncio
from time import perf_counter
from typing import Any

from .context import RunContext
from .events import NodeCancelled, NodeFailed, NodeFinished, NodeStarted, NodeVisits, Path


class VisitRecord:
    """One node path's visits in a run: counts for ``NodeVisits``, and when the next is reported.

    ``visits`` counts visits started; ``reported`` is how many of them events have covered (a
    reported visit, or a ``NodeVisits``), so ``visits > reported`` after a walk means a summary is
    owed. ``due`` is the ``perf_counter()`` time from which the node's next visit is reported: 0
    until the node has had the run's ``visit_events`` reported visits, so the walk decides with one
    comparison. ``seconds`` is the time spent in the node's visits. ``retry_visit`` and
    ``retry_attempts`` say which visit last had an exec attempt retried, and which attempt it was
    on (written by the retry path, so a visit without retries costs nothing).
    """

    __slots__ = ("action", "due", "kind", "path", "reported", "retry_attempts", "retry_visit", "seconds", "visits")

    def __init__(self, path: Path, kind: str) -> None:
        self.path = path
        self.kind = kind
        self.visits = 0
        self.reported = 0
        self.seconds = 0.0
        self.action: object = None
        self.retry_visit = 0
        self.retry_attempts = 1
        self.due = 0.0


def record_for(ctx: RunContext, path: Path, kind: str) -> VisitRecord:
    """The run's record for ``path`` (walks of the same sub-flow share it, so counts add up)."""
    record = ctx.visits.get(path)
    if record is None:
        record = ctx.visits[path] = VisitRecord(path, kind)
    return record


def summarise(ctx: RunContext, record: VisitRecord, visits: int) -> None:
    """Report ``visits`` finished visits of ``record``'s node in one ``NodeVisits``."""
    attempts = record.retry_attempts if record.retry_visit == visits else 1
    record.reported = visits
    ctx.emit(NodeVisits(record.path, record.kind, visits, record.seconds, record.action, attempts))


def summarise_all(ctx: RunContext, records: list[VisitRecord], *, but: VisitRecord) -> None:
    """Sum up the unreported visits of ``records`` (all finished) except ``but``'s, and forget them.

    A walk calls it before it reports a visit or a failure, so a log reads in order: the loop
    that just ended is summed up before the next node's first line, not at the end of the flow.
    """
    for record in records:
        if record is not but and record.visits > record.reported:
            summarise(ctx, record, record.visits)
    records.clear()


def flush(ctx: RunContext, records: dict[int, VisitRecord]) -> None:
    """At the end of a walk: a ``NodeVisits`` for each node whose last visits went unreported."""
    for record in records.values():
        if record.visits > record.reported:
            summarise(ctx, record, record.visits)


def _begin(ctx: RunContext, record: VisitRecord, started: float) -> None:
    if record.visits - 1 > record.reported:
        summarise(ctx, record, record.visits - 1)
    record.reported = record.visits
    if record.visits >= ctx.visit_events:
        record.due = started + ctx.visit_interval
    ctx.emit(NodeStarted(record.path, record.kind, visit=record.visits))


def ended(ctx: RunContext, record: VisitRecord, action: object, started: float) -> None:
    """A reported visit finished: count it and emit ``NodeFinished``."""
    duration = perf_counter() - started
    record.seconds += duration
    record.action = action
    ctx.emit(NodeFinished(record.path, action, duration))


def failed(ctx: RunContext, record: VisitRecord, error: BaseException, started: float) -> None:
    """A visit (reported or quiet) raised: sum up the quiet ones before it, then report the failure."""
    duration = perf_counter() - started
    record.seconds += duration
    if record.visits - 1 > record.reported:
        summarise(ctx, record, record.visits - 1)
    record.reported = record.visits
    if isinstance(error, asyncio.CancelledError):
        ctx.emit(NodeCancelled(record.path, duration, visit=record.visits))
    else:
        ctx.emit(NodeFailed(record.path, error, duration, visit=record.visits))


def run_reported(ctx: RunContext, record: VisitRecord, node: Any, shared: Any, started: float) -> Any:
    """Run a sync visit with its own events."""
    _begin(ctx, record, started)
    try:
        action = node._run(shared)
    except BaseException as e:
        failed(ctx, record, e, started)
        raise
    ended(ctx, record, action, started)
    return action


async def run_reported_async(
    ctx: RunContext, record: VisitRecord, node: Any, shared: Any, started: float, *, is_async: bool
) -> Any:
    """Run a visit of an async walk with its own events (``is_async``: await ``_run_async``)."""
    _begin(ctx, record, started)
    try:
        action = await node._run_async(shared) if is_async else node._run(shared)
    except BaseException as e:
        failed(ctx, record, e, started)
        raise
    ended(ctx, record, action, started)
    return action
