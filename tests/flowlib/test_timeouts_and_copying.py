"""Per-attempt timeouts of async nodes, and the fast node copy's equivalence with copy.copy."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest

import flowlib
from flowlib.copying import shallow_copy


class Slow(flowlib.AsyncNode):
    def __init__(self, durations: list[float], **kw: Any) -> None:
        super().__init__(**kw)
        self.durations = durations

    async def exec_async(self, prep_res: Any) -> str:
        await asyncio.sleep(self.durations[self.cur_retry])
        return "done"

    async def post_async(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> None:
        shared["result"] = exec_res


def test_a_timed_out_attempt_is_retried() -> None:
    shared: dict[str, Any] = {}
    asyncio.run(Slow([10, 0], max_retries=2, timeout=0.02, name="slow").run_async(shared))
    assert shared == {"result": "done"}


def test_the_last_timeout_reaches_the_fallback_as_node_timeout() -> None:
    with pytest.raises(flowlib.NodeTimeout, match=r"node 'slow': exec attempt timed out after 0.02s"):
        asyncio.run(Slow([10, 10], max_retries=2, timeout=0.02, name="slow").run_async({}))


def test_user_timeout_errors_are_not_relabelled() -> None:
    class Own(flowlib.AsyncNode):
        async def exec_async(self, prep_res: Any) -> None:
            raise TimeoutError("the remote service timed out")

    with pytest.raises(TimeoutError, match="the remote service") as info:
        asyncio.run(Own(timeout=5).run_async({}))
    assert not isinstance(info.value, flowlib.NodeTimeout)


def test_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="timeout must be a positive number"):
        flowlib.AsyncNode(timeout=0)


class Plain:
    def __init__(self) -> None:
        self.items = [1]
        self.value = "x"


class Slotted:
    __slots__ = ("a",)

    def __init__(self) -> None:
        self.a = [1]


class CustomCopy:
    def __init__(self) -> None:
        self.copied = False

    def __copy__(self) -> CustomCopy:
        new = CustomCopy()
        new.copied = True
        return new


class CustomState:
    def __init__(self) -> None:
        self.secret = "s"

    def __getstate__(self) -> dict[str, Any]:
        return {"secret": "redacted"}


@pytest.mark.parametrize("make", [Plain, Slotted, CustomCopy, CustomState, flowlib.Node, flowlib.Flow])
def test_shallow_copy_matches_copy_copy(make: Any) -> None:
    original = make()
    ours, theirs = shallow_copy(original), copy.copy(original)
    assert type(ours) is type(theirs)
    assert ours is not original
    for name in getattr(theirs, "__dict__", {}) or {}:
        assert getattr(ours, name) == getattr(theirs, name)
        assert getattr(ours, name) is getattr(theirs, name) or name in ("copied", "secret")
    for name in getattr(type(theirs), "__slots__", ()):
        assert getattr(ours, name) is getattr(theirs, name)


def test_node_state_set_during_a_visit_stays_on_the_copy() -> None:
    class Stateful(flowlib.Node):
        def prep(self, shared: Any) -> None:
            self.touched = True

    node = Stateful()
    flowlib.Flow(start=node).run({})
    assert not hasattr(node, "touched")


def test_node_classes_made_on_the_fly_are_not_kept_alive_by_the_copy_cache() -> None:
    import gc
    import weakref

    from flowlib.copying import PLAIN_CLASSES, PLAIN_CLASSES_LIMIT

    made: list[weakref.ref[type]] = []
    for n in range(PLAIN_CLASSES_LIMIT * 2):
        cls = type(f"Made{n}", (flowlib.Node,), {})
        made.append(weakref.ref(cls))
        shallow_copy(cls())  # caches whether the class may be copied the fast way
        del cls
    gc.collect()
    assert len(PLAIN_CLASSES) <= PLAIN_CLASSES_LIMIT
    assert sum(ref() is not None for ref in made) <= PLAIN_CLASSES_LIMIT  # the rest were freed
