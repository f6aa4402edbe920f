"""The watch cache keeps what decisions need: a finished run's Job and pods are dropped (a final
phase is final), and no FlowRun carries the API server's managedFields (``flowlib_operator.cache``)."""

from __future__ import annotations

from typing import Any

from flowlib_operator.cache import ClusterCache


def flowrun(phase: str | None) -> dict[str, Any]:
    meta = {"name": "r", "namespace": "team", "uid": "u-1", "managedFields": [{"manager": "kubectl"}]}
    return {"metadata": meta, "spec": {}, "status": {"phase": phase, "jobName": "r-run"} if phase else {}}


def job() -> dict[str, Any]:
    owner = {"kind": "FlowRun", "name": "r", "uid": "u-1"}
    return {"metadata": {"name": "r-run", "namespace": "team", "uid": "j-1", "ownerReferences": [owner]}}


def pod() -> dict[str, Any]:
    owner = {"kind": "Job", "name": "r-run", "uid": "j-1"}
    annotations = {"flowlib.dev/flowrun-name": "r"}  # as the runner pods carry it
    return {
        "metadata": {"name": "r-run-x", "namespace": "team", "ownerReferences": [owner], "annotations": annotations}
    }


def test_a_going_run_keeps_its_job_and_pods() -> None:
    cache = ClusterCache()
    cache.put_flowrun(flowrun("Running"), deleted=False)
    assert cache.put_job(job(), deleted=False) == ("team", "r")
    assert cache.put_pod(pod(), deleted=False) == ("team", "r")
    assert cache.job_of(("team", "r"), "u-1") is not None and len(cache.pods_of(("team", "r"))) == 1
    assert "managedFields" not in cache.flowruns[("team", "r")]["metadata"]


def test_a_finished_run_drops_them_and_holds_no_new_ones() -> None:
    cache = ClusterCache()
    cache.put_flowrun(flowrun("Running"), deleted=False)
    cache.put_job(job(), deleted=False)
    cache.put_pod(pod(), deleted=False)
    body = flowrun("Succeeded")
    cache.put_flowrun(body, deleted=False)
    assert cache.jobs == {} and cache.pods == {} and cache.job_owner == {} and cache.jobs_seen == {}
    assert "managedFields" in body["metadata"]  # the body handed in is never changed
    # Late events of its Job and pod (the Job completes after the runner reported) are not held.
    assert cache.put_job(job(), deleted=False) == ("team", "r")
    assert cache.put_pod(pod(), deleted=False) == ("team", "r")
    cache.replace_job(("team", "r"), job(), [pod()])
    assert cache.jobs == {} and cache.pods == {}
