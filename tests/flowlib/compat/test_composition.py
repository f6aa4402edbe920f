"""Flows used as nodes: nesting, action propagation, params and copying across levels."""

from __future__ import annotations

from ._support import capture


def setter(pf, value):
    class Set(pf.Node):
        def prep(self, shared):
            shared["current"] = value
            shared.setdefault("trace", []).append(f"set{value}")

    return Set()


def add(pf, value):
    class Add(pf.Node):
        def prep(self, shared):
            shared["current"] += value
            shared.setdefault("trace", []).append(f"add{value}")

    return Add()


def mul(pf, value):
    class Mul(pf.Node):
        def prep(self, shared):
            shared["current"] *= value
            shared.setdefault("trace", []).append(f"mul{value}")

    return Mul()


def signal(pf, action):
    class Signal(pf.Node):
        def post(self, shared, prep_res, exec_res):
            shared["signal"] = action
            shared.setdefault("trace", []).append(f"signal:{action}")
            return action

    return Signal()


def test_flow_as_start_node_of_nested_flows(pf):
    f1 = pf.Flow(start=setter(pf, 5))
    f1.start_node >> add(pf, 10) >> mul(pf, 2)
    f3 = pf.Flow(start=pf.Flow(start=f1))
    shared = {}
    out = capture(lambda: f3.run(shared))
    assert out.result is None
    assert out.warnings == []
    assert shared["current"] == 30
    assert shared["trace"] == ["set5", "add10", "mul2"]


def test_flow_successor_runs_after_the_inner_flow(pf):
    inner = pf.Flow(start=setter(pf, 5))
    inner.start_node >> add(pf, 3)
    middle = pf.Flow(start=inner)
    inner >> mul(pf, 4)
    shared = {}
    pf.Flow(start=middle).run(shared)
    assert shared["current"] == 32
    assert shared["trace"] == ["set5", "add3", "mul4"]


def test_chaining_two_flows(pf):
    first = setter(pf, 10)
    first >> add(pf, 10)
    flow1 = pf.Flow(start=first)
    flow2 = pf.Flow(start=mul(pf, 2))
    flow1 >> flow2
    shared = {}
    assert capture(lambda: pf.Flow(start=flow1).run(shared)).warnings == []
    assert shared["current"] == 40


def test_outer_flow_branches_on_the_inner_flow_last_action(pf):
    first = setter(pf, 100)
    first >> signal(pf, "inner_done")
    inner = pf.Flow(start=first)
    outer = pf.Flow()
    outer.start(inner)
    inner - "inner_done" >> setter(pf, 1)
    inner - "other_action" >> setter(pf, 2)
    shared = {}
    out = capture(lambda: outer.run(shared))
    assert out.result is None
    assert out.warnings == []
    assert shared["trace"] == ["set100", "signal:inner_done", "set1"]


def test_inner_flow_action_not_wired_in_outer_warns_and_is_returned(pf):
    inner = pf.Flow(start=signal(pf, "mystery"))
    inner - "known" >> setter(pf, 1)
    out = capture(lambda: pf.Flow(inner).run({}))
    assert out.result == "mystery"
    assert out.warnings == [(UserWarning, "Flow ends: 'mystery' not found in ['known']")]


def test_inner_flow_post_decides_the_outer_action(pf):
    class Inner(pf.Flow):
        def post(self, shared, prep_res, exec_res):
            shared.setdefault("trace", []).append(f"inner-post:{exec_res}")
            return "rerouted"

    inner = Inner(start=signal(pf, "ignored"))
    inner - "rerouted" >> setter(pf, 7)
    shared = {}
    out = capture(lambda: pf.Flow(inner).run(shared))
    assert out.warnings == []
    assert shared["trace"] == ["signal:ignored", "inner-post:ignored", "set7"]


def test_params_flow_down_through_nested_flows(pf):
    log = []

    class Rec(pf.Node):
        def prep(self, shared):
            log.append(dict(self.params))
            self.params["touched"] = True

    inner = pf.Flow(start=Rec())
    inner.set_params({"inner_own": 1})
    inner >> Rec()
    outer = pf.Flow(start=inner)
    outer.set_params({"top": "t"})
    outer.run({})
    assert log == [{"top": "t"}, {"top": "t"}]
    assert inner.params == {"inner_own": 1}
    assert outer.params == {"top": "t"}


def test_inner_flow_nodes_get_a_copy_of_the_outer_params(pf):
    log = []

    class Touch(pf.Node):
        def prep(self, shared):
            self.params["from_inner"] = True

    class Rec(pf.Node):
        def prep(self, shared):
            log.append(dict(self.params))

    inner = pf.Flow(start=Touch())
    inner >> Rec()
    outer = pf.Flow(start=inner)
    outer.set_params({"top": 1})
    outer.run({})
    assert log == [{"top": 1}]


def test_inner_flow_is_copied_for_each_visit(pf):
    class Counting(pf.Flow):
        def prep(self, shared):
            self.visits = getattr(self, "visits", 0) + 1
            shared.setdefault("visits", []).append(self.visits)

    inner = Counting(start=signal(pf, "again"))
    inner - "again" >> inner

    class Guard(pf.Flow):
        pass

    # Bound the loop: the signal node stops looping after three visits by returning a new action.
    inner.start_node.post = lambda shared, p, e: "again" if len(shared.setdefault("visits", [])) < 3 else "stop"
    shared = {}
    out = capture(lambda: Guard(inner).run(shared))
    assert out.result == "stop"
    assert out.warnings == [(UserWarning, "Flow ends: 'stop' not found in ['again']")]
    assert shared["visits"] == [1, 1, 1]
    assert not hasattr(inner, "visits")


def test_exception_in_nested_flow_propagates_unchanged(pf):
    class Boom(pf.Node):
        def exec(self, prep_res):
            raise ZeroDivisionError("deep")

    inner = pf.Flow(start=Boom())
    after = setter(pf, 1)
    inner >> after
    out = capture(lambda: pf.Flow(pf.Flow(inner)).run({}))
    assert out.error == (ZeroDivisionError, ("deep",), "deep")


def test_supervisor_loop_reruns_inner_flow_until_approved(pf):
    """Cookbook pattern: an outer flow re-runs an inner flow until a supervisor approves."""

    class Draft(pf.Node):
        def prep(self, shared):
            shared["attempt"] = shared.get("attempt", 0) + 1
            return shared["attempt"]

        def exec(self, attempt):
            return f"draft {attempt}"

        def post(self, shared, prep_res, exec_res):
            shared["draft"] = exec_res

    class Supervise(pf.Node):
        def prep(self, shared):
            return shared["draft"]

        def exec(self, draft):
            return draft.endswith("3")

        def post(self, shared, prep_res, exec_res):
            shared.setdefault("reviews", []).append((prep_res, exec_res))
            return "approved" if exec_res else "retry"

    work = pf.Flow(start=Draft())
    supervise = Supervise()
    work >> supervise
    supervise - "retry" >> work
    shared = {}
    out = capture(lambda: pf.Flow(work).run(shared))
    assert out.result == "approved"
    assert out.warnings == [(UserWarning, "Flow ends: 'approved' not found in ['retry']")]
    assert shared["reviews"] == [("draft 1", False), ("draft 2", False), ("draft 3", True)]
