"""FlowSchedules: a FlowRun at each time of a cron schedule, as Kubernetes CronJob starts Jobs.

The semantics are CronJob's (https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/),
so that what people know of CronJobs holds here:

- At each check the operator computes the most recent scheduled time ``<= now`` that no run was
  started for, after ``status.lastScheduleTime`` (or the schedule's creation). Of several missed
  times only the latest starts, and only if it is not older than ``startingDeadlineSeconds`` (when
  set). Over 100 missed times is reported (a Warning Event ``TooManyMissedTimes``, as CronJob
  logs an error) and the latest still starts: the count is about the operator having been away, not
  a reason to give up on the schedule.
- One run per scheduled time, never two: the run's name is ``<schedule>-<minutes since the epoch>``
  (CronJob's naming), so creating it again (a restart between the create and the status write, two
  checks racing) ends in 409 AlreadyExists, which counts as created.
- ``concurrencyPolicy``: ``Allow`` starts runs side by side; ``Forbid`` starts none while one is
  going, and that time counts as missed (it may still start once the run ends, within the deadline,
  exactly as a CronJob's); ``Replace`` cancels the running ones (``spec.cancel``, the one way a
  FlowRun is cancelled) and starts the new one.
- ``suspend`` stops new runs; runs already going go on.
- History: the oldest finished runs beyond ``successfulRunsHistoryLimit`` (Succeeded) and
  ``failedRunsHistoryLimit`` (Failed, Cancelled) are deleted.

State lives in the API, never only in this process: ``status.lastScheduleTime`` and the schedule's
runs (labelled ``flowlib.dev/schedule`` and controller-owned by it; the label only finds them, the
owner reference decides), listed afresh before every decision that creates or deletes. So an operator
restarted across a scheduled time starts that run once, and skips none within the deadline.

Who a scheduled run borrows as. A FlowRun "can never do more than its author could do directly"
(``access``), but the operator creates scheduled runs, so the FlowRun webhook would see the operator
as their author. The author of a scheduled run is the schedule's: with the admission webhook, a
FlowSchedule's CREATE and UPDATE are checked as a FlowRun of its template would be (the definition's
problems, and what it borrows against the requesting user). Without the webhook, the operator's
label rule applies to every run when it starts, scheduled or not (``runs.RunLifecycle.start``): a
scheduled run borrows only what a namespace admin opened to every run.

The clock: the scheduler reads the time from a ``Clock``. The operator's is the system's; the hidden
test flag ``--clock-file PATH`` (``FileClock``) reads it from a file the tests write, so that a
scenario moves time by minutes without waiting for them. Never set it in a deployment.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadCronError, CroniterBadDateError, croniter
from flowlib_runner.kube.client import ApiError, KubeClient
from pydantic import ValidationError

from flowlib_api.history import RunHistory
from flowlib_api.meta import (
    ANNOTATION_SCHEDULED_TIME,
    FLOWRUNS,
    FLOWSCHEDULES,
    GROUP_VERSION,
    KIND_FLOWRUN,
    KIND_FLOWSCHEDULE,
    LABEL_SCHEDULE,
    STATUS_SUBRESOURCE,
)
from flowlib_api.resources import READY, condition, transition_time
from flowlib_api.runstatus import FINISHED_PHASES
from flowlib_api.schedules import (
    DEFAULT_FAILED_HISTORY,
    DEFAULT_SUCCESSFUL_HISTORY,
    DEFAULT_TIME_ZONE,
    MAX_SCHEDULE_NAME,
    FlowScheduleSpec,
)
from flowlib_api.times import now_utc, parse_time, rfc3339
from flowlib_api.views import ObjectView
from flowlib_operator import metrics
from flowlib_operator.admission import flowrun_problems
from flowlib_operator.events import EventRecorder
from flowlib_operator.history import beyond_limits
from flowlib_operator.naming import label_value

log = logging.getLogger("flowlib.operator")

Key = tuple[str, str]
TOO_MANY_MISSED = 100
"""CronJob's bound: past it the controller reports the schedule (``TooManyMissedTimes``)."""
MACROS = frozenset({"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"})
IDLE_CHECK = 30.0
"""Longest sleep of the scheduler with the system clock: a pass at least this often, whatever the
watches said (a lost event, a clock that jumped)."""
FILE_CLOCK_POLL = 0.2
"""How often the scheduler reads a ``FileClock`` (tests move time by writing the file)."""


# -- the clock ------------------------------------------------------------------------------------


class Clock(Protocol):
    """Where the scheduler reads the time (injectable: the tests drive it)."""

    poll: float | None
    """Seconds between reads when the time can jump (a file), None for the system clock."""

    def now(self) -> datetime: ...


@dataclass
class SystemClock:
    poll: float | None = None

    def now(self) -> datetime:
        return now_utc()


@dataclass
class FileClock:
    """The time written in a file (RFC 3339), for tests only (``--clock-file``); the system's while the
    file is missing or unreadable."""

    path: Path
    poll: float | None = FILE_CLOCK_POLL

    def now(self) -> datetime:
        try:
            moment = parse_time(self.path.read_text().strip())
        except OSError:
            moment = None
        return moment.astimezone(UTC) if moment is not None else now_utc()


# -- pure decisions -------------------------------------------------------------------------------


class ScheduleProblem(ValueError):
    """Why a schedule cannot run: ``reason`` for the Ready condition, the message names the field."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Cron:
    """A parsed ``schedule`` in its ``timeZone``."""

    expression: str
    zone: ZoneInfo

    def latest(self, after: datetime, now: datetime) -> tuple[datetime | None, int]:
        """The most recent scheduled time in ``(after, now]`` and how many there are (counted up to
        ``TOO_MANY_MISSED + 1``: beyond that the number does not matter)."""
        if now <= after:
            return None, 0
        walk = croniter(self.expression, after.astimezone(self.zone))
        first: datetime = walk.get_next(datetime)
        if first > now:
            return None, 0
        count, moment = 1, first
        while count <= TOO_MANY_MISSED:
            following: datetime = walk.get_next(datetime)
            if following > now:
                return moment.astimezone(UTC), count
            count, moment = count + 1, following
        before: datetime = croniter(self.expression, now.astimezone(self.zone)).get_prev(datetime)
        exact: datetime = croniter(self.expression, before).get_next(datetime)
        return (exact if exact <= now else before).astimezone(UTC), count

    def next_after(self, now: datetime) -> datetime:
        moment: datetime = croniter(self.expression, now.astimezone(self.zone)).get_next(datetime)
        return moment.astimezone(UTC)


def parse_cron(schedule: object, time_zone: object) -> Cron:
    """``spec.schedule`` and ``spec.timeZone`` checked (``ScheduleProblem`` naming the field)."""
    if not isinstance(schedule, str) or not schedule.strip():
        raise ScheduleProblem("InvalidSchedule", "spec.schedule: write a cron expression, e.g. '0 2 * * *'")
    text = " ".join(schedule.split())
    if text.upper().startswith(("TZ=", "CRON_TZ=")):
        raise ScheduleProblem(
            "InvalidSchedule", "spec.schedule: a time zone goes in spec.timeZone, not in the schedule (TZ=...)"
        )
    if text.startswith("@"):
        if text.lower() not in MACROS:
            raise ScheduleProblem(
                "InvalidSchedule", f"spec.schedule: {text!r} is not a macro; use one of {', '.join(sorted(MACROS))}"
            )
        text = text.lower()
    elif len(text.split(" ")) != 5:
        raise ScheduleProblem(
            "InvalidSchedule",
            f"spec.schedule: {text!r} has {len(text.split(' '))} fields; a schedule has exactly 5 "
            "(minute hour day-of-month month day-of-week), e.g. '*/15 * * * *'",
        )
    zone_name = time_zone if time_zone is not None else DEFAULT_TIME_ZONE
    try:
        if not isinstance(zone_name, str) or not zone_name or zone_name.startswith(("/", ".")):
            raise ValueError(zone_name)
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleProblem(
            "InvalidTimeZone", f"spec.timeZone: {zone_name!r} is not an IANA time zone, e.g. Europe/Paris or UTC"
        ) from None
    try:
        croniter(text, datetime(2000, 1, 1, tzinfo=zone)).get_next(datetime)
    except (CroniterBadCronError, CroniterBadDateError, ValueError, KeyError) as error:
        raise ScheduleProblem("InvalidSchedule", f"spec.schedule: {text!r} is not a cron expression: {error}") from None
    return Cron(text, zone)


def run_name(schedule: str, moment: datetime) -> str:
    """The FlowRun of one scheduled time: CronJob's ``<name>-<minutes since the epoch>``."""
    return f"{schedule}-{math.floor(moment.timestamp() / 60)}"


@dataclass(frozen=True)
class Child:
    """A run of the schedule, as its decisions need it."""

    name: str
    scheduled: datetime | None
    phase: str | None
    created: datetime | None
    completed: datetime | None
    cancelled: bool

    @property
    def finished(self) -> bool:
        return self.phase in FINISHED_PHASES

    @property
    def order(self) -> datetime:
        return self.scheduled or self.created or datetime.min.replace(tzinfo=UTC)

    @classmethod
    def of(cls, body: Mapping[str, Any]) -> Child:
        view = ObjectView(body)
        annotations = view.meta.get("annotations") or {}
        return cls(
            name=view.name,
            scheduled=parse_time(annotations.get(ANNOTATION_SCHEDULED_TIME)),
            phase=view.status.get("phase"),
            created=parse_time(view.creation_timestamp),
            completed=parse_time(view.status.get("completionTime")),
            cancelled=bool(view.spec.get("cancel")),
        )


@dataclass
class Plan:
    """What one check of a schedule does."""

    start: datetime | None = None
    """The scheduled time to start a run for."""
    cancel: list[str] = field(default_factory=list)
    """Active runs to cancel first (``Replace``)."""
    delete: list[str] = field(default_factory=list)
    """Finished runs past the history limits, oldest first."""
    skipped: datetime | None = None
    skip_reason: str = ""
    missed: int = 0
    next_time: datetime | None = None
    active: list[Child] = field(default_factory=list)
    last_successful: datetime | None = None


def plan(
    cron: Cron,
    spec: FlowScheduleSpec,
    status: Mapping[str, Any],
    created: datetime,
    children: list[Child],
    *,
    now: datetime,
) -> Plan:
    """The decision of one check, from the schedule, its runs and the time (pure: the tests drive it)."""
    result = Plan(next_time=None if spec.suspend else cron.next_after(now))
    result.active = sorted((c for c in children if not c.finished), key=lambda c: c.order)
    successes = [c.completed or c.order for c in children if c.phase == "Succeeded"]
    recorded = parse_time(status.get("lastSuccessfulTime"))
    result.last_successful = max([*successes, *([recorded] if recorded else [])], default=None)
    result.delete = _past_history(spec, children)
    if spec.suspend:
        return result
    earliest = parse_time(status.get("lastScheduleTime")) or created
    deadline = spec.starting_deadline_seconds
    if deadline is not None:
        earliest = max(earliest, now - timedelta(seconds=deadline + 60))  # one more: to say a time was too late
    latest, result.missed = cron.latest(earliest, now)
    if latest is None:
        return result
    if deadline is not None and latest < now - timedelta(seconds=deadline):
        result.skipped, result.skip_reason = latest, f"more than startingDeadlineSeconds ({deadline}s) ago"
        return result
    if any(c.scheduled == latest for c in children):
        result.start = latest  # created before (a restart before its status write): only recorded
        return result
    if result.active and spec.concurrency_policy == "Forbid":
        names = ", ".join(c.name for c in result.active)
        result.skipped, result.skip_reason = latest, f"concurrencyPolicy Forbid and {names} still going"
        return result
    if result.active and spec.concurrency_policy == "Replace":
        result.cancel = [c.name for c in result.active if not c.cancelled]
    result.start = latest
    return result


def _past_history(spec: FlowScheduleSpec, children: list[Child]) -> list[str]:
    keep_ok = spec.successful_runs_history_limit
    keep_bad = spec.failed_runs_history_limit
    limits = RunHistory(
        succeeded=DEFAULT_SUCCESSFUL_HISTORY if keep_ok is None else keep_ok,
        failed=DEFAULT_FAILED_HISTORY if keep_bad is None else keep_bad,
    )
    return [c.name for c in beyond_limits(children, limits, lambda c: c.phase, lambda c: (c.order, c.name))]


def template_problems(name: str, namespace: str, spec: Mapping[str, Any]) -> ScheduleProblem | None:
    """The first problem with a schedule's name or template (``Ready=False``), or None."""
    if len(name) > MAX_SCHEDULE_NAME:
        return ScheduleProblem("InvalidName", f"metadata.name: at most {MAX_SCHEDULE_NAME} characters")
    try:
        FlowScheduleSpec.model_validate(spec)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        reason = "InvalidTemplate" if where.startswith("template") else "InvalidSpec"
        return ScheduleProblem(reason, f"spec.{where}: {first['msg']}")
    problems = flowrun_problems(template_run(name, namespace, spec))
    if problems:
        return ScheduleProblem("InvalidTemplate", "spec.template." + "; spec.template.".join(problems))
    return None


def template_run(
    schedule: str, namespace: str, spec: Mapping[str, Any], moment: datetime | None = None
) -> dict[str, Any]:
    """The FlowRun body a schedule's template makes: what the webhook checks and what the operator creates."""
    template = spec.get("template") or {}
    metadata = template.get("metadata") or {}
    name = run_name(schedule, moment) if moment is not None else schedule
    labels = {**(metadata.get("labels") or {}), LABEL_SCHEDULE: label_value(schedule)}
    annotations = dict(metadata.get("annotations") or {})
    if moment is not None:
        annotations[ANNOTATION_SCHEDULED_TIME] = rfc3339(moment)
    return {
        "apiVersion": GROUP_VERSION,
        "kind": KIND_FLOWRUN,
        "metadata": {"name": name, "namespace": namespace, "labels": labels, "annotations": annotations},
        "spec": dict(template.get("spec") or {}),
    }


# -- the controller -------------------------------------------------------------------------------


@dataclass
class ScheduleController:
    """Checks every FlowSchedule when it changes, when one of its runs changes, and when its next
    scheduled time comes; one background task (``run_forever``), no kopf timers (they add finalizers)."""

    client: KubeClient
    events: EventRecorder
    clock: Clock = field(default_factory=SystemClock)
    schedules: dict[Key, dict[str, Any]] = field(default_factory=dict)
    dirty: set[Key] = field(default_factory=set)
    decided: dict[Key, datetime] = field(default_factory=dict)
    """The latest scheduled time each schedule skipped (so it is reported once, not at every poll)."""
    validity: dict[Key, tuple[Any, ScheduleProblem | None]] = field(default_factory=dict)
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def observe(self, body: Mapping[str, Any], event_type: str | None) -> None:
        """A watch event of a FlowSchedule."""
        view = ObjectView(body)
        if event_type == "DELETED":
            for table in (self.schedules, self.decided, self.validity):
                table.pop(view.key, None)
            self.dirty.discard(view.key)
            return
        self.schedules[view.key] = dict(body)
        self.dirty.add(view.key)
        self.wake.set()

    def run_changed(self, body: Mapping[str, Any]) -> None:
        """A watch event of a FlowRun: its schedule (if any) is checked again (history, Forbid)."""
        view = ObjectView(body)
        for owner in view.meta.get("ownerReferences") or []:
            if owner.get("kind") == KIND_FLOWSCHEDULE and owner.get("controller"):
                key = (view.namespace, str(owner.get("name")))
                if key in self.schedules:
                    self.dirty.add(key)
                    self.wake.set()

    async def run_forever(self) -> None:
        """Check the schedules for the operator's whole life; an unforeseen failure is logged."""
        while True:
            self.wake.clear()
            try:
                soonest = await self.check_all()
            except Exception:
                metrics.RECONCILE_ERRORS.labels(kind="schedule").inc()
                log.exception("a schedule pass failed")
                soonest = None
            if self.clock.poll is not None:
                delay = self.clock.poll
            else:
                now = self.clock.now()
                delay = IDLE_CHECK if soonest is None else (soonest - now).total_seconds() + 0.05
                delay = min(IDLE_CHECK, max(0.05, delay))
            try:
                await asyncio.wait_for(self.wake.wait(), timeout=delay)
            except TimeoutError:
                pass

    async def check_all(self) -> datetime | None:
        """One pass: each schedule that changed or is due is checked; the soonest next time is returned."""
        now = self.clock.now()
        soonest: datetime | None = None
        for key, body in list(self.schedules.items()):
            cron = self._cron(body)
            if cron is not None and not (body.get("spec") or {}).get("suspend"):
                next_time = cron.next_after(now)
                soonest = next_time if soonest is None or next_time < soonest else soonest
            if key in self.dirty or (cron is not None and self._due(key, body, cron, now)):
                self.dirty.discard(key)
                try:
                    await self.check(key, now)
                except (ApiError, OSError, TimeoutError) as error:
                    self.dirty.add(key)
                    metrics.RECONCILE_ERRORS.labels(kind="schedule").inc()
                    log.warning("check of FlowSchedule %s/%s failed (retried): %s", *key, error)
        return soonest

    @staticmethod
    def _cron(body: Mapping[str, Any]) -> Cron | None:
        spec = body.get("spec") or {}
        try:
            return parse_cron(spec.get("schedule"), spec.get("timeZone"))
        except ScheduleProblem:
            return None

    def _due(self, key: Key, body: Mapping[str, Any], cron: Cron, now: datetime) -> bool:
        view = ObjectView(body)
        if view.spec.get("suspend"):
            return False
        earliest = parse_time(view.status.get("lastScheduleTime")) or parse_time(view.creation_timestamp)
        if earliest is None:
            return True
        latest, _ = cron.latest(earliest, now)
        return latest is not None and self.decided.get(key) != latest

    async def check(self, key: Key, now: datetime) -> None:
        """Decide and act for one schedule, from its runs as the API lists them now."""
        body = self.schedules.get(key)
        if body is None:
            return
        view = ObjectView(body)
        namespace, name = key
        spec = dict(view.spec)
        generation = view.generation
        problem: ScheduleProblem | None
        try:
            cron = parse_cron(spec.get("schedule"), spec.get("timeZone"))
            problem = await self._template_problem(key, view, spec)
        except ScheduleProblem as found:
            cron, problem = None, found
        status: dict[str, Any] = {"observedGeneration": generation}
        if problem is not None or cron is None:
            assert problem is not None
            status["conditions"] = [self._ready(view, "False", problem.reason, str(problem), now)]
            status["nextScheduleTime"] = None
            await self._write_status(key, body, status)
            return
        model = FlowScheduleSpec.model_validate(spec)
        children = await self._children(view)
        created = parse_time(view.creation_timestamp) or now
        decided = plan(cron, model, view.status, created, [Child.of(c) for c in children], now=now)
        for victim in decided.cancel:
            await self._cancel(namespace, victim)
        if decided.start is not None:
            await self._start(view, spec, decided.start)
            status["lastScheduleTime"] = rfc3339(decided.start)
            self.decided.pop(key, None)
        elif decided.skipped is not None and self.decided.get(key) != decided.skipped:
            self.decided[key] = decided.skipped
            message = f"skipped the run of {rfc3339(decided.skipped)}: {decided.skip_reason}"
            log.info("FlowSchedule %s/%s %s", namespace, name, message)
            await self.events.record(body, "Normal", "Skipped", message)
        if decided.missed > TOO_MANY_MISSED:
            await self.events.record(
                body,
                "Warning",
                "TooManyMissedTimes",
                f"more than {TOO_MANY_MISSED} scheduled times were missed (the operator was away, or runs were "
                "forbidden); only the latest is considered. Set startingDeadlineSeconds to bound the catch-up",
            )
        for old in decided.delete:
            await self._delete(namespace, old)
        active = [c for c in decided.active if c.name not in decided.delete]
        status["active"] = [
            {"name": c.name, **({"scheduledTime": rfc3339(c.scheduled)} if c.scheduled else {})} for c in active
        ]
        if decided.start is not None and not any(c.scheduled == decided.start for c in active):
            status["active"].append({"name": run_name(name, decided.start), "scheduledTime": rfc3339(decided.start)})
        status["activeCount"] = len(status["active"])
        if decided.last_successful is not None:
            status["lastSuccessfulTime"] = rfc3339(decided.last_successful)
        status["nextScheduleTime"] = rfc3339(decided.next_time) if decided.next_time else None
        status["conditions"] = [
            self._ready(view, "True", "Scheduled", "schedule, time zone and template are valid", now)
        ]
        await self._write_status(key, body, status)

    async def _template_problem(self, key: Key, view: ObjectView, spec: dict[str, Any]) -> ScheduleProblem | None:
        """The template's problems, computed once per generation (the definition's lint is CPU work)."""
        cached = self.validity.get(key)
        marker = (view.uid, view.generation, spec.get("template"))
        if cached is not None and cached[0] == marker:
            return cached[1]
        problem = await asyncio.to_thread(template_problems, view.name, view.namespace, spec)
        self.validity[key] = (marker, problem)
        return problem

    @staticmethod
    def _ready(view: ObjectView, state: str, reason: str, message: str, now: datetime) -> dict[str, Any]:
        since = transition_time(view.conditions, READY, state, rfc3339(now), reason)
        return condition(READY, state, reason, message, generation=view.generation, moment=since)  # type: ignore[arg-type]

    async def _children(self, view: ObjectView) -> list[dict[str, Any]]:
        listed = await self.client.list(
            FLOWRUNS, view.namespace, label_selector=f"{LABEL_SCHEDULE}={label_value(view.name)}"
        )
        return [
            run
            for run in listed
            if any(
                o.get("kind") == KIND_FLOWSCHEDULE and o.get("uid") == view.uid and o.get("controller")
                for o in run["metadata"].get("ownerReferences") or []
            )
        ]

    async def _start(self, view: ObjectView, spec: Mapping[str, Any], moment: datetime) -> None:
        body = template_run(view.name, view.namespace, spec, moment)
        body["metadata"]["ownerReferences"] = [
            {
                "apiVersion": GROUP_VERSION,
                "kind": KIND_FLOWSCHEDULE,
                "name": view.name,
                "uid": view.uid,
                "controller": True,
            }
        ]
        try:
            await self.client.create(FLOWRUNS, body, view.namespace)
        except ApiError as error:
            if not error.already_exists:
                raise
            return  # this scheduled time's run exists: one run per time, whoever created it
        log.info("FlowSchedule %s/%s started FlowRun %s for %s", *view.key, body["metadata"]["name"], rfc3339(moment))
        await self.events.record(
            dict(self.schedules.get(view.key) or {}),
            "Normal",
            "Started",
            f"started FlowRun {body['metadata']['name']} for {rfc3339(moment)}",
        )

    async def _cancel(self, namespace: str, name: str) -> None:
        try:
            await self.client.patch(FLOWRUNS, name, {"spec": {"cancel": True}}, namespace)
        except ApiError as error:
            if not error.not_found:
                raise

    async def _delete(self, namespace: str, name: str) -> None:
        try:
            await self.client.delete(FLOWRUNS, name, namespace, propagation="Background")
        except ApiError as error:
            if not error.not_found:
                raise

    async def _write_status(self, key: Key, body: dict[str, Any], status: dict[str, Any]) -> None:
        current = body.get("status") or {}
        if all(current.get(k) == v for k, v in status.items()):
            return
        namespace, name = key
        try:
            await self.client.patch(FLOWSCHEDULES, name, {"status": status}, namespace, subresource=STATUS_SUBRESOURCE)
        except ApiError as error:
            if error.not_found:
                return
            raise
        # The watch brings the new status soon; until then the next check must see it already.
        body["status"] = {**current, **{k: v for k, v in status.items() if v is not None}}
