"""The per-run context: observer, cancel token and the path of the node that is running.

It travels in context variables rather than through method arguments so that PocketFlow's method
signatures (``_run(shared)``, ``_exec(prep_res)``) stay unchanged, and so that every asyncio task
of a parallel batch inherits the path of the node that started it.

The path is kept as a chain of :class:`Frame` objects, one per flow walk, whose ``node`` is
updated in place at each step: setting a context variable for every node would cost more than a
trivial node itself. A walk's frame changes only between nodes, after every task of the previous
node has ended, so tasks that share a frame always see their own node.

:class:`VisitRecord`, the per-path visit counts a run keeps, is defined here rather than in
``visits.py`` (which does the accounting) so that this module imports nothing of the walk: the
accounting depends on the context, never the reverse.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from .cancel import CancelToken
from .events import Event, Observer, Path
from .naming import node_name


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


@dataclass(slots=True)
class RunContext:
    """What every node of one run shares.

    ``visit_events`` and ``visit_interval`` are the observer's coalescing request (see
    :class:`~flowlib.events.NodeVisits`); an observer that makes none gets 0 and 0.0, which reports
    every visit, and a run without an observer 0 and infinity: after its first visit a node is
    only counted, as no one receives events. ``visits`` holds the per-path visit counts behind
    them, shared by every walk of the run.
    """

    observer: Observer | None
    cancel: CancelToken | None
    visit_events: int = 0
    visit_interval: float = 0.0
    visits: dict[Path, VisitRecord] = field(default_factory=dict)

    def emit(self, event: Event) -> None:
        if self.observer is not None:
            self.observer.on_event(event)


class Frame:
    """One flow walk: the path of the node that runs the walk, and the node it is running now.

    ``prefix`` is computed once, when the walk starts (its enclosing node does not change while it
    runs), so a node's path costs one tuple per step rather than a walk up the chain.
    """

    __slots__ = ("node", "prefix")

    def __init__(self, parent: Frame | None) -> None:
        self.prefix: Path = parent.path() if parent is not None else ()
        self.node: Any = None

    def path(self) -> Path:
        return self.prefix if self.node is None else (*self.prefix, node_name(self.node))


RUN_CONTEXT: ContextVar[RunContext | None] = ContextVar("flowlib_run_context", default=None)
FRAME: ContextVar[Frame | None] = ContextVar("flowlib_frame", default=None)


def current_path() -> Path:
    """The path of the node whose code is running in this thread or task (``()`` outside nodes).

    A runner uses it to attribute what user code prints or logs to the node that printed it.
    """
    frame = FRAME.get()
    return () if frame is None else frame.path()
