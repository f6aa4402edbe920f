"""Wiring: ``next``, ``>>``, ``- "action" >>``, ``Flow.start`` and the attributes users inspect."""

from __future__ import annotations

import pytest

from ._support import capture

OVERWRITE = "Overwriting successor for action '{}'"


def test_fresh_node_attributes(pf):
    node = pf.Node()
    assert node.params == {}
    assert node.successors == {}
    assert node.max_retries == 1
    assert node.wait == 0
    assert not hasattr(node, "cur_retry")
    base = pf.BaseNode()
    assert base.params == {}
    assert base.successors == {}


def test_node_positional_and_keyword_arguments(pf):
    assert (pf.Node(3, 0.5).max_retries, pf.Node(3, 0.5).wait) == (3, 0.5)
    node = pf.Node(max_retries=4, wait=2)
    assert (node.max_retries, node.wait) == (4, 2)
    batch = pf.BatchNode(2, 1)
    assert (batch.max_retries, batch.wait) == (2, 1)
    anode = pf.AsyncNode(5, 0.25)
    assert (anode.max_retries, anode.wait) == (5, 0.25)


def test_nodes_do_not_share_params_or_successors(pf):
    a, b = pf.Node(), pf.Node()
    a.params["x"] = 1
    a >> b
    assert b.params == {}
    assert b.successors == {}


def test_flow_start_node_attribute(pf):
    a = pf.Node()
    assert pf.Flow().start_node is None
    assert pf.Flow(a).start_node is a
    assert pf.Flow(start=a).start_node is a
    flow = pf.Flow()
    assert flow.params == {}
    assert flow.successors == {}


def test_rshift_returns_target_and_chains(pf):
    a, b, c = pf.Node(), pf.Node(), pf.Node()
    assert (a >> b) is b
    assert (b >> c) is c
    assert a.successors == {"default": b}
    assert b.successors == {"default": c}
    assert c.successors == {}


def test_rshift_chain_in_one_expression(pf):
    a, b, c, d = pf.Node(), pf.Node(), pf.Node(), pf.Node()
    result = a >> b >> c >> d
    assert result is d
    assert a.successors["default"] is b
    assert b.successors["default"] is c
    assert c.successors["default"] is d


def test_next_returns_target_with_default_and_named_action(pf):
    a, b, c = pf.Node(), pf.Node(), pf.Node()
    assert a.next(b) is b
    assert a.next(c, "other") is c
    assert list(a.successors.items()) == [("default", b), ("other", c)]


def test_next_accepts_non_string_actions(pf):
    # Only the ``-`` operator checks the type; ``next`` stores any hashable key.
    a, b = pf.Node(), pf.Node()
    assert a.next(b, 7) is b
    assert a.successors == {7: b}


def test_conditional_transition_returns_target_and_chains(pf):
    a, b, c = pf.Node(), pf.Node(), pf.Node()
    assert (a - "yes" >> b) is b
    result = a - "no" >> c >> b
    assert result is b
    assert list(a.successors) == ["yes", "no"]
    assert a.successors["no"] is c
    assert c.successors == {"default": b}


def test_conditional_default_is_the_same_as_rshift(pf):
    a, b = pf.Node(), pf.Node()
    a - "default" >> b
    assert a.successors == {"default": b}
    out = capture(lambda: a >> b)
    assert out.warnings == [(UserWarning, OVERWRITE.format("default"))]


def test_minus_without_rshift_adds_nothing(pf):
    a = pf.Node()
    _ = a - "pending"
    assert a.successors == {}


def test_minus_accepts_str_subclasses(pf):
    class Action(str):
        pass

    a, b = pf.Node(), pf.Node()
    a - Action("go") >> b
    assert a.successors == {"go": b}


@pytest.mark.parametrize("bad", [1, None, 2.5, b"bytes", ("t",)], ids=repr)
def test_minus_with_non_string_raises_type_error(pf, bad):
    a = pf.Node()
    out = capture(lambda: a - bad)
    assert out.error == (TypeError, ("Action must be a string",), "Action must be a string")
    assert a.successors == {}


def test_minus_type_error_on_flows_and_async_nodes(pf):
    for node in (pf.Flow(), pf.AsyncNode(), pf.AsyncFlow(), pf.BatchFlow(), pf.BaseNode()):
        out = capture(lambda node=node: node - 3)
        assert out.error == (TypeError, ("Action must be a string",), "Action must be a string")


def test_overwriting_successor_warns_and_replaces(pf):
    a, b, c, d = pf.Node(), pf.Node(), pf.Node(), pf.Node()
    a >> b
    out = capture(lambda: a >> c)
    assert out.error is None
    assert out.result is c
    assert out.warnings == [(UserWarning, OVERWRITE.format("default"))]
    assert a.successors == {"default": c}

    a - "x" >> b
    out = capture(lambda: a - "x" >> d)
    assert out.warnings == [(UserWarning, OVERWRITE.format("x"))]
    assert out.result is d
    assert list(a.successors.items()) == [("default", c), ("x", d)]

    out = capture(lambda: a.next(b, "x"))
    assert out.warnings == [(UserWarning, OVERWRITE.format("x"))]
    assert a.successors["x"] is b


def test_overwriting_with_the_same_node_still_warns(pf):
    a, b = pf.Node(), pf.Node()
    a >> b
    out = capture(lambda: a >> b)
    assert out.warnings == [(UserWarning, OVERWRITE.format("default"))]


def test_overwriting_non_string_action_warning_text(pf):
    a, b = pf.Node(), pf.Node()
    a.next(b, 3)
    out = capture(lambda: a.next(b, 3))
    assert out.warnings == [(UserWarning, OVERWRITE.format(3))]


def test_first_wiring_does_not_warn(pf):
    a, b, c = pf.Node(), pf.Node(), pf.Node()
    out = capture(lambda: (a >> b, a - "x" >> c, b.next(c, "y")))
    assert out.warnings == []


def test_flow_start_returns_the_node_for_chaining(pf):
    a, b, c = pf.Node(), pf.Node(), pf.Node()
    flow = pf.Flow()
    assert flow.start(a) is a
    assert flow.start_node is a
    flow.start(b) >> c
    assert flow.start_node is b
    assert b.successors == {"default": c}


def test_flows_wire_like_nodes(pf):
    f1, f2, n = pf.Flow(), pf.Flow(), pf.Node()
    assert (f1 >> f2) is f2
    assert (f2 - "done" >> n) is n
    assert f1.successors == {"default": f2}
    assert f2.successors == {"done": n}


def test_set_params_stores_the_given_dict(pf):
    node = pf.Node()
    params = {"k": 1}
    node.set_params(params)
    assert node.params is params
    params["later"] = 2
    assert node.params == {"k": 1, "later": 2}
    flow = pf.Flow()
    flow.set_params(params)
    assert flow.params is params


def test_async_wiring(pf):
    a, b, c = pf.AsyncNode(), pf.AsyncNode(), pf.Node()
    assert (a >> b) is b
    assert (b - "sync" >> c) is c
    assert a.successors == {"default": b}
    assert b.successors == {"sync": c}
    out = capture(lambda: b - "sync" >> a)
    assert out.warnings == [(UserWarning, OVERWRITE.format("sync"))]


def test_warnings_are_attributed_to_the_library_not_the_caller(pf):
    """PocketFlow warns with the default stacklevel: each warning points into the library's own file,
    which is what ``warnings.filterwarnings(..., module=...)`` filters and the once-per-location
    de-duplication of the default filter see."""
    import asyncio
    import os
    import warnings

    package_dir = os.path.dirname(os.path.abspath(pf.__file__))
    a, b = pf.Node(), pf.Node()
    a >> b
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        a >> b
        a.next(b)
        a.run({})
        anode = pf.AsyncNode()
        anode >> pf.Node()
        asyncio.run(anode.run_async({}))
        flow_end = pf.Node()
        flow_end - "x" >> pf.Node()
        pf.Flow(flow_end).run({})
    assert [str(w.message) for w in caught] == [
        "Overwriting successor for action 'default'",
        "Overwriting successor for action 'default'",
        "Node won't run successors. Use Flow.",
        "Node won't run successors. Use AsyncFlow.",
        "Flow ends: 'None' not found in ['x']",
    ]
    in_package = [(str(w.message), os.path.dirname(os.path.abspath(w.filename)) == package_dir) for w in caught]
    assert in_package == [(str(w.message), True) for w in caught]
