"""Flow: traversal, actions, the end-of-flow warning, return values, params, and node copying."""

from __future__ import annotations

import copy

import pytest

from ._support import capture


def step(pf, name, action=None, log=None, effect=None):
    """A node that records its name (and params) and returns ``action`` (or ``action(shared)``)."""

    class Step(pf.Node):
        def prep(self, shared):
            shared.setdefault("trace", []).append(name)
            if log is not None:
                log.append((name, dict(self.params)))
            if effect is not None:
                effect(shared)

        def post(self, shared, prep_res, exec_res):
            return action(shared) if callable(action) else action

    return Step()


def ends(action, successors):
    return f"Flow ends: '{action}' not found in {successors}"


def test_linear_flow_runs_in_order_and_returns_last_action(pf):
    a, b, c = step(pf, "a"), step(pf, "b"), step(pf, "c", action="finished")
    a >> b >> c
    shared = {}
    out = capture(lambda: pf.Flow(start=a).run(shared))
    assert out.result == "finished"
    assert out.warnings == []
    assert shared == {"trace": ["a", "b", "c"]}


def test_flow_returns_none_when_last_node_returns_none(pf):
    a, b = step(pf, "a"), step(pf, "b")
    a >> b
    assert capture(lambda: pf.Flow(a).run({})).result is None


def test_start_method_and_chaining(pf):
    flow = pf.Flow()
    flow.start(step(pf, "a")) >> step(pf, "b") >> step(pf, "c")
    shared = {}
    assert flow.run(shared) is None
    assert shared["trace"] == ["a", "b", "c"]
    flow2 = pf.Flow()
    flow2.start(step(pf, "x")).next(step(pf, "y")).next(step(pf, "z", action="end"))
    shared = {}
    assert flow2.run(shared) == "end"
    assert shared["trace"] == ["x", "y", "z"]


def test_empty_flow_returns_none(pf):
    shared = {"k": 1}
    out = capture(lambda: pf.Flow().run(shared))
    assert out.result is None
    assert out.error is None
    assert out.warnings == []
    assert shared == {"k": 1}


@pytest.mark.parametrize("value", [5, -5, 0])
def test_branching(pf, value):
    start = step(pf, "start", effect=lambda s: s.__setitem__("v", value))
    check = step(pf, "check", action=lambda s: "positive" if s["v"] >= 0 else "negative")
    pos = step(pf, "pos", effect=lambda s: s.__setitem__("v", s["v"] + 10))
    neg = step(pf, "neg", effect=lambda s: s.__setitem__("v", s["v"] - 20))
    start >> check
    check - "positive" >> pos
    check - "negative" >> neg
    shared = {}
    assert capture(lambda: pf.Flow(start).run(shared)).result is None
    branch = "pos" if value >= 0 else "neg"
    assert shared["trace"] == ["start", "check", branch]
    assert shared["v"] == (value + 10 if value >= 0 else value - 20)


def test_loop_until_condition_ends_with_signal(pf):
    start = step(pf, "start", effect=lambda s: s.__setitem__("v", 10))
    check = step(pf, "check", action=lambda s: "positive" if s["v"] >= 0 else "negative")
    sub = step(pf, "sub", effect=lambda s: s.__setitem__("v", s["v"] - 3))
    end = step(pf, "end", action="cycle_done")
    start >> check
    check - "positive" >> sub
    check - "negative" >> end
    sub >> check
    shared = {}
    out = capture(lambda: pf.Flow(start).run(shared))
    assert out.result == "cycle_done"
    assert out.warnings == []
    assert shared["v"] == -2
    assert shared["trace"] == ["start"] + ["check", "sub"] * 4 + ["check", "end"]


def test_self_loop(pf):
    count = step(pf, "n", action=lambda s: "again" if len(s["trace"]) < 5 else "stop")
    count - "again" >> count
    shared = {}
    out = capture(lambda: pf.Flow(count).run(shared))
    assert out.result == "stop"
    assert out.warnings == [(UserWarning, ends("stop", ["again"]))]
    assert shared["trace"] == ["n"] * 5


@pytest.mark.parametrize("action", [None, "", "default"], ids=repr)
def test_falsy_action_and_default_follow_the_default_edge(pf, action):
    a, b = step(pf, "a", action=action), step(pf, "b")
    a >> b
    a - "other" >> step(pf, "other")
    shared = {}
    out = capture(lambda: pf.Flow(a).run(shared))
    assert out.warnings == []
    assert shared["trace"] == ["a", "b"]


def test_none_action_without_default_edge_warns(pf):
    a = step(pf, "a", action=None)
    a - "specific_action" >> step(pf, "next")
    shared = {}
    out = capture(lambda: pf.Flow(a).run(shared))
    assert out.result is None
    assert out.warnings == [(UserWarning, ends(None, ["specific_action"]))]
    assert shared["trace"] == ["a"]


def test_unknown_action_warns_and_returns_it(pf):
    a = step(pf, "a", action="specific_action")
    a >> step(pf, "next")
    a - "x" >> step(pf, "x")
    shared = {}
    out = capture(lambda: pf.Flow(a).run(shared))
    assert out.result == "specific_action"
    assert out.warnings == [(UserWarning, ends("specific_action", ["default", "x"]))]
    assert shared["trace"] == ["a"]


def test_empty_string_action_warning_shows_the_raw_action(pf):
    a = step(pf, "a", action="")
    a - "x" >> step(pf, "x")
    out = capture(lambda: pf.Flow(a).run({}))
    assert out.result == ""
    assert out.warnings == [(UserWarning, ends("", ["x"]))]


def test_no_warning_when_last_node_has_no_successors(pf):
    a = step(pf, "a", action="anything")
    out = capture(lambda: pf.Flow(a).run({}))
    assert out.result == "anything"
    assert out.warnings == []


def test_non_string_actions_route_through_next(pf):
    a = step(pf, "a", action=2)
    b = step(pf, "b", action=3)
    a.next(b, 2)
    b.next(step(pf, "c"), 4)
    shared = {}
    out = capture(lambda: pf.Flow(a).run(shared))
    assert out.result == 3
    assert out.warnings == [(UserWarning, ends(3, [4]))]
    assert shared["trace"] == ["a", "b"]


def test_exception_propagates_with_partial_side_effects(pf):
    def boom(shared):
        raise ValueError("node b failed")

    a, b, c = step(pf, "a"), step(pf, "b", effect=boom), step(pf, "c")
    a >> b >> c
    shared = {}
    out = capture(lambda: pf.Flow(a).run(shared))
    assert out.error == (ValueError, ("node b failed",), "node b failed")
    assert shared["trace"] == ["a", "b"]


def test_flow_with_successors_run_directly_warns(pf):
    flow = pf.Flow(step(pf, "a", action="x"))
    flow >> step(pf, "after")
    shared = {}
    out = capture(lambda: flow.run(shared))
    assert out.result == "x"
    assert out.warnings == [(UserWarning, "Node won't run successors. Use Flow.")]
    assert shared["trace"] == ["a"]


def test_flow_prep_and_post(pf):
    calls = []

    class MyFlow(pf.Flow):
        def prep(self, shared):
            calls.append(("prep", list(shared.get("trace", []))))
            return "flow-prep"

        def post(self, shared, prep_res, exec_res):
            calls.append(("post", prep_res, exec_res, list(shared["trace"])))
            return "flow-result"

    a = step(pf, "a")
    a >> step(pf, "b", action="last")
    assert capture(lambda: MyFlow(a).run({})).result == "flow-result"
    assert calls == [("prep", []), ("post", "flow-prep", "last", ["a", "b"])]


def test_flow_exec_is_not_called(pf):
    calls = []

    class MyFlow(pf.Flow):
        def exec(self, prep_res):
            calls.append("exec")
            return "exec-result"

    assert MyFlow(step(pf, "a", action="act")).run({}) == "act"
    assert calls == []


def test_get_next_node_direct(pf):
    flow = pf.Flow()
    a, b, c = pf.Node(), pf.Node(), pf.Node()
    a >> b
    a - "c" >> c
    assert capture(lambda: flow.get_next_node(a, None)).result is b
    assert capture(lambda: flow.get_next_node(a, "c")).result is c
    out = capture(lambda: flow.get_next_node(a, "nope"))
    assert out.result is None
    assert out.warnings == [(UserWarning, ends("nope", ["default", "c"]))]
    out = capture(lambda: flow.get_next_node(b, "nope"))
    assert out.result is None
    assert out.warnings == []


def test_overridden_get_next_node_routes_the_flow(pf):
    a, b, c = step(pf, "a", action="go"), step(pf, "b"), step(pf, "c")
    a - "go" >> b

    class Redirect(pf.Flow):
        def get_next_node(self, curr, action):
            nxt = super().get_next_node(curr, action)
            return c if nxt is b else nxt

    shared = {}
    assert capture(lambda: Redirect(a).run(shared)).error is None
    assert shared["trace"] == ["a", "c"]


def test_instance_method_override_survives_node_copy(pf):
    a = step(pf, "a", action="specific_action")
    a - "specific_action" >> step(pf, "next")
    a.post = lambda *args: None
    shared = {}
    out = capture(lambda: pf.Flow(a).run(shared))
    assert out.result is None
    assert out.warnings == [(UserWarning, ends(None, ["specific_action"]))]


def test_flow_can_be_run_twice(pf):
    a = step(pf, "a")
    a >> step(pf, "b", action="r")
    flow = pf.Flow(a)
    shared = {}
    assert flow.run(shared) == "r"
    assert flow.run(shared) == "r"
    assert shared["trace"] == ["a", "b", "a", "b"]


def test_node_shared_between_two_flows(pf):
    shared_node = step(pf, "common")
    f1 = pf.Flow(shared_node)
    f1.set_params({"flow": 1})
    f2 = pf.Flow(shared_node)
    f2.set_params({"flow": 2})
    log = []
    shared_node2 = step(pf, "common", log=log)
    f3, f4 = pf.Flow(shared_node2), pf.Flow(shared_node2)
    f3.set_params({"flow": 3})
    f4.set_params({"flow": 4})
    f3.run({})
    f4.run({})
    assert log == [("common", {"flow": 3}), ("common", {"flow": 4})]
    assert shared_node2.params == {}


# --- params -----------------------------------------------------------------------------------


def test_flow_params_reach_every_node(pf):
    log = []
    a, b = step(pf, "a", log=log), step(pf, "b", log=log)
    a >> b
    flow = pf.Flow(a)
    flow.set_params({"user": "u1", "n": 2})
    flow.run({})
    assert log == [("a", {"user": "u1", "n": 2}), ("b", {"user": "u1", "n": 2})]


def test_node_own_params_are_replaced_by_the_flow_params(pf):
    log = []
    a = step(pf, "a", log=log)
    a.set_params({"own": True})
    flow = pf.Flow(a)
    flow.set_params({"flow": True})
    flow.run({})
    assert log == [("a", {"flow": True})]
    assert a.params == {"own": True}


def test_flow_without_params_gives_nodes_empty_params(pf):
    log = []
    a = step(pf, "a", log=log)
    a.set_params({"own": True})
    pf.Flow(a).run({})
    assert log == [("a", {})]


def test_nodes_of_one_run_share_one_params_dict(pf):
    seen = []

    class Writer(pf.Node):
        def prep(self, shared):
            self.params["written_by_a"] = 1
            seen.append(("a", self.params))

    class Reader(pf.Node):
        def prep(self, shared):
            seen.append(("b", self.params))
            shared["b_saw"] = dict(self.params)

    a, b = Writer(), Reader()
    a >> b
    flow = pf.Flow(a)
    flow.set_params({"p": 0})
    shared = {}
    flow.run(shared)
    assert shared["b_saw"] == {"p": 0, "written_by_a": 1}
    assert seen[0][1] is seen[1][1]
    assert flow.params == {"p": 0}
    assert a.params == {}
    assert b.params == {}


def test_each_run_gets_a_fresh_params_dict(pf):
    seen = []

    class Counter(pf.Node):
        def prep(self, shared):
            self.params["hits"] = self.params.get("hits", 0) + 1
            seen.append(self.params["hits"])

    flow = pf.Flow(Counter())
    flow.set_params({"base": 1})
    flow.run({})
    flow.run({})
    assert seen == [1, 1]
    assert flow.params == {"base": 1}


# --- copying ------------------------------------------------------------------------------------


def test_state_set_on_self_during_a_run_is_not_visible_on_the_original(pf):
    class Stateful(pf.Node):
        def prep(self, shared):
            self.seen_in_prep = True
            return 1

        def exec(self, prep_res):
            self.seen_in_exec = prep_res

        def post(self, shared, prep_res, exec_res):
            shared["same_object_in_post"] = self.seen_in_prep and self.seen_in_exec == 1

    node = Stateful()
    shared = {}
    pf.Flow(node).run(shared)
    assert shared == {"same_object_in_post": True}
    assert not hasattr(node, "seen_in_prep")
    assert not hasattr(node, "seen_in_exec")
    assert not hasattr(node, "cur_retry")
    assert node.params == {}


def test_direct_run_does_not_copy(pf):
    class Stateful(pf.Node):
        def prep(self, shared):
            self.seen = True

    node = Stateful()
    node.run({})
    assert node.seen is True
    assert node.cur_retry == 0


def test_each_visit_starts_from_the_original_state(pf):
    class Visit(pf.Node):
        def __init__(self):
            super().__init__()
            self.count = 0

        def prep(self, shared):
            self.count += 1
            shared.setdefault("counts", []).append(self.count)

        def post(self, shared, prep_res, exec_res):
            return "again" if len(shared["counts"]) < 3 else "done"

    node = Visit()
    node - "again" >> node
    shared = {}
    out = capture(lambda: pf.Flow(node).run(shared))
    assert out.warnings == [(UserWarning, ends("done", ["again"]))]
    assert shared["counts"] == [1, 1, 1]
    assert node.count == 0


def test_copy_is_shallow_mutable_attributes_are_shared(pf):
    class Appender(pf.Node):
        def __init__(self):
            super().__init__()
            self.history = []

        def prep(self, shared):
            self.history.append(len(self.history))

        def post(self, shared, prep_res, exec_res):
            return "again" if len(self.history) < 3 else None

    node = Appender()
    node - "again" >> node
    out = capture(lambda: pf.Flow(node).run({}))
    assert out.warnings == [(UserWarning, ends(None, ["again"]))]
    assert node.history == [0, 1, 2]


def test_nodes_are_copied_with_copy_copy_once_per_visit(pf):
    copies = []

    class Tracked(pf.Node):
        def __init__(self, name):
            super().__init__()
            self.name_ = name

        def __copy__(self):
            copies.append(self.name_)
            clone = type(self).__new__(type(self))
            clone.__dict__.update(self.__dict__)
            clone.is_copy = True
            return clone

        def prep(self, shared):
            shared.setdefault("copy_flags", []).append(getattr(self, "is_copy", False))

        def post(self, shared, prep_res, exec_res):
            return "loop" if self.name_ == "b" and len(shared["copy_flags"]) < 4 else None

    a, b = Tracked("a"), Tracked("b")
    a >> b
    b - "loop" >> b
    shared = {}
    out = capture(lambda: pf.Flow(a).run(shared))
    assert out.warnings == [(UserWarning, ends(None, ["loop"]))]
    assert copies == ["a", "b", "b", "b"]
    assert shared["copy_flags"] == [True] * 4


def test_flow_itself_is_not_copied_when_run(pf):
    class MyFlow(pf.Flow):
        def prep(self, shared):
            self.ran = True

    flow = MyFlow(step(pf, "a"))
    flow.run({})
    assert flow.ran is True


def test_successor_dict_of_the_copy_is_the_original(pf):
    seen = []

    class Peek(pf.Node):
        def prep(self, shared):
            seen.append(self.successors)

    a = Peek()
    a >> step(pf, "b")
    pf.Flow(a).run({})
    assert seen[0] is a.successors


def test_deepcopy_of_a_wired_node_is_independent(pf):
    a, b = pf.Node(), pf.Node()
    a >> b
    clone = copy.deepcopy(a)
    assert clone.successors["default"] is not b
    assert isinstance(clone.successors["default"], pf.Node)
