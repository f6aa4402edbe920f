"""What checkpoints cost (the durable-runs issue's benchmark).

Cases, each run by ``execute_async`` as ``flowctl run`` runs it (status tracker, run log to
/dev/null), once without a store and once checkpointing into a fresh directory store (what
``flowctl run --store DIR`` and a pvc store do; ``prepare`` as the runner calls it on a first attempt):
  (a) one node looping to itself 10,000 times (runner_bench's loop)
  (b) a worker pool (64 at once) over 100,000 items (runner_bench's pool)
Target: with store / without <= 1.15, the median over ROUNDS rounds of ratios taken within a round
(``timing.py`` says why paired). And: resuming from a checkpoint of a pool with 10,000 finished
items (reading it back: ``prepare`` on the killed run's store) takes < 1 s, best of 5.

Both sides must end with the same output, checked before timing.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from flowlib_runner.definition.loader import FlowDefinition
from flowlib_runner.execution.checkpoints.setup import prepare
from flowlib_runner.execution.execute import execute_async
from flowlib_runner.execution.logs import RunLogger, stream_sink
from flowlib_runner.flowctl.stores import opened_directory
from flowlib_runner.store.directory import DirectoryStore

from .runner_bench import ITEMS, POOL_YAML, STEPS, definition, loop_yaml
from .timing import best, median_ratio, rounds, verdict

TARGET = 1.15
RESUME_TARGET = 1.0
RESUME_ITEMS = 10_000
ROUNDS = 9


def run(
    defn: FlowDefinition, shared: dict[str, Any], store: Path | None, devnull: Any, *, expect: str = "Succeeded"
) -> dict[str, Any]:
    async def go() -> dict[str, Any]:
        options: dict[str, Any] = {}
        if store is not None:
            # a first attempt, as the runner and `flowctl run --store` prepare one: nothing to resume
            prepared = await prepare(DirectoryStore(store), defn, opener=opened_directory(store), resume_own=False)
            options = {"checkpointer": prepared.checkpointer, "resumed": prepared.resumed}
            if prepared.checkpointer.disabled:
                raise SystemExit(f"checkpoints stopped: {prepared.checkpointer.disabled}")
        status = await execute_async(defn, input=shared, log=RunLogger(stream_sink(devnull)), **options)
        if status.phase != expect:
            raise SystemExit(f"benchmark run ended {status.phase}: {status.message}")
        return status.output

    return asyncio.run(go())


def main() -> int:
    loop, pool = definition(loop_yaml("")), definition(POOL_YAML)
    xs = list(range(ITEMS))
    scratch = Path(tempfile.mkdtemp(prefix="checkpoint-bench-"))
    counter = iter(range(10**9))

    def fresh() -> Path:
        return scratch / f"store-{next(counter)}"

    missed = 0
    try:
        with open(os.devnull, "w") as devnull:
            cases = {
                "loop": lambda: run(loop, {}, None, devnull),
                "loop+store": lambda: run(loop, {}, fresh(), devnull),
                "pool": lambda: run(pool, {"xs": xs}, None, devnull),
                "pool+store": lambda: run(pool, {"xs": xs}, fresh(), devnull),
            }
            assert run(pool, {"xs": xs[:100]}, None, devnull) == run(pool, {"xs": xs[:100]}, fresh(), devnull)
            timings = rounds(cases, ROUNDS)
            fastest = best(timings)
            for name, label in (("loop", f"{STEPS:,}-step loop"), ("pool", f"{ITEMS:,}-item worker pool")):
                ratio = median_ratio(timings, f"{name}+store", name)
                print(
                    f"{label}: without store {fastest[name]:.3f}s, with store {fastest[name + '+store']:.3f}s "
                    f"(best); median paired ratio {ratio:.3f} (target <= {TARGET}) {verdict(ratio, TARGET)}"
                )
                missed += ratio > TARGET
            missed += resume_case(scratch, devnull)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return missed


def resume_case(scratch: Path, devnull: Any) -> bool:
    """A pool checkpointed with RESUME_ITEMS finished items, read back as a new pod would."""
    from flowlib_runner.execution.checkpoints.state import load_checkpoint

    last = RESUME_ITEMS - 1
    pool = definition(
        POOL_YAML.replace('"item + 1"', f'"item + 1 if item < {last} else 1 / 0"').replace(
            "maxParallel:", "onItemError: continue, maxFailures: 0, maxParallel:"
        )
    )
    store = scratch / "resume"
    status = run(pool, {"xs": list(range(RESUME_ITEMS))}, store, devnull, expect="Failed")
    del status
    # The failed run's checkpoint is at the pool, holding every item: what a new pod reads back.
    times = []
    for _ in range(5):
        started = time.perf_counter()
        checkpoint = asyncio.run(load_checkpoint(DirectoryStore(store), definition_digest=None, mode="resume"))
        times.append(time.perf_counter() - started)
        if checkpoint is None:
            raise SystemExit("the resume case's store holds no checkpoint")
    items = sum(len(v) for v in checkpoint.items.values())
    if items != RESUME_ITEMS:
        raise SystemExit(f"the resume case's checkpoint holds {items} items, not {RESUME_ITEMS}")
    fastest = min(times)
    print(
        f"resume of a {RESUME_ITEMS:,}-item checkpoint ({items:,} items and the shared store read back): "
        f"{fastest:.3f}s (best of 5; target < {RESUME_TARGET}s) {verdict(fastest, RESUME_TARGET)}"
    )
    return fastest >= RESUME_TARGET


if __name__ == "__main__":
    raise SystemExit(main())
