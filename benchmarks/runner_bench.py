"""The runner's overhead over bare flowlib (issue 3's benchmark).

Cases, each the same work written twice -- as flowlib classes run bare (no observer), and as YAML
run by `execute_async` with everything `flowctl run` attaches: the status tracker, a JSON status
file rewritten about once a second, and the run log (written to /dev/null, so the terminal's speed
does not count):
  (a) one node looping to itself 10,000 times through an action
  (b) a worker pool (64 at once) over 100,000 items
Target: runner time / flowlib time <= 1.3. Two more figures split the difference: flowlib observed
the way the runner runs it -- an observer that does nothing plus a cancel token (`execute` always
passes one, so that SIGTERM and `spec.cancel` stop the run between items): what flowlib itself
spends producing events and checking for cancellation -- and the YAML-built graph run bare, without
execute (what the loader's node classes and run kinds cost). So the last ratio, runner / YAML graph
bare, is what status, logs and the status file add, and runner / observed flowlib is everything the
runner adds on top of the engine's own observed path.

Fairness: both sides do the same user work -- the loop's exec returns None and its post counts in
`shared["n"]` against the same bound; the pool's exec is `item + 1` over the same list, results
stored under the node's name -- and the bare side is a hand-written flowlib program, as short as
flowlib allows.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path
from typing import Any

from flowlib_runner.execute import execute_async
from flowlib_runner.loader import FlowDefinition, build_flow, load_text
from flowlib_runner.logs import RunLogger, stream_sink
from flowlib_runner.reporting import JsonFileReporter

import flowlib

from .timing import best_of, verdict

STEPS = 10_000
ITEMS = 100_000
PARALLEL = 64
TARGET = 1.3

LOOP_YAML = f"""
start: step
nodes:
  step:
    run:
      python: |
        def exec(prep_res):
            return None

        def post(shared, prep_res, exec_res):
            shared["n"] = shared.get("n", 0) + 1
            return "again" if shared["n"] < {STEPS} else "done"
    next: {{again: step}}
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
    def on_event(self, event: Any) -> None:
        return None


def definition(text: str) -> FlowDefinition:
    result = load_text(text)
    if result.definition is None:
        raise SystemExit("benchmark flow is invalid: " + "; ".join(map(str, result.problems)))
    return result.definition


def run_runner(defn: FlowDefinition, shared: dict[str, Any], status_file: Path, devnull: Any) -> None:
    log = RunLogger(stream_sink(devnull))
    status = asyncio.run(
        execute_async(defn, input=shared, reporters=[JsonFileReporter(status_file)], log=log, outputs=["n"])
    )
    if status.phase != "Succeeded":
        raise SystemExit(f"benchmark run ended {status.phase}: {status.message}")


def main() -> int:
    missed = 0
    with tempfile.TemporaryDirectory() as tmp, open(os.devnull, "w") as devnull:
        status_file = Path(tmp) / "status.json"
        xs = list(range(ITEMS))
        cases = {
            f"(a) loop of {STEPS:,} steps": (bare_loop, definition(LOOP_YAML), dict[str, Any]),
            f"(b) worker pool, {ITEMS:,} items": (bare_pool, definition(POOL_YAML), lambda: {"xs": xs}),
        }
        for label, (bare, defn, shared) in cases.items():
            times = best_of(
                {
                    "flowlib": lambda bare=bare, shared=shared: asyncio.run(bare().run_async(shared())),
                    "flowlib+observer": lambda bare=bare, shared=shared: asyncio.run(
                        bare().run_async(shared(), observer=NullObserver(), cancel=flowlib.CancelToken())
                    ),
                    "yaml graph": lambda defn=defn, shared=shared: asyncio.run(build_flow(defn).run_async(shared())),
                    "runner": lambda defn=defn, shared=shared: run_runner(defn, shared(), status_file, devnull),
                }
            )
            ratio = times["runner"] / times["flowlib"]
            observed = times["runner"] / times["flowlib+observer"]
            reporting = times["runner"] / times["yaml graph"]
            ok = verdict(ratio, TARGET)
            missed += ok != "ok"
            print(
                f"{label}: flowlib {times['flowlib'] * 1000:.1f} ms, observed (no-op observer, cancel token) "
                f"{times['flowlib+observer'] * 1000:.1f} ms, "
                f"YAML graph bare {times['yaml graph'] * 1000:.1f} ms, "
                f"runner {times['runner'] * 1000:.1f} ms\n"
                f"    runner/flowlib {ratio:.2f} (target <= {TARGET}: {ok}); "
                f"runner/observed flowlib {observed:.2f}; runner/YAML graph bare {reporting:.2f}",
                flush=True,
            )
    return missed


if __name__ == "__main__":
    raise SystemExit(main())
