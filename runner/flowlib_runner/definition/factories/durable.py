"""The hooks through which a run's graph reports its progress to a checkpoint journal, and resumes.

Why here, in the definition layer: the places that know where a run is (a walk between two nodes,
a batch between two items) are the node classes of this package. What is done with that knowledge
(serialising the shared store, writing to a run store) belongs to the execution layer, which
implements ``Journal`` and installs it in ``JOURNAL`` for the run. Without a journal every hook is
one context-variable read.

What is recorded:

- **Positions.** Each walk of the main line (the flow, and plain ``type: flow`` sub-flows inside
  it) has a ``WalkFrame``: the node it runs now and how many steps it took. After every visit the
  walk writes the node it goes to next into its frame and calls ``Journal.moved``; the journal may
  then checkpoint the shared store together with the frames. A resumed walk starts at its frame's
  node.
- **Items.** A batch node's visit asks ``Journal.items`` for an ``ItemJournal``: the results of
  items finished before the pod was lost (reused, not run again), and where to record each newly
  finished item. The journal checkpoints when a batch asks for its item journal, unless the
  position is recorded already, so a batch's item journal always belongs to the latest recorded
  position.

A step is the hot path of a loop of small nodes, so the walking flow keeps its frame in
``_journal_frame`` (no context-variable read), a step costs two attribute writes and one call, and
the journal works out the next node's name only when a checkpoint needs it.

Items of a ``type: flow`` batch run their sub-flow with no journal: an item is the unit that is
recorded and redone, and walks inside items are never positions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol

Path = tuple[str, ...]


@dataclass(slots=True)
class WalkFrame:
    """One walk of the main line: which flow (``owner``, the walking object), the path of the node
    that runs it (``()`` for the flow itself), the node it runs now and the steps it took.

    ``node`` is a name when the walk starts (or resumes) and, after a step, the node object the
    walk went to (its name is read when a checkpoint is taken, not at every step); ``node_name``
    gives the name either way. ``journal`` is the journal told of each step (``Journal.moved``)."""

    owner: object
    path: Path
    node: Any
    steps: int
    journal: Journal


class RecordedFailure(Exception):
    """An item's failure read back from a checkpoint: its type name and message as they were."""

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(message)
        self.type_name = type_name


class ItemJournal(Protocol):
    """One batch visit's items: those already finished, and where new ones are recorded."""

    reused: dict[int, Any]
    """Index -> result of items finished before (a ``RecordedFailure`` for a failed item)."""

    record: Callable[[tuple[int, Any]], None]
    """``record((index, result))``: item ``index`` succeeded with ``result``. Called once per item,
    so it is a bound ``list.append`` (no Python frame); the journal makes segments of the list."""

    def failed(self, index: int, item: Any, error: BaseException, attempts: int) -> None:
        """Item ``index`` failed after its retries and the batch goes on (``onItemError: continue``)."""
        ...

    def close(self) -> None:
        """The visit ended: record what is pending."""
        ...


class Journal(Protocol):
    """Where a run's graph reports where it is (implemented by the execution layer)."""

    def enter(self, owner: object, path: Path, start: str | None) -> WalkFrame:
        """A main-line walk starts at ``start``; the frame says where to start instead when the
        walk resumes (``node``, ``steps``)."""
        ...

    def leave(self, frame: WalkFrame) -> None:
        """The walk of ``frame`` ended (however it ended)."""
        ...

    def moved(self, frame: WalkFrame) -> None:
        """A visit of ``frame``'s walk ended; the walk wrote the node it goes to next (None: the walk
        ends) in ``frame.node`` and counted the step."""
        ...

    def items(self, path: Path, items: Any) -> ItemJournal | None:
        """The journal of a batch visit at ``path`` over ``items``, or None to run it unrecorded."""
        ...


JOURNAL: ContextVar[Journal | None] = ContextVar("flowlib_runner_journal", default=None)


@contextmanager
def unjournaled() -> Iterator[None]:
    """Run a block outside the run's journal (a batch item's walk, the ``finally`` node's walk)."""
    token = JOURNAL.set(None)
    try:
        yield
    finally:
        JOURNAL.reset(token)


def node_name(node: Any) -> str | None:
    """A frame's ``node`` as a name (None: past the walk's end)."""
    return node if node is None or isinstance(node, str) else getattr(node, "name", None)


def node_named(start: Any, name: str) -> Any:
    """The node called ``name`` in the graph reachable from ``start`` (edges of every action), or None."""
    seen: set[int] = set()
    todo = [start]
    while todo:
        node = todo.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        if getattr(node, "name", None) == name:
            return node
        todo.extend(getattr(node, "successors", {}).values())
    return None


class Resumable:
    """A main-line walk that reports its boundaries and starts where its frame says (a mixin of
    the YAML flow classes, before flowlib's ``AsyncFlow``)."""

    start_node: Any
    max_steps: int | None
    _journal_frame: WalkFrame | None = None
    """The frame of the walk this object is doing now (read at every step by the walk's
    ``get_next_node``, ``nodes.StrictEdges``)."""

    async def _orch_async(self, shared: Any, params: dict[str, Any] | None = None) -> Any:
        journal = JOURNAL.get()
        if journal is None:
            self._journal_frame = None  # a copy of an object walked with a journal must not count into its frame
            return await super()._orch_async(shared, params)  # type: ignore[misc]
        from flowlib.context import current_path

        start = self.start_node
        frame = journal.enter(self, tuple(current_path()), getattr(start, "name", None))
        if frame.node is None:
            journal.leave(frame)
            return None  # resumed past the walk's end: nothing of it is left to run
        if frame.node != getattr(start, "name", None):
            found = node_named(start, frame.node)
            if found is None:
                journal.leave(frame)
                raise RuntimeError(f"cannot resume at node {frame.node!r}: the flow has no such node")
            self.start_node = found  # this object is the visit's own copy (or the run's flow)
        if self.max_steps is not None and frame.steps:
            self.max_steps = max(1, self.max_steps - frame.steps)
        self._journal_frame = frame
        try:
            return await super()._orch_async(shared, params)  # type: ignore[misc]
        finally:
            self._journal_frame = None
            journal.leave(frame)
