"""AsyncFlow: mixing sync and async nodes, nesting, warnings, params, copying."""

from __future__ import annotations

from ._support import capture, capture_async, tick

ENDS = "Flow ends: '{}' not found in {}"


def astep(pf, name, action=None, effect=None, log=None):
    class AStep(pf.AsyncNode):
        async def prep_async(self, shared):
            shared.setdefault("trace", []).append(name)
            if log is not None:
                log.append((name, dict(self.params)))
            await tick()
            if effect is not None:
                effect(shared)

        async def post_async(self, shared, prep_res, exec_res):
            await tick()
            return action(shared) if callable(action) else action

    return AStep()


def sstep(pf, name, action=None, effect=None, log=None):
    class SStep(pf.Node):
        def prep(self, shared):
            shared.setdefault("trace", []).append(name)
            if log is not None:
                log.append((name, dict(self.params)))
            if effect is not None:
                effect(shared)

        def post(self, shared, prep_res, exec_res):
            return action(shared) if callable(action) else action

    return SStep()


def test_simple_async_flow(pf):
    a = astep(pf, "a", action="number_set", effect=lambda s: s.__setitem__("current", 5))
    b = astep(pf, "b", action="done", effect=lambda s: s.__setitem__("current", s["current"] + 1))
    a - "number_set" >> b
    shared = {}
    out = capture_async(lambda: pf.AsyncFlow(a).run_async(shared))
    assert out.result == "done"
    assert out.warnings == []
    assert shared == {"trace": ["a", "b"], "current": 6}


def test_async_flow_mixes_sync_and_async_nodes(pf):
    a = astep(pf, "async1")
    b = sstep(pf, "sync1", action="go")
    c = astep(pf, "async2", action="last")
    batch_log = []

    class SyncBatch(pf.BatchNode):
        def prep(self, shared):
            return [1, 2]

        def exec(self, item):
            batch_log.append(item)
            return item

        def post(self, shared, prep_res, exec_res):
            shared.setdefault("trace", []).append(("batch", exec_res))

    batch = SyncBatch()
    a >> b
    b - "go" >> batch
    batch >> c
    shared = {}
    out = capture_async(lambda: pf.AsyncFlow(a).run_async(shared))
    assert out.result == "last"
    assert shared["trace"] == ["async1", "sync1", ("batch", [1, 2]), "async2"]


def test_async_flow_branching_on_async_post(pf):
    class Branch(pf.AsyncNode):
        async def post_async(self, shared, prep_res, exec_res):
            await tick()
            return "positive_branch" if shared["value"] >= 0 else "negative_branch"

    for value, path in ((10, "positive"), (-1, "negative")):
        start = Branch()
        start - "positive_branch" >> sstep(pf, "positive")
        start - "negative_branch" >> sstep(pf, "negative")
        shared = {"value": value}
        capture_async(lambda start=start, shared=shared: pf.AsyncFlow(start).run_async(shared))
        assert shared["trace"] == [path]


def test_async_loop_and_end_warning(pf):
    a = astep(pf, "loop", action=lambda s: "again" if len(s["trace"]) < 4 else "exit")
    a - "again" >> a
    shared = {}
    out = capture_async(lambda: pf.AsyncFlow(a).run_async(shared))
    assert out.result == "exit"
    assert out.warnings == [(UserWarning, ENDS.format("exit", ["again"]))]
    assert shared["trace"] == ["loop"] * 4


def test_async_default_action_and_none_warning(pf):
    a = astep(pf, "a")
    a - "x" >> astep(pf, "x")
    out = capture_async(lambda: pf.AsyncFlow(a).run_async({}))
    assert out.result is None
    assert out.warnings == [(UserWarning, ENDS.format(None, ["x"]))]
    b = astep(pf, "b", action="")
    b >> sstep(pf, "after")
    shared = {}
    out = capture_async(lambda: pf.AsyncFlow(b).run_async(shared))
    assert out.warnings == []
    assert shared["trace"] == ["b", "after"]


def test_empty_async_flow(pf):
    out = capture_async(lambda: pf.AsyncFlow().run_async({}))
    assert out.result is None
    assert out.error is None


def test_async_flow_with_successors_warns_on_run_async(pf):
    flow = pf.AsyncFlow(astep(pf, "a", action="r"))
    flow >> astep(pf, "never")
    shared = {}
    out = capture_async(lambda: flow.run_async(shared))
    assert out.result == "r"
    assert out.warnings == [(UserWarning, "Node won't run successors. Use AsyncFlow.")]
    assert shared["trace"] == ["a"]


def test_nested_async_flow_action_propagation(pf):
    first = astep(pf, "inner_start", action="number_set", effect=lambda s: s.__setitem__("current", 200))
    first - "number_set" >> astep(pf, "inner_end", action="async_inner_done")
    inner = pf.AsyncFlow(start=first)
    outer = pf.AsyncFlow(start=inner)
    inner - "async_inner_done" >> astep(pf, "B")
    inner - "other_action" >> astep(pf, "A")
    shared = {}
    out = capture_async(lambda: outer.run_async(shared))
    assert out.result is None
    assert out.warnings == []
    assert shared["trace"] == ["inner_start", "inner_end", "B"]
    assert shared["current"] == 200


def test_sync_flow_nested_in_async_flow(pf):
    inner_start = sstep(pf, "s1")
    inner_start >> sstep(pf, "s2", action="sync_done")
    inner = pf.Flow(inner_start)
    outer_start = astep(pf, "a0")
    outer_start >> inner
    inner - "sync_done" >> astep(pf, "a1", action="end")
    shared = {}
    out = capture_async(lambda: pf.AsyncFlow(outer_start).run_async(shared))
    assert out.result == "end"
    assert shared["trace"] == ["a0", "s1", "s2", "a1"]


def test_async_node_in_sync_flow_raises_use_run_async(pf):
    a = sstep(pf, "sync")
    a >> astep(pf, "async")
    shared = {}
    out = capture(lambda: pf.Flow(a).run(shared))
    assert out.error == (RuntimeError, ("Use run_async.",), "Use run_async.")
    assert shared["trace"] == ["sync"]


def test_sync_flow_holding_async_node_inside_async_flow_raises(pf):
    inner = pf.Flow(astep(pf, "async-in-sync"))
    shared = {}
    out = capture_async(lambda: pf.AsyncFlow(inner).run_async(shared))
    assert out.error == (RuntimeError, ("Use run_async.",), "Use run_async.")
    assert "trace" not in shared


def test_async_flow_run_sync_with_only_sync_nodes(pf):
    a = sstep(pf, "s1")
    a >> sstep(pf, "s2", action="sync-result")
    shared = {}
    out = capture(lambda: pf.AsyncFlow(a).run(shared))
    assert out.error is None
    assert out.result == "sync-result"
    assert shared["trace"] == ["s1", "s2"]


def test_async_flow_run_sync_with_async_node_raises(pf):
    a = sstep(pf, "s1")
    a >> astep(pf, "a1")
    shared = {}
    out = capture(lambda: pf.AsyncFlow(a).run(shared))
    assert out.error == (RuntimeError, ("Use run_async.",), "Use run_async.")
    assert shared["trace"] == ["s1"]


def test_async_flow_prep_and_post_async(pf):
    calls = []

    class MyFlow(pf.AsyncFlow):
        async def prep_async(self, shared):
            calls.append("prep")
            return "flow-prep"

        async def post_async(self, shared, prep_res, exec_res):
            calls.append(("post", prep_res, exec_res))
            return "flow-result"

    assert capture_async(lambda: MyFlow(astep(pf, "a", action="inner")).run_async({})).result == "flow-result"
    assert calls == ["prep", ("post", "flow-prep", "inner")]


def test_async_flow_params_propagation_and_sharing(pf):
    log = []

    class Writer(pf.AsyncNode):
        async def prep_async(self, shared):
            self.params["by_writer"] = True

    w = Writer()
    w >> sstep(pf, "sync", log=log) >> astep(pf, "async", log=log)
    w.set_params({"own": 1})
    flow = pf.AsyncFlow(w)
    flow.set_params({"p": 1})
    capture_async(lambda: flow.run_async({}))
    assert log == [("sync", {"p": 1, "by_writer": True}), ("async", {"p": 1, "by_writer": True})]
    assert flow.params == {"p": 1}
    assert w.params == {"own": 1}


def test_async_flow_copies_nodes(pf):
    class Stateful(pf.AsyncNode):
        def __init__(self):
            super().__init__()
            self.visits = 0

        async def prep_async(self, shared):
            self.visits += 1
            self.marker = "set"
            shared.setdefault("visits", []).append(self.visits)

        async def post_async(self, shared, prep_res, exec_res):
            return "again" if len(shared["visits"]) < 3 else None

    node = Stateful()
    node - "again" >> node
    shared = {}
    out = capture_async(lambda: pf.AsyncFlow(node).run_async(shared))
    assert out.warnings == [(UserWarning, ENDS.format(None, ["again"]))]
    assert shared["visits"] == [1, 1, 1]
    assert node.visits == 0
    assert not hasattr(node, "marker")


def test_async_flow_exception_propagates(pf):
    class Boom(pf.AsyncNode):
        async def exec_async(self, prep_res):
            await tick()
            raise OSError("async boom")

    a = astep(pf, "a")
    a >> Boom() >> astep(pf, "never")
    shared = {}
    out = capture_async(lambda: pf.AsyncFlow(a).run_async(shared))
    assert out.error == (OSError, ("async boom",), "async boom")
    assert shared["trace"] == ["a"]


def test_async_fallback_in_flow(pf):
    class Falls(pf.AsyncNode):
        async def prep_async(self, shared):
            shared.setdefault("results", [])

        async def exec_async(self, prep_res):
            raise ValueError("Intentional async failure")

        async def exec_fallback_async(self, prep_res, exc):
            await tick()
            return "async_fallback"

        async def post_async(self, shared, prep_res, exec_res):
            shared["results"].append(exec_res)

    class Result(pf.AsyncNode):
        async def prep_async(self, shared):
            return shared["results"][-1]

        async def exec_async(self, prep_res):
            return prep_res

        async def post_async(self, shared, prep_res, exec_res):
            shared["final"] = exec_res
            return "done"

    f = Falls(max_retries=2)
    f >> Result()
    shared = {}
    out = capture_async(lambda: pf.AsyncFlow(start=f).run_async(shared))
    assert out.result == "done"
    assert shared == {"results": ["async_fallback"], "final": "async_fallback"}


def test_async_flow_can_be_rerun(pf):
    flow = pf.AsyncFlow(astep(pf, "a", action="x"))
    shared = {}

    async def twice():
        return [await flow.run_async(shared), await flow.run_async(shared)]

    assert capture_async(twice).result == ["x", "x"]
    assert shared["trace"] == ["a", "a"]
