"""AsyncBatchFlow and AsyncParallelBatchFlow: params merging, ordering, concurrency, return values."""

from __future__ import annotations

import pytest

from ._support import capture_async, tick


def arec(pf, log, name="rec", ticks=0, action="processed"):
    class Rec(pf.AsyncNode):
        async def prep_async(self, shared):
            log.append(("start", name, dict(self.params)))
            await tick(ticks(self.params) if callable(ticks) else ticks)
            return self.params.get("key")

        async def post_async(self, shared, prep_res, exec_res):
            log.append(("end", name, prep_res))
            shared.setdefault("results", {})[(name, prep_res)] = dict(self.params)
            return action

    return Rec()


def keyed(log):
    """``log`` as (event, key) pairs."""
    return [(kind, detail["key"] if kind == "start" else detail) for kind, _, detail in log]


def make_flow(pf, base, items):
    class Batch(getattr(pf, base)):
        async def prep_async(self, shared):
            shared["flow_prep"] = shared.get("flow_prep", 0) + 1
            return items

    return Batch


BASES = ["AsyncBatchFlow", "AsyncParallelBatchFlow"]


@pytest.mark.parametrize("base", BASES)
def test_params_merge_and_return_none(pf, base):
    log = []
    a = arec(pf, log, "a")
    a - "processed" >> arec(pf, log, "b", action="end")
    flow = make_flow(pf, base, [{"key": 1}, {"key": 2, "mode": "override"}])(start=a)
    flow.set_params({"mode": "base", "x": 0})
    shared = {}
    out = capture_async(lambda: flow.run_async(shared))
    assert out.result is None
    assert out.error is None
    assert out.warnings == []
    assert shared["results"] == {
        ("a", 1): {"mode": "base", "x": 0, "key": 1},
        ("b", 1): {"mode": "base", "x": 0, "key": 1},
        ("a", 2): {"mode": "override", "x": 0, "key": 2},
        ("b", 2): {"mode": "override", "x": 0, "key": 2},
    }
    assert shared["flow_prep"] == 1
    assert flow.params == {"mode": "base", "x": 0}


def test_async_batch_flow_is_sequential(pf):
    log = []
    flow = make_flow(pf, "AsyncBatchFlow", [{"key": 1}, {"key": 2}, {"key": 3}])(
        start=arec(pf, log, ticks=lambda p: 4 - p["key"])
    )
    capture_async(lambda: flow.run_async({}))
    assert keyed(log) == [("start", 1), ("end", 1), ("start", 2), ("end", 2), ("start", 3), ("end", 3)]


def test_async_parallel_batch_flow_interleaves(pf):
    log = []
    flow = make_flow(pf, "AsyncParallelBatchFlow", [{"key": 1}, {"key": 2}, {"key": 3}])(
        start=arec(pf, log, ticks=lambda p: 2 * (4 - p["key"]))
    )
    out = capture_async(lambda: flow.run_async({}))
    assert out.result is None
    assert keyed(log) == [("start", 1), ("start", 2), ("start", 3), ("end", 3), ("end", 2), ("end", 1)]


def test_parallel_batch_flows_have_separate_params(pf):
    seen = []

    class Mut(pf.AsyncNode):
        async def prep_async(self, shared):
            self.params["mine"] = self.params["key"]
            await tick(2)
            seen.append(dict(self.params))

    flow = make_flow(pf, "AsyncParallelBatchFlow", [{"key": 1}, {"key": 2}])(start=Mut())
    capture_async(lambda: flow.run_async({}))
    assert seen == [{"key": 1, "mine": 1}, {"key": 2, "mine": 2}]


@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize("items", [None, []], ids=repr)
def test_empty_or_none_prep_runs_nothing(pf, base, items):
    log = []
    flow = make_flow(pf, base, items)(start=arec(pf, log))
    shared = {}
    out = capture_async(lambda: flow.run_async(shared))
    assert out.result is None
    assert out.error is None
    assert log == []


@pytest.mark.parametrize("base", BASES)
def test_default_prep_async_runs_nothing(pf, base):
    log = []
    out = capture_async(lambda: getattr(pf, base)(start=arec(pf, log)).run_async({}))
    assert out.result is None
    assert log == []


@pytest.mark.parametrize("base", BASES)
def test_post_async_receives_prep_result(pf, base):
    items = [{"key": 1}]
    calls = []

    class Batch(getattr(pf, base)):
        async def prep_async(self, shared):
            return items

        async def post_async(self, shared, prep_res, exec_res):
            calls.append((prep_res, exec_res))
            return "all-done"

    out = capture_async(lambda: Batch(start=arec(pf, [])).run_async({}))
    assert out.result == "all-done"
    assert calls == [(items, None)]
    assert calls[0][0] is items


def test_async_batch_flow_error_stops_later_batches(pf):
    class Err(pf.AsyncNode):
        async def post_async(self, shared, prep_res, exec_res):
            if self.params["key"] == "error_key":
                raise ValueError(f"Async error processing key: {self.params['key']}")
            shared.setdefault("done", []).append(self.params["key"])

    flow = make_flow(pf, "AsyncBatchFlow", [{"key": "a"}, {"key": "error_key"}, {"key": "c"}])(start=Err())
    shared = {}
    out = capture_async(lambda: flow.run_async(shared))
    msg = "Async error processing key: error_key"
    assert out.error == (ValueError, (msg,), msg)
    assert shared["done"] == ["a"]


def test_nested_async_batch_flows(pf):
    class Item(pf.AsyncNode):
        async def prep_async(self, shared):
            return shared["groups"][self.params["group"]][self.params["item"]]

        async def exec_async(self, value):
            await tick(value % 2)
            return value * 2

        async def post_async(self, shared, prep_res, exec_res):
            shared.setdefault("results", {}).setdefault(self.params["group"], []).append(exec_res)

    for base in BASES:

        class Inner(getattr(pf, base)):
            async def prep_async(self, shared):
                g = self.params["group"]
                return [{"item": i, "group": g} for i in range(len(shared["groups"][g]))]

        class Outer(getattr(pf, base)):
            async def prep_async(self, shared):
                return [{"group": g} for g in shared["groups"]]

        shared = {"groups": {"A": [1, 2], "B": [3, 4]}}
        out = capture_async(
            lambda shared=shared, Outer=Outer, Inner=Inner: Outer(start=Inner(start=Item())).run_async(shared)
        )
        assert out.error is None
        assert {g: sorted(v) for g, v in shared["results"].items()} == {"A": [2, 4], "B": [6, 8]}


def test_parallel_batch_flow_feeding_aggregator(pf):
    class Processor(pf.AsyncParallelBatchNode):
        async def prep_async(self, shared):
            return shared["batches"][self.params["batch_id"]]

        async def exec_async(self, number):
            await tick(number % 3)
            return number * 2

        async def post_async(self, shared, prep_res, exec_res):
            shared.setdefault("processed", {})[self.params["batch_id"]] = exec_res
            return "processed"

    class Aggregate(pf.AsyncNode):
        async def prep_async(self, shared):
            return [n for i in sorted(shared["processed"]) for n in shared["processed"][i]]

        async def exec_async(self, numbers):
            return sum(numbers)

        async def post_async(self, shared, prep_res, exec_res):
            shared.setdefault("totals", []).append(exec_res)
            return "aggregated"

    class Batches(pf.AsyncParallelBatchFlow):
        async def prep_async(self, shared):
            return [{"batch_id": i} for i in range(len(shared["batches"]))]

    processor = Processor()
    processor - "processed" >> Aggregate()
    shared = {"batches": [[1], [2, 3, 4], [5, 6], [7, 8, 9, 10]]}
    out = capture_async(lambda: Batches(start=processor).run_async(shared))
    assert out.result is None
    assert out.warnings == []
    assert shared["processed"] == {0: [2], 1: [4, 6, 8], 2: [10, 12], 3: [14, 16, 18, 20]}
    assert shared["totals"][-1] == 110


def test_sync_batch_flow_inside_async_flow(pf):
    log = []

    class SyncRec(pf.Node):
        def prep(self, shared):
            log.append(dict(self.params))

    class SyncBatch(pf.BatchFlow):
        def prep(self, shared):
            return [{"i": 1}, {"i": 2}]

    outer = pf.AsyncFlow(SyncBatch(start=SyncRec()))
    outer.set_params({"outer": 0})
    out = capture_async(lambda: outer.run_async({}))
    assert out.error is None
    assert out.result is None
    assert log == [{"outer": 0, "i": 1}, {"outer": 0, "i": 2}]
