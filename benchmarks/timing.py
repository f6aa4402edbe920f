"""Interleaved timing shared by the benchmark scripts: best-of-N, and paired ratios.

Why paired ratios as well: on a shared (virtual) machine a slow spell of a few seconds can slow
one side's every repetition but for one lucky one, and a ratio of two minima then swings by 50%.
Each round runs every case back to back, so a ratio taken within a round compares like with like;
the median over rounds ignores the rounds a burst of load split unevenly.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable


def best_of(cases: dict[str, Callable[[], object]], repeat: int = 5) -> dict[str, float]:
    """Run each case ``repeat`` times, alternating between cases, and keep each one's best time."""
    best = {name: float("inf") for name in cases}
    for _ in range(repeat):
        for name, case in cases.items():
            gc.collect()
            started = time.perf_counter()
            case()
            best[name] = min(best[name], time.perf_counter() - started)
    return best


def rounds(cases: dict[str, Callable[[], object]], repeat: int = 25) -> list[dict[str, float]]:
    """Run every case once per round, ``repeat`` rounds; each round's times in seconds.

    The order rotates from round to round, so no case always runs first or right after another.
    """
    timings: list[dict[str, float]] = []
    names = list(cases)
    for index in range(repeat):
        this_round: dict[str, float] = {}
        for name in names[index % len(names) :] + names[: index % len(names)]:
            case = cases[name]
            gc.collect()
            started = time.perf_counter()
            case()
            this_round[name] = time.perf_counter() - started
        timings.append(this_round)
    return timings


def best(timings: list[dict[str, float]]) -> dict[str, float]:
    """Each case's best time over the rounds."""
    return {name: min(r[name] for r in timings) for name in timings[0]}


def median_ratio(timings: list[dict[str, float]], numerator: str, denominator: str) -> float:
    """The median over rounds of ``numerator / denominator`` measured in the same round."""
    return statistics.median(r[numerator] / r[denominator] for r in timings)


def verdict(ratio: float, target: float) -> str:
    return "ok" if ratio <= target else "MISSED"
