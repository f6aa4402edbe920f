"""Flow history: the oldest finished runs of a Flow beyond its ``spec.history`` are deleted.

Which runs count as a Flow's: those the operator labelled ``flowlib.dev/flow`` with that Flow's name
at their start (runs naming it in ``flowRef``, and retries of such runs), except the runs of a
FlowSchedule, which its own history limits govern (``schedules``). Inline runs belong to no Flow.

The watch cache says when a Flow may be over its limits (a run of it finished, its limits
changed, the operator started); what is deleted is decided on a fresh read (the Flow and a list of
its runs by label), so a run the cache holds but the API no longer does (a missed DELETED) never
counts as kept, and each deletion names the uid it decided on (a run deleted and created again
under the same name is not the one deleted).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, TypeVar

from flowlib_runner.kube.client import ApiError, KubeClient
from pydantic import ValidationError

from flowlib_api.history import FAILED_PHASES, KEEP_ALL, SUCCEEDED_PHASES, RunHistory
from flowlib_api.meta import FLOWRUNS, FLOWS, KIND_FLOW, KIND_FLOWSCHEDULE, LABEL_FLOW
from flowlib_api.text import shorten
from flowlib_api.times import parse_time
from flowlib_api.views import FlowRunView
from flowlib_operator.events import EventRecorder
from flowlib_operator.naming import label_value

log = logging.getLogger("flowlib.operator")

Key = tuple[str, str]
"""(namespace, Flow name)."""
T = TypeVar("T")
EVENT_MESSAGE_BYTES = 1024
NAMES_IN_EVENT = 10
"""How many deleted runs an Event names; the rest are counted."""
_EPOCH = datetime.min.replace(tzinfo=UTC)


def beyond_limits(
    runs: Iterable[T], limits: RunHistory, phase: Callable[[T], str | None], order: Callable[[T], tuple[Any, ...]]
) -> list[T]:
    """The finished runs past ``limits``, oldest first: per outcome, all but the newest ``limit``
    in ``order`` (a limit of None keeps all). Shared with the FlowSchedules' history limits."""
    doomed: list[T] = []
    for phases, limit in ((SUCCEEDED_PHASES, limits.succeeded), (FAILED_PHASES, limits.failed)):
        if limit is None:
            continue
        done = sorted((run for run in runs if phase(run) in phases), key=order)
        doomed += done[: max(0, len(done) - limit)]
    return doomed


def history_flow(body: Mapping[str, Any]) -> str | None:
    """The Flow whose history ``body`` (a FlowRun) counts in, or None (inline, a schedule's run)."""
    view = FlowRunView(body)
    if any(o.get("kind") == KIND_FLOWSCHEDULE and o.get("controller") for o in view.meta.get("ownerReferences") or []):
        return None
    return labelled_flow(body)


def labelled_flow(body: Mapping[str, Any]) -> str | None:
    """The Flow a FlowRun was labelled with at its start: the label must match the flow it ran
    (``status.flow``, else ``spec.flowRef``), so a hand-set label moves no run into another's history."""
    view = FlowRunView(body)
    name = view.flow or view.flow_ref
    label = (view.meta.get("labels") or {}).get(LABEL_FLOW)
    return name if name and label == label_value(name) else None


def flow_of_run(body: Mapping[str, Any]) -> str | None:
    """The Flow a FlowRun runs: the one it names, else (a retry) the one it was labelled with at its
    start, which a watch event from before the label does not show yet. None: an inline flow."""
    return FlowRunView(body).flow_ref or labelled_flow(body)


def run_order(body: Mapping[str, Any]) -> tuple[datetime, str]:
    view = FlowRunView(body)
    return parse_time(view.creation_timestamp) or _EPOCH, view.name


def run_phase(body: Mapping[str, Any]) -> str | None:
    return FlowRunView(body).phase


def flow_history(spec: Mapping[str, Any] | None) -> RunHistory:
    """A Flow's ``spec.history`` (unset fields stay None); one the schema let through unreadable
    counts as unset, since validation reports it on the Flow."""
    given = (spec or {}).get("history")
    try:
        return RunHistory.model_validate(given) if isinstance(given, Mapping) else KEEP_ALL
    except ValidationError:
        return KEEP_ALL


@dataclass
class HistoryKeeper:
    """Deletes a Flow's oldest finished runs beyond its limits, or the operator's (``default``)."""

    client: KubeClient
    events: EventRecorder
    default: RunHistory = KEEP_ALL
    limits: dict[Key, RunHistory] = field(default_factory=dict)
    """Each Flow's own ``spec.history`` as last seen."""
    due: set[Key] = field(default_factory=set)
    """Flows that may be over their limits since they were last looked at."""

    def flow_seen(self, body: Mapping[str, Any]) -> None:
        """A Flow was created, changed or found at start: its limits may now delete runs."""
        meta = body["metadata"]
        key = (meta["namespace"], meta["name"])
        self.limits[key] = flow_history(body.get("spec"))
        self.due.add(key)

    def run_finished(self, body: Mapping[str, Any]) -> None:
        """A run reached a final phase (or was found finished at start): its Flow may be over."""
        flow = history_flow(body)
        if flow is not None:
            self.due.add((body["metadata"]["namespace"], flow))

    def take_due(self, cached: Mapping[tuple[str, str], Mapping[str, Any]]) -> list[Key]:
        """The due Flows that the cache says are over their limits; the others are done with."""
        if not self.due:
            return []
        due, self.due = self.due, set()
        groups: dict[Key, list[Mapping[str, Any]]] = {key: [] for key in due}
        for (namespace, _), body in cached.items():
            flow = history_flow(body)
            if flow is not None and (namespace, flow) in groups:
                groups[(namespace, flow)].append(body)
        over = []
        for key, runs in groups.items():
            limits = self.limits.get(key, KEEP_ALL).over(self.default)
            if not limits.unlimited and beyond_limits(runs, limits, run_phase, run_order):
                over.append(key)
        return over

    async def prune(self, key: Key) -> list[str]:
        """Delete the runs of one Flow past its limits, decided on a fresh read; their names."""
        namespace, name = key
        flow = await self.client.get_or_none(FLOWS, name, namespace)
        own = flow_history((flow or {}).get("spec"))
        self.limits[key] = own
        limits = own.over(self.default)
        if limits.unlimited:
            return []
        listed = await self.client.list(FLOWRUNS, namespace, label_selector=f"{LABEL_FLOW}={label_value(name)}")
        runs = [run for run in listed if history_flow(run) == name]
        deleted = []
        for run in beyond_limits(runs, limits, run_phase, run_order):
            view = FlowRunView(run)
            try:
                await self.client.delete(FLOWRUNS, view.name, namespace, propagation="Background", uid=view.uid)
            except ApiError as error:
                if error.status != HTTPStatus.CONFLICT:  # not the run decided on: deleted and made again
                    raise
                continue
            deleted.append(view.name)
        if deleted:
            log.info("deleted %d finished FlowRuns of Flow %s/%s beyond its history", len(deleted), namespace, name)
            if flow is not None:
                message = _message(deleted, limits)
                await self.events.record({"kind": KIND_FLOW, **flow}, "Normal", "DeletedRuns", message)
        return deleted


def _message(deleted: list[str], limits: RunHistory) -> str:
    shown = ", ".join(deleted[:NAMES_IN_EVENT])
    more = f" and {len(deleted) - NAMES_IN_EVENT} more" if len(deleted) > NAMES_IN_EVENT else ""
    limited = (("succeeded", limits.succeeded), ("failed", limits.failed))
    kept = ", ".join(f"{what} {limit}" for what, limit in limited if limit is not None)
    return shorten(f"deleted finished FlowRuns beyond the history kept ({kept}): {shown}{more}", EVENT_MESSAGE_BYTES)
