"""Visit accounting for observed walks: which visits get events, and the counts of those that do not.

A flow walk that has a run context (an observer or a cancel token) runs each node visit either
*reported* -- ``NodeStarted``, then ``NodeFinished``/``NodeFailed``/``NodeCancelled``, as PocketFlow
users of an observer expect -- or *quiet*: counted in the node's :class:`VisitRecord` only, and
summed up later by a :class:`~flowlib.events.NodeVisits` event. Which one is the observer's choice
(``visit_events``, ``visit_interval``; see ``NodeVisits``); by default every visit is reported.

Why it lives apart from ``flows.py``: the walk loop there (one for sync and async flows) stays the
hot path, doing per visit only what a quiet visit needs (a clock read, a few counter updates);
everything that builds events is here and runs once per reported visit, failure or summary.
:class:`VisitRecord` itself is defined in ``context.py``, next to the run context that holds the
records, so that this module depends on that one and not the reverse.
"""

from __future__ import annotations

import asyncio
from time import perf_counter

from .context import RunContext, VisitRecord
from .events import NodeCancelled, NodeFailed, NodeFinished, NodeStarted, NodeVisits, Path


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


def began(ctx: RunContext, record: VisitRecord, started: float) -> None:
    """A reported visit began: sum up the node's quiet visits before it, then emit ``NodeStarted``."""
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
