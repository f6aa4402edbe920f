"""Approval nodes without a cluster: the desk's decisions (given in order per node, timeouts, a
terminal's answer), where a run may stop, what validation says, and `flowctl run --store`/`approve DIR`."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from flowlib_runner.definition.factories.pause import ApprovalError, ApprovalRequest, SuspendRun
from flowlib_runner.execution.approvals import CLOCK_SKEW, Approvals, parse_decisions
from flowlib_runner.execution.execute import execute_async

from tests.flowctl.conftest import flowctl
from tests.runner.loader.helpers import definition, messages

LOOP = """
start: count
maxSteps: 50
nodes:
  count:
    run: {python: "shared.get('rounds', 0) + 1"}
    output: rounds
    next: {default: gate}
  gate:
    type: approval
    approval: {message: "round {{ shared.rounds }}: again?"}
    next: {again: count, done: end}
  end:
    run: {python: "'ended after ' + str(shared['rounds'])"}
"""


def request(*, timeout: float | None = None, edges: tuple[str, ...] = ("yes", "no")) -> ApprovalRequest:
    return ApprovalRequest(("gate",), "ok?", tuple(e for e in edges if e != "timeout"), timeout, edges)


def test_given_decisions_are_taken_in_order_per_node() -> None:
    desk = Approvals(
        [{"node": "gate", "action": "yes"}, {"node": "other", "action": "x"}, {"node": "gate", "action": "no"}]
    )
    assert desk.decide(request()) == "yes"
    assert desk.decide(request()) == "no"
    assert desk.used == {"gate": 2}
    with pytest.raises(SuspendRun) as stopped:
        desk.decide(request())
    assert desk.status() is not None
    assert desk.status()["taken"] == 2  # type: ignore[index]
    assert stopped.value.deadline is None


def test_an_action_without_an_edge_fails_the_node_naming_the_actions() -> None:
    with pytest.raises(ApprovalError, match=r"no edge for; its actions: yes, no") as failed:
        Approvals([{"node": "gate", "action": "maybe"}]).decide(request())
    assert "'maybe'" in str(failed.value)


def test_past_its_timeout_the_node_takes_its_timeout_edge_or_fails() -> None:
    now = [1000.0]
    waited = {"node": "gate", "since": 0.0}
    desk = Approvals(waiting=waited, clock=lambda: now[0])
    assert desk.decide(request(timeout=10.0, edges=("yes", "timeout"))) == "timeout"
    with pytest.raises(ApprovalError, match="no decision within its timeout"):
        Approvals(waiting=waited, clock=lambda: now[0]).decide(request(timeout=10.0))
    # Within the deadline (minus the clock margin) it stops again, keeping when it first stopped.
    early = Approvals(waiting={"node": "gate", "since": 995.0}, clock=lambda: now[0])
    with pytest.raises(SuspendRun) as stopped:
        early.decide(request(timeout=5.0 + CLOCK_SKEW + 1))
    assert stopped.value.since == 995.0


def test_a_run_that_cannot_stop_fails_the_node_saying_how_to_decide() -> None:
    desk = Approvals(can_suspend=False, hint="give --approve")
    with pytest.raises(ApprovalError, match="cannot wait for one: give --approve"):
        desk.decide(request())


def test_a_terminal_answer_is_checked_against_the_edges() -> None:
    assert Approvals(ask=lambda r: "no").decide(request()) == "no"
    with pytest.raises(ApprovalError):
        Approvals(ask=lambda r: "nope").decide(request())


def test_parse_decisions() -> None:
    assert parse_decisions(["gate=yes", "other"]) == [
        {"node": "gate", "action": "yes", "by": "--approve"},
        {"node": "other", "action": "default", "by": "--approve"},
    ]
    with pytest.raises(ValueError, match="NODE=ACTION"):
        parse_decisions(["=yes"])


def test_a_looping_approval_takes_one_decision_per_visit() -> None:
    given: list[dict[str, Any]] = [{"node": "gate", "action": a} for a in ("again", "again", "done")]
    status = asyncio.run(execute_async(definition(LOOP), approvals=Approvals(given, can_suspend=False)))
    assert status.phase == "Succeeded", status.message
    assert status.output is not None
    assert status.output["end"] == "ended after 3"


def test_without_a_store_or_decision_the_node_fails_and_inside_a_batch_item_it_cannot_wait() -> None:
    status = asyncio.run(execute_async(definition(LOOP)))
    assert status.phase == "Failed"
    assert "approval node gate needs a decision" in (status.message or "")
    given = [{"node": "gate", "action": "ok"}]
    lib = definition(
        """
        apiVersion: flowlib.dev/v1alpha1
        kind: Flow
        metadata: {name: main}
        spec:
          nodes:
            items: {run: {python: "[1, 2]"}, output: items, next: {default: each}}
            each: {type: flow, flow: inner, batch: {items: items}}
        ---
        apiVersion: flowlib.dev/v1alpha1
        kind: Flow
        metadata: {name: inner}
        spec:
          nodes:
            gate: {type: approval, next: {ok: done}}
            done: {run: {python: "1"}}
        """,
        flow="main",
    )
    status = asyncio.run(execute_async(lib, approvals=Approvals(given)))
    assert status.phase == "Failed"
    assert "cannot wait here: inside a batch item" in (status.message or "")


def test_validation_of_approval_nodes() -> None:
    found = messages(
        """
        nodes:
          gate:
            type: approval
            run: {python: "1"}
            next: {timeout: end}
          lonely: {type: approval}
          end: {run: {python: "1"}}
        """
    )
    text = "\n".join(found)
    assert "nodes.gate.run: not supported on type approval" in text
    assert "nodes.gate.next.timeout: warning: the timeout edge is taken when the node's timeout passes" in text
    assert "nodes.lonely.next: an approval node needs at least one edge" in text


def test_flowctl_run_store_suspends_and_approve_dir_resumes(tmp_path: Path) -> None:
    flow = tmp_path / "loop.yaml"
    flow.write_text(LOOP)
    store = tmp_path / "st"
    first = flowctl("run", flow, "--store", store)
    assert first.returncode == 4, first.stderr
    assert "Suspended" in first.stdout
    assert f"flowctl run --resume {store} --approve gate=again|done" in first.stderr
    second = flowctl("approve", store, "--action", "again")
    assert second.returncode == 4, second.stderr  # round 2 stops at the gate again
    third = flowctl("run", "--resume", store, "--approve", "gate=done", "--json")
    assert third.returncode == 0, third.stderr
    assert '"end": "ended after 2"' in third.stdout
