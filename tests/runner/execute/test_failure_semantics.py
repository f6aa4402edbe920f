"""Real work fails in parts: item error policies, isolated sub-flow items, strict endings, the
error edge that leaves a trace, and the ``finally`` node."""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest
from flowlib_runner.definition.loader import load_text
from flowlib_runner.execution.execute import execute_async
from flowlib_runner.execution.logs import RunLogger

from flowlib import CancelToken
from flowlib_api.runstatus import RunStatus
from tests.localhttp import item_pages


def _definition(text: str) -> Any:
    result = load_text(textwrap.dedent(text))
    assert result.definition is not None and not result.errors, [str(p) for p in result.problems]
    return result.definition


def _execute(text: str, **kwargs: Any) -> tuple[RunStatus, list[str]]:
    lines: list[str] = []
    status = asyncio.run(execute_async(_definition(text), log=RunLogger(lines.append, "text"), **kwargs))
    return status, lines


@pytest.fixture
def urls() -> Iterator[tuple[str, list[str]]]:
    """A local HTTP server: /items/N answers {"n": N}, except /items/404, which is a 404."""
    with item_pages() as served:
        yield served


def _pool(base: str, policy: str) -> str:
    return f"""
    nodes:
      fetch:
        type: worker_pool
        batch: {{items: ids, maxParallel: 16{policy}}}
        run: {{http: {{url: "{base}/items/{{{{ item }}}}"}}}}
        output: pages
    """


IDS = [*range(1000, 1300), 404, *range(1300, 1600)]  # 601 items, one of them a 404


def test_a_pool_with_one_404_and_continue_runs_every_item(urls: tuple[str, list[str]]) -> None:
    base, seen = urls
    status, _ = _execute(_pool(base, ", onItemError: continue"), input={"ids": IDS}, outputs=["pages", "pages_errors"])
    assert status.phase == "Succeeded", status.message
    assert len(seen) == 601
    pages = status.output["pages"]  # type: ignore[index]
    assert len(pages) == 601 and pages[300] is None
    assert [p["n"] for p in pages if p is not None] == [*range(1000, 1300), *range(1300, 1600)]
    (record,) = status.output["pages_errors"]  # type: ignore[index]
    assert record["index"] == 300 and record["item"] == 404 and record["attempts"] == 1
    assert "404" in record["error"]
    items = status.nodes["fetch"].items
    assert items is not None and (items.total, items.done, items.failed) == (601, 601, 1)  # done counts failed


def test_max_failures_zero_fails_after_every_other_item_keeping_the_results(urls: tuple[str, list[str]]) -> None:
    base, seen = urls
    text = _pool(base, ", onItemError: continue, maxFailures: 0, errorsOutput: failed")
    status, _ = _execute(text, input={"ids": IDS}, outputs=["pages", "failed"])
    assert status.phase == "Failed" and "1 of 601 items failed, more than batch.maxFailures (0)" in (
        status.message or ""
    )
    assert len(seen) == 601  # every other item still ran
    assert sum(p is not None for p in status.output["pages"]) == 600  # type: ignore[index]
    assert [r["index"] for r in status.output["failed"]] == [300]  # type: ignore[index]


def test_a_share_as_max_failures() -> None:
    text = """
    nodes:
      each:
        type: batch
        batch: {items: xs, onItemError: continue, maxFailures: "10%"}
        run:
          python: |
            def exec(x):
                if x % 10 == 0:
                    raise ValueError(x)
                return x
    """
    ok, _ = _execute(text, input={"xs": list(range(1, 101))})  # 10 failures of 100: 10% allowed
    assert ok.phase == "Succeeded"
    over, _ = _execute(text, input={"xs": list(range(100))})  # 0 fails too: 10 failures of 100
    assert over.phase == "Succeeded"
    worse, _ = _execute(text, input={"xs": list(range(50))})  # 5 of 50 is 10%: allowed
    assert worse.phase == "Succeeded"
    bad, _ = _execute(text, input={"xs": [0, 10, 20, 1, 2, 3, 4, 5, 6, 7]})  # 3 of 10: over 10%
    assert bad.phase == "Failed"


def test_fail_policy_keeps_the_finished_results(urls: tuple[str, list[str]]) -> None:
    base, _ = urls
    status, _ = _execute(_pool(base, ""), input={"ids": [1, 2, 404, 3]}, outputs=["pages"])
    assert status.phase == "Failed" and "404" in (status.message or "")
    kept = [p for p in status.output["pages"] if p is not None]  # type: ignore[index]
    assert {p["n"] for p in kept} <= {1, 2, 3} and kept  # what finished is kept, never thrown away


SUB = """
apiVersion: flowlib.dev/v1alpha1
kind: Flow
metadata: {name: main}
spec:
  nodes:
    each:
      type: flow
      flow: tag
      batch: {items: users, maxParallel: 5, itemOutput: tagged}
      output: tagged
---
apiVersion: flowlib.dev/v1alpha1
kind: Flow
metadata: {name: tag}
spec:
  nodes:
    remember:
      run:
        python: |
          import asyncio
          async def exec(prep_res):
              await asyncio.sleep(0.01 * (5 - int(params["user"][1:])))
              return params["user"].upper()
      output: current
      next: {default: use}
    use:
      run:
        python: |
          import asyncio
          def prep(shared):
              return shared["current"]
          async def exec(current):
              await asyncio.sleep(0.01)
              return current + "@eu"
      output: tagged
"""


def test_parallel_sub_flow_items_each_see_their_own_values() -> None:
    users = [{"user": f"u{i}"} for i in range(5)]
    status, _ = _execute(SUB, input={"users": users, "current": "parent"}, outputs=["tagged", "current"])
    assert status.phase == "Succeeded", status.message
    assert status.output == {"tagged": [f"U{i}@eu" for i in range(5)], "current": "parent"}  # nothing leaked


def test_an_action_without_an_edge_fails_naming_it_and_the_edges() -> None:
    text = """
    nodes:
      review: {run: {python: "'aproved'"}, action: "{{ result }}", next: {approved: ship, rejected: stop}}
      ship: {}
      stop: {}
    """
    status, _ = _execute(text)
    assert status.phase == "Failed"
    assert "UnknownAction" in (status.message or "") and "'aproved'" in (status.message or "")
    assert "approved, rejected" in (status.message or "")
    ends, _ = _execute("""nodes: {last: {run: {python: "'anything'"}}}""")
    assert ends.phase == "Succeeded"  # no edges at all: the flow ends whatever the node returns


@pytest.mark.parametrize("raised", ["SystemExit('down')", "KeyboardInterrupt()"])
def test_user_code_that_exits_fails_the_run(raised: str) -> None:
    text = f"""
    nodes:
      a:
        run:
          python: |
            def exec(p):
                raise {raised}
    """
    status, _ = _execute(text)
    assert status.phase == "Failed" and status.reason == "UserCodeExit"
    assert "a node must not end the runner" in (status.message or "")


def test_a_failure_taken_by_the_error_edge_is_logged_and_kept() -> None:
    text = """
    nodes:
      call: {run: {python: "int('x')"}, next: {error: recover, default: done}}
      recover: {}
      done: {}
    """
    status, lines = _execute(text)
    assert status.phase == "Succeeded"
    node = status.nodes["call"]
    assert node.handled is True and "invalid literal" in (node.message or "") and node.action == "error"
    assert any("WARNING" in line and "[call" in line and "taken by the error edge" in line for line in lines)


FINALLY = """
start: work
finally: cleanup
nodes:
  work:
    run:
      python: |
        import asyncio
        async def exec(p):
            if params.get("mode") == "fail":
                raise RuntimeError("broken")
            if params.get("mode") == "hang":
                await asyncio.sleep(60)
            return "worked"
  cleanup:
    run:
      python: |
        def prep(shared):
            return dict(shared["run"])
        def exec(run):
            if params.get("cleanup") == "fail":
                raise RuntimeError("cleanup broke")
            return run
"""


def test_finally_runs_after_success_and_failure_and_does_not_hide_the_result() -> None:
    ok, _ = _execute(FINALLY, outputs=["cleanup"])
    assert ok.phase == "Succeeded" and ok.output == {
        "cleanup": {"phase": "Succeeded", "error": None, "failedNode": None}
    }
    failed, _ = _execute(FINALLY, params={"mode": "fail"}, outputs=["cleanup"])
    assert failed.phase == "Failed" and "broken" in (failed.message or "")
    assert failed.output == {"cleanup": {"phase": "Failed", "error": "RuntimeError: broken", "failedNode": "work"}}
    both, _ = _execute(FINALLY, params={"mode": "fail", "cleanup": "fail"}, outputs=["run"])
    assert both.phase == "Failed" and "broken" in (both.message or "")  # the run's own error, not cleanup's
    assert both.output["run"]["finallyError"] == "RuntimeError: cleanup broke"  # type: ignore[index]
    assert both.nodes["cleanup"].phase == "Failed"  # reported
    quiet, _ = _execute(FINALLY, params={"cleanup": "fail"})
    assert quiet.phase == "Succeeded"


def test_finally_runs_on_cancel() -> None:
    token = CancelToken()

    async def main() -> RunStatus:
        asyncio.get_running_loop().call_later(0.2, token.cancel, "stop it")
        return await execute_async(_definition(FINALLY), params={"mode": "hang"}, outputs=["cleanup"], cancel=token)

    status = asyncio.run(main())
    assert status.phase == "Cancelled"
    assert status.output is not None and status.output["cleanup"]["phase"] == "Cancelled"
