"""Visit coalescing (observer opt-in) and the event loop's turns in observed async runs."""

from __future__ import annotations

import asyncio
import time
import warnings
from typing import Any

import pytest

import flowlib
from flowlib.events import (
    EventRecorder,
    NodeCancelled,
    NodeFailed,
    NodeFinished,
    NodeStarted,
    NodeVisits,
    RetryScheduled,
)
from flowlib.pacing import Pacer


class Coalescing(EventRecorder):
    def __init__(self, visit_events: int, visit_interval: float = 3600.0) -> None:
        super().__init__()
        self.visit_events = visit_events
        self.visit_interval = visit_interval


class Loop(flowlib.Node):
    """Visits itself ``shared["steps"]`` times; raises on visit ``shared.get("fail_at")``."""

    def post(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> str:
        shared["n"] = shared.get("n", 0) + 1
        if shared["n"] == shared.get("fail_at"):
            raise ValueError(f"visit {shared['n']}")
        return "again" if shared["n"] < shared["steps"] else "done"


class AsyncLoop(flowlib.AsyncNode):
    async def post_async(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> str:
        shared["n"] = shared.get("n", 0) + 1
        return "again" if shared["n"] < shared["steps"] else "done"


def looping(node: Any, flow_class: type[Any] = flowlib.Flow) -> Any:
    node.name = "loop"
    node - "again" >> node
    return flow_class(node)


def kinds(recorder: EventRecorder) -> list[str]:
    return [type(e).__name__ for e in recorder.events]


def run_quietly(call: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PocketFlow's "Flow ends: 'done' not found": the loop's way out
        return call()


def test_without_a_request_every_visit_is_reported_and_numbered() -> None:
    recorder = EventRecorder()
    run_quietly(lambda: looping(Loop()).run({"steps": 5}, observer=recorder))
    started = [e for e in recorder.events if isinstance(e, NodeStarted)]
    assert [e.visit for e in started] == [1, 2, 3, 4, 5]
    assert not any(isinstance(e, NodeVisits) for e in recorder.events)


@pytest.mark.parametrize("flow_class", [flowlib.Flow, flowlib.AsyncFlow])
def test_a_loop_reports_its_first_visits_then_sums_up_the_rest(flow_class: type[Any]) -> None:
    recorder = Coalescing(visit_events=3)
    node = Loop() if flow_class is flowlib.Flow else AsyncLoop()
    flow = looping(node, flow_class)
    if flow_class is flowlib.Flow:
        run_quietly(lambda: flow.run({"steps": 100}, observer=recorder))
    else:
        run_quietly(lambda: asyncio.run(flow.run_async({"steps": 100}, observer=recorder)))
    assert kinds(recorder) == [
        "FlowStarted",
        *["NodeStarted", "NodeFinished"] * 3,
        "NodeVisits",  # the walk's end: visits 4..100
        "FlowFinished",
    ]
    visits = recorder.events[-2]
    assert isinstance(visits, NodeVisits)
    assert (visits.path, visits.visits, visits.action, visits.attempts) == (("loop",), 100, "done", 1)
    assert visits.kind == type(node).__name__
    finished = [e.duration for e in recorder.events if isinstance(e, NodeFinished)]
    assert visits.seconds >= sum(finished)


def test_with_a_zero_interval_every_visit_is_reported() -> None:
    recorder = Coalescing(visit_events=2, visit_interval=0)
    run_quietly(lambda: looping(Loop()).run({"steps": 20}, observer=recorder))
    assert [e.visit for e in recorder.events if isinstance(e, NodeStarted)] == list(range(1, 21))
    assert not any(isinstance(e, NodeVisits) for e in recorder.events)


def test_a_reported_visit_after_quiet_ones_is_preceded_by_their_sum() -> None:
    class Slow(Loop):
        def exec(self, prep_res: Any) -> None:
            if self.params.get("slow_at") == len(self.params["seen"]):
                time.sleep(0.3)
            self.params["seen"].append(1)

    recorder = Coalescing(visit_events=1, visit_interval=0.25)
    # Visit 6 sleeps past the interval, so visit 7 is reported: first the sum of visits 2..6.
    flow = looping(Slow())
    flow.params = {"slow_at": 5, "seen": []}
    run_quietly(lambda: flow.run({"steps": 10}, observer=recorder))
    summary = [(type(e).__name__, getattr(e, "visit", None) or getattr(e, "visits", None)) for e in recorder.events]
    assert summary[1:] == [
        ("NodeStarted", 1),
        ("NodeFinished", None),
        ("NodeVisits", 6),
        ("NodeStarted", 7),
        ("NodeFinished", None),
        ("NodeVisits", 10),
        ("FlowFinished", None),
    ]


def test_a_quiet_visit_that_fails_is_reported_after_the_sum_of_those_before() -> None:
    recorder = Coalescing(visit_events=2)
    with pytest.raises(ValueError, match="visit 50"):
        looping(Loop()).run({"steps": 100, "fail_at": 50}, observer=recorder)
    assert kinds(recorder)[-3:] == ["NodeVisits", "NodeFailed", "FlowFailed"]
    visits, failed = recorder.events[-3], recorder.events[-2]
    assert isinstance(visits, NodeVisits) and visits.visits == 49
    assert isinstance(failed, NodeFailed) and failed.visit == 50 and str(failed.error) == "visit 50"


def test_retries_are_never_coalesced_and_say_which_visit() -> None:
    class Flaky(Loop):
        def exec(self, prep_res: Any) -> None:
            if self.cur_retry == 0 and self.params["calls"].append(1) is None and len(self.params["calls"]) == 30:
                raise ConnectionError("once")

    recorder = Coalescing(visit_events=2)
    flow = looping(Flaky(max_retries=2))
    flow.params = {"calls": []}
    run_quietly(lambda: flow.run({"steps": 40}, observer=recorder))
    retry = next(e for e in recorder.events if isinstance(e, RetryScheduled))
    assert (retry.visit, retry.attempt) == (30, 1)
    assert kinds(recorder)[-2:] == ["NodeVisits", "FlowFinished"]


def test_visits_of_a_sub_flow_add_up_over_its_walks() -> None:
    inner = flowlib.Node()
    inner.name = "inner"
    sub = flowlib.Flow(inner, name="sub")
    driver = Loop()
    driver.name = "driver"
    driver - "again" >> sub
    sub >> driver
    recorder = Coalescing(visit_events=1)
    run_quietly(lambda: flowlib.Flow(driver).run({"steps": 30}, observer=recorder))
    last = {e.path: e.visits for e in recorder.events if isinstance(e, NodeVisits)}
    assert last[("sub", "inner")] == 29 and last[("sub",)] == 29 and last[("driver",)] == 30


def test_a_cancelled_quiet_visit_is_reported_as_cancelled() -> None:
    class Waits(flowlib.AsyncNode):
        async def exec_async(self, prep_res: Any) -> None:
            if self.params["visits"].append(1) is None and len(self.params["visits"]) == 20:
                self.params["token"].cancel("stop")
                await asyncio.sleep(10)

        async def post_async(self, shared: Any, prep_res: Any, exec_res: Any) -> str:
            return "again"

    token = flowlib.CancelToken()
    recorder = Coalescing(visit_events=2)
    flow = looping(Waits(), flowlib.AsyncFlow)
    flow.params = {"visits": [], "token": token}
    with pytest.raises(flowlib.Cancelled):
        asyncio.run(flow.run_async({}, observer=recorder, cancel=token))
    cancelled = next(e for e in recorder.events if isinstance(e, NodeCancelled))
    assert cancelled.visit == 20
    assert kinds(recorder)[-3:] == ["NodeVisits", "NodeCancelled", "FlowCancelled"]


def test_a_run_with_only_a_cancel_token_counts_without_events() -> None:
    shared = {"steps": 1000}
    run_quietly(lambda: looping(Loop()).run(shared, cancel=flowlib.CancelToken()))
    assert shared["n"] == 1000


def test_a_bad_coalescing_request_is_refused() -> None:
    with pytest.raises(TypeError, match="visit_events"):
        looping(Loop()).run({"steps": 1}, observer=Coalescing(visit_events=-1))


class SyncSleep(flowlib.AsyncNode):
    """An async node whose exec never awaits: it holds the event loop, as sync user code does."""

    async def exec_async(self, prep_res: Any) -> None:
        time.sleep(0.002)

    async def post_async(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> str:
        shared["n"] = shared.get("n", 0) + 1
        return "again" if shared["n"] < shared["steps"] else "done"


async def ticks_during(run: Any) -> int:
    """How often a concurrent task got the event loop while ``run`` ran."""
    ticks = 0
    stop = False

    async def ticker() -> None:
        nonlocal ticks
        while not stop:
            await asyncio.sleep(0)
            ticks += 1

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    before = ticks
    try:
        await run
        after = ticks
    finally:
        stop = True
        await task
    return after - before


def test_an_observed_walk_of_never_waiting_nodes_lets_the_event_loop_in() -> None:
    flow = looping(SyncSleep(), flowlib.AsyncFlow)
    run = flow.run_async({"steps": 50}, observer=Coalescing(visit_events=1))
    assert run_quietly(lambda: asyncio.run(ticks_during(run))) >= 2  # 100 ms of steps, a turn every 20 ms


def test_a_walk_without_context_keeps_pocketflows_scheduling() -> None:
    flow = looping(SyncSleep(), flowlib.AsyncFlow)
    assert run_quietly(lambda: asyncio.run(ticks_during(flow.run_async({"steps": 20})))) == 0


def test_a_cancel_token_stops_a_loop_of_never_waiting_nodes_from_the_event_loop() -> None:
    async def main() -> dict[str, Any]:
        token = flowlib.CancelToken()
        shared = {"steps": 10_000}
        asyncio.get_running_loop().call_later(0.05, token.cancel, "timer")
        with pytest.raises(flowlib.Cancelled, match="timer"):
            await looping(SyncSleep(), flowlib.AsyncFlow).run_async(shared, cancel=token)
        return shared

    shared = run_quietly(lambda: asyncio.run(main()))
    assert shared["n"] < 200  # stopped within about a yield interval, not after 10,000 steps


class Items(flowlib.AsyncBatchNode):
    async def prep_async(self, shared: Any) -> Any:
        return range(shared["items"])

    async def exec_async(self, item: int) -> int:
        time.sleep(0.0005)
        return item


class PoolItems(Items, flowlib.WorkerPoolBatchNode):
    pass


class ParallelItems(Items, flowlib.AsyncParallelBatchNode):
    pass


@pytest.mark.parametrize("node_class", [Items, PoolItems, ParallelItems])
def test_observed_batches_of_never_waiting_items_let_the_event_loop_in(node_class: type[Any]) -> None:
    node = node_class() if node_class is not PoolItems else PoolItems(max_parallel=4)
    run = node.run_async({"items": 200}, observer=Coalescing(visit_events=1))
    assert asyncio.run(ticks_during(run)) >= 2  # 100 ms of items


@pytest.mark.parametrize("node_class", [Items, PoolItems, ParallelItems])
def test_batches_without_context_keep_pocketflows_scheduling(node_class: type[Any]) -> None:
    run = node_class().run_async({"items": 100})
    assert asyncio.run(ticks_during(run)) == 0


def test_the_pacer_checks_the_clock_about_every_few_milliseconds() -> None:
    pacer = Pacer()
    count, checks = 0, 0
    started = time.perf_counter()
    while time.perf_counter() - started < 0.1:
        count += 1  # cheap items: a clock check every many of them, never every one
        if count >= pacer.check_at:
            checks += 1
            pacer.next_check(count)
    assert 1 <= checks < count / 10
    assert pacer.check_at - count <= 4096


def test_a_sum_of_visits_says_how_many_attempts_the_last_one_took() -> None:
    class RetriesLast(Loop):
        def exec(self, prep_res: Any) -> None:
            if self.cur_retry == 0 and self.params["visits"].append(1) is None and len(self.params["visits"]) == 40:
                raise ConnectionError("the last visit's first attempt")

    recorder = Coalescing(visit_events=2)
    flow = looping(RetriesLast(max_retries=3))
    flow.params = {"visits": []}
    run_quietly(lambda: flow.run({"steps": 40}, observer=recorder))
    visits = recorder.events[-2]
    assert isinstance(visits, NodeVisits) and (visits.visits, visits.attempts) == (40, 2)


def test_a_loop_is_summed_up_before_the_next_node_is_reported() -> None:
    loop = Loop()
    loop.name = "loop"
    loop - "again" >> loop
    after = flowlib.Node()
    after.name = "after"
    loop - "done" >> after
    recorder = Coalescing(visit_events=2)
    flowlib.Flow(loop).run({"steps": 50}, observer=recorder)
    order = [(type(e).__name__, e.path) for e in recorder.events if not type(e).__name__.startswith("Flow")]
    assert order[-3:] == [("NodeVisits", ("loop",)), ("NodeStarted", ("after",)), ("NodeFinished", ("after",))]
