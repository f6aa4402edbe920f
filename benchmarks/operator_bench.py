"""The operator under load on the Kubernetes simulator: 200 FlowRuns of a 3-node flow at once.

Reported: time from each FlowRun's creation to its Job's creation (median, p95), to Succeeded
(median, p95, last), the operator's peak RSS, and the API requests per FlowRun made by the operator
and the runners (writes and all). Targets: median create-to-Job < 0.5 s, <= 12 API writes per
simple run, operator RSS < 150 MB. Run: ``python -m benchmarks.operator_bench [--runs N]``.

Two phases, because on the simulator every runner pod is a real Python process on this same
2-core machine, where a cluster would put them on other nodes:

1. create-to-Job and the operator's RSS: the runs name an image the simulator does not have, so
   their pods wait in ErrImagePull (as on a cluster whose registry is slow) and take no CPU from the
   operator being measured.
2. create-to-Succeeded and API requests per run: the same number of runs with the real runner.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from flowlib_runner.kube import KubeClient, load_config

from flowlib_api.meta import FLOWRUNS, FLOWS, JOBS, ResourceRef
from tests.kubesim.simulator import Simulator
from tests.operator.cluster import ROOT, OperatorProcess, _operator_kubeconfig

WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
THREE_NODES = {
    "nodes": {
        "a": {"run": {"python": "1"}, "output": "x", "next": {"default": "b"}},
        "b": {"run": {"python": "shared['x'] + 1"}, "output": "x", "next": {"default": "c"}},
        "c": {"run": {"python": "shared['x'] * 10"}, "output": "x"},
    }
}


def memory_mib(pid: int, field: str = "VmHWM") -> float:
    """A memory figure of process ``pid`` from ``/proc/PID/status``: its peak RSS (``VmHWM``), or
    its RSS now (``VmRSS``)."""
    with open(f"/proc/{pid}/status", encoding="utf-8") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} missing")


def peak_rss_mib(pid: int) -> float:
    return memory_mib(pid, "VmHWM")


def resource_of(method: str, path: str) -> str:
    """``flowruns``, ``flowruns/status``, ``jobs``... from a request path."""
    parts = path.split("?", maxsplit=1)[0].strip("/").split("/")
    if method == "POST":
        return parts[-1]
    if parts[-1] == "status":
        return f"{parts[-3]}/status"
    return parts[-2]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def watch_times(client: KubeClient, ref: ResourceRef, namespace: str, seen: dict[str, float], key: Any) -> None:
    """Record when each object first satisfies ``key`` (returns the FlowRun name or None)."""
    while True:
        async for event in client.watch(ref, namespace, params={"allowWatchBookmarks": "false"}):
            name = key(event.get("object") or {})
            if name and name not in seen:
                seen[name] = time.monotonic()


async def scenario(sim: Simulator, runs: int, namespace: str, image: str | None = None) -> dict[str, Any]:
    client = KubeClient(load_config(str(sim.kubeconfig)))
    created: dict[str, float] = {}
    jobs: dict[str, float] = {}
    done: dict[str, float] = {}
    watchers = [
        asyncio.create_task(
            watch_times(client, JOBS, namespace, jobs, lambda o: o.get("metadata", {}).get("name", "")[: -len("-run")])
        ),
        asyncio.create_task(
            watch_times(
                client,
                FLOWRUNS,
                namespace,
                done,
                lambda o: o["metadata"]["name"] if (o.get("status") or {}).get("phase") == "Succeeded" else None,
            )
        ),
    ]
    try:
        await client.create(
            FLOWS,
            {"apiVersion": "flowlib.dev/v1alpha1", "kind": "Flow", "metadata": {"name": "three"}, "spec": THREE_NODES},
            namespace,
        )
        await asyncio.sleep(1)
        started = time.monotonic()

        async def submit(i: int) -> None:
            name = f"run-{i:04d}"
            spec: dict[str, Any] = {"flowRef": {"name": "three"}}
            if image:
                spec["image"] = image
            body = {"apiVersion": "flowlib.dev/v1alpha1", "kind": "FlowRun", "metadata": {"name": name}, "spec": spec}
            await client.create(FLOWRUNS, body, namespace)
            created[name] = time.monotonic()

        await asyncio.gather(*(submit(i) for i in range(runs)))
        deadline = time.monotonic() + 600
        target, seen = (jobs, runs) if image else (done, runs)
        while len(target) < seen and time.monotonic() < deadline:  # noqa: ASYNC110 - polling two watch-fed dicts
            await asyncio.sleep(0.2)
        return {"created": created, "jobs": jobs, "done": done, "started": started}
    finally:
        for task in watchers:
            task.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)
        await client.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="operator-bench-"))
    with Simulator(workdir=workdir / "sim") as sim:
        sim.kubectl("apply", "-k", str(ROOT / "crds"))
        for namespace in ("held", "bench"):
            sim.kubectl("create", "namespace", namespace)
        operator = OperatorProcess(
            _operator_kubeconfig(sim, workdir),
            workdir / "operator.log",
            extra_args=["--pod-start-timeout", "600"],
            verbose=False,  # as deployed: INFO logs
        )
        operator.start()
        time.sleep(2)
        try:
            held = asyncio.run(scenario(sim, args.runs, "held", image="bench.invalid/held-back:1"))
            assert operator.process is not None
            rss = peak_rss_mib(operator.process.pid)
            sim.kubectl("delete", "namespace", "held", "--wait=false")
            with sim.recording() as requests:
                result = asyncio.run(scenario(sim, args.runs, "bench"))
            rss = max(rss, peak_rss_mib(operator.process.pid))
        finally:
            operator.stop()
    namespace = "bench"
    to_job = [held["jobs"][n] - held["created"][n] for n in held["created"] if n in held["jobs"]]
    created, done = result["created"], result["done"]
    to_done = [done[n] - created[n] for n in created if n in done]
    ours = [(m, p) for m, p in requests if "/flowruns" not in p or m != "POST" or "/status" in p]
    ours = [
        (m, p)
        for m, p in ours
        if not p.startswith(f"/apis/flowlib.dev/v1alpha1/namespaces/{namespace}/flows") or m != "POST"
    ]
    writes = [r for r in ours if r[0] in WRITE_METHODS]
    per_run_writes = len(writes) / args.runs
    print(f"{args.runs} FlowRuns of a 3-node flow, submitted at once, on the simulator (twice: see the docstring)")
    print(f"  finished: {len(to_done)}/{args.runs}")
    if to_job:
        median, p95 = statistics.median(to_job), percentile(to_job, 0.95)
        print(f"  create -> Job:        median {median:.3f}s  p95 {p95:.3f}s (target median < 0.5s)")
    if to_done:
        median, p95 = statistics.median(to_done), percentile(to_done, 0.95)
        print(f"  create -> Succeeded:  median {median:.2f}s  p95 {p95:.2f}s  last {max(to_done):.2f}s")
    print(f"  operator peak RSS:    {rss:.1f} MiB (target < 150 MiB)")
    kinds: dict[str, int] = {}
    for method, path in writes:
        kind = f"{method} {resource_of(method, path)}"
        kinds[kind] = kinds.get(kind, 0) + 1
    per_run_all = len(ours) / args.runs
    print(f"  API writes/run (operator + runner): {per_run_writes:.1f} (target <= 12); all requests: {per_run_all:.1f}")
    print(
        "  writes by kind: " + json.dumps({k: round(v / args.runs, 2) for k, v in sorted(kinds.items())}) + " per run"
    )
    ok = (
        bool(to_job)
        and statistics.median(to_job) < 0.5
        and per_run_writes <= 12
        and rss < 150
        and len(to_done) == args.runs
    )
    print("  verdict: " + ("ok" if ok else "MISSED"))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
