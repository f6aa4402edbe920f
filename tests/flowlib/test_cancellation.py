"""Cancellation: task cancellation for async runs, CancelToken for sync ones; nothing keeps running."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import flowlib
from flowlib.events import EventRecorder, FlowCancelled, NodeCancelled

from .helpers import InFlight, other_tasks


class Sleepy(flowlib.AsyncParallelBatchNode):
    def __init__(self, tracker: InFlight, count: int, **kw: Any) -> None:
        super().__init__(**kw)
        self.tracker, self.count = tracker, count

    async def prep_async(self, shared: Any) -> Any:
        return range(self.count)

    async def exec_async(self, item: int) -> int:
        return await self.tracker.run(item, 10.0)


class After(flowlib.AsyncNode):
    async def post_async(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> None:
        shared["after_ran"] = True


@settings(max_examples=15, deadline=None)
@given(
    kind=st.sampled_from(["parallel", "pool", "parallel_flow"]),
    count=st.integers(1, 30),
    max_parallel=st.integers(1, 8),
)
def test_cancelling_the_task_leaves_nothing_running(kind: str, count: int, max_parallel: int) -> None:
    async def scenario() -> None:
        tracker = InFlight()
        if kind == "pool":

            class Pool(flowlib.WorkerPoolBatchNode):
                async def prep_async(self, shared: Any) -> Any:
                    return range(count)

                async def exec_async(self, item: int) -> int:
                    return await tracker.run(item, 10.0)

            first: flowlib.AsyncNode = Pool(max_parallel=max_parallel)
        elif kind == "parallel":
            first = Sleepy(tracker, count)
        else:

            class Inner(flowlib.AsyncNode):
                async def exec_async(self, prep_res: Any) -> Any:
                    return await tracker.run(self.params["i"], 10.0)

            class Fan(flowlib.AsyncParallelBatchFlow):
                async def prep_async(self, shared: Any) -> Any:
                    return [{"i": i} for i in range(count)]

            first = Fan(start=Inner())
        first >> After()
        shared: dict[str, Any] = {}
        flow = flowlib.AsyncFlow(start=first)
        task = asyncio.create_task(flow.run_async(shared, observer=EventRecorder()))
        while tracker.now < min(count, max_parallel if kind == "pool" else count):
            await asyncio.sleep(0.001)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert other_tasks() == set()
        assert tracker.now == 0
        assert tracker.finished == []
        assert "after_ran" not in shared

    asyncio.run(scenario())


def test_a_token_cancels_an_async_run_promptly_with_events() -> None:
    async def scenario() -> None:
        tracker, token, recorder = InFlight(), flowlib.CancelToken(), EventRecorder()
        node = Sleepy(tracker, 5, name="sleepy")
        node >> After()
        flow = flowlib.AsyncFlow(start=node)
        task = asyncio.create_task(flow.run_async({}, observer=recorder, cancel=token))
        while tracker.now < 5:
            await asyncio.sleep(0.001)
        threading.Thread(target=token.cancel, args=("stop requested",)).start()
        with pytest.raises(flowlib.Cancelled, match="stop requested"):
            await task
        assert other_tasks() == set()
        kinds = [type(e) for e in recorder.events]
        assert kinds[-2:] == [NodeCancelled, FlowCancelled]
        assert recorder.events[-2].path == ("sleepy",)
        assert recorder.events[-1].reason == "stop requested"  # type: ignore[union-attr]

    asyncio.run(scenario())


def test_sync_flows_check_the_token_between_nodes() -> None:
    token = flowlib.CancelToken()

    class Stopper(flowlib.Node):
        def post(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> None:
            shared["stopper"] = True
            token.cancel("enough")

    class Never(flowlib.Node):
        def post(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> None:
            shared["never"] = True

    stopper = Stopper()
    stopper >> Never()
    shared: dict[str, Any] = {}
    with pytest.raises(flowlib.Cancelled, match="enough"):
        flowlib.Flow(start=stopper).run(shared, cancel=token)
    assert shared == {"stopper": True}


def test_sync_batches_check_the_token_between_items() -> None:
    token = flowlib.CancelToken()
    seen: list[int] = []

    class Items(flowlib.BatchNode):
        def prep(self, shared: Any) -> Any:
            return range(10)

        def exec(self, item: int) -> None:
            seen.append(item)
            if item == 2:
                token.cancel()

    with pytest.raises(flowlib.Cancelled):
        Items().run({}, cancel=token)
    assert seen == [0, 1, 2]


def test_an_already_cancelled_token_runs_nothing() -> None:
    token = flowlib.CancelToken()
    token.cancel("before start")
    ran: list[str] = []

    class Mark(flowlib.Node):
        def exec(self, prep_res: Any) -> None:
            ran.append("x")

    with pytest.raises(flowlib.Cancelled, match="before start"):
        flowlib.Flow(start=Mark()).run({}, cancel=token)
    with pytest.raises(flowlib.Cancelled):
        asyncio.run(flowlib.AsyncFlow(start=Mark()).run_async({}, cancel=token))
    assert ran == []


def test_cancelled_is_not_swallowed_by_except_exception() -> None:
    assert not issubclass(flowlib.Cancelled, Exception)
    assert issubclass(flowlib.Cancelled, asyncio.CancelledError)


def test_token_callbacks_run_once_and_can_be_removed() -> None:
    token = flowlib.CancelToken()
    calls: list[str] = []
    remove = token.add_callback(lambda: calls.append("a"))
    token.add_callback(lambda: calls.append("b"))
    remove()
    token.cancel("x")
    token.cancel("y")
    assert calls == ["b"]
    assert token.reason == "x"
    token.add_callback(lambda: calls.append("late"))
    assert calls == ["b", "late"]


def test_a_token_cancelled_inside_a_node_never_cancels_the_caller_after_the_run() -> None:
    """The walk's own check stops the run first; the task cancellation the token also asked for
    must not land later, in whatever the caller awaits next (it used to, in the runner's cleanup)."""

    async def main() -> str:
        token = flowlib.CancelToken()

        class StopsTheRun(flowlib.AsyncNode):
            async def post_async(self, shared: Any, prep_res: Any, exec_res: Any) -> str:
                token.cancel("enough")  # from the run's own thread, without awaiting afterwards
                return "again"

        node = StopsTheRun()
        node - "again" >> node
        with pytest.raises(flowlib.Cancelled, match="enough"):
            await flowlib.AsyncFlow(node).run_async({}, cancel=token)
        await asyncio.sleep(0.01)  # a late cancellation would raise here
        return "caller unaffected"

    assert asyncio.run(main()) == "caller unaffected"
