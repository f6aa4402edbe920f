"""The per-run context: observer, cancel token and the path of the node that is running.

It travels in context variables rather than through method arguments so that PocketFlow's method
signatures (``_run(shared)``, ``_exec(prep_res)``) stay unchanged, and so that every asyncio task
of a parallel batch inherits the path of the node that started it.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass

from .cancel import CancelToken
from .events import Event, Observer, Path


@dataclass(slots=True)
class RunContext:
    """What every node of one run shares."""

    observer: Observer | None
    cancel: CancelToken | None

    def emit(self, event: Event) -> None:
        if self.observer is not None:
            self.observer.on_event(event)


RUN_CONTEXT: ContextVar[RunContext | None] = ContextVar("flowlib_run_context", default=None)
NODE_PATH: ContextVar[Path] = ContextVar("flowlib_node_path", default=())


def current_path() -> Path:
    """The path of the node whose code is running in this thread or task (``()`` outside nodes).

    A runner uses it to attribute what user code prints or logs to the node that printed it.
    """
    return NODE_PATH.get()
