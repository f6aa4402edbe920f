"""flowlib against PocketFlow on the issue's cases, plus the worker pool's memory bound.

Cases (targets are flowlib time / PocketFlow time):
  (a) a linear Flow of 10,000 trivial nodes ............................. <= 0.5
  (b) a BatchNode over 100,000 items .................................... <= 1.0
  (c) an AsyncParallelBatchNode over 100,000 items ...................... <= 1.0
  (d) one node looping to itself 100,000 times through an action ........ <= 0.5
  (e) flowlib's WorkerPoolBatchNode(max_parallel=64), 100,000 items, vs (c) <= 0.25
  memory: the worker pool over 1,000,000 generated items stays within 50 MB of the baseline RSS.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import sys
from types import ModuleType
from typing import Any

import pocketflow

import flowlib

from .timing import best_of, verdict

LINEAR_NODES = 10_000
ITEMS = 100_000
LOOPS = 100_000
POOL_ITEMS = 1_000_000


def linear_flow(mod: ModuleType) -> Any:
    class Step(mod.Node):  # type: ignore[name-defined, misc]
        def post(self, shared: dict[str, int], prep_res: Any, exec_res: Any) -> None:
            shared["n"] += 1

    nodes = [Step() for _ in range(LINEAR_NODES)]
    for a, b in itertools.pairwise(nodes):
        a >> b
    flow = mod.Flow(start=nodes[0])
    return lambda: flow.run({"n": 0})


def batch_node(mod: ModuleType) -> Any:
    class Double(mod.BatchNode):  # type: ignore[name-defined, misc]
        def prep(self, shared: Any) -> Any:
            return range(ITEMS)

        def exec(self, item: int) -> int:
            return item * 2

    node = Double()
    return lambda: node.run({})


def parallel_batch(mod: ModuleType, cls_name: str = "AsyncParallelBatchNode", **kwargs: Any) -> Any:
    class Double(getattr(mod, cls_name)):  # type: ignore[misc]
        async def prep_async(self, shared: Any) -> Any:
            return range(ITEMS)

        async def exec_async(self, item: int) -> int:
            return item * 2

    node = Double(**kwargs)
    return lambda: asyncio.run(node.run_async({}))


def self_loop(mod: ModuleType) -> Any:
    class Again(mod.Node):  # type: ignore[name-defined, misc]
        def post(self, shared: dict[str, int], prep_res: Any, exec_res: Any) -> str:
            shared["n"] += 1
            return "again" if shared["n"] < LOOPS else "done"

    again, end = Again(), mod.Node()
    again - "again" >> again
    again - "done" >> end
    flow = mod.Flow(start=again)
    return lambda: flow.run({"n": 0})


POOL_MEMORY_SCRIPT = """
import asyncio, json, sys
import flowlib

COUNT = int(sys.argv[1])

class Mod(flowlib.WorkerPoolBatchNode):
    async def prep_async(self, shared):
        return (i for i in range(COUNT))  # a generator: the pool must pull it lazily
    async def exec_async(self, item):
        return item % 7
    async def post_async(self, shared, prep_res, exec_res):
        shared["results"] = len(exec_res)

def status_mib(field):
    # /proc, not getrusage: ru_maxrss survives exec, so it would report the parent's peak.
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(field + " missing from /proc/self/status")

asyncio.run(asyncio.sleep(0))  # load the event loop machinery before taking the baseline
baseline = status_mib("VmRSS")
shared = {}
asyncio.run(Mod(max_parallel=64).run_async(shared))
assert shared["results"] == COUNT, shared
print(json.dumps({"baseline_mib": baseline, "peak_mib": status_mib("VmHWM")}))
"""


def pool_memory() -> dict[str, float]:
    """Peak RSS of a fresh interpreter running the pool over lazily generated items."""
    out = subprocess.run(
        [sys.executable, "-c", POOL_MEMORY_SCRIPT, str(POOL_ITEMS)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    figures: dict[str, float] = json.loads(out)
    return figures


def main() -> int:
    print(f"flowlib {flowlib.__version__} vs pocketflow (python {sys.version.split()[0]})")
    rows = [
        ("(a) linear flow, 10,000 nodes", linear_flow, 0.5),
        ("(b) BatchNode, 100,000 items", batch_node, 1.0),
        ("(c) AsyncParallelBatchNode, 100,000 items", parallel_batch, 1.0),
        ("(d) self-loop, 100,000 steps", self_loop, 0.5),
    ]
    missed = 0
    print(f"{'case':<48} {'flowlib':>10} {'pocketflow':>11} {'ratio':>7} {'target':>7}")
    pocket_parallel = 0.0
    for label, make, target in rows:
        times = best_of({"flowlib": make(flowlib), "pocketflow": make(pocketflow)})
        ratio = times["flowlib"] / times["pocketflow"]
        missed += ratio > target
        if label.startswith("(c)"):
            pocket_parallel = times["pocketflow"]
        print(
            f"{label:<48} {times['flowlib']:>9.4f}s {times['pocketflow']:>10.4f}s {ratio:>7.3f} "
            f"{'<= ' + str(target):>7} {verdict(ratio, target)}"
        )
    pool = best_of({"pool": parallel_batch(flowlib, "WorkerPoolBatchNode", max_parallel=64)})["pool"]
    ratio = pool / pocket_parallel
    missed += ratio > 0.25
    label = "(e) WorkerPoolBatchNode(64), 100,000 items vs (c)"
    print(f"{label:<48} {pool:>9.4f}s {pocket_parallel:>10.4f}s {ratio:>7.3f} {'<= 0.25':>7} {verdict(ratio, 0.25)}")
    mem = pool_memory()
    growth = mem["peak_mib"] - mem["baseline_mib"]
    missed += growth > 50
    print(
        f"{'memory: worker pool over 1,000,000 generated items':<48} baseline {mem['baseline_mib']:.1f} MiB, "
        f"peak {mem['peak_mib']:.1f} MiB, growth {growth:.1f} MiB (target <= 50) "
        f"{'ok' if growth <= 50 else 'MISSED'}"
    )
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
