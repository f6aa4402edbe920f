"""What finished runs cost the operator: its memory with N finished FlowRuns kept, and how long a
restart takes to settle with them present (issue 14's targets: <= 20 KiB per finished run kept, a
restart settled within 30 s with 10,000 of them).

The runs are made finished directly (created, then their status written as a runner would), so no
runner pod takes this 2-core machine's CPU. The baseline, in the same run: the operator's RSS with
no run at all. "Settled": every run is in the operator's cache (its ``flowlib_flowruns`` gauge counts
them all) and it has made no write for ``QUIET`` seconds; the time is from the process start to the
later of the two. Run: ``python -m benchmarks.operator_memory_bench [--runs N ...]``.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from flowlib_runner.kube import KubeClient, load_config

from flowlib_api.meta import FLOWRUNS, FLOWS, STATUS_SUBRESOURCE
from tests.kubesim.simulator import Simulator
from tests.operator.cluster import ROOT, OperatorProcess, _operator_kubeconfig

from .operator_bench import memory_mib

WRITES = {"POST", "PUT", "PATCH", "DELETE"}
QUIET = 3.0
PER_RUN_TARGET_KIB = 20.0
SETTLE_TARGET = 30.0
NAMESPACE = "kept"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cached_runs(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            text = answer.read().decode()
    except OSError:
        return -1
    return int(sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("flowlib_flowruns{")))


async def make_finished_runs(sim: Simulator, runs: int) -> None:
    client = KubeClient(load_config(str(sim.kubeconfig)))
    slots = asyncio.Semaphore(16)
    flow = {"apiVersion": "flowlib.dev/v1alpha1", "kind": "Flow", "metadata": {"name": "one"}}
    flow["spec"] = {"nodes": {"a": {"run": {"python": "1"}}}}
    await client.create(FLOWS, flow, NAMESPACE)

    async def one(index: int) -> None:
        name = f"run-{index:05d}"
        body = {
            "apiVersion": "flowlib.dev/v1alpha1",
            "kind": "FlowRun",
            "metadata": {"name": name, "labels": {"flowlib.dev/flow": "one"}},
            "spec": {"flowRef": {"name": "one"}},
        }
        status: dict[str, Any] = {
            "phase": "Succeeded",
            "flow": "one",
            "jobName": f"{name}-run",
            "startTime": "2026-12-04T10:00:00Z",
            "completionTime": "2026-12-04T10:00:01Z",
            "duration": "1s",
            "progress": "1/1",
            "nodes": {"a": {"phase": "Succeeded", "visits": 1, "durationSeconds": 0.01}},
            "output": {"a": 1},
            "conditions": [
                {"type": "Succeeded", "status": "True", "reason": "Succeeded", "message": "the flow succeeded",
                 "lastTransitionTime": "2026-12-04T10:00:01Z"}
            ],
        }  # fmt: skip
        async with slots:
            await client.create(FLOWRUNS, body, NAMESPACE)
            await client.patch(FLOWRUNS, name, {"status": status}, NAMESPACE, subresource=STATUS_SUBRESOURCE)

    try:
        await asyncio.gather(*(one(i) for i in range(runs)))
    finally:
        await client.close()


def settle(
    sim: Simulator, operator: OperatorProcess, port: int, runs: int, timeout: float
) -> tuple[float, list[tuple[str, str]]]:
    """Start the operator; seconds until it settled, and the writes it made meanwhile."""
    with sim.recording() as requests:
        started = time.monotonic()
        operator.start()
        all_cached_at = None
        seen_writes, last_write = 0, started
        deadline = started + timeout
        while time.monotonic() < deadline:
            made = [(method, path) for method, path in list(requests) if method in WRITES]
            writes = len(made)
            now = time.monotonic()
            if writes != seen_writes:
                seen_writes, last_write = writes, now
            if all_cached_at is None and cached_runs(port) >= runs:
                all_cached_at = now
            if all_cached_at is not None and now - last_write >= QUIET:
                return max(all_cached_at, last_write if seen_writes else started) - started, made
            time.sleep(0.2)
    return float("inf"), [(method, path) for method, path in list(requests) if method in WRITES]


def measure(runs: int, workdir: Path) -> dict[str, Any]:
    port = free_port()
    with Simulator(workdir=workdir / f"sim-{runs}") as sim:
        sim.kubectl("apply", "-k", str(ROOT / "crds"))
        sim.kubectl("create", "namespace", NAMESPACE)
        operator = OperatorProcess(
            _operator_kubeconfig(sim, workdir),
            workdir / f"operator-{runs}.log",
            extra_args=["--metrics-port", str(port)],
            verbose=False,
        )
        try:
            settle(sim, operator, port, 0, 60)
            assert operator.process is not None
            empty = memory_mib(operator.process.pid, "VmRSS")
            operator.stop()
            asyncio.run(make_finished_runs(sim, runs))
            first, first_writes = settle(sim, operator, port, runs, 600)
            operator.stop()
            again, writes = settle(sim, operator, port, runs, 600)
            assert operator.process is not None
            kept = memory_mib(operator.process.pid, "VmRSS")
        finally:
            operator.stop()
    return {
        "empty": empty,
        "kept": kept,
        "first": first,
        "first_writes": len(first_writes),
        "restart": again,
        "restart_writes": len(writes),
        "restart_paths": sorted({f"{method} {path.split('?')[0]}" for method, path in writes})[:5],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, action="append", help="finished runs to keep (repeatable; default 1000)")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="operator-memory-bench-"))
    ok = True
    for runs in args.runs or [1000]:
        got = measure(runs, workdir)
        per_run = (got["kept"] - got["empty"]) * 1024 / runs
        print(f"{runs} finished FlowRuns kept, on the simulator")
        print(f"  operator RSS: {got['empty']:.1f} MiB with none, {got['kept']:.1f} MiB with them after a restart")
        print(f"  per finished run: {per_run:.1f} KiB (target <= {PER_RUN_TARGET_KIB:.0f} KiB)")
        print(f"  first start with them: settled in {got['first']:.1f}s, {got['first_writes']:.0f} writes")
        print(
            f"  restart with them: settled in {got['restart']:.1f}s, {got['restart_writes']:.0f} writes "
            f"(target <= {SETTLE_TARGET:.0f}s, no writes)"
            + (f": {got['restart_paths']}" if got["restart_writes"] else "")
        )
        ok = ok and per_run <= PER_RUN_TARGET_KIB and got["restart"] <= SETTLE_TARGET and got["restart_writes"] == 0
    print("  verdict: " + ("ok" if ok else "MISSED"))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
