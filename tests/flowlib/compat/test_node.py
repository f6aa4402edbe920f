"""A single node run directly: lifecycle, return values, retries, fallback, wait, ``cur_retry``."""

from __future__ import annotations

import pytest

from ._support import capture


def traced_node(pf, base="Node", fails=0, fallback=None, **kwargs):
    """A node whose exec fails its first ``fails`` attempts; every call is recorded in ``node.log``."""
    log = []
    cls = getattr(pf, base)

    class Traced(cls):
        def prep(self, shared):
            log.append(("prep", dict(shared)))
            shared["prepped"] = True
            return "P"

        def exec(self, prep_res):
            attempt = sum(1 for entry in log if entry[0] == "exec") + 1
            log.append(("exec", prep_res, getattr(self, "cur_retry", "unset")))
            if attempt <= fails:
                raise ValueError(f"fail {attempt}")
            return f"E{attempt}"

        def post(self, shared, prep_res, exec_res):
            log.append(("post", prep_res, exec_res))
            shared["post"] = exec_res
            return "ACTION"

    if fallback is not None:
        Traced.exec_fallback = fallback
    node = Traced(**kwargs)
    return node, log


def test_lifecycle_passes_values_and_returns_post_result(pf):
    node, log = traced_node(pf)
    shared = {"in": 1}
    out = capture(lambda: node.run(shared))
    assert out.result == "ACTION"
    assert out.error is None
    assert out.warnings == []
    assert log == [("prep", {"in": 1}), ("exec", "P", 0), ("post", "P", "E1")]
    assert shared == {"in": 1, "prepped": True, "post": "E1"}


def test_basenode_lifecycle_has_no_retry_state(pf):
    node, log = traced_node(pf, base="BaseNode")
    out = capture(lambda: node.run({}))
    assert out.result == "ACTION"
    assert log == [("prep", {}), ("exec", "P", "unset"), ("post", "P", "E1")]
    assert not hasattr(node, "cur_retry")


def test_basenode_exec_failure_is_not_retried(pf):
    node, log = traced_node(pf, base="BaseNode", fails=1)
    out = capture(lambda: node.run({}))
    assert out.error == (ValueError, ("fail 1",), "fail 1")
    assert log == [("prep", {}), ("exec", "P", "unset")]


def test_default_methods_return_none(pf):
    for cls in (pf.BaseNode, pf.Node):
        node = cls()
        shared = {"a": 1}
        out = capture(lambda node=node, shared=shared: node.run(shared))
        assert out.result is None
        assert out.error is None
        assert shared == {"a": 1}
        assert node.prep(shared) is None
        assert node.exec(None) is None
        assert node.post(shared, None, None) is None


def test_run_with_successors_warns_and_does_not_run_them(pf):
    node, log = traced_node(pf)
    ran = []

    class Successor(pf.Node):
        def prep(self, shared):
            ran.append("successor")

    node >> Successor()
    out = capture(lambda: node.run({}))
    assert out.result == "ACTION"
    assert out.warnings == [(UserWarning, "Node won't run successors. Use Flow.")]
    assert ran == []
    assert [entry[0] for entry in log] == ["prep", "exec", "post"]


def test_run_without_successors_does_not_warn(pf):
    node, _ = traced_node(pf)
    assert capture(lambda: node.run({})).warnings == []


@pytest.mark.parametrize("fails", [0, 1, 2])
def test_retries_until_success(pf, fails):
    node, log = traced_node(pf, fails=fails, max_retries=3)
    out = capture(lambda: node.run({}))
    assert out.error is None
    assert out.result == "ACTION"
    execs = [entry for entry in log if entry[0] == "exec"]
    assert execs == [("exec", "P", i) for i in range(fails + 1)]
    assert log[-1] == ("post", "P", f"E{fails + 1}")
    assert node.cur_retry == fails


def test_exhausted_retries_raise_last_exception(pf):
    node, log = traced_node(pf, fails=5, max_retries=3)
    shared = {}
    out = capture(lambda: node.run(shared))
    assert out.error == (ValueError, ("fail 3",), "fail 3")
    assert [entry for entry in log if entry[0] == "exec"] == [("exec", "P", i) for i in range(3)]
    assert "post" not in shared
    assert node.cur_retry == 2


def test_default_fallback_reraises_the_same_exception_object(pf):
    raised = []

    class Boom(pf.Node):
        def exec(self, prep_res):
            exc = KeyError(f"attempt {self.cur_retry}")
            raised.append(exc)
            raise exc

    node = Boom(max_retries=2)
    with pytest.raises(KeyError) as info:
        node.run({})
    assert info.value is raised[-1]
    assert len(raised) == 2


def test_fallback_receives_prep_result_and_last_exception(pf):
    seen = []
    raised = []

    class Node(pf.Node):
        def prep(self, shared):
            return {"prep": 1}

        def exec(self, prep_res):
            exc = ValueError(self.cur_retry)
            raised.append(exc)
            raise exc

        def exec_fallback(self, prep_res, exc):
            seen.append((prep_res, exc, self.cur_retry))
            return "fallback value"

        def post(self, shared, prep_res, exec_res):
            shared["exec_res"] = exec_res
            return exec_res

    shared = {}
    node = Node(max_retries=3)
    out = capture(lambda: node.run(shared))
    assert out.result == "fallback value"
    assert shared == {"exec_res": "fallback value"}
    assert len(seen) == 1
    assert seen[0][0] == {"prep": 1}
    assert seen[0][1] is raised[-1]
    assert seen[0][2] == 2
    assert len(raised) == 3


def test_fallback_not_called_on_success(pf):
    calls = []

    def fallback(self, prep_res, exc):
        calls.append(exc)
        return "fb"

    node, log = traced_node(pf, fails=1, max_retries=2, fallback=fallback)
    out = capture(lambda: node.run({}))
    assert out.result == "ACTION"
    assert calls == []
    assert log[-1] == ("post", "P", "E2")


def test_fallback_raising_another_exception_propagates_it(pf):
    def fallback(self, prep_res, exc):
        raise RuntimeError(f"fallback saw {exc}")

    node, log = traced_node(pf, fails=9, max_retries=2, fallback=fallback)
    out = capture(lambda: node.run({}))
    assert out.error == (RuntimeError, ("fallback saw fail 2",), "fallback saw fail 2")
    assert [entry[0] for entry in log] == ["prep", "exec", "exec"]


def test_fallback_returning_none_reaches_post(pf):
    node, log = traced_node(pf, fails=9, fallback=lambda self, p, e: None)
    out = capture(lambda: node.run({}))
    assert out.result == "ACTION"
    assert log[-1] == ("post", "P", None)


def test_max_retries_zero_never_calls_exec(pf, sleeps):
    node, log = traced_node(pf, fails=9, max_retries=0, wait=3)
    out = capture(lambda: node.run({}))
    assert out.error is None
    assert out.result == "ACTION"
    assert log == [("prep", {}), ("post", "P", None)]
    assert not hasattr(node, "cur_retry")
    assert sleeps.calls == []


def test_wait_sleeps_between_attempts_only(pf, sleeps):
    node, _ = traced_node(pf, fails=9, max_retries=4, wait=0.75)
    out = capture(lambda: node.run({}))
    assert out.error == (ValueError, ("fail 4",), "fail 4")
    assert sleeps.calls == [("time.sleep", 0.75)] * 3


def test_wait_with_eventual_success(pf, sleeps):
    node, _ = traced_node(pf, fails=2, max_retries=5, wait=2)
    assert capture(lambda: node.run({})).result == "ACTION"
    assert sleeps.calls == [("time.sleep", 2)] * 2


def test_wait_before_fallback(pf, sleeps):
    node, _ = traced_node(pf, fails=9, max_retries=3, wait=1.5, fallback=lambda self, p, e: "fb")
    assert capture(lambda: node.run({})).result == "ACTION"
    assert sleeps.calls == [("time.sleep", 1.5)] * 2


@pytest.mark.parametrize("wait", [0, -1])
def test_no_sleep_without_positive_wait(pf, sleeps, wait):
    node, _ = traced_node(pf, fails=2, max_retries=3, wait=wait)
    assert capture(lambda: node.run({})).result == "ACTION"
    assert sleeps.calls == []


def test_no_sleep_on_first_attempt_success(pf, sleeps):
    node, _ = traced_node(pf, max_retries=3, wait=5)
    assert capture(lambda: node.run({})).result == "ACTION"
    assert sleeps.calls == []


def test_sleep_happens_between_the_attempts(pf, sleeps):
    events = []

    class Node(pf.Node):
        def exec(self, prep_res):
            events.append(("exec", len(sleeps.calls)))
            raise ValueError("x")

        def exec_fallback(self, prep_res, exc):
            events.append(("fallback", len(sleeps.calls)))
            return "fb"

    assert capture(lambda: Node(max_retries=3, wait=1).run({})).error is None
    assert events == [("exec", 0), ("exec", 1), ("exec", 2), ("fallback", 2)]


def test_cur_retry_is_reset_on_each_run(pf):
    node, log = traced_node(pf, fails=1, max_retries=3)
    node.run({})
    assert node.cur_retry == 1
    before = len(log)
    node.run({})  # traced_node counts attempts over the node's life: this run succeeds at once
    assert node.cur_retry == 0
    assert [entry for entry in log[before:] if entry[0] == "exec"] == [("exec", "P", 0)]


def test_exceptions_in_prep_and_post_are_not_retried(pf):
    calls = []

    class BadPrep(pf.Node):
        def prep(self, shared):
            calls.append("prep")
            raise KeyError("prep broke")

        def exec(self, prep_res):
            calls.append("exec")

    class BadPost(pf.Node):
        def exec(self, prep_res):
            calls.append("exec")
            return 1

        def post(self, shared, prep_res, exec_res):
            calls.append("post")
            raise LookupError("post broke")

    out = capture(lambda: BadPrep(max_retries=3).run({}))
    assert out.error == (KeyError, ("prep broke",), "'prep broke'")
    assert calls == ["prep"]
    calls.clear()
    out = capture(lambda: BadPost(max_retries=3).run({}))
    assert out.error == (LookupError, ("post broke",), "post broke")
    assert calls == ["exec", "post"]


def test_base_exceptions_are_not_retried_nor_given_to_fallback(pf):
    class Stop(BaseException):
        pass

    calls = []

    class Node(pf.Node):
        def exec(self, prep_res):
            calls.append("exec")
            raise Stop("stop")

        def exec_fallback(self, prep_res, exc):
            calls.append("fallback")
            return "fb"

    with pytest.raises(Stop):
        Node(max_retries=3).run({})
    assert calls == ["exec"]


def test_instance_attribute_overrides_methods(pf):
    node = pf.Node()
    node.prep = lambda shared: shared.setdefault("seen", []).append("prep") or 10
    node.exec = lambda prep_res: prep_res * 2
    node.post = lambda shared, p, e: f"{p}->{e}"
    shared = {}
    assert node.run(shared) == "10->20"
    assert shared == {"seen": ["prep"]}


def test_exec_result_can_be_any_object(pf):
    marker = object()

    class Node(pf.Node):
        def exec(self, prep_res):
            return marker

        def post(self, shared, prep_res, exec_res):
            return exec_res

    assert Node().run({}) is marker


def test_shared_can_be_any_mapping_like_object(pf):
    class Store:
        def __init__(self):
            self.items = []

    class Node(pf.Node):
        def prep(self, shared):
            shared.items.append("prep")

        def post(self, shared, prep_res, exec_res):
            shared.items.append("post")
            return "done"

    store = Store()
    assert Node().run(store) == "done"
    assert store.items == ["prep", "post"]
