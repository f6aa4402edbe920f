"""Our operator against the simplest kopf operator (``kopf_baseline_operator``), bursts of FlowRuns.

For each burst size, both operators run in turn (the order alternating), each on a fresh simulator:
N FlowRuns are created at once, and measured are the operator's CPU time from the burst's start
until every run has its Job (per run), and each run's create->Job time (median, p95). The pods run
a stand-in runner image whose ``flowlib-runner`` exits at once: pods start and finish, as issue 14
asks, without taking the 2 cores from the operators being measured. Our operator runs with the
production resync interval. Targets (issue 14): CPU per run <= 1.0x the baseline's; create->Job
median and p95 <= 1.1x. Run: ``python -m benchmarks.operator_vs_kopf_bench [--burst N ...]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from flowlib_runner.kube import KubeClient, load_config

from flowlib_api.meta import FLOWRUNS, JOBS
from tests.kubesim.images import Image, default_images
from tests.kubesim.simulator import Simulator
from tests.operator.cluster import ROOT, OperatorProcess, _operator_kubeconfig

from .operator_bench import percentile, watch_times

STANDIN = "bench/standin:1"
CPU_TARGET, LATENCY_TARGET = 1.0, 1.1


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def standin_images(workdir: Path) -> dict[str, Image]:
    """The simulator's images, plus one whose ``flowlib-runner`` exits 0 at once."""
    bin_dir = workdir / "standin-bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / "flowlib-runner"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o755)
    workdir.chmod(0o755)
    images = default_images()
    images[STANDIN] = Image(path=[str(bin_dir), "/usr/bin", "/bin"], ships=[str(bin_dir)])
    return images


async def burst(sim: Simulator, runs: int, namespace: str) -> dict[str, float]:
    """Create ``runs`` FlowRuns at once; create->Job seconds of each, once all have their Job."""
    client = KubeClient(load_config(str(sim.kubeconfig)))
    created: dict[str, float] = {}
    jobs: dict[str, float] = {}
    watcher = asyncio.create_task(
        watch_times(client, JOBS, namespace, jobs, lambda o: o.get("metadata", {}).get("name", "")[: -len("-run")])
    )
    try:
        slots = asyncio.Semaphore(32)

        async def submit(i: int) -> None:
            name = f"run-{i:05d}"
            body = {"apiVersion": "flowlib.dev/v1alpha1", "kind": "FlowRun", "metadata": {"name": name}}
            body["spec"] = {"flowRef": {"name": "one"}}
            async with slots:
                await client.create(FLOWRUNS, body, namespace)
                created[name] = time.monotonic()

        await asyncio.gather(*(submit(i) for i in range(runs)))
        deadline = time.monotonic() + 900
        while len(jobs) < runs and time.monotonic() < deadline:  # noqa: ASYNC110 - a watch-fed dict
            await asyncio.sleep(0.1)
        return {name: jobs[name] - created[name] for name in created if name in jobs}
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        await client.close()


def measure(which: str, runs: int, workdir: Path) -> dict[str, Any]:
    home = workdir / f"{which}-{runs}"
    home.mkdir(parents=True)
    with Simulator(workdir=home / "sim", images=standin_images(home)) as sim:
        sim.kubectl("apply", "-k", str(ROOT / "crds"))
        sim.kubectl("create", "namespace", "bench")
        kubeconfig = _operator_kubeconfig(sim, home)
        flow = '{"apiVersion":"flowlib.dev/v1alpha1","kind":"Flow","metadata":{"name":"one"},'
        flow += '"spec":{"nodes":{"a":{"run":{"python":"1"}}}}}'
        sim.kubectl("apply", "-n", "bench", "-f", "-", input=flow)  # validated before the CPU count starts
        process: Any
        if which == "ours":
            process = OperatorProcess(
                kubeconfig,
                home / "operator.log",
                extra_args=["--runner-image", STANDIN, "--resync-interval", "10", "--pod-start-timeout", "600"],
                verbose=False,
            )
            process.start()
            pid = process.process.pid
        else:
            env = {**os.environ, "KUBECONFIG": str(kubeconfig), "BASELINE_IMAGE": STANDIN}
            env.pop("KUBERNETES_SERVICE_HOST", None)
            log = (home / "baseline.log").open("wb")
            process = subprocess.Popen(
                [sys.executable, "-m", "benchmarks.kopf_baseline_operator"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            pid = process.pid
        try:
            time.sleep(3)  # started and idle
            before = cpu_seconds(pid)
            latencies = asyncio.run(burst(sim, runs, "bench"))
            spent = cpu_seconds(pid) - before
        finally:
            if which == "ours":
                process.stop()
            else:
                process.terminate()
                process.wait(timeout=30)
    values = sorted(latencies.values())
    return {
        "cpu_ms": spent * 1000 / runs,
        "median": statistics.median(values) if values else float("inf"),
        "p95": percentile(values, 0.95) if values else float("inf"),
        "jobs": len(values),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--burst", type=int, action="append", help="runs at once (repeatable; default 20 and 200)")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="operator-vs-kopf-"))
    ok = True
    for index, runs in enumerate(args.burst or [20, 200]):
        order = ("baseline", "ours") if index % 2 == 0 else ("ours", "baseline")
        got = {which: measure(which, runs, workdir) for which in order}
        ours, base = got["ours"], got["baseline"]
        cpu, median, p95 = ours["cpu_ms"] / base["cpu_ms"], ours["median"] / base["median"], ours["p95"] / base["p95"]
        print(f"{runs} FlowRuns at once (Jobs: ours {ours['jobs']}, baseline {base['jobs']})")
        print(
            f"  CPU per run up to its Job: ours {ours['cpu_ms']:.1f} ms, baseline {base['cpu_ms']:.1f} ms: {cpu:.2f}x"
        )
        print(f"  create -> Job median: ours {ours['median']:.3f}s, baseline {base['median']:.3f}s: {median:.2f}x")
        print(f"  create -> Job p95:    ours {ours['p95']:.3f}s, baseline {base['p95']:.3f}s: {p95:.2f}x")
        ok = ok and cpu <= CPU_TARGET and median <= LATENCY_TARGET and p95 <= LATENCY_TARGET
        ok = ok and ours["jobs"] == runs == base["jobs"]
    print(f"  targets: CPU <= {CPU_TARGET}x, latency <= {LATENCY_TARGET}x: " + ("ok" if ok else "MISSED"))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
