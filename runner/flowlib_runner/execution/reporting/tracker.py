"""`StatusTracker`: the flowlib observer that keeps the run's status.

Why it looks like this: flowlib delivers events synchronously on the run's own task, and a
100,000-item worker pool emits one `BatchProgress` per item, so `on_event` must cost next to
nothing. It updates a few slots on a plain per-node record and bumps `version`; the pydantic
`RunStatus` is only built by `snapshot()`, which reporters call at their own pace (about once a
second), never per event.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from flowlib import events as ev
from flowlib_api.runstatus import (
    DEFAULT_BUDGET,
    FINISHED_PHASES,
    ItemCounts,
    NodeState,
    RunPhase,
    RunStatus,
    SuspendedState,
    bounded,
    json_safe,
)
from flowlib_api.text import shorten
from flowlib_api.times import rfc3339_millis
from flowlib_runner.definition.factories.nodes import ErrorHandled
from flowlib_runner.definition.factories.pause import SuspendRun
from flowlib_runner.execution.reporting.dispatch import TableObserver


def describe_error(error: BaseException) -> str:
    """`Type: message` of an exception, the way people read them in logs."""
    text = str(error)
    name = type(error).__name__
    return f"{name}: {text}" if text else name


class _Node:
    """Mutable per-node record; `slots` keeps the per-event update a few attribute stores."""

    __slots__ = (
        "action",
        "attempts",
        "duration",
        "handled",
        "item_retries",
        "kind",
        "message",
        "phase",
        "visits",
    )

    def __init__(self) -> None:
        self.phase = "Running"
        self.kind: str | None = None
        self.attempts = 0
        self.visits = 0
        self.action: str | None = None
        self.message: str | None = None
        self.item_retries = 0
        self.duration: float | None = None
        self.handled = False

    def state(self, progress: ev.BatchProgress | None) -> NodeState:
        items = None
        if progress is not None:
            # flowlib's `done` counts successes only; the status's, as its description says, every
            # finished item, failed ones included.
            items = ItemCounts(total=progress.total, done=progress.done + progress.failed, failed=progress.failed)
        return NodeState.model_construct(
            phase=self.phase,
            kind=self.kind,
            attempts=self.attempts,
            visits=self.visits,
            action=self.action,
            message=self.message,
            items=items,
            item_retries=self.item_retries or None,
            handled=self.handled or None,
            duration_seconds=None if self.duration is None else round(self.duration, 6),
        )


class StatusTracker(TableObserver):
    """Observer that turns flowlib events into a `RunStatus` (see the module docstring).

    `version` increases with every event, so a reporter can skip publishing when nothing changed.
    It asks flowlib to coalesce a looping node's visits (`visit_events`, `visit_interval`): the
    first visit of each node is reported, then one a second, and `NodeVisits` carries the counts of
    the rest -- the status is published about once a second, so per-visit events would be wasted.
    """

    visit_events = 1
    visit_interval = 1.0

    def __init__(self, *, budget: int = DEFAULT_BUDGET, kinds: Mapping[tuple[str, ...], str] | None = None) -> None:
        """`kinds` maps node paths to the type users wrote (worker_pool, flow...); flowlib only knows
        class names, which are used for nodes missing from it."""
        self.version = 0
        self._kinds = dict(kinds or {})
        self.budget = budget
        self.phase: RunPhase = "Pending"
        self.ended = False
        """Set by ``finish``: from then on only the final status may be published (``PeriodicReporter``)."""
        self.start_time: float | None = None
        self.completion_time: float | None = None
        self.message: str | None = None
        self.reason: str | None = None
        self.output: dict[str, Any] | None = None
        self._nodes: dict[tuple[str, ...], _Node] = {}
        self._progress: dict[tuple[str, ...], ev.BatchProgress] = {}
        self._done = 0
        self._current: tuple[str, ...] | None = None
        self.resumed_from: str | None = None
        self.items_reused: Callable[[], int] | None = None
        self.suspended: dict[str, Any] | None = None
        """``status.suspended`` of a run that stopped at an approval node."""
        self.output_refs: dict[str, dict[str, Any]] | None = None
        """``status.outputRefs``: output values kept whole in the run's store (``execution.outputs``)."""
        self.notes: list[str] = []
        """Notes of the runner's own, given before those ``bounded()`` adds."""
        self._handlers: dict[type, Callable[[Any], None]] = {
            ev.FlowStarted: self._flow_started,
            ev.FlowFinished: self._ignore,
            ev.FlowFailed: self._flow_failed,
            ev.FlowCancelled: self._ignore,
            ev.NodeStarted: self._node_started,
            ev.NodeFinished: self._node_finished,
            ev.NodeFailed: self._node_failed,
            ev.NodeCancelled: self._node_cancelled,
            ev.NodeVisits: self._node_visits,
            ev.RetryScheduled: self._retry,
            ev.BatchProgress: self._batch,
            ErrorHandled: self._error_handled,
        }

    # -- event handlers (routed by TableObserver) ---------------------------------------------------

    def _ignore(self, event: Any) -> None:
        self.version += 1

    def _flow_started(self, event: ev.FlowStarted) -> None:
        self.start(event.time)

    def _flow_failed(self, event: ev.FlowFailed) -> None:
        self.version += 1
        self.message = describe_error(event.error)

    def _node(self, path: tuple[str, ...]) -> _Node:
        node = self._nodes.get(path)
        if node is None:
            node = self._nodes[path] = _Node()
        return node

    def _enter_finished(self, node: _Node, phase: str) -> None:
        if node.phase not in FINISHED_PHASES:
            self._done += 1
        node.phase = phase

    def _node_of(self, event: ev.NodeStarted | ev.NodeVisits) -> _Node:
        """The node's record, created on first sight with the type users wrote (or the class name)."""
        self.version += 1
        node = self._node(event.path)
        if node.kind is None:
            node.kind = self._kinds.get(event.path, event.kind)
        return node

    def _node_started(self, event: ev.NodeStarted) -> None:
        path = event.path
        node = self._node_of(event)
        if node.phase in FINISHED_PHASES:
            self._done -= 1
        node.phase = "Running"
        node.visits = max(node.visits + 1, event.visit)
        node.attempts = 1
        self._current = path

    def _node_visits(self, event: ev.NodeVisits) -> None:
        # Visits that had no events of their own, summed up: the counts are cumulative.
        node = self._node_of(event)
        self._enter_finished(node, "Succeeded")
        node.visits = max(node.visits, event.visits)
        node.attempts = event.attempts
        node.duration = event.seconds
        action = event.action
        node.action = action if action is None or type(action) is str else str(action)
        self._current = event.path

    def _leave(self, event: ev.NodeFinished | ev.NodeFailed | ev.NodeCancelled, phase: str) -> _Node:
        self.version += 1
        path = event.path
        node = self._nodes.get(path)
        if node is None:
            node = self._nodes[path] = _Node()
        self._enter_finished(node, phase)
        node.duration = event.duration if node.duration is None else node.duration + event.duration
        # `_current` stays: it is the node started last. A looping node's quiet visits send no
        # NodeStarted, and between two nodes there is nothing else worth showing.
        return node

    def _node_finished(self, event: ev.NodeFinished) -> None:
        action = event.action
        self._leave(event, "Succeeded").action = action if action is None or type(action) is str else str(action)

    def _node_failed(self, event: ev.NodeFailed) -> None:
        if isinstance(event.error, SuspendRun):
            # Not a failure: the run stops at this approval node (or the sub-flow holding it).
            self.version += 1
            waiting = self._node(event.path)
            waiting.phase = "Waiting"
            waiting.message = str(event.error)
            waiting.visits = max(waiting.visits, event.visit)
            waiting.duration = event.duration if waiting.duration is None else waiting.duration + event.duration
            return
        node = self._leave(event, "Failed")
        node.message = describe_error(event.error)
        node.visits = max(node.visits, event.visit)

    def _error_handled(self, event: ErrorHandled) -> None:
        self.version += 1
        node = self._node(event.path)
        node.message = describe_error(event.error)
        node.handled = True

    def _node_cancelled(self, event: ev.NodeCancelled) -> None:
        node = self._leave(event, "Cancelled")
        node.visits = max(node.visits, event.visit)

    def _retry(self, event: ev.RetryScheduled) -> None:
        self.version += 1
        node = self._node(event.path)
        if event.item is not None:
            node.item_retries += 1
            node.message = f"item {event.item} attempt {event.attempt} failed: {describe_error(event.error)}"
            return
        node.phase = "Retrying"
        node.attempts = event.attempt + 1
        node.message = f"attempt {event.attempt} failed: {describe_error(event.error)}"

    def _batch(self, event: ev.BatchProgress) -> None:
        # The hot path, one call per batch item: keep the event itself, read its counts in snapshot().
        self.version += 1
        self._progress[event.path] = event

    # -- driven by the runner -------------------------------------------------------------------------
    def start(self, when: float | None = None) -> None:
        """Mark the run Running (flowlib's FlowStarted does it; the runner may do it earlier)."""
        if self.start_time is None:
            self.start_time = time.time() if when is None else when
        self.phase = "Running"
        self.version += 1

    def finish(
        self,
        phase: RunPhase,
        *,
        message: str | None = None,
        output: dict[str, Any] | None = None,
        reason: str | None = None,
        output_json: Mapping[str, bytes] | None = None,
    ) -> None:
        """Record the end of the run; nodes still running end as Cancelled (they were interrupted).
        ``output_json``: each output value's JSON when the caller has made it already (a run with a
        store does, to choose what to keep), read back instead of encoding ``output`` again."""
        if self.start_time is None:
            self.start_time = time.time()
        self.ended = True
        self.phase = phase
        self.reason = reason
        self.completion_time = None if phase == "Suspended" else time.time()
        if message is not None:
            self.message = message
        elif phase == "Succeeded":
            self.message = None
        if output is None:
            self.output = None
        elif output_json is not None and output_json.keys() == output.keys():
            self.output = {key: json.loads(data) for key, data in output_json.items()}
        else:
            self.output = json_safe(output)
        for node in self._nodes.values():
            if node.phase not in FINISHED_PHASES and node.phase != "Waiting":
                self._enter_finished(node, "Cancelled")
        self._current = None
        self.version += 1

    def node_count(self) -> int:
        return len(self._nodes)

    def export_nodes(self) -> list[tuple[tuple[str, ...], tuple[Any, ...]]]:
        """The node records as plain data, for a checkpoint (``restore_nodes`` reads it back)."""
        return [(path, tuple(getattr(node, slot) for slot in _Node.__slots__)) for path, node in self._nodes.items()]

    def restore_nodes(self, exported: list[tuple[tuple[str, ...], tuple[Any, ...]]]) -> None:
        """Node records of a resumed run's earlier attempt: the nodes it finished stay finished."""
        for path, values in exported:
            node = self._node(tuple(path))
            for slot, value in zip(_Node.__slots__, values, strict=True):
                setattr(node, slot, value)
            if node.phase in FINISHED_PHASES:
                self._done += 1
            else:
                node.phase = "Running"  # it runs again now
        self.version += 1

    def snapshot(self, *, bound: bool = True) -> RunStatus:
        """The status now, bounded to the tracker's byte budget (``bound=False``: whole)."""
        status = RunStatus.model_construct(
            phase=self.phase,
            start_time=None if self.start_time is None else rfc3339_millis(self.start_time),
            completion_time=None if self.completion_time is None else rfc3339_millis(self.completion_time),
            current_node=None if self._current is None else "/".join(self._current),
            progress=f"{self._done}/{len(self._nodes)}",
            nodes={"/".join(path): node.state(self._progress.get(path)) for path, node in list(self._nodes.items())},
            output=self.output,
            message=None if self.message is None else shorten(self.message, 64 * 1024),
            reason=self.reason,
            notes=list(self.notes),
            resumed_from=self.resumed_from,
            items_reused=(self.items_reused() or None) if self.items_reused is not None else None,
            output_refs=self.output_refs,
            suspended=None if self.suspended is None else SuspendedState.model_validate(self.suspended),
        )
        return bounded(status, self.budget) if bound else status


def select_output(shared: dict[str, Any], keys: Iterable[str] | None) -> dict[str, Any]:
    """The shared keys to publish as output: the named ones (dotted paths allowed), or all of them."""
    if keys is None:
        return dict(shared)
    out: dict[str, Any] = {}
    for key in keys:
        value: Any = shared
        for part in key.split("."):
            if isinstance(value, dict) and part in value:
                value = value[part]
            else:
                break
        else:
            out[key] = value
    return out
