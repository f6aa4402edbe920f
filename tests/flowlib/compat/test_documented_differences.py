"""The documented differences from PocketFlow (flowlib/README.md, "Differences from PocketFlow").

The first failing item of an ``AsyncParallelBatchNode`` (and the first failing run of an
``AsyncParallelBatchFlow``) cancels its siblings in flowlib, and the error is raised once they are
gone; PocketFlow's ``asyncio.gather`` lets them run on in the background. Async nodes keep
``cur_retry`` up to date, as sync nodes (and PocketFlow's main branch) do; PocketFlow 0.0.3 never
sets it on async nodes. The side-by-side tests stay off these cases; here each is held on flowlib,
with PocketFlow's behaviour shown alongside so that the scenario provably tells the two apart.
"""

from __future__ import annotations

import asyncio

import pytest

from ._support import load, tick


def scenario(pf):
    """Items 0..3: item 1 fails on its second turn, the others need several event-loop turns to finish."""
    events = []

    class Parallel(pf.AsyncParallelBatchNode):
        async def prep_async(self, shared):
            return [0, 1, 2, 3]

        async def exec_async(self, item):
            events.append(("start", item))
            if item == 1:
                await tick()  # every item has started by the time this one fails
                raise ValueError("item 1 failed")
            try:
                await tick(5)
            except asyncio.CancelledError:
                events.append(("cancelled", item))
                raise
            events.append(("done", item))
            return item

        async def post_async(self, shared, prep_res, exec_res):
            events.append(("post", exec_res))

    async def main():
        node = Parallel()
        result = {}
        try:
            await node.run_async({})
        except ValueError as exc:
            result["error"] = exc
            result["events_at_raise"] = list(events)
            current = asyncio.current_task()
            result["pending_at_raise"] = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
        await tick(20)
        result["events_later"] = list(events)
        return result

    return asyncio.run(main())


def test_flowlib_first_failure_cancels_siblings():
    result = scenario(load("flowlib"))
    assert isinstance(result["error"], ValueError)
    assert str(result["error"]) == "item 1 failed"
    # Every sibling was started, none finished, the unfinished ones were cancelled ...
    assert result["events_at_raise"][:4] == [("start", 0), ("start", 1), ("start", 2), ("start", 3)]
    assert sorted(result["events_at_raise"][4:]) == [("cancelled", 0), ("cancelled", 2), ("cancelled", 3)]
    # ... before the error reached the caller, and nothing ran on afterwards.
    assert result["pending_at_raise"] == []
    assert result["events_later"] == result["events_at_raise"]


def test_pocketflow_lets_siblings_run_on():
    """PocketFlow's behaviour, for contrast: the same program sees the siblings finish later."""
    result = scenario(load("pocketflow"))
    assert str(result["error"]) == "item 1 failed"
    assert ("cancelled", 0) not in result["events_later"]
    assert sorted(e for e in result["events_later"] if e[0] == "done") == [("done", 0), ("done", 2), ("done", 3)]
    assert all(e[0] != "done" for e in result["events_at_raise"])


def test_flowlib_cancellation_reaches_sibling_cleanup():
    cleaned = []
    pf = load("flowlib")

    class Parallel(pf.AsyncParallelBatchNode):
        async def prep_async(self, shared):
            return ["slow", "bad"]

        async def exec_async(self, item):
            if item == "bad":
                await tick()
                raise KeyError("bad")
            try:
                await asyncio.Event().wait()  # would never finish on its own
            finally:
                cleaned.append(item)

    async def main():
        with pytest.raises(KeyError):
            await asyncio.wait_for(Parallel().run_async({}), timeout=30)
        return list(cleaned)

    assert asyncio.run(main()) == ["slow"]


@pytest.mark.parametrize("impl", ["pocketflow", "flowlib"])
def test_recovered_failures_do_not_cancel_anything(impl):
    """Only a failure that escapes the item (after retries and fallback) cancels the siblings."""
    pf = load(impl)
    events = []

    class Parallel(pf.AsyncParallelBatchNode):
        async def prep_async(self, shared):
            return [0, 1, 2]

        async def exec_async(self, item):
            events.append(("try", item))
            await tick(item)
            if item == 0 and events.count(("try", 0)) == 1:
                raise ValueError("transient")
            if item == 2:
                raise ValueError("permanent")
            return item

        async def exec_fallback_async(self, item, exc):
            return f"fallback {item}: {exc}"

        async def post_async(self, shared, prep_res, exec_res):
            return exec_res

    result = asyncio.run(Parallel(max_retries=2).run_async({}))
    assert result == [0, 1, "fallback 2: permanent"]
    assert sorted(events) == [("try", 0), ("try", 0), ("try", 1), ("try", 2), ("try", 2)]


def _parallel_flow_failure(pf):
    from ._support import capture_async
    from .test_async_batch_flow import make_flow

    class Maybe(pf.AsyncNode):
        async def prep_async(self, shared):
            key = self.params["key"]
            if key == "bad":
                raise ValueError("bad batch")
            await tick(3)
            shared.setdefault("done", []).append(key)

    flow = make_flow(pf, "AsyncParallelBatchFlow", [{"key": "a"}, {"key": "bad"}, {"key": "c"}])(start=Maybe())
    shared = {}

    async def main():
        try:
            await flow.run_async(shared)
        except ValueError as exc:
            shared["error"] = str(exc)
        await tick(10)

    out = capture_async(main)
    assert out.error is None
    assert shared["error"] == "bad batch"
    return shared.get("done", [])


def test_parallel_batch_flow_failure_cancels_the_other_runs_in_flowlib():
    assert _parallel_flow_failure(load("flowlib")) == []


def test_parallel_batch_flow_failure_lets_the_other_runs_finish_in_pocketflow():
    assert _parallel_flow_failure(load("pocketflow")) == ["a", "c"]


def _async_cur_retry(pf):
    from ._support import capture_async

    seen = []

    class Peek(pf.AsyncNode):
        async def exec_async(self, prep_res):
            seen.append(getattr(self, "cur_retry", "unset"))
            if len(seen) < 3:
                raise ValueError("again")
            return "ok"

    out = capture_async(lambda: Peek(max_retries=3).run_async({}))
    assert out.error is None
    return seen


def test_async_nodes_keep_cur_retry_in_flowlib():
    assert _async_cur_retry(load("flowlib")) == [0, 1, 2]


def test_async_nodes_never_set_cur_retry_in_pocketflow_0_0_3():
    assert _async_cur_retry(load("pocketflow")) == ["unset", "unset", "unset"]
