"""The run queue: which runs may go now under the Flow, namespace and cluster limits, and in what
order the Queued ones leave (``flowlib_api.concurrency`` says what users see).

Its state derives from the API, never from memory alone: a run is *going* once the operator gave it
a Job (``status.jobName``) until it ends (Suspended runs hold no pod, so no place), and *waiting*
while its phase is Queued. Both are read off the watch cache's FlowRuns (``observe``), so after a
restart the queue is what the FlowRuns say. The one thing kept in memory is which runs this process
admitted and has not seen going yet (``admitting``), so two decisions a moment apart never give the
same free place twice.

Order out of the queue: priority (higher first), then the namespace with the fewest going runs
(the cluster limit is shared fairly: one namespace's burst of thousands does not starve another's
single run), then first queued, first out, then the name.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from flowlib_api.concurrency import QUEUED_PHASE, QUEUED_REASON, Concurrency
from flowlib_api.resources import SpecKey, StatusKey, succeeded_condition
from flowlib_api.times import parse_time
from flowlib_api.views import FlowRunView
from flowlib_operator.history import flow_of_run

RunKey = tuple[str, str]
"""(namespace, FlowRun name)."""
FlowKey = tuple[str, str]
"""(namespace, Flow name)."""
_EPOCH = datetime.min.replace(tzinfo=UTC)

EXACT_POSITIONS = 20
"""The first places in line have their ``status.queue.position`` kept exact; further back a position
is rewritten only once it has halved (``position_due``), so a queue of n runs costs each run about
log2(n) status writes while it waits, not one per run that leaves before it."""


@dataclass(frozen=True)
class Limits:
    """The operator's limits (``--max-runs``, ``--max-runs-per-namespace``); None: no limit."""

    cluster: int | None = None
    namespace: int | None = None


@dataclass(frozen=True)
class Hold:
    """The limit that holds a run: its text for people, and the runs that wait for the same limit
    (``group``: ``("flow", namespace, flow)``, ``("namespace", namespace)`` or ``("cluster",)``)."""

    text: str
    group: tuple[str, ...]

    @property
    def by_flow(self) -> bool:
        return self.group[0] == "flow"

    def counts(self, waiting: Waiting) -> bool:
        """Whether ``waiting`` waits in the same line (for the same limit's kind and scope)."""
        if self.group[0] == "flow":
            return (waiting.key[0], waiting.flow) == self.group[1:]
        if self.group[0] == "namespace":
            return waiting.key[0] == self.group[1]
        return True


@dataclass(frozen=True)
class Waiting:
    """A Queued run as the queue orders it."""

    key: RunKey
    flow: str | None
    priority: int
    since: datetime

    def rank(self) -> tuple[int, datetime, str]:
        return (-self.priority, self.since, self.key[1])


def priority_of(body: Mapping[str, Any]) -> int:
    value = (body.get("spec") or {}).get(SpecKey.PRIORITY)
    return int(value) if isinstance(value, int) else 0


def queued_since(body: Mapping[str, Any]) -> datetime:
    """When the run was queued (its ``status.queue.since``), else its creation."""
    view = FlowRunView(body)
    queue = view.status.get(StatusKey.QUEUE) or {}
    return parse_time(queue.get("since")) or parse_time(view.creation_timestamp) or _EPOCH


@dataclass
class RunQueue:
    limits: Limits = field(default_factory=Limits)
    flow_limits: dict[FlowKey, Concurrency] = field(default_factory=dict)
    """Each Flow's ``spec.concurrency`` as last seen (at a run's start or the Flow's change)."""
    going: dict[RunKey, FlowKey | None] = field(default_factory=dict)
    waiting: dict[RunKey, Waiting] = field(default_factory=dict)
    joining: dict[RunKey, Waiting] = field(default_factory=dict)
    """Runs whose Queued status is being written: counted in places in line, not yet let go."""
    admitting: set[RunKey] = field(default_factory=set)
    """Admitted by this process, not seen with a Job yet: a late Queued event must not undo it."""
    per_flow: Counter[FlowKey] = field(default_factory=Counter)
    per_namespace: Counter[str] = field(default_factory=Counter)
    seen: set[RunKey] = field(default_factory=set)
    """Runs a watch event told of: the start's own listing (``sync``) never overrides what they said."""
    gone: set[RunKey] = field(default_factory=set)
    """Runs a watch said were deleted before the start's listing was taken in (``sync``)."""
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once every FlowRun was listed (``sync``): no run is let go on a partial count before."""
    last_admitted: dict[str, int] = field(default_factory=dict)
    """Per namespace, when (in admissions) it last had a run go: ties go to the one served longest ago."""
    admissions: int = 0

    def place(self, waiting: Waiting) -> int:
        """The place in line of a run about to wait, counted as if it were last among the runs
        waiting for the limit that holds it (exact for the usual newest run of equal priority;
        ``positions`` is exact, and the resync rewrites what it finds wrong)."""
        hold = self.holding(waiting.key[0], waiting.flow) or Hold("", ("cluster",))
        self.joining[waiting.key] = waiting
        others = [w for w in (*self.waiting.values(), *self.joining.values()) if w.key != waiting.key]
        return 1 + sum(1 for w in others if hold.counts(w))

    def wait(self, waiting: Waiting) -> None:
        """Put a run in line (after its Queued status is written: the queue may let it go at once),
        unless it was let go meanwhile."""
        self.joining.pop(waiting.key, None)
        if waiting.key in self.admitting or waiting.key in self.going:
            return
        self.waiting[waiting.key] = waiting

    def may_go(self, key: RunKey) -> bool:
        """Whether a waiting run has a place free for it now."""
        waiting = self.waiting.get(key)
        return waiting is not None and self.held_by(key[0], waiting.flow) is None

    # -- what the cache says ---------------------------------------------------------------------

    def sync(self, listed: Sequence[Mapping[str, Any]]) -> None:
        """Every FlowRun, as listed at the operator's start: what no watch event told of yet counts
        now (but no run a watch said was deleted meanwhile), and runs may go from here on (``ready``)."""
        for body in listed:
            key = FlowRunView(body).key
            if key not in self.seen and key not in self.gone:
                self.observe(body, watched=False)
        self.gone.clear()
        self.ready.set()

    def observe(self, body: Mapping[str, Any], deleted: bool = False, *, watched: bool = True) -> bool:
        """Follow one FlowRun event; True when a place may have come free (a going run ended)."""
        run = FlowRunView(body)
        key = run.key
        if watched:
            self.seen.add(key)
        if deleted:
            self.seen.discard(key)
            if not self.ready.is_set():
                self.gone.add(key)
        if deleted or run.finished:
            self.waiting.pop(key, None)
            self.joining.pop(key, None)
            self.admitting.discard(key)
            return self._leave(key)
        if run.job_name and run.phase != "Suspended":
            self.admitting.discard(key)
            self.waiting.pop(key, None)
            self._enter(key, _flow_key(body))
            return False
        if run.phase == QUEUED_PHASE and key not in self.admitting:
            freed = self._leave(key)
            if run.cancel_requested:
                self.waiting.pop(key, None)  # it ends Cancelled: never started
            else:
                flow = _flow_key(body)
                before = self.waiting.get(key)
                known = flow[1] if flow else (before.flow if before is not None else None)
                self.waiting[key] = Waiting(key, known, priority_of(body), queued_since(body))
            return freed
        if key in self.admitting:
            return False
        return self._leave(key)  # Suspended, or not started yet: holds no place

    def flow_seen(self, namespace: str, name: str, spec: Mapping[str, Any] | None) -> bool:
        """A Flow's ``spec.concurrency`` as it is now; True when its limit was raised or removed."""
        key = (namespace, name)
        given = (spec or {}).get("concurrency")
        before = self.flow_limits.get(key)
        if isinstance(given, Mapping):
            try:
                self.flow_limits[key] = Concurrency.model_validate(given)
            except ValueError:
                self.flow_limits.pop(key, None)  # the schema refuses it; validation reports it
        else:
            self.flow_limits.pop(key, None)
        after = self.flow_limits.get(key)
        return before is not None and (after is None or after.max_runs > before.max_runs)

    # -- decisions ---------------------------------------------------------------------------------

    def holding(self, namespace: str, flow: str | None) -> Hold | None:
        """The limit that keeps a run of ``flow`` in ``namespace`` from going now, or None."""
        if flow is not None:
            concurrency = self.flow_limits.get((namespace, flow))
            if concurrency is not None and self.per_flow[(namespace, flow)] >= concurrency.max_runs:
                text = f"Flow {flow} runs at most {concurrency.max_runs} at once (spec.concurrency.maxRuns)"
                return Hold(text, ("flow", namespace, flow))
        limit = self.limits.namespace
        if limit is not None and self.per_namespace[namespace] >= limit:
            text = f"namespace {namespace} runs at most {limit} at once (the operator's --max-runs-per-namespace)"
            return Hold(text, ("namespace", namespace))
        limit = self.limits.cluster
        if limit is not None and len(self.going) >= limit:
            return Hold(f"the cluster runs at most {limit} at once (the operator's --max-runs)", ("cluster",))
        return None

    def held_by(self, namespace: str, flow: str | None) -> str | None:
        """The text of the limit that holds a run of ``flow`` in ``namespace`` (``holding``), or None."""
        hold = self.holding(namespace, flow)
        return hold.text if hold is not None else None

    def admit(self, key: RunKey, flow: str | None) -> None:
        """``key`` goes now: it holds a place from this moment, before its Job exists."""
        self.waiting.pop(key, None)
        self.admitting.add(key)
        self.admissions += 1
        self.last_admitted[key[0]] = self.admissions
        self._enter(key, (key[0], flow) if flow else None)

    def release(self, key: RunKey) -> None:
        """An admission that did not happen (its start failed): the place is free again."""
        self.admitting.discard(key)
        self._leave(key)

    def next_runs(self) -> list[Waiting]:
        """The Queued runs that may go now, in the order they go; each is admitted (``admit``)."""
        if not self.waiting or (self.limits.cluster is not None and len(self.going) >= self.limits.cluster):
            return []
        chosen: list[Waiting] = []
        by_priority: dict[int, dict[str, list[Waiting]]] = {}
        for waiting in sorted(self.waiting.values(), key=Waiting.rank):
            by_priority.setdefault(waiting.priority, {}).setdefault(waiting.key[0], []).append(waiting)
        for priority in sorted(by_priority, reverse=True):
            lines = {namespace: list(reversed(runs)) for namespace, runs in by_priority[priority].items()}
            while lines:
                if self.limits.cluster is not None and len(self.going) >= self.limits.cluster:
                    return chosen
                namespace = min(lines, key=self._turn(lines))
                line = lines[namespace]
                picked = None
                while line:
                    candidate = line.pop()
                    if self.held_by(namespace, candidate.flow) is None:
                        picked = candidate
                        break
                    # Held by its Flow or its namespace, both only fuller as this pass goes on.
                if picked is not None:
                    self.admit(picked.key, picked.flow)
                    chosen.append(picked)
                if not line:
                    del lines[namespace]
        return chosen

    def _turn(self, lines: dict[str, list[Waiting]]) -> Any:
        """Which namespace's line goes next: the fewest going runs, then the one served longest ago
        (round robin between equals), then the oldest waiting run."""

        def key(namespace: str) -> tuple[int, int, datetime, str]:
            return (
                self.per_namespace[namespace],
                self.last_admitted.get(namespace, -1),
                lines[namespace][-1].since,
                namespace,
            )

        return key

    def positions(self) -> dict[RunKey, tuple[int, str]]:
        """Each Queued run's place in line among those waiting for the limit that holds it, and that
        limit's text. Runs a limit no longer holds (a place is free) are left out: they go next."""
        held: dict[RunKey, Hold] = {}
        for key, waiting in self.waiting.items():
            hold = self.holding(key[0], waiting.flow)
            if hold is not None:
                held[key] = hold
        counts: Counter[tuple[str, ...]] = Counter()
        result: dict[RunKey, tuple[int, str]] = {}
        for waiting in sorted((self.waiting[k] for k in held), key=Waiting.rank):
            hold = held[waiting.key]
            counts[hold.group] += 1
            result[waiting.key] = (counts[hold.group], hold.text)
        return result

    # -- bookkeeping -------------------------------------------------------------------------------

    def _enter(self, key: RunKey, flow: FlowKey | None) -> None:
        if key in self.going:
            if self.going[key] == flow or flow is None:  # None: an event that does not show it yet
                return
            self._leave(key)
        self.going[key] = flow
        self.per_namespace[key[0]] += 1
        if flow is not None:
            self.per_flow[flow] += 1

    def _leave(self, key: RunKey) -> bool:
        if key not in self.going:
            return False
        flow = self.going.pop(key)
        self.per_namespace[key[0]] -= 1
        if flow is not None:
            self.per_flow[flow] -= 1
        return True


def _flow_key(body: Mapping[str, Any]) -> FlowKey | None:
    """The Flow whose limit a run counts in (``history.flow_of_run``)."""
    flow = flow_of_run(body)
    return (body["metadata"]["namespace"], flow) if flow else None


def position_due(written: int | None, now: int) -> bool:
    """Whether a Queued run's recorded position should be rewritten (see ``EXACT_POSITIONS``)."""
    if written is None:
        return True
    if now <= EXACT_POSITIONS:
        return now != written
    return now <= written // 2


def queued_status(reason: str, position: int, since: str, generation: int | None, moment: datetime) -> dict[str, Any]:
    """The status of a run the queue holds: phase Queued, why, and its place in line."""
    message = f"queued: {reason}; place {position} in line"
    return {
        StatusKey.PHASE: QUEUED_PHASE,
        StatusKey.MESSAGE: message,
        StatusKey.QUEUE: {"position": position, "heldBy": reason, "since": since},
        StatusKey.OBSERVED_GENERATION: generation,
        StatusKey.CONDITIONS: [succeeded_condition("Unknown", QUEUED_REASON, message, generation, moment)],
    }
