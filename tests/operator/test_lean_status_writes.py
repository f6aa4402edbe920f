"""A runner pod that cannot pull its image costs a bounded number of FlowRun status writes (issue 14).

The kubelet flips the container's waiting reason between ErrImagePull and ImagePullBackOff at every
pull attempt; for a user both say one thing (the image cannot be pulled), so the operator writes
its note once and the final status once, however many flips the pod-start timeout lets through.
The writes are counted in the simulator's request log, the flips on the pod itself.
"""

from __future__ import annotations

import itertools
import threading
from typing import Any

from tests.operator.cluster import Cluster, flow, flowrun

PULL_RETRY = 0.2
"""Seconds between the simulated kubelet's pull attempts here: about twenty flips within the
operator's 4 s pod-start timeout (``tests/operator/cluster.py``)."""


def _pull_reasons(sim: Any, namespace: str, stop: threading.Event, seen: list[str]) -> None:
    """Append each change of the runner container's waiting reason, read from the simulator's store."""

    def reason() -> str | None:
        for pod in sim.api.store.items(("", "pods"), namespace):
            for state in (pod.get("status") or {}).get("containerStatuses") or []:
                waiting = (state.get("state") or {}).get("waiting") or {}
                if waiting.get("reason"):
                    return str(waiting["reason"])
        return None

    while not stop.wait(0.05):
        now = sim.call(reason)
        if now is not None and (not seen or seen[-1] != now):
            seen.append(now)


def test_an_image_pull_back_off_writes_the_run_status_a_bounded_number_of_times(
    simulator_only: Cluster, namespace: str
) -> None:
    cluster = simulator_only
    sim = cluster.sim
    status_path = f"/apis/flowlib.dev/v1alpha1/namespaces/{namespace}/flowruns/pull-1/status"
    before = sim.call(lambda: sim.kubelet.retry_interval)
    reasons: list[str] = []
    stop = threading.Event()
    watcher = threading.Thread(target=_pull_reasons, args=(sim, namespace, stop, reasons), daemon=True)
    sim.set_timing(retry_interval=PULL_RETRY)
    try:
        with sim.recording() as requests:
            watcher.start()
            cluster.apply(
                namespace,
                flow("pull", {"nodes": {"only": {"run": {"python": "'never'"}}}}),
                flowrun("pull-1", "pull", image="registry.invalid/missing:1"),
            )
            status = cluster.wait_phase("pull-1", namespace, "Failed", "Succeeded", timeout=90)
            stop.set()
            watcher.join(timeout=10)
    finally:
        stop.set()
        sim.set_timing(retry_interval=before)
    assert status["phase"] == "Failed", status
    assert status["conditions"][0]["reason"] in ("ErrImagePull", "ImagePullBackOff"), status
    assert "could not start within" in status["message"]
    assert "registry.invalid/missing:1" in status["message"]
    flips = sum(1 for a, b in itertools.pairwise(reasons) if {a, b} == {"ErrImagePull", "ImagePullBackOff"})
    assert flips >= 2, f"the pod did not flip between the pull reasons; saw {reasons}"
    writes = [r for r in requests if r[0] == "PATCH" and r[1].split("?")[0] == status_path]
    # The start's Pending, the note (one per meaning; a first look at ImagePullBackOff may be
    # completed once by the next pull's diagnosis) and the final status; before issue 14 it was one
    # note per flip.
    print(f"{len(writes)} FlowRun status writes over {flips} pull-reason flips")
    assert len(writes) <= 4, f"{len(writes)} status writes over {flips} flips ({reasons})"


def test_a_three_node_run_writes_its_status_at_most_four_times(simulator_only: Cluster, namespace: str) -> None:
    """Issue 14's target, counted over a whole run: every write of the FlowRun's status, by the
    operator (the start) and by the runner (Running, progress, the end), whatever the pod waited for."""
    cluster = simulator_only
    sim = cluster.sim
    status_path = f"/apis/flowlib.dev/v1alpha1/namespaces/{namespace}/flowruns/three-1/status"
    nodes = {
        "a": {"run": {"python": "1"}, "output": "x", "next": {"default": "b"}},
        "b": {"run": {"python": "shared['x'] + 1"}, "output": "y", "next": {"default": "c"}},
        "c": {"run": {"python": "shared['y'] * 10"}, "output": "z"},
    }
    with sim.recording() as requests:
        cluster.apply(namespace, flow("three", {"nodes": nodes}), flowrun("three-1", "three"))
        status = cluster.wait_phase("three-1", namespace, "Failed", "Succeeded", timeout=90)
    assert status["phase"] == "Succeeded", status
    assert status["nodes"]["c"]["phase"] == "Succeeded", status
    writes = [r for r in requests if r[0] in ("PATCH", "PUT") and r[1].split("?")[0] == status_path]
    print(f"{len(writes)} FlowRun status writes for a 3-node run")
    assert 2 <= len(writes) <= 4, f"{len(writes)} status writes: {writes}"
