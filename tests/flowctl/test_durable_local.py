"""Durable local runs: `flowctl run --store DIR`, a SIGKILL, `flowctl run --resume DIR`, `flowctl retry DIR`.

Each test runs flowctl as a user does (a separate process, killed with SIGKILL as a lost pod or a
closed laptop would be) and counts side effects in files the flow's nodes append to, so "ran once"
is a count, not a guess.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from flowlib_runner.execution.checkpoints.journal import MIN_WRITE_INTERVAL

from tests.flowctl.conftest import ROOT, flowctl, flowctl_command

KILL_WAIT = 60.0

MID_NODE = """\
apiVersion: flowlib.dev/v1alpha1
kind: Flow
metadata: {name: mid-node}
spec:
  nodes:
    step1:
      run: {shell: "echo step1 >> {{ params.dir }}/effects && echo done1"}
      output: one
      next: {default: step2}
    step2:
      run:
        python: |
          import os, time
          def exec(prep_res):
              with open(params['dir'] + '/effects', 'a') as f:
                  f.write('step2\\n')
              while not os.path.exists(params['dir'] + '/go'):
                  time.sleep(0.02)
              return 'done2'
      output: two
"""

POOL = """\
apiVersion: flowlib.dev/v1alpha1
kind: Flow
metadata: {name: pool}
spec:
  nodes:
    make:
      run: {python: "list(range(params['n']))"}
      output: items
      next: {default: work}
    work:
      type: worker_pool
      batch: {items: items, maxParallel: 8, onItemError: continue, maxFailures: 0}
      run:
        python: |
          import os, time
          def exec(item):
              with open(params['dir'] + '/items', 'a') as f:
                  f.write(f"{item}\\n")
              if params.get('slow') and not os.path.exists(params['dir'] + '/go'):
                  time.sleep(params['slow'])
              if item in params.get('bad', []) and not os.path.exists(params['dir'] + '/fixed'):
                  raise ValueError(f"bad item {item}")
              return item * 2
      output: doubled
      next: {default: total}
    total:
      run: {python: "sum(x for x in shared['doubled'] if x is not None)"}
      output: total
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "flow.yaml"
    path.write_text(text)
    return path


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def run_until(args: list[str], ready: Any, *, cwd: Path = ROOT) -> subprocess.Popen[str]:
    """Start flowctl, wait until ``ready()`` holds (or fail after KILL_WAIT s), then SIGKILL it."""
    process = subprocess.Popen(
        flowctl_command(*args), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + KILL_WAIT
    while not ready():
        if process.poll() is not None:
            out, err = process.communicate()
            pytest.fail(f"flowctl ended (exit {process.returncode}) before it could be killed:\n{out}\n{err}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail("the run never reached the point where the test kills it")
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=30)
    return process


def checkpointed_at(store: Path) -> str | None:
    """The node the store's latest checkpoint resumes at (None before the first checkpoint)."""
    from flowlib_runner.execution.checkpoints.codec import unpack

    try:
        meta = unpack((store / "checkpoint" / "meta").read_bytes())
    except (OSError, ValueError):
        return None
    path, node, _ = meta["position"][-1]
    return "/".join((*path, node or ""))


def status_of(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    try:
        status: dict[str, Any] = json.loads(done.stdout)
    except ValueError:
        pytest.fail(f"stdout is not JSON (exit {done.returncode}):\n{done.stdout}\nstderr:\n{done.stderr}")
    return status


def test_a_run_killed_mid_node_resumes_at_that_node_and_its_first_node_runs_once(tmp_path: Path) -> None:
    flow, store, effects = write(tmp_path, MID_NODE), tmp_path / "store", tmp_path / "effects"
    # Killed once step2 runs and the checkpoint before it is on disk: the moment a lost pod loses
    # only step2 (a kill before the write lands loses the run's start, as it must).
    run_until(
        ["run", flow, "--store", store, "-p", f"dir={tmp_path}"],
        lambda: lines(effects) == ["step1", "step2"] and checkpointed_at(store) == "step2",
    )
    (tmp_path / "go").touch()
    done = flowctl("run", "--json", "--resume", store)
    status = status_of(done)
    assert done.returncode == 0, done.stderr
    assert status["phase"] == "Succeeded"
    assert status["output"] == {"one": "done1", "two": "done2"}
    assert lines(effects) == ["step1", "step2", "step2"]  # step1's side effect happened once
    assert status["resumedFrom"] == "step2 (checkpoint of attempt 1)"
    assert status["nodes"]["step1"]["phase"] == "Succeeded"  # the first attempt's node states stay
    assert "resumed at step2" in done.stderr


def test_a_pool_killed_after_most_items_reruns_at_most_five_percent(tmp_path: Path) -> None:
    """The acceptance figure: 10,000 items, killed after about 9,000, at most 5% run twice."""
    flow, store, record = write(tmp_path, POOL), tmp_path / "store", tmp_path / "items"
    args = ["run", flow, "--store", store, "-p", "n=10000", "-p", f"dir={tmp_path}", "-p", "slow=0.001"]
    args += ["--output", "total"]
    run_until(args, lambda: record.exists() and record.stat().st_size > 0 and len(lines(record)) >= 9000)
    before = lines(record)
    done = flowctl("run", "--json", "--resume", store, "--output", "total")
    status = status_of(done)
    assert status["phase"] == "Succeeded", done.stderr
    assert status["output"] == {"total": sum(i * 2 for i in range(10000))}
    after = lines(record)
    again = len(after) - 10000
    print(f"killed after {len(before)} items; {again} ran twice; {status['itemsReused']} reused")
    assert sorted(set(map(int, after))) == list(range(10000))  # every item ran
    assert 0 <= again <= 500
    assert status["itemsReused"] >= len(before) - 500


def test_retry_of_a_pool_with_three_failed_items_reruns_exactly_those(tmp_path: Path) -> None:
    flow, store, record = write(tmp_path, POOL), tmp_path / "store", tmp_path / "items"
    bad = json.dumps([17, 500, 977])
    done = flowctl("run", "--json", flow, "--store", store, "-p", "n=1000", "-p", f"dir={tmp_path}", "-p", f"bad={bad}")
    status = status_of(done)
    assert done.returncode == 1 and status["phase"] == "Failed"
    assert "3 of 1000 items failed" in status["message"]
    assert len(lines(record)) == 1000
    (tmp_path / "fixed").touch()
    done = flowctl("retry", "--json", store)
    status = status_of(done)
    assert done.returncode == 0, done.stderr
    assert status["phase"] == "Succeeded"
    assert status["output"]["total"] == sum(i * 2 for i in range(1000))
    assert sorted(map(int, lines(record)[1000:])) == [17, 500, 977]  # those three and nothing else
    assert status["itemsReused"] == 997
    assert (tmp_path / "store-retry1" / "checkpoint" / "meta").exists()  # the retry's own store


def test_resubmit_runs_the_stored_definition_and_inputs_from_the_start(tmp_path: Path) -> None:
    flow, store, record = write(tmp_path, POOL), tmp_path / "store", tmp_path / "items"
    done = flowctl("run", "--json", flow, "--store", store, "-p", "n=10", "-p", f"dir={tmp_path}", "-p", "bad=[3]")
    assert status_of(done)["phase"] == "Failed"
    (tmp_path / "fixed").touch()
    done = flowctl("retry", "--json", "--resubmit", store)
    status = status_of(done)
    assert status["phase"] == "Succeeded", done.stderr
    assert len(lines(record)) == 20 and "resumedFrom" not in status


def test_a_store_refuses_a_second_run_and_a_finished_run_refuses_resume(tmp_path: Path) -> None:
    flow, store = write(tmp_path, POOL), tmp_path / "store"
    assert flowctl("run", flow, "--store", store, "-p", "n=3", "-p", f"dir={tmp_path}").returncode == 0
    again = flowctl("run", flow, "--store", store, "-p", "n=3", "-p", f"dir={tmp_path}")
    assert again.returncode == 2
    assert f"holds a run that ended Succeeded: retry it with `flowctl retry {store}`" in again.stderr
    resumed = flowctl("run", "--resume", store)
    assert resumed.returncode == 2 and "ended Succeeded" in resumed.stderr
    unfinished = flowctl("retry", tmp_path)
    assert unfinished.returncode == 2 and "holds no run" in unfinished.stderr


def test_a_value_checkpoints_cannot_hold_is_reported_once_and_the_run_goes_on(tmp_path: Path) -> None:
    flow = write(
        tmp_path,
        """\
apiVersion: flowlib.dev/v1alpha1
kind: Flow
metadata: {name: odd}
spec:
  maxSteps: 100
  nodes:
    make:
      run:
        python: |
          import datetime
          def exec(prep_res):
              return datetime.date(2026, 1, 1)
      output: when
      next: {default: loop}
    loop:
      run: {python: "shared.get('count', 0) + 1"}
      output: count
      action: "{{ 'again' if shared.count < 20 else 'done' }}"
      next: {again: loop, done: end}
    end:
      run: {python: "'end'"}
""",
    )
    done = flowctl("run", "--json", flow, "--store", tmp_path / "store", "--output", "count")
    status = status_of(done)
    assert status["phase"] == "Succeeded" and status["output"] == {"count": 20}
    warnings = [line for line in done.stderr.splitlines() if "checkpoints cannot hold" in line]
    assert len(warnings) == 2, done.stderr  # said when it happened, and again at the end of the run
    assert "shared['when'] holds a datetime.date" in warnings[0]
    retried = flowctl("retry", tmp_path / "store")
    assert retried.returncode == 2 and "kept no usable checkpoint; use --resubmit" in retried.stderr


def test_a_checkpoint_of_another_definition_is_refused(tmp_path: Path) -> None:
    flow, store, effects = write(tmp_path, MID_NODE), tmp_path / "store", tmp_path / "effects"
    run_until(
        ["run", flow, "--store", store, "-p", f"dir={tmp_path}"],
        lambda: len(lines(effects)) == 2 and checkpointed_at(store) == "step2",
    )
    changed = MID_NODE.replace("echo done1", "echo changed")
    stored = store / "run" / "definition.json"
    from flowlib_runner.definition.loader import load_text
    from flowlib_runner.execution.checkpoints.setup import definition_snapshot

    from flowlib_api.runnerpod import Snapshot

    definition = load_text(changed).definition
    assert definition is not None
    stored.write_bytes(definition_snapshot(definition).to_bytes())
    assert Snapshot.from_bytes(stored.read_bytes()).name == "mid-node"
    done = flowctl("run", "--resume", store)
    assert done.returncode == 2
    assert "was taken for another definition of the flow" in done.stderr


def test_a_killed_run_inside_a_sub_flow_resumes_inside_it(tmp_path: Path) -> None:
    flow = write(
        tmp_path,
        """\
apiVersion: flowlib.dev/v1alpha1
kind: Flow
metadata: {name: outer}
spec:
  nodes:
    before:
      run: {shell: "echo before >> {{ params.dir }}/effects; echo b"}
      output: b
      next: {default: inner}
    inner:
      type: flow
      flow: inner
      next: {default: after}
    after:
      run: {shell: "echo after >> {{ params.dir }}/effects; echo a"}
      output: a
---
apiVersion: flowlib.dev/v1alpha1
kind: Flow
metadata: {name: inner}
spec:
  nodes:
    i1:
      run: {shell: "echo i1 >> {{ params.dir }}/effects; echo x"}
      output: x
      next: {default: i2}
    i2:
      run:
        python: |
          import os, time
          def exec(prep_res):
              with open(params['dir'] + '/effects', 'a') as f:
                  f.write('i2\\n')
              while not os.path.exists(params['dir'] + '/go'):
                  time.sleep(0.02)
              return 'yy'
      output: why
""",
    )
    store, effects = tmp_path / "store", tmp_path / "effects"
    args = ["run", flow, "--flow", "outer", "--store", store, "-p", f"dir={tmp_path}"]
    run_until(args, lambda: lines(effects) == ["before", "i1", "i2"] and checkpointed_at(store) == "inner/i2")
    (tmp_path / "go").touch()
    done = flowctl("run", "--json", "--resume", store)
    status = status_of(done)
    assert status["phase"] == "Succeeded", done.stderr
    assert lines(effects) == ["before", "i1", "i2", "i2", "after"]
    assert status["resumedFrom"] == "inner/i2 (checkpoint of attempt 1)"
    assert status["output"] == {"b": "b", "x": "x", "why": "yy", "a": "a"}


def test_a_batch_sub_flow_reuses_its_finished_items_on_retry(tmp_path: Path) -> None:
    flow = write(
        tmp_path,
        """\
apiVersion: flowlib.dev/v1alpha1
kind: Flow
metadata: {name: fan}
spec:
  nodes:
    each:
      type: flow
      flow: one
      batch: {items: items, maxParallel: 4, onItemError: continue, maxFailures: 0}
      output: results
---
apiVersion: flowlib.dev/v1alpha1
kind: Flow
metadata: {name: one}
spec:
  nodes:
    work:
      run:
        python: |
          import os
          def exec(prep_res):
              with open(params['dir'] + '/items', 'a') as f:
                  f.write(f"{params['item']}\\n")
              if params['item'] == 7 and not os.path.exists(params['dir'] + '/fixed'):
                  raise ValueError('seven')
              return params['item'] + 100
      output: value
""",
    )
    store, record = tmp_path / "store", tmp_path / "items"
    items = json.dumps({"items": list(range(20))})
    done = flowctl("run", "--json", flow, "--flow", "fan", "--store", store, "-p", f"dir={tmp_path}", "--input", items)
    assert status_of(done)["phase"] == "Failed"
    (tmp_path / "fixed").touch()
    done = flowctl("retry", "--json", store)
    status = status_of(done)
    assert status["phase"] == "Succeeded", done.stderr
    assert lines(record)[20:] == ["7"]
    assert status["output"]["results"] == [{"value": i + 100} for i in range(20)]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX only")
def test_a_loop_resumes_with_its_step_count(tmp_path: Path) -> None:
    """A loop bounded by maxSteps keeps counting across the kill: the resumed run may not run
    more steps in all than the bound allows."""
    flow = write(
        tmp_path,
        """\
apiVersion: flowlib.dev/v1alpha1
kind: Flow
metadata: {name: loop}
spec:
  maxSteps: 400
  nodes:
    tick:
      run:
        python: |
          import os, time
          def prep(shared):
              return shared.get('count', 0)
          def exec(count):
              with open(params['dir'] + '/ticks', 'a') as f:
                  f.write('t\\n')
              time.sleep(0.005)
              return count + 1
      output: count
      action: "{{ 'again' if shared.count < 1000 else 'done' }}"
      next: {again: tick}
""",
    )
    store, ticks = tmp_path / "store", tmp_path / "ticks"
    run_until(["run", flow, "--store", store, "-p", f"dir={tmp_path}"], lambda: len(lines(ticks)) >= 200)
    done = flowctl("run", "--json", "--resume", store)
    status = status_of(done)
    assert status["phase"] == "Failed" and "MaxStepsExceeded" in status["message"]
    # the bound, plus the steps redone after the kill: those of the last write interval (a checkpoint
    # reaches the store at most MIN_WRITE_INTERVAL after it was taken) and a few more
    redone = int(MIN_WRITE_INTERVAL / 0.005) + 3
    assert 400 <= len(lines(ticks)) <= 400 + redone
