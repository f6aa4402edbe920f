"""The simulator's garbage collector under a burst: N owners with 2 dependents each, then all deleted.

Issue 14 (point 4): a collector that rescans the whole store on every change is quadratic, and a
burst of 1,000 runs never finished. This creates N ConfigMap owners, each with 2 dependent
ConfigMaps, one owner per call on the simulator's loop, then deletes the owners one per call and
waits until every dependent has been collected. The calls are ``--pace`` seconds apart (longer than
the collector's 5 ms debounce), as requests from a busy operator and its runners arrive: the
collector runs after nearly every change. Reported: wall time of both phases (the pacing alone is
2 x N x pace), and the CPU time of the collector's passes (measured on the simulator's thread),
the figure that shows how its work grows with N. Figures only, no target: exit 1 if the dependents
are not all collected within ``--timeout`` seconds.
Run: ``python -m benchmarks.kubesim_gc_bench [--owners N] [--policy Background|Foreground] [--pace S]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.kubesim.gc import GarbageCollector
from tests.kubesim.simulator import Simulator

NAMESPACE = "gc-bench"
CM = ("", "configmaps")


class CollectorClock:
    """Wraps the collector's ``reconcile`` to add up its passes and their thread CPU time."""

    def __init__(self, collector: GarbageCollector) -> None:
        self.passes = 0
        self.cpu = 0.0
        self._inner = collector.reconcile
        collector.reconcile = self._timed  # type: ignore[method-assign]

    def _timed(self) -> float | None:
        started = time.thread_time()
        try:
            return self._inner()
        finally:
            self.cpu += time.thread_time() - started
            self.passes += 1


def run(
    sim: Simulator, owners: int, policy: str, pace: float, timeout: float
) -> tuple[float, float | None, int, CollectorClock]:
    api = sim.api
    cm = api.resource("", "v1", "configmaps")
    collector = next(c for c in sim.controllers if isinstance(c, GarbageCollector))
    clock = sim.call(CollectorClock, collector)

    def make_family(i: int) -> None:
        owner, _ = api.create(cm, NAMESPACE, {"metadata": {"name": f"owner-{i}"}})
        ref: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "name": owner["metadata"]["name"],
            "uid": owner["metadata"]["uid"],
            "blockOwnerDeletion": True,
        }
        for suffix in ("a", "b"):
            api.create(cm, NAMESPACE, {"metadata": {"name": f"dep-{i}-{suffix}", "ownerReferences": [ref]}})

    def left() -> int:  # the namespace also holds its kube-root-ca.crt
        return sum(o["metadata"]["name"].startswith(("owner-", "dep-")) for o in sim.store.items(CM, NAMESPACE))

    started = time.perf_counter()
    for i in range(owners):
        sim.call(make_family, i)
        time.sleep(pace)
    create_seconds = time.perf_counter() - started
    started = time.perf_counter()
    for i in range(owners):
        sim.call(api.delete, cm, NAMESPACE, f"owner-{i}", {"propagationPolicy": policy})
        time.sleep(pace)
    remaining = sim.call(left)
    while remaining and time.perf_counter() - started < timeout:
        time.sleep(0.05)
        remaining = sim.call(left)
    collect_seconds = None if remaining else time.perf_counter() - started
    return create_seconds, collect_seconds, remaining, clock


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--owners", type=int, default=200)
    parser.add_argument("--policy", choices=("Background", "Foreground"), default="Background")
    parser.add_argument("--pace", type=float, default=0.01, help="seconds between calls")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the dependents")
    args = parser.parse_args(argv)
    with Simulator(workdir=Path(tempfile.mkdtemp(prefix="kubesim-gc-bench-"))) as sim:
        sim.kubectl("create", "namespace", NAMESPACE)
        create_s, collect_s, remaining, clock = run(sim, args.owners, args.policy, args.pace, args.timeout)
    print(
        f"{args.owners} owners x 2 dependents ({3 * args.owners} ConfigMaps), {args.policy} deletion, "
        f"calls {args.pace * 1000:.0f} ms apart"
    )
    print(f"  create (one owner and its dependents per call): {create_s:.2f} s")
    if collect_s is None:
        print(f"  delete -> all collected: NOT DONE after {args.timeout:.0f} s ({remaining} objects left)")
    else:
        print(f"  delete -> all collected: {collect_s:.2f} s")
    print(f"  collector: {clock.passes} passes, {clock.cpu:.2f} s CPU")
    return 0 if collect_s is not None else 1


if __name__ == "__main__":
    raise SystemExit(main())
