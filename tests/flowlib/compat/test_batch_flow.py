"""BatchFlow: one orchestration per param dict, params merging, return values."""

from __future__ import annotations

from ._support import capture


def recorder(pf, log, name="rec"):
    class Rec(pf.Node):
        def prep(self, shared):
            log.append((name, dict(self.params)))
            return self.params.get("key")

        def exec(self, key):
            return key

        def post(self, shared, prep_res, exec_res):
            shared.setdefault("results", []).append((name, exec_res))
            return "next"

    return Rec()


def batch_flow(pf, items, base=None):
    class Batch(base or pf.BatchFlow):
        def prep(self, shared):
            shared.setdefault("flow_prep", 0)
            shared["flow_prep"] += 1
            return items

    return Batch


def test_runs_the_subflow_once_per_param_dict(pf):
    log = []
    a, b = recorder(pf, log, "a"), recorder(pf, log, "b")
    a - "next" >> b
    flow = batch_flow(pf, [{"key": 1}, {"key": 2}])(start=a)
    shared = {}
    out = capture(lambda: flow.run(shared))
    assert out.result is None
    assert out.error is None
    assert out.warnings == []
    assert log == [("a", {"key": 1}), ("b", {"key": 1}), ("a", {"key": 2}), ("b", {"key": 2})]
    assert shared["results"] == [("a", 1), ("b", 1), ("a", 2), ("b", 2)]
    assert shared["flow_prep"] == 1


def test_batch_params_merge_over_flow_params(pf):
    log = []
    flow = batch_flow(pf, [{"key": "k1"}, {"key": "k2", "shared_key": "overridden"}])(start=recorder(pf, log))
    flow.set_params({"shared_key": "flow", "other": 0})
    flow.run({})
    assert log == [
        ("rec", {"shared_key": "flow", "other": 0, "key": "k1"}),
        ("rec", {"shared_key": "overridden", "other": 0, "key": "k2"}),
    ]
    assert flow.params == {"shared_key": "flow", "other": 0}


def test_param_mutation_does_not_leak_between_iterations(pf):
    seen = []

    class Mutate(pf.Node):
        def prep(self, shared):
            seen.append(dict(self.params))
            self.params["leak"] = self.params["key"]

    items = [{"key": 1}, {"key": 2}]
    flow = batch_flow(pf, items)(start=Mutate())
    flow.set_params({"base": True})
    flow.run({})
    assert seen == [{"base": True, "key": 1}, {"base": True, "key": 2}]
    assert items == [{"key": 1}, {"key": 2}]
    assert flow.params == {"base": True}


def test_empty_param_dict_uses_flow_params(pf):
    log = []
    flow = batch_flow(pf, [{}, {}])(start=recorder(pf, log))
    flow.set_params({"p": 1})
    flow.run({})
    assert log == [("rec", {"p": 1}), ("rec", {"p": 1})]


def test_none_or_empty_prep_runs_nothing(pf):
    for items in (None, [], ()):
        log = []
        flow = batch_flow(pf, items)(start=recorder(pf, log))
        shared = {}
        out = capture(lambda flow=flow, shared=shared: flow.run(shared))
        assert out.result is None
        assert out.error is None
        assert log == []
        assert shared == {"flow_prep": 1}


def test_default_prep_runs_nothing(pf):
    log = []
    assert pf.BatchFlow(start=recorder(pf, log)).run({}) is None
    assert log == []


def test_post_receives_prep_result_and_none(pf):
    calls = []
    items = [{"key": 1}]

    class Batch(pf.BatchFlow):
        def prep(self, shared):
            return items

        def post(self, shared, prep_res, exec_res):
            calls.append((prep_res, exec_res))
            return "batch-done"

    node = recorder(pf, [])
    assert Batch(start=node).run({}) == "batch-done"
    assert calls == [(items, None)]
    assert calls[0][0] is items


def test_prep_may_return_a_generator(pf):
    log = []
    flow = batch_flow(pf, ({"key": i} for i in range(3)))(start=recorder(pf, log))
    flow.run({})
    assert [p["key"] for _, p in log] == [0, 1, 2]


def test_error_stops_the_batch(pf):
    class Err(pf.Node):
        def prep(self, shared):
            if self.params["key"] == "bad":
                raise ValueError(f"Error processing key: {self.params['key']}")
            shared.setdefault("done", []).append(self.params["key"])

    flow = batch_flow(pf, [{"key": "ok"}, {"key": "bad"}, {"key": "later"}])(start=Err())
    shared = {}
    out = capture(lambda: flow.run(shared))
    assert out.error == (ValueError, ("Error processing key: bad",), "Error processing key: bad")
    assert shared["done"] == ["ok"]


def test_nested_batch_flows(pf):
    class Item(pf.Node):
        def prep(self, shared):
            return shared["groups"][self.params["group"]][self.params["item"]]

        def exec(self, value):
            return value * 2

        def post(self, shared, prep_res, exec_res):
            shared.setdefault("results", []).append((self.params["group"], self.params["item"], exec_res))

    class Inner(pf.BatchFlow):
        def prep(self, shared):
            group = self.params["group"]
            return [{"item": i} for i in range(len(shared["groups"][group]))]

    class Outer(pf.BatchFlow):
        def prep(self, shared):
            return [{"group": g} for g in shared["groups"]]

    shared = {"groups": {"A": [1, 2], "B": [3, 4, 5]}}
    out = capture(lambda: Outer(start=Inner(start=Item())).run(shared))
    assert out.result is None
    assert shared["results"] == [("A", 0, 2), ("A", 1, 4), ("B", 0, 6), ("B", 1, 8), ("B", 2, 10)]


def test_batch_flow_as_a_node_returns_none_so_default_follows(pf):
    log = []
    batch = batch_flow(pf, [{"key": 1}])(start=recorder(pf, log))
    after = recorder(pf, log, "after")
    batch >> after
    outer = pf.Flow(batch)
    outer.set_params({"outer": True})
    shared = {}
    out = capture(lambda: outer.run(shared))
    assert out.result == "next"
    assert out.warnings == []
    assert log == [("rec", {"outer": True, "key": 1}), ("after", {"outer": True})]


def test_subflow_last_action_warning_inside_batch(pf):
    log = []
    a = recorder(pf, log)
    a - "other" >> recorder(pf, log, "never")
    flow = batch_flow(pf, [{"key": 1}, {"key": 2}])(start=a)
    out = capture(lambda: flow.run({}))
    assert out.warnings == [(UserWarning, "Flow ends: 'next' not found in ['other']")] * 2
    assert [name for name, _ in log] == ["rec", "rec"]
