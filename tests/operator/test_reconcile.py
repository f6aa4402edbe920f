"""The operator's decisions as data: what it writes about a run given its Job and pods."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from flowlib_operator.reconcile import decide, ttl_expired

NOW = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)


def run(phase: str | None = "Running", **spec: Any) -> dict[str, Any]:
    status = {"phase": phase, "jobName": "r-run", "startTime": "2026-11-27T11:59:00Z"} if phase else {}
    return {"metadata": {"name": "r", "namespace": "ns", "generation": 1}, "spec": spec, "status": status}


def job(*conditions: tuple[str, str]) -> dict[str, Any]:
    return {
        "metadata": {"name": "r-run"},
        "status": {"conditions": [{"type": t, "status": "True", "reason": r} for t, r in conditions]},
    }


def pod(
    phase: str,
    *,
    terminating: bool = False,
    waiting: str | None = None,
    terminated: dict[str, Any] | None = None,
    created: datetime = NOW,
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": f"r-run-{phase.lower()}",
        "creationTimestamp": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if terminating:
        meta["deletionTimestamp"] = "2026-11-27T12:00:00Z"
    state: dict[str, Any] = {}
    if waiting:
        state["waiting"] = {"reason": waiting, "message": "pull access denied"}
    if terminated:
        state["terminated"] = terminated
    return {"metadata": meta, "status": {"phase": phase, "containerStatuses": [{"state": state}]}}


def test_a_cancel_waits_for_a_terminating_runner_to_report() -> None:
    decision = decide(
        run(cancel=True), job(), [pod("Running", terminating=True)], job_seen=True, moment=NOW, start_timeout=60
    )
    assert decision.status is None and decision.event is None
    assert decision.delete_job  # the Job itself is not being deleted yet


def test_a_cancel_with_no_runner_left_is_reported_by_the_operator() -> None:
    decision = decide(run(cancel=True), None, [], job_seen=True, moment=NOW, start_timeout=60)
    assert decision.status is not None and decision.status["phase"] == "Cancelled"
    assert decision.status["conditions"][0]["reason"] == "Cancelled"


def test_a_deadline_is_a_timeout() -> None:
    decision = decide(
        run(timeout="5m"), job(("Failed", "DeadlineExceeded")), [], job_seen=True, moment=NOW, start_timeout=60
    )
    assert decision.status is not None
    assert (decision.status["phase"], decision.status["conditions"][0]["reason"]) == ("Failed", "Timeout")
    assert "timeout (5m)" in decision.status["message"]
    assert decision.status["duration"] == "1m"


def test_an_oom_killed_runner_says_what_to_raise() -> None:
    dead = pod("Failed", terminated={"reason": "OOMKilled", "exitCode": 137})
    decision = decide(
        run(retries=1), job(("Failed", "BackoffLimitExceeded")), [dead], job_seen=True, moment=NOW, start_timeout=60
    )
    assert decision.status is not None and decision.status["conditions"][0]["reason"] == "RunnerFailed"
    assert (
        "OOMKilled (exit code 137); raise spec.resources.limits.memory (after 2 attempts)" in decision.status["message"]
    )


def test_a_final_status_left_in_the_termination_message_is_applied() -> None:
    final = {"phase": "Succeeded", "completionTime": "2026-11-27T11:59:59Z"}
    done = pod("Succeeded", terminated={"reason": "Completed", "exitCode": 0, "message": json.dumps(final)})
    decision = decide(run(), job(("Complete", "")), [done], job_seen=True, moment=NOW, start_timeout=60)
    assert decision.status == final
    assert decision.event is not None and decision.event[1] == "Succeeded"


def test_a_completed_job_without_a_final_status_is_a_lost_runner() -> None:
    done = pod("Succeeded", terminated={"reason": "Completed", "exitCode": 0})
    decision = decide(run(), job(("Complete", "")), [done], job_seen=True, moment=NOW, start_timeout=60)
    assert decision.status is not None and decision.status["conditions"][0]["reason"] == "RunnerLost"


def test_a_pod_that_cannot_pull_is_noted_then_failed_after_the_timeout() -> None:
    early = pod("Pending", waiting="ImagePullBackOff", created=NOW - timedelta(seconds=10))
    noted = decide(run("Pending"), job(), [early], job_seen=True, moment=NOW, start_timeout=60)
    assert noted.status == {"message": "waiting for the runner pod to start: ImagePullBackOff: pull access denied"}
    late = pod("Pending", waiting="ImagePullBackOff", created=NOW - timedelta(seconds=61))
    failed = decide(run("Pending"), job(), [late], job_seen=True, moment=NOW, start_timeout=60)
    assert failed.status is not None and failed.status["conditions"][0]["reason"] == "ImagePullBackOff"
    assert failed.delete_job


def test_a_job_deleted_from_under_a_run_fails_it_but_an_unseen_one_does_not() -> None:
    gone = decide(run(), None, [], job_seen=True, moment=NOW, start_timeout=60)
    assert gone.status is not None and gone.status["conditions"][0]["reason"] == "JobDeleted"
    assert decide(run(), None, [], job_seen=False, moment=NOW, start_timeout=60).status is None


def test_finished_runs_are_left_alone_and_expire_after_their_ttl() -> None:
    finished = run("Succeeded", ttlSecondsAfterFinished=30)
    finished["status"]["completionTime"] = "2026-11-27T11:59:00Z"
    assert decide(finished, None, [], job_seen=True, moment=NOW, start_timeout=60).status is None
    assert ttl_expired(finished, NOW)
    assert not ttl_expired(finished, datetime(2026, 11, 27, 11, 59, 10, tzinfo=UTC))


def test_a_job_that_never_gets_a_pod_fails_the_run_after_the_wait() -> None:
    young, old = job(), job()
    young["metadata"]["creationTimestamp"] = "2026-11-27T11:59:50Z"
    old["metadata"]["creationTimestamp"] = "2026-11-27T11:58:00Z"
    assert decide(run("Pending"), young, [], job_seen=True, moment=NOW, start_timeout=4).status is None
    decision = decide(run("Pending"), old, [], job_seen=True, moment=NOW, start_timeout=4)
    assert decision.status is not None and decision.status["conditions"][0]["reason"] == "PodCreationFailed"
    assert "within 30s" in decision.status["message"]  # never sooner than the floor
    assert "kubectl describe job r-run" in decision.status["message"]
    assert decision.delete_job
