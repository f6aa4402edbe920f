"""The scheduler's pure decisions (``flowlib_operator.schedules.plan``): CronJob's semantics, with
the time given, never waited for."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flowlib_operator.schedules import Child, ScheduleProblem, parse_cron, plan, run_name, template_problems

from flowlib_api.schedules import FlowScheduleSpec

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def spec(**fields: Any) -> FlowScheduleSpec:
    return FlowScheduleSpec.model_validate(
        {"schedule": "* * * * *", "template": {"spec": {"flowRef": {"name": "f"}}}, **fields}
    )


def child(minute: int, phase: str | None = None) -> Child:
    moment = T0 + timedelta(minutes=minute)
    return Child(run_name("s", moment), moment, phase, moment, None, cancelled=False)


CRON = parse_cron("* * * * *", None)


def test_the_latest_time_not_yet_run_starts_once() -> None:
    decided = plan(CRON, spec(), {}, T0, [], now=T0 + timedelta(minutes=1, seconds=5))
    assert decided.start == T0 + timedelta(minutes=1)
    recorded = {"lastScheduleTime": "2026-01-01T12:01:00Z"}
    again = plan(CRON, spec(), recorded, T0, [child(1)], now=T0 + timedelta(minutes=1, seconds=30))
    assert again.start is None


def test_a_time_exactly_now_is_due() -> None:
    assert plan(CRON, spec(), {}, T0, [], now=T0 + timedelta(minutes=1)).start == T0 + timedelta(minutes=1)


def test_only_the_latest_missed_time_starts_and_many_missed_are_counted() -> None:
    decided = plan(CRON, spec(), {}, T0, [], now=T0 + timedelta(minutes=500, seconds=1))
    assert decided.start == T0 + timedelta(minutes=500)
    assert decided.missed > 100


def test_a_run_created_before_a_restart_is_only_recorded() -> None:
    decided = plan(CRON, spec(), {}, T0, [child(1)], now=T0 + timedelta(minutes=1, seconds=2))
    assert decided.start == T0 + timedelta(minutes=1)  # its create will 409; the status records it


def test_starting_deadline_skips_a_late_time() -> None:
    late = plan(CRON, spec(startingDeadlineSeconds=10), {}, T0, [], now=T0 + timedelta(minutes=1, seconds=30))
    assert late.start is None and late.skipped == T0 + timedelta(minutes=1)
    in_time = plan(CRON, spec(startingDeadlineSeconds=40), {}, T0, [], now=T0 + timedelta(minutes=1, seconds=30))
    assert in_time.start == T0 + timedelta(minutes=1)


def test_forbid_skips_while_a_run_goes_and_replace_cancels_it() -> None:
    going = [child(1, "Running")]
    record = {"lastScheduleTime": "2026-01-01T12:01:00Z"}
    now = T0 + timedelta(minutes=2, seconds=1)
    forbid = plan(CRON, spec(concurrencyPolicy="Forbid"), record, T0, going, now=now)
    assert forbid.start is None and forbid.skipped == T0 + timedelta(minutes=2)
    replace = plan(CRON, spec(concurrencyPolicy="Replace"), record, T0, going, now=now)
    assert replace.start == T0 + timedelta(minutes=2) and replace.cancel == [going[0].name]
    allow = plan(CRON, spec(), record, T0, going, now=now)
    assert allow.start == T0 + timedelta(minutes=2) and allow.cancel == []


def test_suspend_starts_nothing() -> None:
    assert plan(CRON, spec(suspend=True), {}, T0, [], now=T0 + timedelta(minutes=3)).start is None


def test_history_limits_delete_the_oldest_finished_runs() -> None:
    runs = [child(m, "Succeeded") for m in range(1, 6)] + [child(m, "Failed") for m in (6, 7)] + [child(8, "Cancelled")]
    decided = plan(CRON, spec(successfulRunsHistoryLimit=2), {}, T0, runs, now=T0 + timedelta(minutes=8, seconds=1))
    assert decided.delete == [runs[0].name, runs[1].name, runs[2].name, runs[5].name, runs[6].name]


def test_time_zones_are_read_in_their_zone() -> None:
    paris = parse_cron("0 2 * * *", "Europe/Paris")
    assert paris.next_after(T0) == datetime(2026, 1, 2, 1, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("schedule", "zone", "reason", "field"),
    [
        ("* * * *", None, "InvalidSchedule", "spec.schedule"),
        ("* * * * * *", None, "InvalidSchedule", "spec.schedule"),
        ("61 * * * *", None, "InvalidSchedule", "spec.schedule"),
        ("@sometimes", None, "InvalidSchedule", "spec.schedule"),
        ("TZ=UTC * * * * *", None, "InvalidSchedule", "spec.schedule"),
        ("* * * * *", "Mars/Olympus", "InvalidTimeZone", "spec.timeZone"),
        ("* * * * *", "../etc/passwd", "InvalidTimeZone", "spec.timeZone"),
    ],
)
def test_invalid_schedules_name_the_field(schedule: str, zone: str | None, reason: str, field: str) -> None:
    with pytest.raises(ScheduleProblem) as caught:
        parse_cron(schedule, zone)
    assert caught.value.reason == reason and str(caught.value).startswith(field)


def test_an_invalid_template_names_the_field() -> None:
    problem = template_problems("s", "ns", {"schedule": "* * * * *", "template": {"spec": {}}})
    assert problem is not None and problem.reason == "InvalidTemplate" and "spec.template" in str(problem)
    inline_bad = {"schedule": "@daily", "template": {"spec": {"flow": {"nodes": {"a": {"next": {"default": "x"}}}}}}}
    problem = template_problems("s", "ns", inline_bad)
    assert problem is not None and "spec.template.spec.flow" in str(problem)
    assert (
        template_problems("s", "ns", {"schedule": "@daily", "template": {"spec": {"flowRef": {"name": "f"}}}}) is None
    )
