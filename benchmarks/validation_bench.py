"""Validation of a 5,000-node flow: time, peak memory, and whether it is linear (issue 12, point 5).

Two generated 5,000-node flows, as the operator receives them (dicts, no YAML): the loader
benchmark's mix of node types (inline Python, shell templates, worker pools, action templates,
retries and timeouts), and the same with every edge pointing at a node that does not exist, the
review's worst case (41.6 s and +296 MB before, as every problem listed and compared every name).

Figures: the best time to validate each, and the peak of memory allocated meanwhile (tracemalloc,
measured in a separate pass since tracing slows the code). Targets: under 2 s and 100 MB. Then
linearity: the same work split into 100 flows of 50 nodes, timed in the same rounds (timing.py),
is the baseline; target: the 5,000-node flow takes at most 1.5x as long, as the median over rounds.
"""

from __future__ import annotations

import sys
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import yaml
from flowlib_runner.definition.loader import load_object

from .loader_bench import generate
from .timing import best, median_ratio, rounds

NODES = 5_000
SMALL = 50
TARGET_SECONDS = 2.0
TARGET_MB = 100.0
TARGET_RATIO = 1.5
ROUNDS = 3


def flow(nodes: int, *, dangling: bool = False) -> dict[str, Any]:
    """The generated manifest as a dict; ``dangling``: every ``next`` target renamed to a missing node."""
    manifest: dict[str, Any] = yaml.safe_load(generate(nodes))
    if dangling:
        for node in manifest["spec"]["nodes"].values():
            node["next"] = {action: f"missing-{target}" for action, target in node.get("next", {}).items()}
    return manifest


def validator(manifest: dict[str, Any], *, valid: bool) -> Callable[[], None]:
    def validate() -> None:
        result = load_object(manifest)
        if result.ok != valid:
            raise SystemExit(f"the generated flow should be {'valid' if valid else 'invalid'}: {result.problems[:3]}")

    return validate


def peak_mb(case: Callable[[], None]) -> float:
    tracemalloc.start()
    try:
        case()
        return tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()


def main(repeat: int = ROUNDS) -> int:
    missed = 0
    for label, dangling in (("mixed types", False), ("every edge dangling", True)):
        big = validator(flow(NODES, dangling=dangling), valid=not dangling)
        smalls = [validator(flow(SMALL, dangling=dangling), valid=not dangling) for _ in range(NODES // SMALL)]

        def baseline(smalls: list[Callable[[], None]] = smalls) -> None:
            for small in smalls:
                small()

        smalls[0]()  # the first load builds the loader (entry points) and Jinja2's environment
        timings = rounds({"big": big, "small": baseline}, repeat=repeat)
        fastest = best(timings)
        ratio = median_ratio(timings, "big", "small")
        cpu = time.process_time()
        big()
        cpu = time.process_time() - cpu  # the machine's other work left out: what validation itself costs
        memory = peak_mb(big)
        ok = fastest["big"] <= TARGET_SECONDS and memory <= TARGET_MB and ratio <= TARGET_RATIO
        missed += not ok
        print(
            f"{NODES} nodes, {label}: {fastest['big']:.2f} s ({cpu:.2f} s CPU; target < {TARGET_SECONDS} s), "
            f"peak {memory:.1f} MB allocated (target < {TARGET_MB:.0f} MB); {NODES // SMALL} flows x {SMALL} "
            f"nodes: {fastest['small']:.2f} s; ratio {ratio:.2f}x (target <= {TARGET_RATIO}x) "
            f"{'ok' if ok else 'MISSED'}",
            flush=True,
        )
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main(int(sys.argv[1]) if len(sys.argv) > 1 else ROUNDS))
