"""``flowctl logs`` numbers a run's pods by attempt (``follow.in_attempt_order``): creation times
have whole seconds only, and a runner killed early is replaced within the same second."""

from __future__ import annotations

from typing import Any

from flowlib_runner.flowctl.follow import in_attempt_order


def pod(name: str, created: str, phase: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "creationTimestamp": created}, "status": {"phase": phase}}


def names(pods: list[dict[str, Any]]) -> list[str]:
    return [p["metadata"]["name"] for p in pods]


def test_older_seconds_come_first_whatever_the_names() -> None:
    pods = [pod("run-a", "2026-12-04T10:00:02Z", "Running"), pod("run-z", "2026-12-04T10:00:01Z", "Failed")]
    assert names(in_attempt_order(pods, "run-a")) == ["run-z", "run-a"]


def test_in_one_second_the_ended_pod_comes_before_the_one_going() -> None:
    # the replacement's name sorts first, and the status still names the killed pod
    pods = [pod("run-a", "2026-12-04T10:00:01Z", "Pending"), pod("run-z", "2026-12-04T10:00:01Z", "Failed")]
    assert names(in_attempt_order(pods, "run-z")) == ["run-z", "run-a"]
    assert names(in_attempt_order(pods, None)) == ["run-z", "run-a"]


def test_in_one_second_with_both_ended_the_pod_the_status_names_is_the_latest() -> None:
    pods = [pod("run-a", "2026-12-04T10:00:01Z", "Succeeded"), pod("run-z", "2026-12-04T10:00:01Z", "Failed")]
    assert names(in_attempt_order(pods, "run-a")) == ["run-z", "run-a"]
    assert names(in_attempt_order(pods, "run-z")) == ["run-a", "run-z"]
