"""Differential tests: random small graphs run on PocketFlow and on flowlib must look the same.

Each graph has up to five vertices (plain, batch and base nodes, sub-flows, batch flows; in the async
variant also async, async batch and async parallel batch nodes and async sub-flows), random actions
from a small set, random successors (loops included, bounded by a step counter in ``shared``),
random exec failures with retries, waits and fallbacks, and prep failures. Everything observable is
compared: the trace of calls (with params, ``cur_retry`` and attempt numbers), the shared store, the
return value, the exception, the warnings, the sleeps and the state left on the original nodes.

Failing items of an AsyncParallelBatchNode (and failing sub-flows of an AsyncParallelBatchFlow) are
kept out: flowlib cancels siblings there on purpose (see test_documented_differences.py).
"""

from __future__ import annotations

import asyncio
import copy
import time
from types import ModuleType
from typing import Any
from unittest import mock

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ._support import Outcome, SleepRecorder, capture, load, tick

ACTIONS = (None, "default", "a", "b", "", "zz")
EDGE_ACTIONS = ("default", "a", "b")
MAX_STEPS = 12
SYNC_KINDS = ("node", "batch", "base", "flow", "batchflow")
ASYNC_KINDS = ("node", "batch", "flow", "anode", "abatch", "apbatch", "aflow", "abatchflow", "apbatchflow")
# Kinds whose exec failures must never escape (see the module docstring).
NO_ESCAPE = ("apbatch", "apbatchflow")


@st.composite
def graphs(draw: st.DrawFn, kinds: tuple[str, ...]) -> dict[str, Any]:
    n = draw(st.integers(1, 5))
    vertices = []
    for _ in range(n):
        kind = draw(st.sampled_from(kinds))
        fallback = draw(st.sampled_from(("raise", "value", "other")))
        prep_fail = draw(st.sampled_from((None, None, None, None, None, 1, 2, 3)))
        if kind in NO_ESCAPE:
            fallback, prep_fail = "value", None
        edge_keys = draw(st.lists(st.sampled_from(EDGE_ACTIONS), unique=True, max_size=3))
        vertices.append(
            {
                "kind": kind,
                "max_retries": draw(st.integers(0, 3)),
                "wait": draw(st.sampled_from((0, 0.5, 2))),
                "fails": draw(st.sampled_from((0, 0, 0, 1, 2, 3))),
                "fallback": fallback,
                "prep_fail": prep_fail,
                "actions": draw(st.lists(st.sampled_from(ACTIONS), min_size=1, max_size=3)),
                "items": draw(st.one_of(st.none(), st.lists(st.integers(0, 4), max_size=3))),
                "batches": draw(st.lists(st.sampled_from(({"k": 1}, {"k": 2}, {"p": 9}, {})), max_size=2)),
                "edges": [(a, draw(st.integers(0, n - 1))) for a in edge_keys],
            }
        )
    params = draw(st.dictionaries(st.sampled_from(("p", "q")), st.integers(0, 3), max_size=2))
    return {"vertices": vertices, "params": params}


def _visit(shared: dict[str, Any], name: str) -> int:
    visits = shared.setdefault("visits", {})
    visits[name] = visits.get(name, 0) + 1
    shared["steps"] = shared.get("steps", 0) + 1
    return visits[name]


def _attempt(shared: dict[str, Any], key: str) -> int:
    attempts = shared.setdefault("attempts", {})
    attempts[key] = attempts.get(key, 0) + 1
    return attempts[key]


def _action(shared: dict[str, Any], spec: dict[str, Any], visit: int) -> Any:
    if shared["steps"] > MAX_STEPS:
        return "halt"
    return spec["actions"][(visit - 1) % len(spec["actions"])]


def _should_fail(spec: dict[str, Any], item: Any, visit: int, attempt: int) -> bool:
    if isinstance(item, int) and (item + visit) % 2:
        return False
    return attempt <= spec["fails"]


def _sync_vertex(pf: ModuleType, name: str, spec: dict[str, Any], base: str) -> Any:
    cls = getattr(pf, base)
    batch = base == "BatchNode"

    class Vertex(cls):
        def prep(self, shared):
            visit = _visit(shared, name)
            self.visit = visit
            shared["trace"].append((name, "prep", visit, _params(self), getattr(self, "mark", None)))
            self.mark = visit
            if spec["prep_fail"] == visit:
                raise LookupError(f"{name} prep failed on visit {visit}")
            return spec["items"] if batch else f"{name}.{visit}"

        def exec(self, item):
            attempt = _attempt(shared_of(self), f"{name}/{self.visit}/{item}")
            shared_of(self)["trace"].append((name, "exec", item, attempt, getattr(self, "cur_retry", "-")))
            if _should_fail(spec, item, self.visit, attempt):
                raise ValueError(f"{name} exec {item} attempt {attempt}")
            return f"{name}:{item}"

        def post(self, shared, prep_res, exec_res):
            shared["trace"].append((name, "post", prep_res, exec_res))
            return _action(shared, spec, self.visit)

    _add_sync_fallback(Vertex, name, spec)
    return Vertex(max_retries=spec["max_retries"], wait=spec["wait"]) if base != "BaseNode" else Vertex()


def shared_of(node: Any) -> dict[str, Any]:
    return node.params["__shared__"]


def _add_sync_fallback(cls: type, name: str, spec: dict[str, Any]) -> None:
    if spec["fallback"] == "value":

        def exec_fallback(self, prep_res, exc):
            shared_of(self)["trace"].append((name, "fallback", prep_res, str(exc)))
            return f"fb({exc})"

        cls.exec_fallback = exec_fallback
    elif spec["fallback"] == "other":

        def exec_fallback(self, prep_res, exc):
            raise KeyError(f"{name} gave up: {exc}")

        cls.exec_fallback = exec_fallback


def _async_vertex(pf: ModuleType, name: str, spec: dict[str, Any], base: str) -> Any:
    cls = getattr(pf, base)
    batch = base != "AsyncNode"

    class Vertex(cls):
        async def prep_async(self, shared):
            visit = _visit(shared, name)
            self.visit = visit
            shared["trace"].append((name, "prep", visit, _params(self), getattr(self, "mark", None)))
            self.mark = visit
            await tick()
            if spec["prep_fail"] == visit:
                raise LookupError(f"{name} prep failed on visit {visit}")
            return (spec["items"] or []) if batch else f"{name}.{visit}"

        async def exec_async(self, item):
            attempt = _attempt(shared_of(self), f"{name}/{self.visit}/{item}")
            shared_of(self)["trace"].append((name, "exec", item, attempt))
            await tick(item % 3 if isinstance(item, int) else 1)
            if _should_fail(spec, item, self.visit, attempt):
                raise ValueError(f"{name} exec {item} attempt {attempt}")
            return f"{name}:{item}"

        async def post_async(self, shared, prep_res, exec_res):
            shared["trace"].append((name, "post", prep_res, exec_res))
            await tick()
            return _action(shared, spec, self.visit)

    if spec["fallback"] == "value":

        async def exec_fallback_async(self, prep_res, exc):
            shared_of(self)["trace"].append((name, "fallback", prep_res, str(exc)))
            await tick()
            return f"fb({exc})"

        Vertex.exec_fallback_async = exec_fallback_async
    elif spec["fallback"] == "other":

        async def exec_fallback_async(self, prep_res, exc):
            raise KeyError(f"{name} gave up: {exc}")

        Vertex.exec_fallback_async = exec_fallback_async
    return Vertex(max_retries=spec["max_retries"], wait=spec["wait"])


def _params(node: Any) -> list[tuple[str, Any]]:
    return sorted((k, v) for k, v in node.params.items() if k != "__shared__")


def _batch_flow(pf: ModuleType, name: str, base: str, spec: dict[str, Any], start: Any) -> Any:
    cls = getattr(pf, base)
    if base == "BatchFlow":

        class Batches(cls):
            def prep(self, shared):
                shared["trace"].append((name, "batchflow-prep", _visit(shared, f"{name}-flow")))
                return [dict(b) for b in spec["batches"]]

            def post(self, shared, prep_res, exec_res):
                # BatchFlow returns None: without this bound a default self-loop would never end.
                return "halt" if shared["steps"] > MAX_STEPS else exec_res

    else:

        class Batches(cls):
            async def prep_async(self, shared):
                shared["trace"].append((name, "batchflow-prep", _visit(shared, f"{name}-flow")))
                await tick()
                return [dict(b) for b in spec["batches"]]

            async def post_async(self, shared, prep_res, exec_res):
                return "halt" if shared["steps"] > MAX_STEPS else exec_res

    return Batches(start=start)


def build(pf: ModuleType, graph: dict[str, Any], shared: dict[str, Any], use_async: bool) -> tuple[Any, list[Any]]:
    vertices = []
    for i, spec in enumerate(graph["vertices"]):
        name = f"n{i}"
        kind = spec["kind"]
        if kind in ("node", "batch", "base"):
            base = {"node": "Node", "batch": "BatchNode", "base": "BaseNode"}[kind]
            vertex = _sync_vertex(pf, name, spec, base)
        elif kind in ("anode", "abatch", "apbatch"):
            base = {"anode": "AsyncNode", "abatch": "AsyncBatchNode", "apbatch": "AsyncParallelBatchNode"}[kind]
            vertex = _async_vertex(pf, name, spec, base)
        elif kind == "flow":
            vertex = pf.Flow(start=_sync_vertex(pf, name, spec, "Node"))
        elif kind == "batchflow":
            vertex = _batch_flow(pf, name, "BatchFlow", spec, _sync_vertex(pf, name, spec, "Node"))
        elif kind == "aflow":
            vertex = pf.AsyncFlow(start=_async_vertex(pf, name, spec, "AsyncNode"))
        else:
            base = {"abatchflow": "AsyncBatchFlow", "apbatchflow": "AsyncParallelBatchFlow"}[kind]
            vertex = _batch_flow(pf, name, base, spec, _async_vertex(pf, name, spec, "AsyncNode"))
        vertices.append(vertex)
    for vertex, spec in zip(vertices, graph["vertices"], strict=True):
        for action, target in spec["edges"]:
            vertex.next(vertices[target], action)
    flow = (pf.AsyncFlow if use_async else pf.Flow)(start=vertices[0])
    flow.set_params({**graph["params"], "__shared__": shared})
    return flow, vertices


def _leftovers(vertices: list[Any]) -> list[Any]:
    """State left on the original node objects (nodes are copied before they run)."""
    out = []
    for v in vertices:
        inner = getattr(v, "start_node", None)
        for node in (v, inner) if inner is not None else (v,):
            out.append(
                (
                    hasattr(node, "cur_retry"),
                    getattr(node, "mark", None),
                    getattr(node, "visit", None),
                    _params(node),
                )
            )
    return out


def run_graph(pf: ModuleType, graph: dict[str, Any], use_async: bool) -> tuple[Outcome, Any, Any, Any]:
    shared: dict[str, Any] = {"trace": []}
    flow, vertices = build(pf, graph, shared, use_async)
    sleeps = SleepRecorder()
    with mock.patch.object(time, "sleep", sleeps.sync), mock.patch.object(asyncio, "sleep", sleeps.async_):
        if use_async:

            async def main():
                return await flow.run_async(shared)

            out = capture(lambda: asyncio.run(main()))
        else:
            out = capture(lambda: flow.run(shared))
    state = copy.deepcopy({k: v for k, v in shared.items()})
    return out, state, sleeps.calls, _leftovers(vertices)


def assert_same(graph: dict[str, Any], use_async: bool) -> None:
    ref_out, ref_shared, ref_sleeps, ref_left = run_graph(load("pocketflow"), graph, use_async)
    out, shared, sleeps, left = run_graph(load(OTHER), graph, use_async)
    assert ref_shared["trace"], "the reference run must have done something"
    event(f"error: {ref_out.error[0].__name__ if ref_out.error else None}")
    event(f"warned: {bool(ref_out.warnings)}")
    event(f"hit the step bound: {ref_shared.get('steps', 0) > MAX_STEPS}")
    event(f"slept: {bool(ref_sleeps)}")
    assert shared["trace"] == ref_shared["trace"]
    assert shared == ref_shared
    assert out.error == ref_out.error
    assert out.result == ref_out.result
    assert out.warnings == ref_out.warnings
    assert sleeps == ref_sleeps
    assert left == ref_left


# The implementation held against PocketFlow.
OTHER = "flowlib"


def common(max_examples: int) -> settings:
    return settings(
        max_examples=max_examples,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )


@common(300)
@given(graphs(SYNC_KINDS))
def test_random_sync_graphs_match_pocketflow(graph):
    assert_same(graph, use_async=False)


@common(200)
@given(graphs(ASYNC_KINDS))
def test_random_async_graphs_match_pocketflow(graph):
    assert_same(graph, use_async=True)
