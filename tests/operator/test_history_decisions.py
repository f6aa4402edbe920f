"""What a Flow's history deletes, as pure decisions (``flowlib_operator.history``)."""

from __future__ import annotations

from typing import Any

import pytest
from flowlib_operator.history import HistoryKeeper, beyond_limits, flow_history, history_flow, run_order, run_phase
from flowlib_operator.naming import label_value
from pydantic import ValidationError

from flowlib_api.history import KEEP_ALL, RunHistory
from flowlib_api.resources import flow_source_problem


def run(name: str, phase: str | None, created: str, flow: str | None = "etl", **meta: Any) -> dict[str, Any]:
    labels = {"flowlib.dev/flow": label_value(flow)} if flow else {}
    return {
        "metadata": {
            "name": name,
            "namespace": "team",
            "uid": f"uid-{name}",
            "creationTimestamp": created,
            "labels": labels,
            **meta,
        },
        "spec": {"flowRef": {"name": flow}} if flow else {"flow": {"nodes": {}}},
        "status": {"phase": phase, "flow": flow} if phase else {},
    }


def names(runs: list[dict[str, Any]]) -> list[str]:
    return [r["metadata"]["name"] for r in runs]


def doomed(runs: list[dict[str, Any]], **limits: int | None) -> list[str]:
    return names(beyond_limits(runs, RunHistory(**limits), run_phase, run_order))


def test_the_oldest_beyond_each_limit_go_and_nothing_unfinished() -> None:
    runs = [
        run("new-ok", "Succeeded", "2026-12-04T10:00:05Z"),
        run("old-ok", "Succeeded", "2026-12-04T10:00:01Z"),
        run("mid-ok", "Succeeded", "2026-12-04T10:00:03Z"),
        run("old-bad", "Failed", "2026-12-04T10:00:00Z"),
        run("cancelled", "Cancelled", "2026-12-04T10:00:02Z"),
        run("going", "Running", "2026-11-01T00:00:00Z"),
        run("waiting", "Suspended", "2026-11-01T00:00:00Z"),
        run("new", None, "2026-11-01T00:00:00Z"),
    ]
    assert doomed(runs, succeeded=1, failed=1) == ["old-ok", "mid-ok", "old-bad"]
    assert doomed(runs, succeeded=0, failed=None) == ["old-ok", "mid-ok", "new-ok"]
    assert doomed(runs, succeeded=None, failed=0) == ["old-bad", "cancelled"]
    assert doomed(runs, succeeded=5, failed=5) == []
    assert doomed(runs, succeeded=None, failed=None) == []


def test_runs_of_one_second_are_ordered_by_name() -> None:
    runs = [run(f"r{i}", "Succeeded", "2026-12-04T10:00:00Z") for i in (3, 1, 2)]
    assert doomed(runs, succeeded=1) == ["r1", "r2"]


def test_which_runs_count_in_a_flows_history() -> None:
    assert history_flow(run("a", "Succeeded", "2026-12-04T10:00:00Z")) == "etl"
    assert history_flow(run("inline", "Succeeded", "2026-12-04T10:00:00Z", flow=None)) is None
    scheduled = run(
        "s", "Succeeded", "2026-12-04T10:00:00Z", ownerReferences=[{"kind": "FlowSchedule", "controller": True}]
    )
    assert history_flow(scheduled) is None
    forged = run("x", "Succeeded", "2026-12-04T10:00:00Z")
    forged["metadata"]["labels"]["flowlib.dev/flow"] = "payroll"  # a hand-set label moves nothing
    assert history_flow(forged) is None
    long = "f" * 200  # a Flow name longer than a label value: the label holds its hashed form
    assert history_flow(run("l", "Succeeded", "2026-12-04T10:00:00Z", flow=long)) == long


def test_a_flows_limits_fall_back_field_by_field_to_the_operators() -> None:
    operator = RunHistory(succeeded=10, failed=3)
    assert flow_history({"history": {"failed": 0}}).over(operator) == RunHistory(succeeded=10, failed=0)
    assert flow_history(None).over(operator) == operator
    assert flow_history({"history": {"succeeded": -1}}) == KEEP_ALL  # the schema refuses it; never a guess
    assert KEEP_ALL.over(KEEP_ALL).unlimited
    with pytest.raises(ValidationError):
        RunHistory.model_validate({"kept": 3})


def test_only_flows_the_cache_says_are_over_are_read_afresh() -> None:
    keeper = HistoryKeeper(client=None, events=None, default=RunHistory(succeeded=2, failed=None))  # type: ignore[arg-type]
    cached = {("team", f"r{i}"): run(f"r{i}", "Succeeded", f"2026-12-04T10:00:0{i}Z") for i in range(3)}
    cached[("team", "other")] = run("other", "Succeeded", "2026-12-04T10:00:00Z", flow="other")
    for body in cached.values():
        keeper.run_finished(body)
    assert keeper.take_due(cached) == [("team", "etl")]  # "other" has one run: under its limit
    assert keeper.take_due(cached) == []  # done with until something finishes or a Flow changes
    keeper.flow_seen({"metadata": {"namespace": "team", "name": "other"}, "spec": {"history": {"succeeded": 0}}})
    assert keeper.take_due(cached) == [("team", "other")]


def test_an_inline_flow_with_a_history_is_refused_saying_what_to_do() -> None:
    problem = flow_source_problem({"flow": {"nodes": {}, "history": {"succeeded": 1}}})
    assert problem is not None and problem.startswith("spec.flow.history:") and "ttlSecondsAfterFinished" in problem
