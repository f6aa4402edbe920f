"""What a run tells its observer, and the observer protocol.

Events are delivered synchronously, in the order things happen, on the thread or task that runs
the node, so an observer sees every event of a node in order and none is lost. An observer must
therefore be quick (a status tracker updates counters; slow work such as API calls belongs on
another task or thread fed by the observer). An exception raised by an observer propagates into
the run: flowlib never hides one.

Each event carries ``path``, the names of the nodes from the outermost flow down to the node the
event is about (``()`` for the run itself), and ``time`` (``time.time()`` when it happened).
Events are plain slotted classes rather than frozen dataclasses because a 100,000-item batch
emits 100,000 progress events and construction cost matters; treat them as read-only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol, TypeAlias, runtime_checkable

Path: TypeAlias = tuple[str, ...]


@dataclass(slots=True)
class FlowStarted:
    """The run began (emitted once, for the object ``run``/``run_async`` was called on)."""

    path: Path
    time: float = field(default_factory=time.time)


@dataclass(slots=True)
class FlowFinished:
    """The run ended normally; ``action`` is what ``run`` returned."""

    path: Path
    action: object
    time: float = field(default_factory=time.time)


@dataclass(slots=True)
class FlowFailed:
    """The run ended with an exception, which ``run`` raises right after this event."""

    path: Path
    error: BaseException
    time: float = field(default_factory=time.time)


@dataclass(slots=True)
class FlowCancelled:
    """The run was cancelled (token or task cancellation); ``run`` raises right after."""

    path: Path
    reason: str | None = None
    time: float = field(default_factory=time.time)


@dataclass(slots=True)
class NodeStarted:
    """A flow is about to run a node; ``kind`` is the node's class name.

    ``visit`` numbers the visits of this node path in the run (1 for the first); it can jump when
    the visits in between were coalesced into a :class:`NodeVisits` (see there).
    """

    path: Path
    kind: str
    time: float = field(default_factory=time.time)
    visit: int = 1


@dataclass(slots=True)
class NodeFinished:
    """A node's post returned ``action``; ``duration`` is in seconds."""

    path: Path
    action: object
    duration: float
    time: float = field(default_factory=time.time)


@dataclass(slots=True)
class NodeFailed:
    """A node raised ``error`` (after its retries and fallback); the flow fails with it."""

    path: Path
    error: BaseException
    duration: float
    time: float = field(default_factory=time.time)
    visit: int = 1


@dataclass(slots=True)
class NodeCancelled:
    """A node was interrupted by cancellation (``visit``: which visit of the node it was)."""

    path: Path
    duration: float
    time: float = field(default_factory=time.time)
    visit: int = 1


@dataclass(slots=True)
class NodeVisits:
    """Visits of a looping node that had no events of their own, summed up (observer opt-in).

    An observer whose ``visit_events`` attribute is a number N asks for coalescing: of each node
    path, the first N visits are reported as usual (``NodeStarted`` then ``NodeFinished``), and
    after that one visit per ``visit_interval`` seconds (default 1) is; the visits in between are
    only counted. A ``NodeVisits`` then reports the counts before the next reported visit (of any
    node of the same walk) starts, before a failure or cancellation, and when the walk that ran them
    ends -- so a loop is summed up before the node after it starts.
    Counts are cumulative over the run: ``visits`` visits finished so far, ``seconds`` spent in
    them, and the last one's ``action`` and ``attempts`` (exec attempts).
    Why: a 10,000-step loop of trivial nodes would otherwise cost two events per step, more than
    the steps themselves, for lines and counters nobody reads one by one. Failures, cancellations
    and retries are never coalesced.
    """

    path: Path
    kind: str
    visits: int
    seconds: float
    action: object
    attempts: int
    time: float = field(default_factory=time.time)


@dataclass(slots=True)
class RetryScheduled:
    """Exec attempt ``attempt`` (1-based) failed with ``error``; the next starts after ``delay`` s.

    ``item`` is the item's index for batch nodes, ``None`` otherwise; ``visit`` is the visit of the
    node the attempt belongs to.
    """

    path: Path
    attempt: int
    error: BaseException
    delay: float
    item: int | None
    time: float = field(default_factory=time.time)
    visit: int = 1


@dataclass(slots=True)
class BatchProgress:
    """Item counts of a batch node: emitted once at the start and after every finished item.

    ``total`` is ``None`` when the items have no length (a generator). ``done`` counts items whose
    exec succeeded, ``failed`` those whose attempts all failed (whether or not ``exec_fallback``
    then rescued them).
    """

    path: Path
    total: int | None
    done: int
    failed: int
    time: float = field(default_factory=time.time)


Event: TypeAlias = (
    FlowStarted
    | FlowFinished
    | FlowFailed
    | FlowCancelled
    | NodeStarted
    | NodeFinished
    | NodeFailed
    | NodeCancelled
    | NodeVisits
    | RetryScheduled
    | BatchProgress
)


@runtime_checkable
class Observer(Protocol):
    """Anything with ``on_event``; attach it with ``flow.run(shared, observer=...)``.

    Optional attributes, read once when the run starts: ``visit_events`` (an int) and
    ``visit_interval`` (seconds) ask for :class:`NodeVisits` coalescing of looping nodes.
    """

    def on_event(self, event: Event) -> None: ...


class EventRecorder:
    """An observer that keeps every event in a list: handy in tests and for debugging."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def on_event(self, event: Event) -> None:
        self.events.append(event)
