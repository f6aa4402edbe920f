"""The bookkeeping sync and async flows share: the same graph reports the same events either way.

Why these tests: an observed walk is one loop (``Flow._walk_observed``) for both kinds of flow, a
sync flow running it as a coroutine that never awaits, and ``run_root`` / ``run_root_async`` share
their context manager; so for sync nodes the event streams must be identical, down to coalescing,
failures, the loop guard and cancellation, and a sync walk must raise what its nodes raise.
"""

from __future__ import annotations

import ast
import asyncio
import warnings
from pathlib import Path
from typing import Any

import pytest

import flowlib
from flowlib.context import RUN_CONTEXT, current_path
from flowlib.events import EventRecorder


class Coalescing(EventRecorder):
    def __init__(self, visit_events: int | None) -> None:
        super().__init__()
        if visit_events is not None:
            self.visit_events = visit_events
            self.visit_interval = 3600.0


class Step(flowlib.Node):
    """Loops on itself ``shared["steps"]`` times, then goes on; ends, fails or cancels where ``shared`` says."""

    def post(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> str:
        shared["n"] = shared.get("n", 0) + 1
        if shared["n"] == shared.get("fail_at"):
            raise ValueError(f"visit {shared['n']}")
        if shared["n"] == shared.get("cancel_at"):
            shared["token"].cancel("enough")
        if shared["n"] == shared.get("done_at"):
            return "done"
        return "again" if shared["n"] % shared["steps"] else "on"


def graph(flow_class: type[Any], max_steps: int | None, inner_class: type[Any] | None = None) -> Any:
    a, b, end = Step(name="a"), Step(name="b"), flowlib.Node(name="end")
    a - "again" >> a
    a - "on" >> b
    b - "again" >> b
    b - "on" >> a
    a - "done" >> end
    inner = (inner_class or flow_class)(a, max_steps=max_steps, name="inner")
    outer_end = flowlib.Node(name="outer_end")
    inner - "on" >> outer_end
    return flow_class(inner, name="outer")


def stream(recorder: EventRecorder) -> list[tuple[Any, ...]]:
    """The events without their times and durations, which differ from run to run.

    A sub-flow's kind is its class name, ``Flow`` or ``AsyncFlow``: both count as ``Flow`` here.
    """
    out: list[tuple[Any, ...]] = []
    for event in recorder.events:
        fields = ("path", "visit", "visits", "action", "attempts", "reason")
        values = tuple(getattr(event, name, None) for name in fields)
        kind = getattr(event, "kind", None)
        error = getattr(event, "error", None)
        kind = kind.removeprefix("Async") if kind is not None else None
        out.append((type(event).__name__, *values, kind, None if error is None else repr(error)))
    return out


def outcome(call: Any) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PocketFlow's "Flow ends: ... not found"
        try:
            return f"returned {call()!r}"
        except BaseException as e:
            return f"raised {type(e).__name__}: {e}"


@pytest.mark.parametrize("visit_events", [None, 0, 1, 3])
@pytest.mark.parametrize(
    "shared",
    [
        {"steps": 4, "done_at": 17},
        {"steps": 5, "fail_at": 13},
        {"steps": 3, "fail_at": 2},
        {"steps": 6, "cancel_at": 9},
    ],
    ids=["ends", "fails in a loop", "fails early", "cancelled"],
)
@pytest.mark.parametrize("max_steps", [None, 11])
def test_sync_and_async_walks_report_the_same_events(
    visit_events: int | None, shared: dict[str, Any], max_steps: int | None
) -> None:
    def walk(flow_class: type[Any], inner_class: type[Any] | None = None) -> tuple[Any, ...]:
        recorder = Coalescing(visit_events)
        token = flowlib.CancelToken()
        store = {"fail_at": 40, **shared, "token": token}  # every walk ends, at visit 40 at the latest
        flow = graph(flow_class, max_steps, inner_class)
        if flow_class is flowlib.Flow:
            result = outcome(lambda: flow.run(store, observer=recorder, cancel=token))
        else:
            result = outcome(lambda: asyncio.run(flow.run_async(store, observer=recorder, cancel=token)))
        assert RUN_CONTEXT.get() is None and current_path() == ()
        return result, store["n"], stream(recorder)

    expected = walk(flowlib.Flow)
    assert walk(flowlib.AsyncFlow) == expected
    assert walk(flowlib.AsyncFlow, flowlib.Flow) == expected  # a sync walk inside a running event loop


@pytest.mark.parametrize("case", ["returns", "raises", "token already cancelled"])
def test_sync_and_async_runs_report_the_same_run_events(case: str) -> None:
    class Once(flowlib.Node):
        def post(self, shared: Any, prep_res: Any, exec_res: Any) -> str:
            if case == "raises":
                raise KeyError("boom")
            return "done"

    class AsyncOnce(flowlib.AsyncNode):
        async def post_async(self, shared: Any, prep_res: Any, exec_res: Any) -> str:
            return Once.post(self, shared, prep_res, exec_res)  # type: ignore[arg-type]

    def run(node: flowlib.BaseNode) -> tuple[Any, ...]:
        recorder = EventRecorder()
        token = flowlib.CancelToken()
        if case == "token already cancelled":
            token.cancel("before")
        if isinstance(node, flowlib.AsyncNode):
            result = outcome(lambda: asyncio.run(node.run_async({}, observer=recorder, cancel=token)))
        else:
            result = outcome(lambda: node.run({}, observer=recorder, cancel=token))
        assert RUN_CONTEXT.get() is None and current_path() == ()
        return result, [row[:2] for row in stream(recorder)]

    assert run(Once()) == run(AsyncOnce())


def test_the_context_module_imports_nothing_from_visits() -> None:
    """visits.py builds on context.py; an import back (even for typing) would be a cycle again."""
    source = Path(flowlib.__file__).with_name("context.py").read_text()
    imported = {node.module for node in ast.walk(ast.parse(source)) if isinstance(node, ast.ImportFrom)}
    assert "visits" not in imported and "flowlib.visits" not in imported


def test_visit_records_are_still_importable_from_visits() -> None:
    from flowlib.context import VisitRecord
    from flowlib.visits import VisitRecord as FromVisits  # type: ignore[attr-defined]

    assert FromVisits is VisitRecord


class Stops(flowlib.Node):
    """Raises what ``params["make"]`` makes: a StopIteration, or a RuntimeError caused by one."""

    def exec(self, prep_res: Any) -> None:
        raise self.params["make"]()


def runtime_error_from_stop() -> RuntimeError:
    error = RuntimeError("coroutine raised StopIteration")
    error.__cause__ = StopIteration("mine")
    return error


@pytest.mark.parametrize("nested", [False, True])
@pytest.mark.parametrize("make", [lambda: StopIteration("out of items"), runtime_error_from_stop])
def test_what_a_node_raises_leaves_a_sync_walk_as_raised(nested: bool, make: Any) -> None:
    """A sync walk is a coroutine run at once: PEP 479 must not turn a node's StopIteration into a
    RuntimeError, and a RuntimeError of the node's own must come out untouched."""
    flow: Any = flowlib.Flow(Stops())
    if nested:
        flow = flowlib.Flow(flow)
    flow.params = {"make": make}
    for options in ({}, {"observer": EventRecorder()}, {"cancel": flowlib.CancelToken()}):
        with pytest.raises((StopIteration, RuntimeError)) as raised:
            flow.run({}, **options)
        assert type(raised.value) is type(make())
        assert str(raised.value) == str(make())


def test_an_async_walk_turns_a_stop_iteration_into_a_runtime_error_as_before() -> None:
    flow = flowlib.AsyncFlow(Stops())
    flow.params = {"make": lambda: StopIteration("out of items")}
    for options in ({}, {"observer": EventRecorder()}):
        with pytest.raises(RuntimeError) as raised:
            asyncio.run(flow.run_async({}, **options))
        assert isinstance(raised.value.__cause__, StopIteration)
