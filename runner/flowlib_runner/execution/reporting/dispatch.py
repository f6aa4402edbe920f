"""`Dispatch`: one flowlib observer feeding several, with a single type lookup per event.

Why not a loop over `on_event`s: a 100,000-item batch emits 100,000 events and each observer would
repeat the same `type(event)` lookup. Observers that publish a `handlers` table (event type ->
callable), like `StatusTracker` and `RunLogger`, are merged into one table; others get every event
through `on_event`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from flowlib import events as ev
from flowlib.events import Observer
from flowlib_runner.definition.factories.nodes import ErrorHandled

EVENT_TYPES: tuple[type, ...] = (
    ev.FlowStarted,
    ev.FlowFinished,
    ev.FlowFailed,
    ev.FlowCancelled,
    ev.NodeStarted,
    ev.NodeFinished,
    ev.NodeFailed,
    ev.NodeCancelled,
    ev.NodeVisits,
    ev.RetryScheduled,
    ev.BatchProgress,
    ErrorHandled,  # the runner's own: a failure taken by an error edge
)


class Dispatch:
    """Observer calling, for each event, the matching handlers of `observers` in their order.

    Its visit coalescing (flowlib's `visit_events`/`visit_interval`, see `flowlib.events.NodeVisits`)
    serves every observer: the most visits and the shortest interval any of them asks for, and no
    coalescing at all as soon as one of them does not ask for it (it expects every visit).
    """

    __slots__ = ("_table", "visit_events", "visit_interval")
    runner_events = True  # it routes the runner's own events (ErrorHandled) too

    def __init__(self, observers: Sequence[Observer]) -> None:
        table: dict[type, list[Callable[[Any], None]]] = {t: [] for t in EVENT_TYPES}
        for observer in observers:
            handlers: dict[type, Callable[[Any], None]] | None = getattr(observer, "handlers", None)
            for kind, calls in table.items():
                calls.append(handlers[kind] if handlers is not None else observer.on_event)
        self._table = {kind: tuple(calls) for kind, calls in table.items()}
        wants: list[int | None] = [getattr(o, "visit_events", None) for o in observers]
        counts = [w for w in wants if w is not None]
        self.visit_events: int | None = max(counts) if counts and len(counts) == len(wants) else None
        self.visit_interval: float = min((float(getattr(o, "visit_interval", 1.0)) for o in observers), default=1.0)

    def on_event(self, event: ev.Event) -> None:
        try:
            calls = self._table[type(event)]  # a `try` costs nothing in 3.11 until it catches
        except KeyError:
            raise TypeError(f"unknown flowlib event {event!r}") from None
        for call in calls:
            call(event)


class TableObserver:
    """An observer that routes each event through a table (event type -> bound method).

    Subclasses fill ``_handlers``; ``Dispatch`` reads ``handlers`` to call them directly, skipping
    ``on_event``'s lookup on the hot path. An unknown event type is an error, never silently dropped.
    """

    _handlers: dict[type, Callable[[Any], None]]

    @property
    def handlers(self) -> dict[type, Callable[[Any], None]]:
        """Event type -> handler, so a dispatcher can skip ``on_event``'s lookup."""
        return self._handlers

    def on_event(self, event: ev.Event) -> None:
        handler = self._handlers.get(type(event))
        if handler is None:
            raise TypeError(f"{type(self).__name__} got an event it does not know: {event!r}")
        handler(event)
