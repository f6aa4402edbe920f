"""What the operator writes for a Flow is bounded, and validating it never stalls the event loop.

Before (issue 12, point 5): 1,000 dangling edges made a 6 MB ``status`` (etcd refuses objects over
about 1.5 MiB, so the Flow kept its old status), and a 5,000-node flow was validated for 41.6 s
inside the event loop, where every other Flow, run and probe waited. These run the operator's
Flow validation itself, with a stand-in API client (no cluster needed).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from flowlib_operator import resolve
from flowlib_operator.flows import FlowValidation

from flowlib_api.text import STATUS_MESSAGE_BYTES

STATUS_BYTES = 64 * 1024


class NoFlows:
    """The API client's one call validation makes: no other Flow exists in the namespace."""

    async def get_or_none(self, resource: Any, name: str, namespace: str) -> None:
        return None


class Events:
    def __init__(self) -> None:
        self.messages: list[str] = []

    async def record(self, body: Any, event_type: str, reason: str, message: str) -> None:
        self.messages.append(message)


def flow(nodes: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "flowlib.dev/v1alpha1",
        "kind": "Flow",
        "metadata": {"name": "big", "namespace": "ns", "generation": 1, "uid": "u"},
        "spec": {"nodes": nodes},
    }


def dangling(n: int) -> dict[str, Any]:
    """``n`` nodes, each with an edge to a node that does not exist, one in fifty a `type: flow`
    node naming a Flow that does not exist either (fewer than ``MAX_SUB_FLOWS`` in all)."""
    nodes: dict[str, Any] = {}
    for i in range(n):
        node: dict[str, Any] = {"next": {"default": f"missing{i}"}}
        if i % 50 == 1:
            node.update({"type": "flow", "flow": f"absent{i}"})
        nodes[f"n{i:04d}"] = node
    return nodes


def validate(body: dict[str, Any]) -> tuple[dict[str, Any], Events]:
    status: dict[str, Any] = {}
    events = Events()
    asyncio.run(FlowValidation(NoFlows(), events).validate(body, status))  # type: ignore[arg-type]
    return status, events


def test_the_status_of_a_flow_with_thousands_of_problems_stays_small() -> None:
    status, events = validate(flow(dangling(2_000)))
    assert len(json.dumps({"status": status}, ensure_ascii=False).encode()) < STATUS_BYTES
    (ready,) = status["conditions"]
    assert ready["status"] == "False"
    assert len(ready["message"].encode()) <= STATUS_MESSAGE_BYTES
    problems = status["problems"]
    assert problems[0].startswith("nodes.n0000.next.default: target 'missing0' does not exist; known nodes: n0000,")
    assert problems[-1].startswith("<document>: … and ")
    assert status["nodeCount"] == 2_000
    assert events.messages


def test_validation_runs_off_the_event_loop() -> None:
    """A ticker keeps ticking while a 5,000-node flow is validated."""

    async def scenario() -> tuple[int, dict[str, Any]]:
        ticks = 0
        done = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not done.is_set():
                ticks += 1
                await asyncio.sleep(0.01)

        status: dict[str, Any] = {}
        running = asyncio.create_task(ticker())
        await FlowValidation(NoFlows(), Events()).validate(flow(dangling(5_000)), status)  # type: ignore[arg-type]
        done.set()
        await running
        return ticks, status

    started = time.perf_counter()
    ticks, status = asyncio.run(scenario())
    seconds = time.perf_counter() - started
    assert status["conditions"][0]["status"] == "False"
    # Inside the loop, the ticker would have ticked once or twice; off it, every 10 ms or so.
    assert ticks >= min(20, seconds / 0.01 / 4), (ticks, seconds)


def test_a_validation_over_the_time_limit_is_a_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(resolve, "VALIDATION_SECONDS", 0.01)
    status, _ = validate(flow(dangling(5_000)))
    assert status["conditions"][0]["status"] == "False"
    assert status["problems"][0].startswith("<document>: validation took longer than 0.01 s and was stopped")


class EndlessFlows:
    """Every Flow exists and names one more: a definition reaching ever more sub-flows."""

    def __init__(self) -> None:
        self.reads = 0

    async def get_or_none(self, resource: Any, name: str, namespace: str) -> dict[str, Any]:
        self.reads += 1
        return {"spec": {"nodes": {"next": {"type": "flow", "flow": f"{name}x"}}}}


def test_the_sub_flows_one_definition_reaches_are_bounded() -> None:
    client = EndlessFlows()
    body = flow({"start": {"type": "flow", "flow": "f"}})
    status: dict[str, Any] = {}
    asyncio.run(FlowValidation(client, Events()).validate(body, status))  # type: ignore[arg-type]
    assert client.reads == resolve.MAX_SUB_FLOWS
    assert status["conditions"][0]["status"] == "False"
    assert f"reaches more than {resolve.MAX_SUB_FLOWS} Flows through its sub-flow nodes" in status["problems"][0]
