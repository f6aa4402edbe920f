"""The run queue's decisions (``flowlib_operator.queue``): what is going and waiting as the FlowRuns
say, which limit holds a run, the order runs leave the queue, places in line."""

from __future__ import annotations

from typing import Any

from flowlib_operator.naming import label_value
from flowlib_operator.queue import EXACT_POSITIONS, Limits, RunQueue, position_due

from flowlib_api.concurrency import Concurrency


def body(
    name: str,
    phase: str | None,
    *,
    namespace: str = "team",
    flow: str | None = "etl",
    job: bool = False,
    priority: int | None = None,
    since: str = "2026-12-04T10:00:00Z",
    cancel: bool = False,
) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase, "flow": flow} if phase else {}
    if job:
        status["jobName"] = f"{name}-1"
    if phase == "Queued":
        status["queue"] = {"position": 1, "heldBy": "x", "since": since}
    spec: dict[str, Any] = {"flowRef": {"name": flow}} if flow else {"flow": {"nodes": {}}}
    if priority is not None:
        spec["priority"] = priority
    if cancel:
        spec["cancel"] = True
    labels = {"flowlib.dev/flow": label_value(flow)} if flow else {}
    meta = {"name": name, "namespace": namespace, "creationTimestamp": since, "labels": labels}
    return {"metadata": meta, "spec": spec, "status": status}


def test_going_and_waiting_are_what_the_flowruns_say() -> None:
    queue = RunQueue()
    queue.observe(body("a", "Running", job=True))
    queue.observe(body("b", "Pending", job=True))
    queue.observe(body("c", "Queued"))
    queue.observe(body("d", "Suspended", job=True))  # waiting at an approval: holds no pod, no place
    queue.observe(body("e", None))  # not started yet
    assert set(queue.going) == {("team", "a"), ("team", "b")}
    assert set(queue.waiting) == {("team", "c")}
    assert queue.per_flow[("team", "etl")] == 2
    assert queue.observe(body("a", "Succeeded", job=True)) is True  # a place came free
    assert queue.observe(body("c", "Queued"), deleted=True) is False
    assert set(queue.going) == {("team", "b")} and not queue.waiting
    queue.observe(body("q", "Queued", cancel=True))  # ends Cancelled without ever starting
    assert not queue.waiting


def test_an_admitted_run_keeps_its_place_against_a_late_queued_event() -> None:
    queue = RunQueue(limits=Limits(cluster=1))
    queue.observe(body("c", "Queued"))
    (chosen,) = queue.next_runs()
    assert chosen.key == ("team", "c") and queue.held_by("team", "etl") is not None
    queue.observe(body("c", "Queued"))  # the watch still shows the old status
    assert ("team", "c") in queue.going and not queue.waiting
    queue.observe(body("c", "Pending", job=True))
    assert not queue.admitting
    queue.release(("team", "c"))
    assert queue.held_by("team", "etl") is None


def test_which_limit_holds_a_run() -> None:
    queue = RunQueue(limits=Limits(cluster=3, namespace=2))
    queue.flow_seen("team", "etl", {"concurrency": {"maxRuns": 1}})
    assert queue.held_by("team", "etl") is None
    queue.observe(body("a", "Running", job=True))
    assert queue.held_by("team", "etl") == "Flow etl runs at most 1 at once (spec.concurrency.maxRuns)"
    assert queue.held_by("team", "other") is None
    queue.observe(body("b", "Running", job=True, flow="other"))
    assert "namespace team runs at most 2" in (queue.held_by("team", "other") or "")
    queue.observe(body("c", "Running", job=True, namespace="ops"))
    assert "the cluster runs at most 3" in (queue.held_by("ops", None) or "")


def test_a_raised_or_removed_flow_limit_says_runs_may_go() -> None:
    queue = RunQueue()
    assert queue.flow_seen("team", "etl", {"concurrency": {"maxRuns": 1}}) is False
    assert queue.flow_seen("team", "etl", {"concurrency": {"maxRuns": 1, "policy": "Forbid"}}) is False
    assert queue.flow_seen("team", "etl", {"concurrency": {"maxRuns": 3}}) is True
    assert queue.flow_limits[("team", "etl")] == Concurrency(max_runs=3)
    assert queue.flow_seen("team", "etl", {}) is True
    assert queue.flow_seen("team", "etl", {"concurrency": {"maxRuns": 0}}) is False  # invalid: no limit


def test_runs_leave_by_priority_then_first_come_first_served() -> None:
    queue = RunQueue(limits=Limits(cluster=1))
    queue.observe(body("going", "Running", job=True))
    for name, priority, since in (
        ("old", None, "2026-12-04T10:00:01Z"),
        ("new", None, "2026-12-04T10:00:02Z"),
        ("urgent", 10, "2026-12-04T10:00:03Z"),
        ("later", -5, "2026-12-04T10:00:00Z"),
    ):
        queue.observe(body(name, "Queued", priority=priority, since=since))
    order = []
    for _ in range(4):
        assert queue.next_runs() == []  # the one place is taken
        going = next(iter(queue.going))
        queue.observe(body(going[1], "Succeeded", job=True))
        (chosen,) = queue.next_runs()
        order.append(chosen.key[1])
    assert order == ["urgent", "old", "new", "later"]


def test_namespaces_share_the_cluster_limit_in_turn() -> None:
    queue = RunQueue(limits=Limits(cluster=1))
    for i in range(1, 4):
        queue.observe(body(f"a{i}", "Queued", namespace="a", since=f"2026-12-04T10:00:0{i}Z"))
    queue.observe(body("b1", "Queued", namespace="b", since="2026-12-04T10:00:09Z"))  # came last
    order = []
    for _ in range(4):
        (chosen,) = queue.next_runs()
        order.append(chosen.key[1])
        queue.observe(body(chosen.key[1], "Succeeded", namespace=chosen.key[0], job=True))
    assert order == ["a1", "b1", "a2", "a3"]


def test_a_burst_in_one_namespace_does_not_starve_another() -> None:
    queue = RunQueue(limits=Limits(cluster=4))
    for i in range(100):
        queue.observe(body(f"a{i:03}", "Queued", namespace="a", since=f"2026-12-04T10:{i // 60:02}:{i % 60:02}Z"))
    queue.observe(body("b", "Queued", namespace="b", since="2026-12-04T11:00:00Z"))
    chosen = [w.key for w in queue.next_runs()]
    assert len(chosen) == 4 and ("b", "b") in chosen


def test_a_run_held_by_its_flow_does_not_hold_the_others_back() -> None:
    queue = RunQueue(limits=Limits(cluster=10))
    queue.flow_seen("team", "etl", {"concurrency": {"maxRuns": 1}})
    queue.observe(body("e1", "Queued", since="2026-12-04T10:00:01Z"))
    queue.observe(body("e2", "Queued", since="2026-12-04T10:00:02Z"))
    queue.observe(body("o1", "Queued", flow="other", since="2026-12-04T10:00:03Z"))
    assert [w.key[1] for w in queue.next_runs()] == ["e1", "o1"]
    positions = queue.positions()
    assert positions == {("team", "e2"): (1, "Flow etl runs at most 1 at once (spec.concurrency.maxRuns)")}


def test_places_in_line_are_counted_per_limit() -> None:
    queue = RunQueue(limits=Limits(cluster=1))
    queue.observe(body("going", "Running", job=True))
    for i in range(3):
        queue.observe(body(f"w{i}", "Queued", since=f"2026-12-04T10:00:0{i}Z"))
    assert {k[1]: p for k, (p, _) in queue.positions().items()} == {"w0": 1, "w1": 2, "w2": 3}


def test_positions_are_rewritten_exactly_at_the_front_and_on_halving_further_back() -> None:
    assert position_due(None, 500)
    assert position_due(3, 2) and not position_due(2, 2)
    assert not position_due(1000, 501) and position_due(1000, 500)
    assert position_due(EXACT_POSITIONS + 5, EXACT_POSITIONS)
    # Each run waiting at the back of n is written about log2(n) times on its way to the front.
    written, writes = 10_000, 0
    for now in range(10_000, 0, -1):
        if position_due(written, now):
            written, writes = now, writes + 1
    assert writes <= 9 + EXACT_POSITIONS + 1


def test_a_run_let_go_while_its_queued_status_was_written_stays_let_go() -> None:
    queue = RunQueue(limits=Limits(cluster=1))
    queue.observe(body("c", "Queued"))
    (chosen,) = queue.next_runs()  # the pump lets it go ...
    queue.wait(chosen)  # ... while a handler that found it held puts it in line
    assert ("team", "c") in queue.going and not queue.waiting and queue.held_by("team", None) is not None


def test_a_queued_event_that_does_not_show_the_flow_keeps_the_one_known() -> None:
    queue = RunQueue()
    queue.flow_seen("team", "etl", {"concurrency": {"maxRuns": 1}})
    queue.observe(body("r", "Running", job=True))
    retry = body("retry", "Queued", flow=None)  # a retry names no flowRef; its label comes later
    queue.observe(body("retry", "Queued"))
    queue.observe(retry)
    assert queue.waiting[("team", "retry")].flow == "etl"
    assert queue.next_runs() == []  # still held by its Flow's limit


def test_the_start_listing_brings_back_no_run_deleted_meanwhile() -> None:
    queue = RunQueue()
    gone = body("gone", "Running", job=True)
    queue.observe(gone, deleted=True)  # the watch said so before the listing came back
    queue.sync([gone, body("kept", "Running", job=True)])
    assert set(queue.going) == {("team", "kept")} and queue.ready.is_set()


def test_a_full_cluster_lets_nothing_go_without_sorting_the_line() -> None:
    queue = RunQueue(limits=Limits(cluster=1))
    queue.observe(body("going", "Running", job=True))
    queue.observe(body("w", "Queued"))
    assert not queue.may_go(("team", "w")) and queue.next_runs() == []
