"""How fast a runner pod gets to its first node: 1-node FlowRuns, one after another, on the simulator.

Each runner says in its ``Started`` Event how many seconds passed from its process start to its
first node (``flowlib_runner.incluster.startup``, read off ``/proc``). The baseline, measured in the
same run and interleaved with the runs, is a bare interpreter (``python -c pass``) started the same
way by this process: what a pod costs before any of our code. Target: runner start -> first node
<= 0.3 s (issue 14). Run: ``python -m benchmarks.runner_start_bench [--runs N]``.

The simulator's pods run the project from the virtual environment (byte-compiled on first import),
as the image runs the installed wheel (byte-compiled at build time).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.kubesim.simulator import Simulator
from tests.operator.cluster import ROOT, OperatorProcess, _operator_kubeconfig

TARGET = 0.3
ONE_NODE = {"nodes": {"a": {"run": {"python": "1"}}}}
READY = re.compile(r"; ([0-9.]+)s from process start to the first node")


def bare_interpreter() -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return time.perf_counter() - started


def kubectl(sim: Simulator, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        ["kubectl", f"--kubeconfig={sim.kubeconfig}", *args], input=stdin, capture_output=True, text=True, check=True
    )
    return done.stdout


def one_run(sim: Simulator, name: str) -> float | None:
    body = {"apiVersion": "flowlib.dev/v1alpha1", "kind": "FlowRun", "metadata": {"name": name}}
    body["spec"] = {"flowRef": {"name": "one"}}
    kubectl(sim, "apply", "-n", "bench", "-f", "-", stdin=json.dumps(body))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        events = json.loads(kubectl(sim, "get", "events", "-n", "bench", "-o", "json"))["items"]
        for event in events:
            if event["involvedObject"]["name"] == name and event.get("reason") == "Started":
                match = READY.search(event.get("message") or "")
                return float(match.group(1)) if match else None
        time.sleep(0.2)
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="runner-start-bench-"))
    runner: list[float] = []
    bare: list[float] = []
    with Simulator(workdir=workdir / "sim") as sim:
        sim.kubectl("apply", "-k", str(ROOT / "crds"))
        sim.kubectl("create", "namespace", "bench")
        operator = OperatorProcess(_operator_kubeconfig(sim, workdir), workdir / "operator.log", verbose=False)
        operator.start()
        try:
            flow = {"apiVersion": "flowlib.dev/v1alpha1", "kind": "Flow", "metadata": {"name": "one"}, "spec": ONE_NODE}
            kubectl(sim, "apply", "-n", "bench", "-f", "-", stdin=json.dumps(flow))
            one_run(sim, "warm-up")  # the first import writes the byte-code caches, as an image build does
            for index in range(args.runs):
                bare.append(bare_interpreter())
                seconds = one_run(sim, f"run-{index:03d}")
                if seconds is not None:
                    runner.append(seconds)
        finally:
            operator.stop()
    print(f"{args.runs} FlowRuns of a 1-node flow, one at a time, on the simulator")
    if not runner:
        print("  no runner reported its start time (not on Linux?)")
        return 1
    median = statistics.median(runner)
    print(
        f"  runner process start -> first node: median {median:.3f}s, best {min(runner):.3f}s, worst {max(runner):.3f}s"
    )
    print(f"  baseline, a bare interpreter start: median {statistics.median(bare):.3f}s (same run, interleaved)")
    print(f"  target <= {TARGET}s: " + ("ok" if median <= TARGET else "MISSED"))
    return 0 if median <= TARGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
