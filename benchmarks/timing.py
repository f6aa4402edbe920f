"""Interleaved best-of-N timing shared by the benchmark scripts."""

from __future__ import annotations

import gc
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


def verdict(ratio: float, target: float) -> str:
    return "ok" if ratio <= target else "MISSED"
