"""Blocking code in parallel nodes runs on worker threads (definition/factories/threads.py).

Concurrency is proven by events, never by timing: a barrier that opens only when every item is
blocked in it at once, a reporter that releases a blocked item only once it has published the
others' progress, a cancellation that ends a run whose items sleep 60 s within a test timeout far
below that. Every wait has a timeout, so a regression fails instead of hanging.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flowlib_runner.definition.build import build_flow
from flowlib_runner.execution.execute import execute_async
from flowlib_runner.execution.logs import RunLogger, stream_sink
from flowlib_runner.execution.reporting import PeriodicReporter, StatusTracker

from flowlib import CancelToken
from flowlib_api.runstatus import RunStatus

from . import blocking
from .definitions import load

ROOT = Path(__file__).resolve().parents[3]
HELPER = "tests.runner.execute.blocking"
TIMEOUT = 20.0  # far below the 60 s the blocked items sleep, far above what a working run needs


@pytest.fixture(autouse=True)
def _fresh_helper() -> Iterator[None]:
    blocking.reset()
    yield
    blocking.release.set()  # let anything still waiting go


def run(text: str, timeout: float = TIMEOUT, **options: Any) -> RunStatus:
    async def main() -> RunStatus:
        return await asyncio.wait_for(execute_async(load(text), **options), timeout)

    return asyncio.run(main())


def indent(code: str, by: int) -> str:
    return textwrap.indent(textwrap.dedent(code), " " * by)


AT_BARRIER = f"""
import time
from {HELPER.rpartition(".")[0]} import blocking

def exec(item):
    blocking.barrier.wait()  # opens only when every item is blocked here at once
    time.sleep(0.002 * (5 - item % 5))  # later items finish first
    return item * 10
"""


def barrier_flow(kind: str, parties: int) -> str:
    if kind == "call":
        return f"""
        nodes:
          pool:
            type: worker_pool
            batch: {{items: xs, maxParallel: {parties}}}
            run: {{call: "{HELPER}:at_barrier"}}
        """
    if kind == "sub-flow":
        return f"""\
        apiVersion: flowlib.dev/v1alpha1
        kind: Flow
        metadata: {{name: outer}}
        spec:
          nodes:
            pool:
              type: flow
              flow: inner
              batch: {{items: xs, maxParallel: {parties}, itemOutput: one}}
        ---
        apiVersion: flowlib.dev/v1alpha1
        kind: Flow
        metadata: {{name: inner}}
        spec:
          nodes:
            one:
              run:
                python: |
                  import time
                  from tests.runner.execute import blocking

                  def exec(prep_res):
                      blocking.barrier.wait()
                      time.sleep(0.002 * (5 - params["item"] % 5))
                      return params["item"] * 10
        """
    batch = f"{{items: xs, maxParallel: {parties}}}" if kind != "parallel_batch, no maxParallel" else "{items: xs}"
    node_type = kind.partition(",")[0]
    return f"""
        nodes:
          pool:
            type: {node_type}
            batch: {batch}
            run:
              python: |
{indent(AT_BARRIER, 16)}
        """


@pytest.mark.parametrize(
    "kind", ["worker_pool", "parallel_batch", "parallel_batch, no maxParallel", "sub-flow", "call"]
)
def test_blocking_items_run_at_once_and_results_keep_item_order(kind: str) -> None:
    parties = 6
    blocking.reset(parties)
    status = run(barrier_flow(kind, parties), input={"xs": list(range(parties))})
    assert status.phase == "Succeeded", status.message
    assert status.output is not None and status.output["pool"] == [i * 10 for i in range(parties)]


@pytest.mark.parametrize(
    ("node_type", "batch", "items", "bound"),
    [
        ("worker_pool", "{items: xs, maxParallel: 3}", 12, 3),
        ("parallel_batch", "{items: xs}", 40, 32),  # threads.DEFAULT_ITEM_THREADS
    ],
    ids=["worker_pool", "parallel_batch without maxParallel"],
)
def test_threaded_items_are_bounded(node_type: str, batch: str, items: int, bound: int) -> None:
    text = f"""
    nodes:
      pool:
        type: {node_type}
        batch: {batch}
        run:
          python: |
            import threading, time
            lock = threading.Lock()
            running = [0, 0]  # now, peak

            def exec(item):
                with lock:
                    running[0] += 1
                    running[1] = max(running)
                time.sleep(0.01)
                with lock:
                    running[0] -= 1
                return running[1]
    """
    status = run(text, input={"xs": list(range(items))})
    assert status.phase == "Succeeded", status.message
    assert status.output is not None and max(status.output["pool"]) <= bound  # concurrency: the barrier tests


FLAKY = """
from tests.runner.execute import blocking

def exec(item):
    n = blocking.attempt(item)
    if item == 3:
        raise ValueError(f"item 3 is broken (attempt {n})")
    if n == 1 and item % 2 == 0:
        raise ConnectionError("first attempt of an even item")
    return item
"""


def test_retries_and_item_errors_work_per_item_on_threads() -> None:
    text = f"""
    nodes:
      pool:
        type: worker_pool
        batch: {{items: xs, maxParallel: 4, onItemError: continue}}
        retry: {{maxRetries: 3}}
        run:
          python: |
{indent(FLAKY, 12)}
    """
    status = run(text, input={"xs": list(range(6))})
    assert status.phase == "Succeeded", status.message
    assert status.output is not None
    assert status.output["pool"] == [0, 1, 2, None, 4, 5]
    assert status.output["pool_errors"] == [
        {"index": 3, "item": 3, "error": "ValueError: item 3 is broken (attempt 3)", "attempts": 3}
    ]
    assert blocking.attempts == {0: 2, 1: 1, 2: 2, 3: 3, 4: 2, 5: 1}
    pool = status.nodes["pool"]
    assert pool.items is not None and (pool.items.done, pool.items.failed) == (6, 1)


def test_an_item_failure_fails_the_node_and_exec_fallback_runs_on_a_thread_too() -> None:
    failing = """
    nodes:
      pool:
        type: parallel_batch
        batch: {items: xs, maxParallel: 2}
        run:
          python: |
            def exec(item):
                if item == 1:
                    raise KeyError("no such record")
                return item
    """
    status = run(failing, input={"xs": [0, 1, 2]})
    assert status.phase == "Failed" and status.message is not None and "no such record" in status.message
    rescued = """
    nodes:
      pool:
        type: worker_pool
        batch: {items: xs}
        run:
          python: |
            import threading

            def exec(item):
                raise RuntimeError("down")

            def exec_fallback(item, exc):
                return [item, threading.current_thread() is threading.main_thread(), str(exc)]
    """
    status = run(rescued, input={"xs": [0, 1]})
    assert status.phase == "Succeeded", status.message
    assert status.output is not None and status.output["pool"] == [[0, False, "down"], [1, False, "down"]]


def test_a_timed_out_attempt_is_abandoned_and_retried() -> None:
    text = """
    nodes:
      pool:
        type: worker_pool
        batch: {items: xs}
        timeout: 0.2s
        retry: {maxRetries: 2}
        run:
          python: |
            from tests.runner.execute import blocking

            def exec(item):
                if blocking.attempt(item) == 1:
                    blocking.release.wait(blocking.WAIT)  # blocks until the test ends
                    return "first attempt"
                return "second attempt"
    """
    status = run(text, input={"xs": [0, 1]})
    assert status.phase == "Succeeded", status.message
    assert status.output is not None and status.output["pool"] == ["second attempt", "second attempt"]
    assert not blocking.release.is_set()  # the first attempts are still blocked: abandoned, not awaited


class ReleaseOnProgress(PeriodicReporter):
    """Releases the blocked item once it publishes a status where every other item is done."""

    def __init__(self, others: int) -> None:
        super().__init__(interval=0.02)
        self.others = others
        self.seen_while_blocked: RunStatus | None = None

    async def publish(self, status: RunStatus, *, final: bool) -> None:
        pool = status.nodes.get("pool")
        if not final and pool is not None and pool.items is not None and pool.items.done == self.others:
            if self.seen_while_blocked is None:
                self.seen_while_blocked = status
            blocking.release.set()


def test_status_and_log_go_on_while_an_item_blocks() -> None:
    text = """
    nodes:
      pool:
        type: worker_pool
        batch: {items: xs, maxParallel: 2}
        run:
          python: |
            from tests.runner.execute import blocking

            def exec(item):
                if item == 0:
                    return blocking.release.wait(blocking.WAIT)  # True only if released in time
                return True
    """
    reporter = ReleaseOnProgress(others=5)
    lines: list[str] = []
    log = RunLogger(lines.append, progress_interval=0.0)
    status = run(text, input={"xs": list(range(6))}, reporters=[reporter], log=log)
    assert status.phase == "Succeeded", status.message
    assert status.output is not None and status.output["pool"] == [True] * 6
    assert reporter.seen_while_blocked is not None and reporter.seen_while_blocked.phase == "Running"
    assert any("items 5/6 done" in line for line in lines), lines  # the log's progress, while item 0 blocked


SLEEPERS = {
    "worker_pool": f"""
        nodes:
          pool:
            type: worker_pool
            batch: {{items: xs, maxParallel: 4}}
            run: {{call: "{HELPER}:sleep_long"}}
    """,
    "parallel_batch": """
        nodes:
          pool:
            type: parallel_batch
            batch: {items: xs}
            run:
              python: |
                from tests.runner.execute import blocking
                def exec(item):
                    return blocking.sleep_long(item)
    """,
    "sub-flow": f"""\
        apiVersion: flowlib.dev/v1alpha1
        kind: Flow
        metadata: {{name: outer}}
        spec:
          nodes:
            pool:
              type: flow
              flow: inner
              batch: {{items: xs, maxParallel: 4}}
        ---
        apiVersion: flowlib.dev/v1alpha1
        kind: Flow
        metadata: {{name: inner}}
        spec:
          nodes:
            nap: {{run: {{call: "{HELPER}:sleep_long"}}}}
    """,
}


@pytest.mark.parametrize("kind", list(SLEEPERS))
def test_a_cancel_ends_the_run_while_items_sleep_in_c_calls(kind: str) -> None:
    async def main() -> RunStatus:
        token = CancelToken()
        task = asyncio.create_task(execute_async(load(SLEEPERS[kind]), input={"xs": list(range(8))}, cancel=token))
        assert await asyncio.to_thread(blocking.wait_started, 4), "the items never started"
        token.cancel("test says stop")
        return await asyncio.wait_for(task, 5)  # the items sleep 60 s: only abandoning them ends it

    status = asyncio.run(asyncio.wait_for(main(), TIMEOUT))
    assert status.phase == "Cancelled" and status.message == "cancelled: test says stop"
    assert status.nodes["pool"].phase == "Cancelled"


def test_flowctl_run_exits_at_once_after_sigint_with_items_blocked(tmp_path: Path) -> None:
    go = tmp_path / "started"
    flow = tmp_path / "sleepers.yaml"
    flow.write_text(
        textwrap.dedent(
            f"""
            nodes:
              pool:
                type: worker_pool
                batch: {{items: xs, maxParallel: 3}}
                params: {{go: "{go}"}}
                run:
                  python: |
                    import pathlib, time
                    def exec(item):
                        pathlib.Path(params["go"] + str(item)).touch()  # module-level params, in a thread
                        time.sleep(60)
            """
        )
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "flowlib_runner.flowctl", "run", "--json", "--input", '{"xs": [1, 2, 3, 4]}', flow],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        deadline = time.monotonic() + TIMEOUT
        while not all(Path(f"{go}{i}").exists() for i in (1, 2, 3)):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the items never started"
            time.sleep(0.02)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=15)  # the sleeps have 60 s to go
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 130, stderr
    assert json.loads(stdout)["phase"] == "Cancelled"


def test_print_in_a_threaded_hook_is_the_nodes_output_in_the_run_log() -> None:
    text = """\
    apiVersion: flowlib.dev/v1alpha1
    kind: Flow
    metadata: {name: outer}
    spec:
      nodes:
        pool:
          type: worker_pool
          batch: {items: xs, maxParallel: 2}
          run:
            python: |
              import logging, threading
              def exec(item):
                  print(f"item {item} on", threading.current_thread().name)
                  logging.getLogger("user").warning("warned about %s", item)
              def post(shared, prep_res, exec_res):
                  print("post on", threading.current_thread().name)
          next: {default: fan}
        fan:
          type: flow
          flow: inner
          batch: {items: xs, maxParallel: 2}
    ---
    apiVersion: flowlib.dev/v1alpha1
    kind: Flow
    metadata: {name: inner}
    spec:
      nodes:
        say:
          run:
            python: |
              def exec(prep_res):
                  print(f"inner {params['item']}", node.name)
    """
    from io import StringIO

    out = StringIO()
    status = run(text, input={"xs": [1, 2]}, log=RunLogger(stream_sink(out), "json"))
    assert status.phase == "Succeeded", status.message
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    user = {r["message"]: r for r in records if r.get("stream") == "stdout" or r.get("logger") == "user"}
    for item in (1, 2):
        printed = next(m for m in user if m.startswith(f"item {item} on "))
        assert user[printed]["node"] == "pool" and "flowlib-worker" in printed
        assert user[f"warned about {item}"]["node"] == "pool"
        assert user[f"inner {item} say"]["node"] == "fan/say"
    posted = next(m for m in user if m.startswith("post on "))
    assert user[posted]["node"] == "pool" and "flowlib-worker" in posted


def test_sequential_types_and_expressions_and_async_hooks_stay_on_the_loop_thread() -> None:
    main = threading.current_thread().name  # asyncio.run runs the loop in this thread
    text = f"""
    nodes:
      base:
        run:
          python: |
            import threading
            def prep(shared):
                return threading.current_thread().name
            def exec(prep_res):
                return [prep_res, threading.current_thread().name]
        next: {{default: seq}}
      seq:
        type: batch
        batch: {{items: xs}}
        run:
          python: |
            import threading
            def exec(item):
                return threading.current_thread().name
        next: {{default: seq_async}}
      seq_async:
        type: async_batch
        batch: {{items: xs}}
        run: {{call: "{HELPER}:thread_name"}}
        next: {{default: expression}}
      expression:
        type: worker_pool
        batch: {{items: xs}}
        run: {{python: "__import__('threading').current_thread().name"}}
        next: {{default: coroutine}}
      coroutine:
        type: parallel_batch
        batch: {{items: xs}}
        run:
          python: |
            import threading
            async def exec(item):
                return threading.current_thread().name
    """
    status = run(text, input={"xs": [1, 2]})
    assert status.phase == "Succeeded", status.message
    assert status.output is not None
    assert status.output["base"] == [main, main]
    for name in ("seq", "seq_async", "expression", "coroutine"):
        assert status.output[name] == [main, main], name


def test_sequential_nodes_keep_their_twins_and_parallel_ones_call_the_users_function() -> None:
    text = """
    nodes:
      seq:
        type: batch
        batch: {items: xs}
        run: {python: "def exec(item):\\n    return item\\n"}
        next: {default: pool}
      pool:
        type: worker_pool
        batch: {items: xs}
        run: {python: "def exec(item):\\n    return item\\n"}
    """
    flow = build_flow(load(text))
    seq: Any = flow.start_node
    pool: Any = seq.successors["default"]
    assert seq.exec_async is seq.code.direct_hooks["exec"]  # the coroutine twin, no wrapper
    assert pool.exec_async is not pool.code.direct_hooks["exec"] and pool.on_threads
    shared: dict[str, Any] = {"xs": [1, 2]}
    asyncio.run(flow.run_async(shared))
    assert shared["seq"] == shared["pool"] == [1, 2]


@pytest.mark.parametrize("raised", ["SystemExit('down')", "KeyboardInterrupt()"])
def test_user_code_that_exits_on_a_thread_fails_the_run_not_the_runner(raised: str) -> None:
    text = f"""
    nodes:
      pool:
        type: worker_pool
        batch: {{items: xs}}
        run:
          python: |
            def exec(item):
                if item == 1:
                    raise {raised}
                return item
    """
    status = run(text, input={"xs": [0, 1, 2]})
    assert status.phase == "Failed", status.message
    assert status.message is not None and status.message.startswith("UserCodeExit: user code raised ")
    assert "a node must not end the runner" in status.message
    assert status.reason == "UserCodeExit"  # the same reason as on the event loop


def test_a_sync_hook_returning_an_awaitable_is_awaited_on_the_loop() -> None:
    text = """
    nodes:
      pool:
        type: worker_pool
        batch: {items: xs}
        run:
          python: |
            import asyncio
            async def later(item):
                await asyncio.sleep(0)
                return item * 2
            def exec(item):
                return later(item)
    """
    status = run(text, input={"xs": [1, 2]})
    assert status.phase == "Succeeded" and status.output is not None and status.output["pool"] == [2, 4]


def test_the_tracker_sees_items_while_they_block() -> None:
    """A StatusTracker asked from the loop, mid-batch, sees the finished items of a blocked batch."""
    text = """
    nodes:
      pool:
        type: parallel_batch
        batch: {items: xs, maxParallel: 4}
        run:
          python: |
            from tests.runner.execute import blocking
            def exec(item):
                return item if item else blocking.release.wait(blocking.WAIT)
    """

    async def main() -> RunStatus:
        tracker = StatusTracker()
        task = asyncio.create_task(execute_async(load(text), input={"xs": list(range(4))}, tracker=tracker))
        deadline = time.monotonic() + TIMEOUT
        while True:
            pool = tracker.snapshot().nodes.get("pool")
            if pool is not None and pool.items is not None and pool.items.done == 3:
                break
            assert time.monotonic() < deadline and not task.done(), "no progress while item 0 blocked"
            await asyncio.sleep(0.01)
        blocking.release.set()
        return await asyncio.wait_for(task, TIMEOUT)

    status = asyncio.run(main())
    assert status.phase == "Succeeded" and status.output is not None and status.output["pool"] == [True, 1, 2, 3]
