"""WorkerPoolBatchNode: bounded, lazy, ordered."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import flowlib

from .helpers import InFlight, other_tasks


class Pool(flowlib.WorkerPoolBatchNode):
    def __init__(self, items: Any, tracker: InFlight, delays: dict[Any, float] | None = None, **kw: Any):
        super().__init__(**kw)
        self.items, self.tracker, self.delays = items, tracker, delays or {}

    async def prep_async(self, shared: Any) -> Any:
        return self.items

    async def exec_async(self, item: Any) -> Any:
        return await self.tracker.run(item, self.delays.get(item, 0.0))

    async def post_async(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> None:
        shared["results"] = exec_res


@settings(max_examples=40, deadline=None)
@given(
    delays=st.lists(st.sampled_from([0.0, 0.0005, 0.001, 0.002]), max_size=40),
    max_parallel=st.integers(1, 9),
)
def test_bound_and_order_hold_for_any_mix_of_item_durations(delays: list[float], max_parallel: int) -> None:
    tracker = InFlight()
    shared: dict[str, Any] = {}
    items = list(range(len(delays)))
    node = Pool(items, tracker, dict(enumerate(delays)), max_parallel=max_parallel)
    asyncio.run(node.run_async(shared))
    assert shared["results"] == items
    assert tracker.peak <= max_parallel
    if any(delays) and len(items) >= max_parallel:
        # With real waits, the pool actually fills up to its bound.
        assert tracker.peak == max_parallel


def test_items_are_pulled_lazily() -> None:
    pulled: list[int] = []
    tracker = InFlight()

    def generate() -> Iterator[int]:
        for i in range(100):
            pulled.append(i)
            # Never more than max_parallel items may have been pulled and not yet finished.
            assert len(pulled) - len(tracker.finished) <= 4
            yield i

    shared: dict[str, Any] = {}
    asyncio.run(Pool(generate(), tracker, dict.fromkeys(range(100), 0.0005), max_parallel=4).run_async(shared))
    assert shared["results"] == list(range(100))


def test_async_iterables_are_pulled_one_at_a_time() -> None:
    async def generate() -> AsyncIterator[int]:
        for i in range(30):
            await asyncio.sleep(0)
            yield i

    tracker = InFlight()
    shared: dict[str, Any] = {}
    asyncio.run(Pool(generate(), tracker, dict.fromkeys(range(30), 0.001), max_parallel=5).run_async(shared))
    assert shared["results"] == list(range(30))
    assert tracker.peak <= 5


def test_empty_input_gives_an_empty_list() -> None:
    shared: dict[str, Any] = {}
    asyncio.run(Pool([], InFlight(), max_parallel=3).run_async(shared))
    assert shared["results"] == []


def test_first_failure_cancels_the_items_in_flight() -> None:
    class Failing(Pool):
        async def exec_async(self, item: Any) -> Any:
            if item == 3:
                await asyncio.sleep(0.001)
                raise RuntimeError("item 3 broke")
            return await self.tracker.run(item, 10.0)

    async def scenario() -> None:
        tracker = InFlight()
        with pytest.raises(RuntimeError, match="item 3 broke"):
            await Failing(list(range(50)), tracker, max_parallel=4).run_async({})
        assert other_tasks() == set()
        assert tracker.now == 0  # every sleeping item was cancelled and unwound
        assert tracker.finished == []
        assert set(tracker.started) <= {0, 1, 2}  # nothing past the failure started

    asyncio.run(scenario())


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_max_parallel_must_be_a_positive_whole_number(bad: Any) -> None:
    with pytest.raises(ValueError, match="max_parallel must be a whole number >= 1"):
        flowlib.WorkerPoolBatchNode(max_parallel=bad)
