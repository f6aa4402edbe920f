"""Run every benchmark: ``python -m benchmarks`` (or ``make bench``). Exit 1 if a target is missed."""

from __future__ import annotations

import importlib
import sys

SCRIPTS = [
    "benchmarks.flowlib_bench",
    "benchmarks.loader_bench",
    "benchmarks.validation_bench",
    "benchmarks.runner_bench",
    "benchmarks.blocking_bench",
    "benchmarks.operator_bench",
    "benchmarks.operator_memory_bench",
    "benchmarks.operator_vs_kopf_bench",
    "benchmarks.checkpoint_bench",
    "benchmarks.runner_start_bench",
    "benchmarks.kubesim_gc_bench",
]


def main() -> int:
    missed = 0
    for name in SCRIPTS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:
                raise
            print(f"== {name}: not present yet", flush=True)
            continue
        print(f"== {name}", flush=True)
        missed += bool(module.main())
        print(flush=True)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
