"""FlowSchedule: FlowRuns started on a cron schedule, with Kubernetes CronJob's semantics.

The spec mirrors a CronJob's (``schedule``, ``timeZone``, ``concurrencyPolicy``,
``startingDeadlineSeconds``, ``suspend``, the two history limits) so that people who know CronJobs
know these, and ``template`` is a FlowRun's metadata (labels, annotations) and spec: the spec is
``resources.FlowRunSpec`` itself, so every FlowRun field is available and validated the same way.

The cron expression and the time zone are checked by the operator (``flowlib_operator.schedules``,
with croniter and zoneinfo): this package imports nothing but the standard library and pydantic.
What the operator found is reported in ``status.conditions`` (``Ready``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from flowlib_api.resources import Condition, FlowRunSpec

ConcurrencyPolicy = Literal["Allow", "Forbid", "Replace"]

DEFAULT_TIME_ZONE = "UTC"
"""A schedule without ``timeZone`` is read in UTC, the operator's own clock (a CronJob would use the
kube-controller-manager's local zone, which no user can see)."""
DEFAULT_SUCCESSFUL_HISTORY = 3
DEFAULT_FAILED_HISTORY = 1
MAX_SCHEDULE_NAME = 52
"""A FlowSchedule's longest name, as a CronJob's: its runs are named ``<schedule>-<minutes since the
epoch>``, which must leave room for the names derived from a run's (``-runner``, ``-store-N``)."""


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class TemplateMetadata(_Model):
    """What a scheduled FlowRun's metadata gets (its name is the operator's)."""

    labels: dict[str, str] | None = Field(None, description="Labels of each FlowRun.")
    annotations: dict[str, str] | None = Field(None, description="Annotations of each FlowRun.")


class FlowRunTemplate(_Model):
    """The FlowRun each scheduled time starts."""

    metadata: TemplateMetadata | None = Field(None, description="Labels and annotations of each FlowRun.")
    spec: FlowRunSpec = Field(description="The FlowRun's spec: every field of a FlowRun's spec, checked the same way.")


class FlowScheduleSpec(_Model):
    """When to start a FlowRun, and what to do with the ones before it."""

    schedule: str = Field(
        min_length=1,
        max_length=256,
        description="A cron expression of 5 fields (minute hour day-of-month month day-of-week), e.g. "
        "'0 2 * * *', or a macro: @hourly, @daily (@midnight), @weekly, @monthly, @yearly (@annually).",
    )
    time_zone: str | None = Field(
        None,
        max_length=256,
        description=f"IANA time zone the schedule is read in, e.g. Europe/Paris; default {DEFAULT_TIME_ZONE}.",
    )
    concurrency_policy: ConcurrencyPolicy = Field(
        "Allow",
        description="When a scheduled time comes while a run of the schedule is still going: Allow starts "
        "another, Forbid skips the new one (it counts as missed), Replace cancels the running one "
        "(spec.cancel) and starts the new one.",
    )
    starting_deadline_seconds: int | None = Field(
        None,
        ge=0,
        description="A scheduled time missed (the operator was down, or Forbid) by more than this many "
        "seconds is skipped. Unset: a missed time starts however late (only the latest missed one).",
    )
    suspend: bool | None = Field(
        None, description="True stops new runs (runs already started go on); set back to false to resume."
    )
    successful_runs_history_limit: int | None = Field(
        None,
        ge=0,
        description=f"How many Succeeded runs to keep (the oldest are deleted); default {DEFAULT_SUCCESSFUL_HISTORY}.",
    )
    failed_runs_history_limit: int | None = Field(
        None,
        ge=0,
        description=f"How many Failed or Cancelled runs to keep; default {DEFAULT_FAILED_HISTORY}.",
    )
    template: FlowRunTemplate = Field(description="The FlowRun started at each scheduled time.")


class ActiveRun(_Model):
    """A run of the schedule that has not finished."""

    name: str = Field(description="The FlowRun's name.")
    scheduled_time: str | None = Field(None, description="The time it was scheduled for (RFC 3339).")


class FlowScheduleStatus(_Model):
    """What the operator did with the schedule (written by the operator only)."""

    observed_generation: int | None = Field(None, description="The FlowSchedule generation the operator acted on.")
    conditions: list[Condition] | None = Field(
        None,
        description="The Ready condition: True when schedule, timeZone and template are valid, else False with "
        "a reason (InvalidSchedule, InvalidTimeZone, InvalidTemplate, InvalidName) and a message naming the field.",
    )
    last_schedule_time: str | None = Field(
        None, description="The latest scheduled time a run was started for (RFC 3339)."
    )
    last_successful_time: str | None = Field(None, description="When a run of the schedule last succeeded.")
    active: list[ActiveRun] | None = Field(None, description="The schedule's runs that have not finished.")
    active_count: int | None = Field(None, description="How many of its runs have not finished.")
    next_schedule_time: str | None = Field(None, description="The next scheduled time (RFC 3339), when not suspended.")
