"""flowctl's commands as a user meets them: exit codes, problems, graphs, logs, status file, signals."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.flowctl.conftest import EXAMPLES, ROOT, flowctl, flowctl_command, run_json

MALFORMED = """\
apiVersion: flowlib.dev/v1alpha1
kind: Flow
metadata: {name: broken}
spec:
  maxSteps: 0
  nodes:
    fetch:
      type: teleport
      run: {python: "def exec(x):\\n  return ("}
      next: {default: cnt}
    count:
      type: worker_pool
      batch: {items: docs, maxParallel: 0}
      retry: {maxRetries: 2, wait: soon}
      colour: blue
      next: {default: fetch}
"""


def test_malformed_flow_lists_every_problem_with_its_path(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(MALFORMED)
    done = flowctl("run", "--json", path)
    assert done.returncode == 2
    assert done.stdout == ""  # no status: nothing ran
    for where in (
        "maxSteps",
        "nodes.fetch.type",
        "nodes.fetch.run.python",
        "nodes.fetch.next.default",
        "nodes.count.batch.maxParallel",
        "nodes.count.retry.wait",
        "nodes.count.colour",
    ):
        assert f"{path}: {where}" in done.stderr, f"{where} missing from:\n{done.stderr}"
    assert "invalid flow definition" in done.stderr
    lint = flowctl("lint", path, EXAMPLES / "hello.yaml")
    assert lint.returncode == 2
    assert f"{path}: nodes.fetch.next.default" in lint.stdout
    assert f"{EXAMPLES / 'hello.yaml'}: ok" in lint.stdout


def test_lint_passes_every_example() -> None:
    done = flowctl("lint", *sorted(EXAMPLES.glob("*.yaml")))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count(": ok") == len(list(EXAMPLES.glob("*.yaml")))


def test_graph_mermaid_and_dot_show_actions() -> None:
    mermaid = flowctl("graph", EXAMPLES / "map-reduce.yaml")
    assert mermaid.returncode == 0
    lines = mermaid.stdout.splitlines()
    assert lines[0] == "flowchart TD"
    assert any("|big|" in line for line in lines) and any("|small|" in line for line in lines)
    assert '["count<br/>worker_pool · python · 4 at once"]' in mermaid.stdout
    dot = flowctl("graph", "--format", "dot", EXAMPLES / "retry-fallback.yaml")
    assert dot.returncode == 0 and dot.stdout.startswith('digraph "retry-fallback" {')
    assert '[label="error", style=dashed]' in dot.stdout
    sub = flowctl("graph", EXAMPLES / "subflow.yaml")
    assert 'subgraph c1["flow pricing"]' in sub.stdout and "|runs|" in sub.stdout


def test_bad_params_and_input_are_usage_errors(tmp_path: Path) -> None:
    assert flowctl("run", EXAMPLES / "hello.yaml", "-p", "novalue").returncode == 2
    assert flowctl("run", EXAMPLES / "hello.yaml", "--input", "[1, 2]").returncode == 2
    assert flowctl("run", EXAMPLES / "hello.yaml", "--input", f"@{tmp_path / 'missing.json'}").returncode == 2
    assert flowctl("run", tmp_path / "missing.yaml").returncode == 2


def test_input_from_a_yaml_file_and_json_params(tmp_path: Path) -> None:
    (tmp_path / "in.yaml").write_text("docs:\n  - one two three four five six\n")
    code, status, _ = run_json(
        EXAMPLES / "map-reduce.yaml", "--input", f"@{tmp_path / 'in.yaml'}", "-p", "threshold=10"
    )
    assert code == 0 and status["output"]["verdict"] == "small corpus: 6 words"


def test_plain_output_and_json_log_lines() -> None:
    done = flowctl("run", "--log-format", "json", EXAMPLES / "hello.yaml")
    assert done.returncode == 0
    lines = done.stdout.splitlines()
    records = [json.loads(line) for line in lines[:-2]]
    assert [r.get("event") for r in records] == [
        "FlowStarted", "NodeStarted", "NodeFinished", "NodeStarted", "NodeFinished", "FlowFinished",
    ]  # fmt: skip
    assert records[1] == {**records[1], "node": "greet", "attempt": 1, "level": "INFO"}
    assert lines[-2] == "Succeeded: nodes 2/2"
    assert json.loads(lines[-1].removeprefix("output: "))["shout"] == "HELLO, WORLD!"


def test_user_output_is_attributed_and_kept_off_the_json_stdout(tmp_path: Path) -> None:
    path = tmp_path / "talk.yaml"
    path.write_text(
        "nodes:\n"
        "  talk:\n"
        "    run:\n"
        "      python: |\n"
        "        import logging, sys\n"
        "        def exec(prep_res):\n"
        "            print('to stdout')\n"
        "            print('to stderr', file=sys.stderr)\n"
        "            logging.getLogger('mine').info('to logging')\n"
        "            return 1\n"
    )
    code, status, logs = run_json(path)
    assert code == 0 and status["output"] == {"talk": 1}
    assert "INFO    [talk#1] stdout: to stdout" in logs
    assert "WARNING [talk#1] stderr: to stderr" in logs
    assert "INFO    [talk#1] mine: to logging" in logs


def test_live_view_renders_node_states() -> None:
    done = flowctl("run", "--live", EXAMPLES / "map-reduce.yaml")
    assert done.returncode == 0
    assert "map-reduce" in done.stdout and "Succeeded" in done.stdout and "worker_pool" not in done.stderr
    assert "3/3" in done.stdout  # the batch's item counts next to its progress bar
    assert "started (" not in done.stdout  # info event lines give way to the live table


SLOW_POOL = """\
nodes:
  prepare:
    run: {python: "list(range(100000))"}
    output: items
    next: {default: pool}
  pool:
    type: worker_pool
    batch: {items: items, maxParallel: 4}
    run:
      python: |
        import asyncio
        async def exec(item):
            await asyncio.sleep(0.02)
            return item
"""


def start_run(flow: Path, status_file: Path, *, output: str) -> subprocess.Popen[str]:
    """`flowctl run --json` in the background, keeping its status in `status_file`."""
    return subprocess.Popen(
        flowctl_command("run", "--json", "--status-file", status_file, "--output", output, flow),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


def _wait_for_items(status_file: Path, process: subprocess.Popen[str]) -> dict[str, Any]:
    """Poll the status file until the pool has finished some items (the run is mid-batch)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        if status_file.exists():
            data: dict[str, Any] = json.loads(status_file.read_text())
            items = data.get("nodes", {}).get("pool", {}).get("items")
            if items and items["done"] >= 8:
                return data
        time.sleep(0.05)
    pytest.fail("the pool never got going")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_cancels_the_run_cleanly(tmp_path: Path, sig: signal.Signals) -> None:
    flow = tmp_path / "slow.yaml"
    flow.write_text(SLOW_POOL)
    status_file = tmp_path / "status.json"
    process = start_run(flow, status_file, output="nothing")
    running = _wait_for_items(status_file, process)
    assert running["phase"] == "Running" and running["currentNode"] == "pool"
    process.send_signal(sig)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    status = json.loads(stdout)
    assert status["phase"] == "Cancelled"
    assert status["message"] == f"cancelled: received {sig.name}"
    pool = status["nodes"]["pool"]
    assert pool["phase"] == "Cancelled" and pool["items"]["done"] < 100_000
    assert json.loads(status_file.read_text()) == status  # the file got the final status too
    assert f"{sig.name}: cancelling the run" in stderr and "run cancelled" in stderr


BLOCKING_LOOP = """\
start: step
nodes:
  step:
    run:
      python: |
        import time
        def exec(prep_res):
            time.sleep(0.005)  # sync code: it holds the event loop while it runs
        def post(shared, prep_res, exec_res):
            shared["n"] = shared.get("n", 0) + 1
            return "again"
    next: {again: step}
"""

BLOCKING_POOL = """\
nodes:
  prepare:
    run: {python: "list(range(100000))"}
    output: items
    next: {default: pool}
  pool:
    type: worker_pool
    batch: {items: items, maxParallel: 4}
    run: {python: "__import__('time').sleep(0.005) or item"}
"""


@pytest.mark.parametrize("flow_text", [BLOCKING_LOOP, BLOCKING_POOL], ids=["loop", "pool"])
def test_sync_code_that_never_awaits_still_gets_status_updates_and_sigterm(tmp_path: Path, flow_text: str) -> None:
    """A loop or batch of sync code never awaits; the runner still lets the event loop in, so the
    status file is rewritten while it runs and SIGTERM cancels it at once, not after 100,000 steps."""
    flow = tmp_path / "blocking.yaml"
    flow.write_text(flow_text)
    status_file = tmp_path / "status.json"
    process = start_run(flow, status_file, output="n")
    node = "step" if flow_text is BLOCKING_LOOP else "pool"
    seen: list[int] = []
    deadline = time.monotonic() + 60
    while len(set(seen)) < 3 and time.monotonic() < deadline:  # three different counts: live updates
        assert process.poll() is None, process.communicate()
        if status_file.exists():
            state = json.loads(status_file.read_text()).get("nodes", {}).get(node, {})
            count = state.get("visits", 0) if node == "step" else (state.get("items") or {}).get("done", 0)
            if count:
                seen.append(count)
        time.sleep(0.2)
    assert len(set(seen)) >= 3, f"the status file was not updated while the run went on: {seen}"
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr
    status = json.loads(stdout)
    assert status["phase"] == "Cancelled" and status["message"] == "cancelled: received SIGTERM"
    if node == "pool":  # stopped mid-batch; the loop is stopped between two visits of its node
        assert status["nodes"]["pool"]["phase"] == "Cancelled"
    assert status["nodes"][node].get("visits", 0) >= 1
