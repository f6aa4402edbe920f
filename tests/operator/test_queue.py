"""Concurrency limits on the simulator with the real operator: a Flow's ``spec.concurrency``
(Queue, Forbid, Replace), priorities, cancel and delete of Queued runs, a restart with runs in line,
and the operator's cluster limit shared between namespaces.

That runs never overlapped is read off their status afterwards (each run's ``startTime`` and
``completionTime``, written by its runner), not sampled while they go."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from flowlib_api.times import parse_time
from tests.operator.cluster import Cluster, flow, flowrun, own_operator

NAP = {"nodes": {"nap": {"run": {"python": "import asyncio\nasync def exec(p):\n    await asyncio.sleep(1.2)\n"}}}}
LONG = {"nodes": {"nap": {"run": {"python": "import asyncio\nasync def exec(p):\n    await asyncio.sleep(60)\n"}}}}


def limited(name: str, spec: dict[str, Any], max_runs: int, policy: str = "Queue") -> dict[str, Any]:
    return flow(name, {**spec, "concurrency": {"maxRuns": max_runs, "policy": policy}})


def interval(cluster: Cluster, namespace: str, run: str) -> tuple[datetime, datetime]:
    status = cluster.run_status(run, namespace)
    start, end = parse_time(status.get("startTime")), parse_time(status.get("completionTime"))
    assert start is not None and end is not None, status
    return start, end


def one_at_a_time(cluster: Cluster, namespace: str, runs: list[str]) -> list[str]:
    """The runs in the order they ran, asserting no two overlapped."""
    spans = sorted((interval(cluster, namespace, run), run) for run in runs)
    for (earlier, _), (later, name) in itertools.pairwise(spans):
        assert later[0] >= earlier[1], f"{name} started before the run ahead of it ended: {spans}"
    return [name for _, name in spans]


def queued(cluster: Cluster, namespace: str, run: str) -> dict[str, Any]:
    def waiting() -> dict[str, Any] | None:
        status = cluster.run_status(run, namespace)
        return status if status.get("phase") == "Queued" else None

    status: dict[str, Any] = cluster.wait_for(f"{run} to be Queued", waiting)
    return status


def test_a_flow_at_its_limit_queues_runs_that_then_go_one_at_a_time(cluster: Cluster, namespace: str) -> None:
    cluster.apply(namespace, limited("one", NAP, 1))
    cluster.apply(namespace, flowrun("r1", "one"))
    cluster.wait_phase("r1", namespace, "Pending", "Running")
    cluster.apply(namespace, flowrun("r2", "one"), flowrun("r3", "one"))
    places = {run: queued(cluster, namespace, run)["queue"] for run in ("r2", "r3")}

    def in_line() -> list[int] | None:  # both are written at once; the resync makes them exact if not
        found = sorted(cluster.run_status(run, namespace)["queue"]["position"] for run in ("r2", "r3"))
        return found if found == [1, 2] else None

    cluster.wait_for("r2 and r3 in places 1 and 2", in_line, timeout=20)
    assert all(p["heldBy"] == "Flow one runs at most 1 at once (spec.concurrency.maxRuns)" for p in places.values())
    assert "Job" not in str(cluster.list("jobs", namespace, "flowlib.dev/flowrun=r3"))  # no Job while Queued
    table = cluster.kubectl("get", "fr", "-n", namespace, "-o", "wide")
    assert "Queued" in table and "QUEUE" in table
    for run in ("r1", "r2", "r3"):
        status = cluster.wait_phase(run, namespace, "Succeeded")
        assert "queue" not in status
    assert one_at_a_time(cluster, namespace, ["r1", "r2", "r3"])[0] == "r1"
    events = [e for e in cluster.list("events", namespace) if e.get("reason") == "Queued"]
    assert {e["involvedObject"]["name"] for e in events} == {"r2", "r3"}


def test_a_higher_priority_goes_first_and_the_queue_survives_a_restart(simulator_only: Cluster, namespace: str) -> None:
    cluster = simulator_only
    assert cluster.operator is not None
    cluster.apply(namespace, limited("one", NAP, 1))
    cluster.apply(namespace, flowrun("first", "one"))
    cluster.wait_phase("first", namespace, "Pending", "Running")
    cluster.apply(namespace, flowrun("low", "one"))
    queued(cluster, namespace, "low")
    cluster.apply(namespace, flowrun("high", "one", priority=10))
    queued(cluster, namespace, "high")
    cluster.operator.restart()  # SIGKILL: the queue is what the FlowRuns say
    for run in ("first", "low", "high"):
        cluster.wait_phase(run, namespace, "Succeeded", timeout=90)
    assert one_at_a_time(cluster, namespace, ["first", "low", "high"]) == ["first", "high", "low"]


def test_forbid_refuses_a_run_while_the_flow_is_at_its_limit(cluster: Cluster, namespace: str) -> None:
    cluster.apply(namespace, limited("only", LONG, 1, "Forbid"))
    cluster.apply(namespace, flowrun("going", "only"))
    cluster.wait_phase("going", namespace, "Pending", "Running")
    cluster.apply(namespace, flowrun("refused", "only"))
    status = cluster.wait_phase("refused", namespace, "Failed")
    reason = next(c["reason"] for c in status["conditions"] if c["type"] == "Succeeded")
    assert reason == "ConcurrencyForbidden" and "going still going" in status["message"]
    cluster.kubectl("patch", "fr", "going", "-n", namespace, "--type=merge", "-p", '{"spec":{"cancel":true}}')
    cluster.wait_phase("going", namespace, "Cancelled", timeout=90)


def test_replace_cancels_the_oldest_run_and_starts_the_new_one(cluster: Cluster, namespace: str) -> None:
    cluster.apply(namespace, limited("latest", LONG, 1, "Replace"))
    cluster.apply(namespace, flowrun("old", "latest"))
    cluster.wait_phase("old", namespace, "Running")
    cluster.apply(namespace, flowrun("new", "latest"))
    cluster.wait_phase("old", namespace, "Cancelled", timeout=90)
    cluster.wait_phase("new", namespace, "Running", timeout=60)
    old, new = cluster.run_status("old", namespace), cluster.run_status("new", namespace)
    assert parse_time(new["startTime"]) >= parse_time(old["completionTime"])  # type: ignore[operator]
    cluster.kubectl("delete", "fr", "new", "-n", namespace, "--wait=false")


def test_queued_runs_can_be_cancelled_and_deleted(cluster: Cluster, namespace: str) -> None:
    cluster.apply(namespace, limited("one", LONG, 1))
    cluster.apply(namespace, flowrun("going", "one"))
    cluster.wait_phase("going", namespace, "Pending", "Running")
    cluster.apply(namespace, flowrun("cancel-me", "one"), flowrun("delete-me", "one"), flowrun("last", "one"))
    for run in ("cancel-me", "delete-me", "last"):
        queued(cluster, namespace, run)
    cluster.kubectl("patch", "fr", "cancel-me", "-n", namespace, "--type=merge", "-p", '{"spec":{"cancel":true}}')
    assert cluster.wait_phase("cancel-me", namespace, "Cancelled").get("jobName") is None
    cluster.kubectl("delete", "fr", "delete-me", "-n", namespace)
    cluster.kubectl("patch", "fr", "going", "-n", namespace, "--type=merge", "-p", '{"spec":{"cancel":true}}')
    cluster.wait_phase("going", namespace, "Cancelled", timeout=90)
    cluster.wait_phase("last", namespace, "Pending", "Running")  # the place went to the one left in line
    cluster.kubectl("delete", "fr", "last", "-n", namespace, "--wait=false")


@pytest.fixture
def cluster_limit(kubesim: Any, tmp_path: Path) -> Iterator[Cluster]:
    with own_operator(kubesim, tmp_path, ["--max-runs", "1"]) as cluster:
        yield cluster


def test_the_cluster_limit_is_shared_between_namespaces_in_turn(cluster_limit: Cluster) -> None:
    cluster = cluster_limit
    for namespace in ("team-a", "team-b"):
        cluster.kubectl("create", "namespace", namespace)
        cluster.apply(namespace, flow("nap", NAP))
    cluster.apply("team-a", flowrun("a1", "nap"))
    cluster.wait_phase("a1", "team-a", "Pending", "Running")
    cluster.apply("team-a", flowrun("a2", "nap"), flowrun("a3", "nap"))
    for run in ("a2", "a3"):
        assert "the cluster runs at most 1" in queued(cluster, "team-a", run)["queue"]["heldBy"]
    cluster.apply("team-b", flowrun("b1", "nap"))  # last in, but team-b has had no turn yet
    queued(cluster, "team-b", "b1")
    for namespace, run in (("team-a", "a1"), ("team-a", "a2"), ("team-a", "a3"), ("team-b", "b1")):
        cluster.wait_phase(run, namespace, "Succeeded", timeout=90)
    spans = sorted(
        (*interval(cluster, ns, run), run)
        for ns, run in (("team-a", "a1"), ("team-a", "a2"), ("team-a", "a3"), ("team-b", "b1"))
    )
    assert [run for _, _, run in spans] == ["a1", "b1", "a2", "a3"]
    for (_, end, _), (start, _, run) in itertools.pairwise(spans):
        assert start >= end, f"{run} overlapped the run before it"
