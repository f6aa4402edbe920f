"""Eager gathering: every coroutine starts, the first error wins, nothing is left behind."""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any

import pytest

from flowlib.gathering import gather_or_cancel

from .helpers import other_tasks

VAR: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="parent")


def test_results_keep_order_across_eager_and_suspended_items() -> None:
    async def item(i: int) -> int:
        if i % 2:
            await asyncio.sleep(0.001 * (5 - i % 5))
        return i * 10

    async def scenario() -> list[Any]:
        return await gather_or_cancel(item(i) for i in range(10))

    assert asyncio.run(scenario()) == [i * 10 for i in range(10)]


def test_each_item_runs_in_its_own_context() -> None:
    async def item(i: int) -> str:
        VAR.set(f"item{i}")
        await asyncio.sleep(0)
        return VAR.get()

    async def scenario() -> tuple[list[Any], str]:
        results = await gather_or_cancel(item(i) for i in range(3))
        return results, VAR.get()

    assert asyncio.run(scenario()) == (["item0", "item1", "item2"], "parent")


def test_a_synchronous_failure_cancels_started_items_and_closes_the_rest() -> None:
    started: list[int] = []
    cancelled: list[int] = []

    async def item(i: int) -> None:
        started.append(i)
        if i == 2:
            raise ValueError("two")
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append(i)
            raise

    async def scenario() -> None:
        with pytest.raises(ValueError, match="two"):
            await gather_or_cancel(item(i) for i in range(5))
        assert other_tasks() == set()

    asyncio.run(scenario())
    assert started == [0, 1, 2]
    assert sorted(cancelled) == [0, 1]


def test_cancelled_again_during_cleanup_still_leaves_nothing_running() -> None:
    ended: list[int] = []

    async def stubborn(i: int) -> None:
        try:
            await asyncio.sleep(10)
        finally:
            try:
                await asyncio.sleep(0.01)  # slow cleanup, which a second cancel may cut short
            finally:
                ended.append(i)

    async def scenario() -> None:
        task = asyncio.create_task(gather_or_cancel(stubborn(i) for i in range(3)))
        await asyncio.sleep(0.001)
        task.cancel()
        await asyncio.sleep(0.001)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert other_tasks() == set()

    asyncio.run(scenario())
    assert sorted(ended) == [0, 1, 2]
