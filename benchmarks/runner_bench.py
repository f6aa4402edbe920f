"""The runner's overhead over bare flowlib (issue 3's benchmark).

Cases, each the same work written twice -- as flowlib classes run bare (no observer), and as YAML
run by `execute_async` with everything `flowctl run` attaches: the status tracker, a JSON status
file rewritten about once a second, and the run log (written to /dev/null, so the terminal's speed
does not count):
  (a) one node looping to itself 10,000 times through an action, its hooks written with `def`
  (a') the same loop with `async def` hooks
  (b) a worker pool (64 at once) over 100,000 items
Target: runner time / flowlib time <= 1.3, as the median over 25 rounds, each timing every
variant back to back (timing.py says why paired; the ratio of best times is printed too). Two more
figures split the difference: flowlib observed the way the runner runs it -- an observer that does
nothing but asks for the runner's visit coalescing, plus a cancel token (`execute` always passes
one, so that SIGTERM and `spec.cancel` stop the run): what the engine itself spends on
observation, cancellation and yielding to the event loop -- and the YAML-built graph run bare,
without execute (what the loader's node classes and run kinds cost). So runner / YAML graph bare is
what status, logs and the status file add.

Fairness: both sides do the same user work and end with the same shared store, which is checked
before timing. Every YAML node is an async flowlib node, so the bare side is too: the loop's exec
returns None, which the YAML node stores under its name (its `output`), and post counts in
`shared["n"]` against the same bound; the pool's exec is `item + 1` over the same list, results
stored under the node's name. The bare side is a hand-written flowlib program, as short as flowlib
allows.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flowlib_runner.definition.build import build_flow
from flowlib_runner.definition.loader import FlowDefinition, load_text
from flowlib_runner.execution.execute import execute_async
from flowlib_runner.execution.logs import RunLogger, stream_sink
from flowlib_runner.execution.reporting import JsonFileReporter, StatusTracker
from flowlib_runner.execution.reporting.dispatch import Dispatch

import flowlib

from .timing import best, median_ratio, rounds, verdict

STEPS = 10_000
ITEMS = 100_000
PARALLEL = 64
TARGET = 1.3
ROUNDS = 25


def loop_yaml(prefix: str) -> str:
    return f"""
start: step
nodes:
  step:
    run:
      python: |
        {prefix}def exec(prep_res):
            return None

        {prefix}def post(shared, prep_res, exec_res):
            shared["n"] = shared.get("n", 0) + 1
            return "again" if shared["n"] < {STEPS} else "done"
    next: {{again: step, done: end}}
  end: {{}}   # YAML flows name every exit (an action without an edge fails the run)
"""


POOL_YAML = f"""
nodes:
  pool:
    type: worker_pool
    batch: {{items: xs, maxParallel: {PARALLEL}}}
    run: {{python: "item + 1"}}
"""


class LoopStep(flowlib.AsyncNode):
    async def exec_async(self, prep_res: Any) -> None:
        return None

    async def post_async(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> str:
        shared["step"] = exec_res
        shared["n"] = shared.get("n", 0) + 1
        return "again" if shared["n"] < STEPS else "done"


class Pool(flowlib.WorkerPoolBatchNode):
    async def prep_async(self, shared: dict[str, Any]) -> Any:
        return shared["xs"]

    async def exec_async(self, item: int) -> int:
        return item + 1

    async def post_async(self, shared: dict[str, Any], prep_res: Any, exec_res: Any) -> None:
        shared["pool"] = exec_res


def bare_loop() -> flowlib.AsyncFlow:
    step = LoopStep()
    step - "again" >> step
    return flowlib.AsyncFlow(step)


def bare_pool() -> flowlib.AsyncFlow:
    return flowlib.AsyncFlow(Pool(max_parallel=PARALLEL))


class NullObserver:
    """Does nothing with events, but asks for the same visit coalescing as the runner's observers."""

    def __init__(self) -> None:
        runners = Dispatch([StatusTracker(), RunLogger(lambda line: None)])  # what execute attaches
        self.visit_events = runners.visit_events
        self.visit_interval = runners.visit_interval

    def on_event(self, event: Any) -> None:
        return None


def definition(text: str) -> FlowDefinition:
    result = load_text(text)
    if result.definition is None:
        raise SystemExit("benchmark flow is invalid: " + "; ".join(map(str, result.problems)))
    return result.definition


def run_runner(defn: FlowDefinition, shared: dict[str, Any], status_file: Path, devnull: Any) -> dict[str, Any]:
    log = RunLogger(stream_sink(devnull))
    status = asyncio.run(
        execute_async(defn, input=shared, reporters=[JsonFileReporter(status_file)], log=log, outputs=["n"])
    )
    if status.phase != "Succeeded":
        raise SystemExit(f"benchmark run ended {status.phase}: {status.message}")
    return shared


def run_bare(make: Callable[[], flowlib.AsyncFlow], shared: dict[str, Any], **options: Any) -> dict[str, Any]:
    asyncio.run(make().run_async(shared, **options))
    return shared


def same_work(
    bare: Callable[[], flowlib.AsyncFlow], defn: FlowDefinition, shared: Callable[[], dict[str, Any]]
) -> None:
    """Both sides end with the same shared store (the runner's copy is read through a tracker-free run)."""
    mine = run_bare(bare, shared())
    theirs = shared()
    asyncio.run(build_flow(defn).run_async(theirs))
    if mine != theirs:
        raise SystemExit(f"the two sides do different work: {sorted(mine)} vs {sorted(theirs)}")


def main() -> int:
    missed = 0
    with tempfile.TemporaryDirectory() as tmp, open(os.devnull, "w") as devnull:
        status_file = Path(tmp) / "status.json"
        xs = list(range(ITEMS))
        cases: dict[str, tuple[Callable[[], flowlib.AsyncFlow], FlowDefinition, Callable[[], dict[str, Any]]]] = {
            f"(a) loop of {STEPS:,} steps, def hooks": (bare_loop, definition(loop_yaml("")), dict),
            f"(a') loop of {STEPS:,} steps, async def hooks": (bare_loop, definition(loop_yaml("async ")), dict),
            f"(b) worker pool, {ITEMS:,} items": (bare_pool, definition(POOL_YAML), lambda: {"xs": xs}),
        }
        for label, (bare, defn, shared) in cases.items():
            same_work(bare, defn, shared)
            timings = rounds(
                {
                    "flowlib": lambda bare=bare, shared=shared: run_bare(bare, shared()),
                    "flowlib+observer": lambda bare=bare, shared=shared: run_bare(
                        bare, shared(), observer=NullObserver(), cancel=flowlib.CancelToken()
                    ),
                    "yaml graph": lambda defn=defn, shared=shared: asyncio.run(build_flow(defn).run_async(shared())),
                    "runner": lambda defn=defn, shared=shared: run_runner(defn, shared(), status_file, devnull),
                },
                repeat=ROUNDS,
            )
            times = best(timings)
            ratio = median_ratio(timings, "runner", "flowlib")
            observed = median_ratio(timings, "runner", "flowlib+observer")
            reporting = median_ratio(timings, "runner", "yaml graph")
            ok = verdict(ratio, TARGET)
            missed += ok != "ok"
            print(
                f"{label}: flowlib {times['flowlib'] * 1000:.1f} ms, observed (no-op observer, cancel token) "
                f"{times['flowlib+observer'] * 1000:.1f} ms, "
                f"YAML graph bare {times['yaml graph'] * 1000:.1f} ms, "
                f"runner {times['runner'] * 1000:.1f} ms (best of {ROUNDS})\n"
                f"    runner/flowlib {ratio:.2f} (median of {ROUNDS} paired rounds; target <= {TARGET}: {ok}; "
                f"best/best {times['runner'] / times['flowlib']:.2f}); "
                f"runner/observed flowlib {observed:.2f}; runner/YAML graph bare {reporting:.2f}",
                flush=True,
            )
    return missed


if __name__ == "__main__":
    raise SystemExit(main())
