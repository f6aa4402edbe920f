"""AsyncNode, AsyncBatchNode and AsyncParallelBatchNode run directly."""

from __future__ import annotations

import pytest

from ._support import capture, capture_async, tick


def async_node(pf, base="AsyncNode", fails=0, fallback=None, items=None, **kwargs):
    log = []
    cls = getattr(pf, base)

    class Traced(cls):
        async def prep_async(self, shared):
            log.append(("prep",))
            await tick()
            return "P" if items is None else items

        async def exec_async(self, prep_res):
            attempts = sum(1 for e in log if e[0] == "exec" and e[1] == prep_res) + 1
            log.append(("exec", prep_res, attempts))
            await tick()
            if attempts <= fails:
                raise ValueError(f"{prep_res} fail {attempts}")
            return f"E:{prep_res}:{attempts}"

        async def post_async(self, shared, prep_res, exec_res):
            log.append(("post", prep_res, exec_res))
            shared["post"] = exec_res
            return "ACTION"

    if fallback is not None:
        Traced.exec_fallback_async = fallback
    return Traced(**kwargs), log


def test_lifecycle_and_return_value(pf):
    node, log = async_node(pf)
    shared = {}
    out = capture_async(lambda: node.run_async(shared))
    assert out.result == "ACTION"
    assert out.warnings == []
    assert log == [("prep",), ("exec", "P", 1), ("post", "P", "E:P:1")]
    assert shared == {"post": "E:P:1"}


def test_default_async_methods_return_none(pf):
    node = pf.AsyncNode()
    out = capture_async(lambda: node.run_async({}))
    assert out.result is None
    assert out.error is None


def test_sync_methods_are_ignored_by_async_nodes(pf):
    calls = []

    class SyncStyle(pf.AsyncNode):
        def prep(self, shared):
            calls.append("prep")
            return 1

        def exec(self, prep_res):
            calls.append("exec")
            raise ValueError("sync exec")

        def exec_fallback(self, prep_res, exc):
            calls.append("fallback")

        def post(self, shared, prep_res, exec_res):
            calls.append("post")
            return "sync post"

    out = capture_async(lambda: SyncStyle().run_async({}))
    assert out.result is None
    assert out.error is None
    assert calls == []


def test_run_sync_raises_use_run_async(pf):
    node, log = async_node(pf)
    out = capture(lambda: node.run({}))
    assert out.error == (RuntimeError, ("Use run_async.",), "Use run_async.")
    assert out.warnings == []
    assert log == []


def test_run_sync_with_successors_warns_then_raises(pf):
    node, _ = async_node(pf)
    node >> pf.Node()
    out = capture(lambda: node.run({}))
    assert out.warnings == [(UserWarning, "Node won't run successors. Use Flow.")]
    assert out.error == (RuntimeError, ("Use run_async.",), "Use run_async.")


@pytest.mark.parametrize("base", ["AsyncNode", "AsyncBatchNode", "AsyncParallelBatchNode"])
def test_run_async_with_successors_warns(pf, base):
    node, _ = async_node(pf, base=base, items=[1] if base != "AsyncNode" else None)
    node >> pf.AsyncNode()
    out = capture_async(lambda: node.run_async({}))
    assert out.result == "ACTION"
    assert out.warnings == [(UserWarning, "Node won't run successors. Use AsyncFlow.")]


@pytest.mark.parametrize("base", ["AsyncBatchNode", "AsyncParallelBatchNode"])
def test_async_batch_nodes_refuse_sync_run(pf, base):
    node, _ = async_node(pf, base=base, items=[1])
    out = capture(lambda: node.run({}))
    assert out.error == (RuntimeError, ("Use run_async.",), "Use run_async.")


@pytest.mark.parametrize("fails", [0, 1, 2])
def test_retries_until_success(pf, fails):
    node, log = async_node(pf, fails=fails, max_retries=3)
    out = capture_async(lambda: node.run_async({}))
    assert out.result == "ACTION"
    assert [e for e in log if e[0] == "exec"] == [("exec", "P", i + 1) for i in range(fails + 1)]
    assert log[-1] == ("post", "P", f"E:P:{fails + 1}")


def test_exhausted_retries_raise_last_exception(pf):
    node, log = async_node(pf, fails=9, max_retries=3)
    shared = {}
    out = capture_async(lambda: node.run_async(shared))
    assert out.error == (ValueError, ("P fail 3",), "P fail 3")
    assert len([e for e in log if e[0] == "exec"]) == 3
    assert shared == {}


def test_async_fallback_receives_prep_result_and_exception(pf):
    calls = []

    async def fallback(self, prep_res, exc):
        calls.append((prep_res, str(exc)))
        await tick()
        return "async_fallback"

    node, log = async_node(pf, fails=9, max_retries=2, fallback=fallback)
    out = capture_async(lambda: node.run_async({}))
    assert out.result == "ACTION"
    assert calls == [("P", "P fail 2")]
    assert log[-1] == ("post", "P", "async_fallback")


def test_default_async_fallback_reraises_same_object(pf):
    raised = []

    class Boom(pf.AsyncNode):
        async def exec_async(self, prep_res):
            raised.append(KeyError(len(raised)))
            raise raised[-1]

    async def main():
        try:
            await Boom(max_retries=2).run_async({})
        except KeyError as exc:
            return exc

    out = capture_async(main)
    assert out.result is raised[-1]
    assert len(raised) == 2


def test_async_fallback_raising_other_exception(pf):
    async def fallback(self, prep_res, exc):
        raise LookupError(f"fallback after {exc}")

    node, _ = async_node(pf, fails=9, max_retries=1, fallback=fallback)
    out = capture_async(lambda: node.run_async({}))
    assert out.error == (LookupError, ("fallback after P fail 1",), "fallback after P fail 1")


def test_async_wait_uses_asyncio_sleep_between_attempts(pf, sleeps):
    node, _ = async_node(pf, fails=9, max_retries=3, wait=0.25)
    out = capture_async(lambda: node.run_async({}))
    assert out.error is not None
    assert sleeps.calls == [("asyncio.sleep", 0.25)] * 2


def test_async_wait_with_success(pf, sleeps):
    node, _ = async_node(pf, fails=1, max_retries=3, wait=4)
    assert capture_async(lambda: node.run_async({})).result == "ACTION"
    assert sleeps.calls == [("asyncio.sleep", 4)]


@pytest.mark.parametrize("wait", [0, -2])
def test_async_no_sleep_without_positive_wait(pf, sleeps, wait):
    node, _ = async_node(pf, fails=2, max_retries=3, wait=wait)
    assert capture_async(lambda: node.run_async({})).result == "ACTION"
    assert sleeps.calls == []


def test_async_max_retries_zero_skips_exec(pf, sleeps):
    node, log = async_node(pf, fails=9, max_retries=0, wait=1)
    out = capture_async(lambda: node.run_async({}))
    assert out.result == "ACTION"
    assert log == [("prep",), ("post", "P", None)]
    assert sleeps.calls == []


def test_async_base_exceptions_are_not_retried(pf):
    class Stop(BaseException):
        pass

    calls = []

    class Node(pf.AsyncNode):
        async def exec_async(self, prep_res):
            calls.append("exec")
            raise Stop()

        async def exec_fallback_async(self, prep_res, exc):
            calls.append("fallback")

    async def main():
        try:
            await Node(max_retries=3).run_async({})
        except Stop:
            return "stopped"

    assert capture_async(main).result == "stopped"
    assert calls == ["exec"]


# --- AsyncBatchNode -------------------------------------------------------------------------------


def test_async_batch_node_is_serial_and_ordered(pf):
    events = []

    class Serial(pf.AsyncBatchNode):
        async def prep_async(self, shared):
            return [3, 1, 2]

        async def exec_async(self, item):
            events.append(("start", item))
            await tick(item)
            events.append(("end", item))
            return item * 10

        async def post_async(self, shared, prep_res, exec_res):
            shared["results"] = exec_res
            return "done"

    shared = {}
    out = capture_async(lambda: Serial().run_async(shared))
    assert out.result == "done"
    assert events == [("start", 3), ("end", 3), ("start", 1), ("end", 1), ("start", 2), ("end", 2)]
    assert shared["results"] == [30, 10, 20]
    assert type(shared["results"]) is list


@pytest.mark.parametrize("base", ["AsyncBatchNode", "AsyncParallelBatchNode"])
def test_async_batch_nodes_with_none_items_raise_type_error(pf, base):
    node, log = async_node(pf, base=base, items=None)
    node.prep_async = _returns_none
    out = capture_async(lambda: node.run_async({}))
    assert out.error == (
        TypeError,
        ("'NoneType' object is not iterable",),
        "'NoneType' object is not iterable",
    )
    assert log == []


async def _returns_none(shared):
    return None


@pytest.mark.parametrize("base", ["AsyncBatchNode", "AsyncParallelBatchNode"])
def test_async_batch_nodes_with_default_prep_raise_type_error(pf, base):
    node = getattr(pf, base)()
    out = capture_async(lambda: node.run_async({}))
    assert out.error is not None
    assert out.error[0] is TypeError
    assert out.error[2] == "'NoneType' object is not iterable"


@pytest.mark.parametrize("base", ["AsyncBatchNode", "AsyncParallelBatchNode"])
@pytest.mark.parametrize("items", [[], ()], ids=repr)
def test_async_batch_nodes_with_empty_items(pf, base, items):
    node, log = async_node(pf, base=base, items=items)
    shared = {}
    out = capture_async(lambda: node.run_async(shared))
    assert out.result == "ACTION"
    assert shared["post"] == []
    assert type(shared["post"]) is list
    assert log == [("prep",), ("post", items, [])]


@pytest.mark.parametrize("base", ["AsyncBatchNode", "AsyncParallelBatchNode"])
def test_async_batch_nodes_accept_generators(pf, base):
    node, _ = async_node(pf, base=base, items=None)

    async def prep(shared):
        return (i for i in "xyz")

    node.prep_async = prep
    shared = {}
    assert capture_async(lambda: node.run_async(shared)).result == "ACTION"
    assert shared["post"] == ["E:x:1", "E:y:1", "E:z:1"]


@pytest.mark.parametrize("base", ["AsyncBatchNode", "AsyncParallelBatchNode"])
def test_async_batch_nodes_retry_each_item(pf, base, sleeps):
    node, log = async_node(pf, base=base, items=["a", "b"], fails=2, max_retries=3, wait=0.5)
    shared = {}
    out = capture_async(lambda: node.run_async(shared))
    assert out.error is None
    assert shared["post"] == ["E:a:3", "E:b:3"]
    assert sorted(e for e in log if e[0] == "exec") == [("exec", item, n) for item in "ab" for n in (1, 2, 3)]
    assert sleeps.calls == [("asyncio.sleep", 0.5)] * 4


@pytest.mark.parametrize("base", ["AsyncBatchNode", "AsyncParallelBatchNode"])
def test_async_batch_nodes_fallback_per_item(pf, base):
    async def fallback(self, item, exc):
        return f"fb:{item}:{exc}"

    node, _ = async_node(pf, base=base, items=["a", "b"], fails=5, max_retries=2, fallback=fallback)
    shared = {}
    assert capture_async(lambda: node.run_async(shared)).error is None
    assert shared["post"] == ["fb:a:a fail 2", "fb:b:b fail 2"]


def test_async_batch_node_failure_stops_later_items(pf):
    started = []

    class Serial(pf.AsyncBatchNode):
        async def prep_async(self, shared):
            return [1, 2, 3]

        async def exec_async(self, item):
            started.append(item)
            if item == 2:
                raise ValueError("item 2")
            return item

    out = capture_async(lambda: Serial().run_async({}))
    assert out.error == (ValueError, ("item 2",), "item 2")
    assert started == [1, 2]


# --- AsyncParallelBatchNode (no failing items here: see test_documented_differences.py) ---------


def test_parallel_batch_node_runs_items_concurrently_and_keeps_order(pf):
    events = []

    class Parallel(pf.AsyncParallelBatchNode):
        async def prep_async(self, shared):
            return [0, 1, 2, 3]

        async def exec_async(self, item):
            events.append(("start", item))
            await tick(4 if item % 2 == 0 else 2)
            events.append(("end", item))
            return item * 2

        async def post_async(self, shared, prep_res, exec_res):
            shared["results"] = exec_res
            return "processed"

    shared = {}
    out = capture_async(lambda: Parallel().run_async(shared))
    assert out.result == "processed"
    assert shared["results"] == [0, 2, 4, 6]
    assert type(shared["results"]) is list
    assert events[:4] == [("start", 0), ("start", 1), ("start", 2), ("start", 3)]
    assert events[4:] == [("end", 1), ("end", 3), ("end", 0), ("end", 2)]


def test_parallel_batch_node_all_items_in_flight_together(pf):
    import asyncio

    class Barrier(pf.AsyncParallelBatchNode):
        async def prep_async(self, shared):
            shared["arrived"] = 0
            shared["all_here"] = asyncio.Event()
            return list(range(5))

        async def exec_async(self, item):
            # Would never finish if the items ran one after another.
            shared = self.params["shared"]
            shared["arrived"] += 1
            if shared["arrived"] == 5:
                shared["all_here"].set()
            await shared["all_here"].wait()
            return item

        async def post_async(self, shared, prep_res, exec_res):
            return exec_res

    async def main():
        shared = {}
        node = Barrier()
        node.set_params({"shared": shared})
        return await asyncio.wait_for(node.run_async(shared), timeout=30)

    assert capture_async(main).result == [0, 1, 2, 3, 4]


def test_parallel_batch_node_large_batch(pf):
    class Double(pf.AsyncParallelBatchNode):
        async def prep_async(self, shared):
            return shared["numbers"]

        async def exec_async(self, number):
            await tick(number % 3)
            return number * 2

        async def post_async(self, shared, prep_res, exec_res):
            shared["out"] = exec_res

    shared = {"numbers": list(range(200))}
    capture_async(lambda: Double().run_async(shared))
    assert shared["out"] == [n * 2 for n in range(200)]
