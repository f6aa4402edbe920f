"""Blocking code in a worker pool runs on worker threads (issue "Real work fails in parts", point 3).

Case: 1,000 items whose plain `def exec` calls `time.sleep(0.01)` (a stand-in for `requests.get` or
a database driver: a C call that holds no event loop), in a `worker_pool` with `maxParallel: 50`,
run by `execute_async` with everything `flowctl run` attaches: the status tracker, a JSON status
file and the run log (to /dev/null). The ideal is 1,000 x 10 ms / 50 = 0.2 s; target: the run takes
at most 1.5x that, as the median over the rounds. Before worker threads the items ran one at a time
on the event loop (about 10 s, 50x).

For comparison, the same pool written with `async def exec` and `await asyncio.sleep(0.01)`, timed
in the same rounds (timing.py): what the thread hop costs against the event loop's own waiting.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
from pathlib import Path
from typing import Any

from flowlib_runner.definition.loader import FlowDefinition
from flowlib_runner.execution.execute import execute_async
from flowlib_runner.execution.logs import RunLogger, stream_sink
from flowlib_runner.execution.reporting import JsonFileReporter

from .runner_bench import definition
from .timing import best, median_ratio, rounds, verdict

ITEMS = 1_000
SLEEP = 0.01
PARALLEL = 50
IDEAL = ITEMS * SLEEP / PARALLEL
TARGET = 1.5
ROUNDS = 7


def pool_yaml(prefix: str, call: str) -> str:
    return f"""
nodes:
  pool:
    type: worker_pool
    batch: {{items: xs, maxParallel: {PARALLEL}}}
    run:
      python: |
        import asyncio, time
        {prefix}def exec(item):
            {call}({SLEEP})
            return item
"""


def run_runner(defn: FlowDefinition, status_file: Path, devnull: Any) -> None:
    xs = list(range(ITEMS))
    log = RunLogger(stream_sink(devnull))
    status = asyncio.run(
        execute_async(defn, input={"xs": xs}, reporters=[JsonFileReporter(status_file)], log=log, outputs=[])
    )
    if status.phase != "Succeeded":
        raise SystemExit(f"benchmark run ended {status.phase}: {status.message}")


def main() -> int:
    blocking = definition(pool_yaml("", "time.sleep"))
    awaiting = definition(pool_yaml("async ", "await asyncio.sleep"))
    with tempfile.TemporaryDirectory() as tmp, open(os.devnull, "w") as devnull:
        status_file = Path(tmp) / "status.json"
        timings = rounds(
            {
                "def + time.sleep": lambda: run_runner(blocking, status_file, devnull),
                "async def + asyncio.sleep": lambda: run_runner(awaiting, status_file, devnull),
            },
            repeat=ROUNDS,
        )
    times = best(timings)
    median = statistics.median(r["def + time.sleep"] for r in timings)
    ratio = median / IDEAL
    ok = verdict(ratio, TARGET)
    against_async = median_ratio(timings, "def + time.sleep", "async def + asyncio.sleep")
    print(
        f"worker pool, {ITEMS:,} items of time.sleep({SLEEP}) in a plain def exec, maxParallel {PARALLEL}: "
        f"{median * 1000:.0f} ms (median of {ROUNDS}; best {times['def + time.sleep'] * 1000:.0f} ms), "
        f"ideal {IDEAL * 1000:.0f} ms\n"
        f"    blocking/ideal {ratio:.2f} (target <= {TARGET}: {ok}); "
        f"against async def + asyncio.sleep in the same rounds {against_async:.2f} "
        f"(async: best {times['async def + asyncio.sleep'] * 1000:.0f} ms)",
        flush=True,
    )
    return 0 if ok == "ok" else 1


if __name__ == "__main__":
    raise SystemExit(main())
