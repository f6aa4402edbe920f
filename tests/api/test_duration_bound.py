"""Durations are bounded (``times.MAX_DURATION_SECONDS``, 8784h): a FlowRun ``timeout`` becomes the
Job's int64 ``activeDeadlineSeconds``, and a 30-digit hour count passed every check before and gave
a Job no API server accepts. The model, the CRD's pattern and the webhook's check all refuse it."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from flowlib_api.resources import DURATION_PATTERN, FlowRunSpec
from flowlib_api.times import MAX_DURATION_SECONDS, deadline_seconds, parse_duration, timeout_problem

HUGE = "9" * 30 + "h"
INT64_MAX = 2**63 - 1


def test_the_longest_duration_is_a_year_and_a_day() -> None:
    assert parse_duration("8784h") == MAX_DURATION_SECONDS == 366 * 86400
    assert deadline_seconds("8784h") == MAX_DURATION_SECONDS
    for too_long in ("8784h1s", "9000h", HUGE, 10**40, str(MAX_DURATION_SECONDS + 1)):
        with pytest.raises(ValueError, match=r"is longer than the longest duration flowlib takes, 8784h \(366 days\)"):
            parse_duration(too_long)


def test_a_timeout_past_the_bound_is_a_problem_naming_the_field() -> None:
    problem = timeout_problem(HUGE)
    assert problem is not None and problem.startswith("spec.timeout: ") and "8784h (366 days)" in problem
    assert timeout_problem("30m") is None and timeout_problem(None) is None
    with pytest.raises(ValueError, match=r"spec\.timeout: "):
        deadline_seconds(HUGE)
    with pytest.raises(ValidationError, match=r"spec\.timeout: .*longer than the longest duration"):
        FlowRunSpec.model_validate({"flowRef": {"name": "f"}, "timeout": "9000h"})
    assert FlowRunSpec.model_validate({"flowRef": {"name": "f"}, "timeout": "1h30m"}).timeout == "1h30m"


def test_whatever_the_crd_pattern_lets_through_fits_an_int64() -> None:
    pattern = re.compile(DURATION_PATTERN)
    assert pattern.match(HUGE) is None and pattern.match("9" * 10) is None
    assert pattern.match("1h30m") and pattern.match("500ms") and pattern.match("3600") and pattern.match("1.5h")
    widest = "999999999h" * 25  # the CRD's 253 characters of the largest parts
    assert pattern.match(widest[:250])
    assert sum(int(n) * 3600 for n in re.findall(r"\d+", widest[:250])) < INT64_MAX
