"""execute_async on definitions loaded from YAML: node types, branching, loops, retries, error edge,
cancellation, failures to build or report, and the status bound on big runs."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from flowlib_runner.execution.execute import ReportingFailed, execute_async
from flowlib_runner.execution.reporting import JsonFileReporter, PeriodicReporter, StatusTracker

from flowlib import CancelToken
from flowlib_api.runstatus import STATUS_LIMIT, RunStatus

from .definitions import load


def run(text: str, **options: Any) -> RunStatus:
    return asyncio.run(execute_async(load(text), **options))


@pytest.mark.parametrize("kind", ["batch", "async_batch", "parallel_batch", "worker_pool", "worker_pool_batch"])
def test_every_batch_type_maps_its_items(kind: str) -> None:
    status = run(
        f"""
nodes:
  double:
    type: {kind}
    batch: {{items: numbers{", maxParallel: 3" if "parallel" in kind or "pool" in kind else ""}}}
    run: {{python: "item * 2"}}
""",
        input={"numbers": [1, 2, 3, 4, 5]},
    )
    assert status.phase == "Succeeded"
    assert status.output is not None and status.output["double"] == [2, 4, 6, 8, 10]
    node = status.nodes["double"]
    assert node.kind == kind and node.items is not None and (node.items.total, node.items.done) == (5, 5)


def test_base_node_without_run_and_params_override() -> None:
    status = run(
        """
params: {who: a}
nodes:
  noop: {next: {default: say}}
  say: {run: {python: "params['who']"}}
""",
        params={"who": "b"},
    )
    assert status.phase == "Succeeded" and status.output == {"say": "b"}
    assert status.nodes["noop"].phase == "Succeeded" and status.progress == "2/2"


def test_sub_flow_batch_in_parallel() -> None:
    defn = load(
        """
apiVersion: flowlib.dev/v1alpha1
kind: Flow
metadata: {name: main}
spec:
  nodes:
    each:
      type: flow
      flow: square
      batch: {items: xs, maxParallel: 4}
---
apiVersion: flowlib.dev/v1alpha1
kind: Flow
metadata: {name: square}
spec:
  nodes:
    sq:
      run:
        python: |
          def exec(prep_res):
              return params["item"] ** 2
          def post(shared, prep_res, value):
              shared["square"] = value
"""
    )
    status = asyncio.run(execute_async(defn, input={"xs": [1, 2, 3]}, outputs=["each"]))
    # Each item writes to its own scope; the batch node's output lists what every item wrote.
    assert status.phase == "Succeeded"
    assert status.output == {"each": [{"sq": 1, "square": 1}, {"sq": 4, "square": 4}, {"sq": 9, "square": 9}]}
    assert status.nodes["each"].kind == "flow" and status.nodes["each/sq"].visits == 3


LOOP = """
maxSteps: 100
start: step
nodes:
  step:
    run: {python: "shared.get('n', 0) + 1"}
    output: "n"   # quoted: kubectl's YAML 1.1 would read a plain n as false
    action: "{{ 'again' if shared.n < params.until else 'done' }}"
    next: {again: step, done: end}
  end: {run: {python: "'counted to ' + str(shared['n'])"}}
"""


def test_branching_loop_until_done() -> None:
    status = run(LOOP, params={"until": 7})
    assert status.phase == "Succeeded" and status.output == {"n": 7, "end": "counted to 7"}
    assert status.nodes["step"].visits == 7 and status.nodes["step"].action == "done"


def test_loop_guard_fails_the_run() -> None:
    status = run(LOOP, params={"until": 1000})
    assert status.phase == "Failed" and "MaxStepsExceeded" in (status.message or "")


def test_retries_then_error_edge() -> None:
    status = run(
        """
nodes:
  shaky:
    run:
      python: |
        def exec(prep_res):
            raise ValueError("always")
    retry: {maxRetries: 3, wait: 1ms}
    next: {error: recover}
  recover: {run: {python: "shared['error']['type'] + ' in ' + shared['error']['node']"}}
"""
    )
    assert status.phase == "Succeeded"
    assert status.output is not None and status.output["recover"] == "ValueError in shaky"
    assert status.nodes["shaky"].attempts == 3 and status.nodes["shaky"].action == "error"
    # The failure the error edge took is the node's message (not the last retry note), and it says so.
    assert status.nodes["shaky"].message == "ValueError: always" and status.nodes["shaky"].handled is True


def test_failure_without_error_edge_fails_the_run_with_partial_output() -> None:
    status = run(
        """
nodes:
  first: {run: {python: "'kept'"}, next: {default: second}}
  second: {run: {python: "1 / 0"}}
"""
    )
    assert status.phase == "Failed" and status.message == "ZeroDivisionError: division by zero"
    assert status.output == {"first": "kept"}
    assert status.nodes["second"].phase == "Failed"


def test_build_failure_is_a_failed_run() -> None:
    status = run("nodes: {x: {run: {call: 'no_such_module_here:thing'}}}")
    assert status.phase == "Failed"
    assert (status.message or "").startswith("could not build flow")
    assert "no_such_module_here" in (status.message or "")


SLOW = """
nodes:
  pool:
    type: worker_pool
    batch: {items: xs, maxParallel: 4}
    run:
      python: |
        import asyncio
        async def exec(item):
            await asyncio.sleep(0.01)
            return item
"""


def test_cancel_token_ends_the_run_cancelled() -> None:
    async def main() -> RunStatus:
        token = CancelToken()
        tracker = StatusTracker()
        task = asyncio.create_task(
            execute_async(load(SLOW), input={"xs": list(range(100_000))}, cancel=token, tracker=tracker, outputs=[])
        )
        while tracker.version < 20:
            await asyncio.sleep(0.01)
        token.cancel("test says stop")
        return await task

    status = asyncio.run(main())
    assert status.phase == "Cancelled" and status.message == "cancelled: test says stop"
    pool = status.nodes["pool"]
    assert pool.phase == "Cancelled" and pool.items is not None and 0 < pool.items.done < 100_000
    assert status.output == {}


def test_outer_task_cancellation_publishes_then_propagates(tmp_path: Path) -> None:
    target = tmp_path / "status.json"

    async def main() -> None:
        tracker = StatusTracker()
        task = asyncio.create_task(
            execute_async(
                load(SLOW),
                input={"xs": list(range(100_000))},
                tracker=tracker,
                reporters=[JsonFileReporter(target)],
                outputs=[],
            )
        )
        while tracker.version < 20:
            await asyncio.sleep(0.01)
        task.cancel()
        await task

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(main())
    final = json.loads(target.read_text())
    assert final["phase"] == "Cancelled" and final["nodes"]["pool"]["phase"] == "Cancelled"


def test_reporter_losing_the_final_status_raises_with_the_status() -> None:
    class Down(PeriodicReporter):
        async def publish(self, status: RunStatus, *, final: bool) -> None:
            if final:
                raise ConnectionError("API server gone")

    with pytest.raises(ReportingFailed) as caught:
        run("nodes: {a: {run: {python: '1'}}}", reporters=[Down(interval=60)])
    assert caught.value.status.phase == "Succeeded"
    assert "ConnectionError: API server gone" in str(caught.value)


def test_huge_batch_and_output_stay_under_the_status_bound(tmp_path: Path) -> None:
    target = tmp_path / "status.json"
    status = run(
        """
nodes:
  pool:
    type: worker_pool
    batch: {items: xs, maxParallel: 64}
    run: {python: "str(item) * 3"}
""",
        input={"xs": list(range(100_000))},
        reporters=[JsonFileReporter(target, interval=0.05)],
    )
    assert status.phase == "Succeeded"
    size = len(target.read_bytes())
    assert size < STATUS_LIMIT
    assert status.nodes["pool"].items is not None and status.nodes["pool"].items.done == 100_000
    assert any("output value" in note for note in status.notes)


def test_input_top_level_is_not_mutated() -> None:
    given = {"xs": [1]}
    status = run('nodes: {a: {run: {python: "shared.update(xs=[2])"}}}', input=given)
    assert given == {"xs": [1]} and status.output == {"xs": [2], "a": None}


def test_inline_python_with_only_post() -> None:
    status = run(
        """
nodes:
  only_post:
    run:
      python: |
        def post(shared, prep_res, exec_res):
            shared["seen"] = True
"""
    )
    assert status.phase == "Succeeded" and status.output == {"seen": True}
