"""The observer sees every event, in order, with the path of nested nodes."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import flowlib
from flowlib.events import (
    BatchProgress,
    EventRecorder,
    FlowFailed,
    FlowFinished,
    FlowStarted,
    NodeFailed,
    NodeFinished,
    NodeStarted,
    RetryScheduled,
)

from .helpers import Record


def summary(recorder: EventRecorder) -> list[tuple[str, tuple[str, ...]]]:
    return [(type(e).__name__, e.path) for e in recorder.events]


def test_nested_flows_report_paths_from_the_outermost_flow() -> None:
    inner_a, inner_b = Record("a"), Record("b")
    inner_a >> inner_b
    sub = flowlib.Flow(start=inner_a, name="sub")
    first = Record("first")
    first >> sub
    recorder = EventRecorder()
    flowlib.Flow(start=first).run({}, observer=recorder)
    assert summary(recorder) == [
        ("FlowStarted", ()),
        ("NodeStarted", ("first",)),
        ("NodeFinished", ("first",)),
        ("NodeStarted", ("sub",)),
        ("NodeStarted", ("sub", "a")),
        ("NodeFinished", ("sub", "a")),
        ("NodeStarted", ("sub", "b")),
        ("NodeFinished", ("sub", "b")),
        ("NodeFinished", ("sub",)),
        ("FlowFinished", ()),
    ]


def test_actions_kinds_and_failures_are_reported() -> None:
    class Boom(flowlib.Node):
        def exec(self, prep_res: Any) -> None:
            raise KeyError("missing")

    first = Record("first", action="go")
    first - "go" >> Boom(max_retries=2, name="boom")
    recorder = EventRecorder()
    with pytest.raises(KeyError):
        flowlib.Flow(start=first).run({}, observer=recorder)
    events = recorder.events
    assert isinstance(events[0], FlowStarted)
    assert isinstance(events[1], NodeStarted) and events[1].kind == "Record"
    assert isinstance(events[2], NodeFinished) and events[2].action == "go"
    retry = events[4]
    assert isinstance(retry, RetryScheduled)
    assert (retry.path, retry.attempt, retry.item, retry.delay) == (("boom",), 1, None, 0)
    assert isinstance(events[5], NodeFailed) and isinstance(events[5].error, KeyError)
    assert isinstance(events[6], FlowFailed)


def test_batch_progress_counts_done_and_failed_items() -> None:
    class Items(flowlib.BatchNode):
        def prep(self, shared: Any) -> Any:
            return [1, 2, 3]

        def exec(self, item: int) -> int:
            if item == 2:
                raise ValueError("two")
            return item

        def exec_fallback(self, prep_res: Any, exc: Exception) -> int:
            return -1

    recorder = EventRecorder()
    Items(name="items").run({}, observer=recorder)
    progress = [(e.total, e.done, e.failed) for e in recorder.events if isinstance(e, BatchProgress)]
    assert progress == [(3, 0, 0), (3, 1, 0), (3, 1, 1), (3, 2, 1)]


def test_generators_report_an_unknown_total() -> None:
    class Gen(flowlib.AsyncBatchNode):
        async def prep_async(self, shared: Any) -> Any:
            return (i for i in range(2))

        async def exec_async(self, item: int) -> int:
            return item

    recorder = EventRecorder()
    asyncio.run(Gen().run_async({}, observer=recorder))
    progress = [(e.total, e.done) for e in recorder.events if isinstance(e, BatchProgress)]
    assert progress == [(None, 0), (None, 1), (None, 2)]


@settings(max_examples=25, deadline=None)
@given(
    count=st.integers(0, 25),
    max_parallel=st.integers(1, 6),
    failing=st.sets(st.integers(0, 24)),
    delays=st.lists(st.sampled_from([0.0, 0.0005]), min_size=25, max_size=25),
)
def test_event_order_per_node_is_consistent_under_concurrency(
    count: int, max_parallel: int, failing: set[int], delays: list[float]
) -> None:
    class Pool(flowlib.WorkerPoolBatchNode):
        async def prep_async(self, shared: Any) -> Any:
            return range(count)

        async def exec_async(self, item: int) -> int:
            # Count attempts per item: cur_retry belongs to the node, which concurrent items share.
            attempts[item] = attempts.get(item, 0) + 1
            await asyncio.sleep(delays[item])
            if item in failing and attempts[item] == 1:
                raise ValueError(item)
            return item

    attempts: dict[int, int] = {}
    recorder = EventRecorder()
    node = Pool(max_retries=2, max_parallel=max_parallel, name="pool")
    flow = flowlib.AsyncFlow(start=node)
    asyncio.run(flow.run_async({}, observer=recorder))
    events = recorder.events
    assert isinstance(events[0], FlowStarted) and isinstance(events[-1], FlowFinished)
    node_events = [e for e in events if e.path == ("pool",)]
    assert isinstance(node_events[0], NodeStarted) and isinstance(node_events[-1], NodeFinished)
    progress = [e for e in node_events if isinstance(e, BatchProgress)]
    assert len(progress) == count + 1  # the opening report, then one per finished item, none lost
    finished = [p.done + p.failed for p in progress]
    assert finished == list(range(count + 1))  # strictly one more each time: in order
    retried = {e.item for e in node_events if isinstance(e, RetryScheduled)}
    assert retried == {i for i in failing if i < count}


def test_observer_must_have_on_event() -> None:
    with pytest.raises(TypeError, match="on_event"):
        flowlib.Flow(start=Record("a")).run({}, observer=object())


def test_current_path_follows_user_code_into_tasks() -> None:
    seen: list[tuple[str, ...]] = []

    class Par(flowlib.AsyncParallelBatchNode):
        async def prep_async(self, shared: Any) -> Any:
            return range(3)

        async def exec_async(self, item: int) -> None:
            await asyncio.sleep(0)
            seen.append(flowlib.current_path())

    sub = flowlib.AsyncFlow(start=Par(name="par"), name="sub")
    asyncio.run(flowlib.AsyncFlow(start=sub).run_async({}))
    assert seen == [("sub", "par")] * 3
    assert flowlib.current_path() == ()


@pytest.mark.parametrize("sized", [True, False])
def test_progress_on_big_batches_is_coalesced_but_ends_on_the_exact_count(sized: bool) -> None:
    count = 25_003

    class Big(flowlib.WorkerPoolBatchNode):
        async def prep_async(self, shared: Any) -> Any:
            return range(count) if sized else (i for i in range(count))

        async def exec_async(self, item: int) -> int:
            return item

    recorder = EventRecorder()
    asyncio.run(Big(max_parallel=4).run_async({}, observer=recorder))
    progress = [e for e in recorder.events if isinstance(e, BatchProgress)]
    finished = [p.done + p.failed for p in progress]
    assert finished[:101] == list(range(101))  # every one of the first hundred items
    assert finished == sorted(set(finished))  # strictly increasing: in order, no repeats
    assert finished[-1] == count  # the exact final count is always reported
    assert len(progress) <= 101 + 1000 + 2  # coalesced: about a thousand reports, not 25,000
    assert all(p.total == (count if sized else None) for p in progress)
