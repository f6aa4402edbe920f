"""Traversal over random graphs matches a reference walk; the loop guard names the node."""

from __future__ import annotations

import asyncio
import warnings
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import flowlib

ACTIONS = ["default", "left", "right"]


@st.composite
def graphs(draw: st.DrawFn) -> tuple[int, dict[int, dict[str, int]], dict[int, list[str]]]:
    size = draw(st.integers(1, 6))
    edges = {
        n: draw(st.dictionaries(st.sampled_from(ACTIONS), st.integers(0, size - 1), max_size=3)) for n in range(size)
    }
    scripts = {n: draw(st.lists(st.sampled_from([*ACTIONS, "nowhere"]), min_size=1, max_size=4)) for n in range(size)}
    return size, edges, scripts


def reference_walk(edges: dict[int, dict[str, int]], scripts: dict[int, list[str]], limit: int) -> list[int]:
    visits: dict[int, int] = {}
    trace, curr = [], 0
    while curr is not None and len(trace) < limit:
        trace.append(curr)
        script = scripts[curr]
        action = script[visits.get(curr, 0) % len(script)]
        visits[curr] = visits.get(curr, 0) + 1
        curr = edges[curr].get(action)  # type: ignore[assignment]
    return trace


def build(mod_async: bool, edges: dict[int, dict[str, int]], scripts: dict[int, list[str]]) -> list[Any]:
    base = flowlib.AsyncNode if mod_async else flowlib.Node

    class Step(base):  # type: ignore[valid-type, misc]
        def __init__(self, n: int) -> None:
            super().__init__(name=f"n{n}")
            self.n = n

        def decide(self, shared: dict[str, Any]) -> str:
            visits = shared.setdefault("visits", {})
            action = scripts[self.n][visits.get(self.n, 0) % len(scripts[self.n])]
            visits[self.n] = visits.get(self.n, 0) + 1
            shared.setdefault("trace", []).append(self.n)
            return action

        def post(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> str:
            return self.decide(shared)

        async def post_async(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> str:
            return self.decide(shared)

    nodes = [Step(n) for n in edges]
    for n, out in edges.items():
        for action, target in out.items():
            nodes[n] - action >> nodes[target]
    return nodes


@settings(max_examples=60, deadline=None)
@given(graph=graphs(), use_async=st.booleans())
def test_walk_follows_actions_like_the_reference(
    graph: tuple[int, dict[int, dict[str, int]], dict[int, list[str]]], use_async: bool
) -> None:
    _, edges, scripts = graph
    limit = 40
    expected = reference_walk(edges, scripts, limit + 1)
    nodes = build(use_async, edges, scripts)
    shared: dict[str, Any] = {}
    flow_cls = flowlib.AsyncFlow if use_async else flowlib.Flow
    flow = flow_cls(start=nodes[0], max_steps=limit)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Flow ends: ..." is expected on some graphs
        try:
            if use_async:
                asyncio.run(flow.run_async(shared))
            else:
                flow.run(shared)
        except flowlib.MaxStepsExceeded as e:
            assert len(expected) > limit
            assert e.node == f"n{expected[limit]}"
            assert shared["trace"] == expected[:limit]
            return
    assert shared["trace"] == expected


def test_max_steps_message_names_flow_and_node() -> None:
    class Loop(flowlib.Node):
        def post(self, shared: Any, prep_res: Any, exec_res: Any) -> str:
            return "again"

    loop = Loop(name="poll")
    loop - "again" >> loop
    with pytest.raises(flowlib.MaxStepsExceeded) as info:
        flowlib.Flow(start=loop, max_steps=5, name="watcher").run({})
    assert str(info.value).startswith(
        "flow 'watcher' exceeded max_steps=5: it was about to start node 'poll' for step 6."
    )


@pytest.mark.parametrize("bad", [0, -3, 2.5])
def test_max_steps_must_be_positive(bad: Any) -> None:
    with pytest.raises(ValueError, match="max_steps must be a whole number >= 1"):
        flowlib.Flow(max_steps=bad)
