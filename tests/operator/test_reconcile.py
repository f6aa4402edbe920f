"""The operator's decisions as data: what it writes about a run given its Job and pods.

``settle`` is the decision on objects just read from the API (``fresh=True``), which is what the
operator applies when a decision ends the run or deletes or creates its Job; with ``fresh=False``
it is the first look, from the watch cache, which must never settle anything by itself.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flowlib_operator.cache import ClusterCache
from flowlib_operator.reconcile import (
    CANCEL_GRACE,
    CANCEL_SEEN_ANNOTATION,
    MISSING_JOB_GRACE,
    Decision,
    decide,
    ttl_expired,
)

NOW = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)


def run(phase: str | None = "Running", **spec: Any) -> dict[str, Any]:
    status = {"phase": phase, "jobName": "r-run", "startTime": "2026-11-27T11:59:00Z"} if phase else {}
    return {"metadata": {"name": "r", "namespace": "ns", "generation": 1}, "spec": spec, "status": status}


def pending(created: datetime) -> dict[str, Any]:
    """A run the start has named a Job for, with no runner report yet (what ``start`` writes)."""
    flowrun = run(None)
    flowrun["metadata"]["creationTimestamp"] = stamp(created)
    flowrun["status"] = {
        "phase": "Pending",
        "jobName": "r-run",
        "conditions": [
            {"type": "Succeeded", "status": "Unknown", "reason": "JobCreated", "lastTransitionTime": stamp(created)}
        ],
    }
    return flowrun


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def job(*conditions: tuple[str, str], created: datetime | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "metadata": {"name": "r-run"},
        "status": {"conditions": [{"type": t, "status": "True", "reason": r} for t, r in conditions]},
    }
    if created is not None:
        body["metadata"]["creationTimestamp"] = stamp(created)
    return body


def pod(
    phase: str,
    *,
    terminating: bool = False,
    waiting: str | None = None,
    terminated: dict[str, Any] | None = None,
    created: datetime = NOW,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": f"r-run-{phase.lower()}", "creationTimestamp": stamp(created)}
    if terminating:
        meta["deletionTimestamp"] = "2026-11-27T12:00:00Z"
    state: dict[str, Any] = {}
    if waiting:
        state["waiting"] = {"reason": waiting, "message": "pull access denied"}
    if terminated:
        state["terminated"] = terminated
    return {"metadata": meta, "status": {"phase": phase, "containerStatuses": [{"state": state}]}}


def settle(
    flowrun: dict[str, Any],
    job_: dict[str, Any] | None,
    pods: list[dict[str, Any]],
    *,
    job_seen: bool = True,
    start_timeout: float = 60,
    fresh: bool = True,
    cancel_grace: float = CANCEL_GRACE,
    cancel_seen: str | None = None,
) -> Decision:
    """``decide`` now; by default on objects just read from the API (``fresh=False``: the watch cache's)."""
    return decide(
        flowrun,
        job_,
        pods,
        job_seen=job_seen,
        moment=NOW,
        start_timeout=start_timeout,
        fresh=fresh,
        cancel_grace=cancel_grace,
        cancel_seen=cancel_seen,
    )


def reason(decision: Decision) -> str | None:
    conditions = (decision.status or {}).get("conditions") or [{}]
    found: str | None = conditions[0].get("reason")
    return found


def cancelled(seen: datetime | None = None) -> dict[str, Any]:
    """A running run whose ``spec.cancel`` is set; ``seen``: when the operator recorded seeing it."""
    flowrun = run(cancel=True)
    if seen is not None:
        flowrun["metadata"]["annotations"] = {CANCEL_SEEN_ANNOTATION: stamp(seen)}
    return flowrun


def test_a_cancel_is_recorded_first_and_the_runner_is_left_to_stop_by_itself() -> None:
    runner = pod("Running")
    first = settle(cancelled(), job(), [runner], fresh=False)  # recording it settles nothing: no fresh read
    assert first.cancel_seen == stamp(NOW) and not first.delete_job and first.status is None
    assert first.event is not None and first.event[:2] == ("Normal", "Cancelling")
    assert f"within {CANCEL_GRACE:g}s" in first.event[2]
    # Within the grace: nothing to do, whether the annotation is in or only remembered.
    within = NOW - timedelta(seconds=CANCEL_GRACE - 1)
    assert settle(cancelled(within), job(), [runner]) == Decision()
    assert settle(cancelled(), job(), [runner], cancel_seen=stamp(within)) == Decision()
    # A terminating runner (stopped from outside) is also left to report.
    assert settle(cancelled(within), job(), [pod("Running", terminating=True)]) == Decision()


def test_a_runner_that_has_not_stopped_after_the_grace_is_stopped_by_deleting_its_job() -> None:
    runner = pod("Running")
    late = NOW - timedelta(seconds=CANCEL_GRACE)
    assert settle(cancelled(late), job(), [runner], fresh=False).refresh  # never on the cache alone
    stop = settle(cancelled(late), job(), [runner])
    assert stop.delete_job and stop.status is None
    assert stop.event is not None and stop.event[:2] == ("Warning", "CancelGraceExpired")
    # The grace is the caller's setting.
    assert settle(cancelled(NOW - timedelta(seconds=2)), job(), [runner], cancel_grace=1).delete_job
    # Once the Job is going or gone, the terminating runner is waited for...
    deleting = job()
    deleting["metadata"]["deletionTimestamp"] = stamp(NOW)
    assert settle(cancelled(late), deleting, [pod("Running", terminating=True)]) == Decision()
    assert settle(cancelled(late), None, [pod("Running", terminating=True)]) == Decision()
    # ...and a runner killed without reporting is reported Cancelled by the operator, saying why.
    killed = pod("Failed", terminated={"reason": "Error", "exitCode": 137})
    ended = settle(cancelled(late), None, [killed])
    assert ended.status is not None and ended.status["phase"] == "Cancelled" and not ended.delete_job
    assert f"did not stop within {CANCEL_GRACE:g}s" in ended.status["message"]
    assert settle(cancelled(late), None, []).status == ended.status  # the same once the pod is deleted too


def test_a_cancelled_runner_that_ended_by_itself_keeps_its_job_and_pod() -> None:
    done = pod("Succeeded", terminated={"reason": "Completed", "exitCode": 0})
    # The runner's own Cancelled is in: nothing left to do, and its Job and pod stay.
    over = run("Cancelled", cancel=True)
    assert settle(over, job(("Complete", "")), [done]) == Decision()
    # Its final status only in the termination message: applied, the Job kept.
    final = {"phase": "Cancelled", "message": "run cancelled: cancelled (spec.cancel)"}
    left = pod("Succeeded", terminated={"reason": "Completed", "exitCode": 0, "message": json.dumps(final)})
    applied = settle(cancelled(NOW), job(("Complete", "")), [left])
    assert applied.status == final and not applied.delete_job
    # No report at all: the operator says Cancelled, and still keeps what the runner left.
    silent = settle(cancelled(NOW), job(("Complete", "")), [done])
    assert silent.status is not None and silent.status["phase"] == "Cancelled" and not silent.delete_job


def test_a_cancel_before_any_runner_started_is_ended_by_the_operator() -> None:
    # A pod that never started: its Job is deleted at once (no runner to wait for, no log to keep)...
    waiting = settle(cancelled(), job(), [pod("Pending", waiting="ImagePullBackOff")])
    assert waiting.delete_job and waiting.status is None and waiting.cancel_seen is None
    # (but a Job whose earlier attempt ran is kept through the grace, with that attempt's pod)...
    crashed = pod("Failed", terminated={"reason": "Error", "exitCode": 137}, created=NOW - timedelta(minutes=1))
    retrying = settle(cancelled(), job(), [crashed, pod("Pending")])
    assert not retrying.delete_job and retrying.cancel_seen == stamp(NOW)
    # ...a Job without a pod too, not to start one for nothing, and the run ends Cancelled.
    podless = settle(cancelled(), job(), [])
    assert podless.delete_job and podless.status is not None and podless.status["phase"] == "Cancelled"
    assert "before the runner reported" in podless.status["message"]


def test_a_deadline_is_a_timeout() -> None:
    decision = settle(run(timeout="5m"), job(("Failed", "DeadlineExceeded")), [])
    assert decision.status is not None
    assert (decision.status["phase"], reason(decision)) == ("Failed", "Timeout")
    assert "timeout (5m)" in decision.status["message"]
    assert decision.status["duration"] == "1m"


def test_an_oom_killed_runner_says_what_to_raise() -> None:
    dead = pod("Failed", terminated={"reason": "OOMKilled", "exitCode": 137})
    decision = settle(run(retries=1), job(("Failed", "BackoffLimitExceeded")), [dead])
    assert decision.status is not None and reason(decision) == "RunnerFailed"
    assert (
        "OOMKilled (exit code 137); raise spec.resources.limits.memory (after 2 attempts)" in decision.status["message"]
    )


def test_a_final_status_left_in_the_termination_message_is_applied() -> None:
    final = {"phase": "Succeeded", "completionTime": "2026-11-27T11:59:59Z"}
    done = pod("Succeeded", terminated={"reason": "Completed", "exitCode": 0, "message": json.dumps(final)})
    decision = settle(run(), job(("Complete", "")), [done])
    assert decision.status == final
    assert decision.event is not None and decision.event[1] == "Succeeded"


def test_a_completed_job_without_a_final_status_is_a_lost_runner() -> None:
    done = pod("Succeeded", terminated={"reason": "Completed", "exitCode": 0})
    assert reason(settle(run(), job(("Complete", "")), [done])) == "RunnerLost"


def test_a_pod_that_cannot_pull_is_noted_then_failed_after_the_timeout() -> None:
    early = pod("Pending", waiting="ImagePullBackOff", created=NOW - timedelta(seconds=10))
    noted = settle(run("Pending"), job(), [early], fresh=False)  # a note settles nothing: no fresh read needed
    assert noted.status == {
        "message": "waiting for the runner pod to start: the image cannot be pulled: pull access denied"
    }
    assert not noted.refresh
    late = pod("Pending", waiting="ImagePullBackOff", created=NOW - timedelta(seconds=61))
    failed = settle(run("Pending"), job(), [late])
    assert reason(failed) == "ImagePullBackOff"
    assert failed.delete_job


IMAGE = "registry.example/team/flow:1"
PULL_ERROR = f'failed to pull and unpack image "{IMAGE}": failed to resolve reference "{IMAGE}": not found'


def waiting_pod(reason_: str, message: str, *, age: float = 10, last: dict[str, Any] | None = None) -> dict[str, Any]:
    """The runner pod with its container waiting (the kubelet's reason and message), ``age`` seconds old."""
    state: dict[str, Any] = {
        "name": "runner",
        "image": IMAGE,
        "state": {"waiting": {"reason": reason_, "message": message}},
    }
    if last is not None:
        state["lastState"] = {"terminated": last}
    return {
        "metadata": {"name": "r-run-abc", "creationTimestamp": stamp(NOW - timedelta(seconds=age))},
        "spec": {"containers": [{"name": "runner", "image": IMAGE}]},
        "status": {"phase": "Pending", "containerStatuses": [state]},
    }


def pull_failed(age: float = 10) -> dict[str, Any]:
    return waiting_pod("ErrImagePull", PULL_ERROR, age=age)


def pull_backing_off(age: float = 10) -> dict[str, Any]:
    return waiting_pod("ImagePullBackOff", f'Back-off pulling image "{IMAGE}"', age=age)


def status_writes(flowrun: dict[str, Any], states: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Decide on each pod state in turn as the operator does (the cache's look, then the fresh read
    a settling decision asks for), applying each status write to ``flowrun``; the writes made."""
    writes: list[dict[str, Any]] = []
    for latest in states:
        decision = settle(flowrun, job(), [latest], fresh=False)
        if decision.refresh:
            decision = settle(flowrun, job(), [latest])
        if decision.status:
            writes.append(decision.status)
            flowrun["status"].update(decision.status)
    return writes


def test_a_pod_flipping_between_err_image_pull_and_image_pull_back_off_is_written_once() -> None:
    flips = [pull_failed(age=i) if i % 2 == 0 else pull_backing_off(age=i) for i in range(20)]
    writes = status_writes(run("Pending"), flips)
    assert writes == [
        {"message": f"waiting for the runner pod to start: the image {IMAGE} cannot be pulled: {PULL_ERROR}"}
    ]


def test_a_first_look_at_the_back_off_is_completed_once_by_the_next_pull_error_then_stays() -> None:
    flips = [pull_backing_off(age=i) if i % 2 == 0 else pull_failed(age=i) for i in range(2, 22)]
    writes = status_writes(run("Pending"), flips)
    assert [w["message"] for w in writes] == [
        f'waiting for the runner pod to start: the image {IMAGE} cannot be pulled: Back-off pulling image "{IMAGE}"',
        f"waiting for the runner pod to start: the image {IMAGE} cannot be pulled: {PULL_ERROR}",
    ]


def test_a_real_change_while_the_pod_waits_is_written_at_once() -> None:
    flowrun = run("Pending")
    denied = f'failed to pull and unpack image "{IMAGE}": pull access denied, authorization failed'
    secret = 'secret "store-credentials" not found'
    writes = status_writes(
        flowrun,
        [
            pull_failed(age=1),
            pull_backing_off(age=2),
            waiting_pod("ErrImagePull", denied, age=3),  # another diagnosis: another cause to fix
            pull_backing_off(age=4),
            waiting_pod("CreateContainerConfigError", secret, age=5),  # the image pulls now
            waiting_pod("CreateContainerConfigError", secret, age=6),
        ],
    )
    assert [w["message"] for w in writes] == [
        f"waiting for the runner pod to start: the image {IMAGE} cannot be pulled: {PULL_ERROR}",
        f"waiting for the runner pod to start: the image {IMAGE} cannot be pulled: {denied}",
        "waiting for the runner pod to start: the runner container cannot be created: "
        f"CreateContainerConfigError: {secret}",
    ]
    crash = {"reason": "Error", "exitCode": 1}
    crashing = [
        waiting_pod("CrashLoopBackOff", f"back-off {s}s restarting failed container=runner", age=7, last=crash)
        for s in (10, 20, 40)
    ]
    assert status_writes(flowrun, crashing) == [
        {
            "message": "the runner container keeps exiting (Error (exit code 1)); "
            "the kubelet restarts it after a back-off"
        }
    ]


def test_the_pod_start_timeout_fails_the_run_with_the_noted_diagnosis_whatever_the_flip() -> None:
    flowrun = run("Pending")
    status_writes(flowrun, [pull_failed(age=1), pull_backing_off(age=2)])
    writes = status_writes(flowrun, [pull_backing_off(age=61), pull_failed(age=62)])
    assert len(writes) == 1  # the run is over: the next look writes nothing
    assert writes[0]["phase"] == "Failed"
    assert writes[0]["conditions"][0]["reason"] == "ImagePullBackOff"
    assert writes[0]["message"] == (
        f"the runner pod r-run-abc could not start within 60s: the image {IMAGE} cannot be pulled: {PULL_ERROR}"
    )


def test_a_job_deleted_from_under_a_run_fails_it_but_an_unseen_one_of_a_run_that_never_ran_does_not() -> None:
    gone = settle(run(), None, [])
    assert reason(gone) == "JobDeleted"
    assert settle(pending(NOW - timedelta(seconds=5)), None, [], job_seen=False) == Decision()


def test_finished_runs_are_left_alone_and_expire_after_their_ttl() -> None:
    finished = run("Succeeded", ttlSecondsAfterFinished=30)
    finished["status"]["completionTime"] = "2026-11-27T11:59:00Z"
    assert settle(finished, None, []) == Decision()
    assert settle(finished, None, [], fresh=False) == Decision()
    assert ttl_expired(finished, NOW)
    assert not ttl_expired(finished, datetime(2026, 11, 27, 11, 59, 10, tzinfo=UTC))


def test_a_job_that_never_gets_a_pod_fails_the_run_after_the_wait() -> None:
    young, old = job(created=NOW - timedelta(seconds=10)), job(created=NOW - timedelta(minutes=2))
    assert settle(run("Pending"), young, [], start_timeout=4).status is None
    decision = settle(run("Pending"), old, [], start_timeout=4)
    assert decision.status is not None and reason(decision) == "PodCreationFailed"
    assert "within 30s" in decision.status["message"]  # never sooner than the floor
    assert "kubectl describe job r-run" in decision.status["message"]
    assert decision.delete_job


# -- never from the cache alone ------------------------------------------------------------------

OLD_JOB = job(created=NOW - timedelta(minutes=2))
RUNNING_POD = pod("Running", created=NOW - timedelta(minutes=2))
DONE = json.dumps({"phase": "Succeeded", "completionTime": "2026-11-27T11:59:59Z"})
CASES = {
    # what the cache shows -> (what a fresh read shows, what the operator then does)
    "Job absent after it was seen (a missed event, or deleted)": (
        (run(), None, []),
        (run(), OLD_JOB, [RUNNING_POD]),
        "JobDeleted",
    ),
    "Job absent, never seen, but a runner reported (the Job watch is behind)": (
        (run(), None, []),
        (run(), OLD_JOB, [RUNNING_POD]),
        "JobDeleted",
    ),
    "a Job with no pod for long (the pod watch is behind)": (
        (run("Pending"), OLD_JOB, []),
        (run("Pending"), OLD_JOB, [RUNNING_POD]),
        "PodCreationFailed",
    ),
    "a completed Job whose pod's final state is not in yet": (
        (run(), job(("Complete", "")), [RUNNING_POD]),
        (run(), job(("Complete", "")), [pod("Succeeded", terminated={"exitCode": 0, "message": DONE})]),
        "RunnerLost",
    ),
    "a cancel with no runner pod in sight": (
        (run(cancel=True), OLD_JOB, []),
        (run(cancel=True), OLD_JOB, [RUNNING_POD]),
        "Cancelled",
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_a_decision_that_settles_a_run_is_never_taken_on_the_cache_alone(case: str) -> None:
    cached, fresh, lost_reason = CASES[case]
    seen = "never seen" not in case
    first = settle(*cached, job_seen=seen, fresh=False)
    # The cache's view alone only asks for a fresh read, and carries nothing to apply.
    assert first == Decision(refresh=True)
    # Taken on the cache, it would have settled the run on what the cache lacks...
    assert reason(settle(*cached, job_seen=seen)) == lost_reason
    # ...but the fresh read shows the object, and the run is not settled for it.
    again = settle(*fresh, job_seen=True)
    assert reason(again) != lost_reason and not again.refresh
    if "completed" in case:
        assert again.status is not None and again.status["phase"] == "Succeeded"  # the runner's own end


def test_a_job_the_fresh_read_confirms_gone_fails_the_run_once() -> None:
    assert settle(run(), None, [], fresh=False).refresh
    confirmed = settle(run(), None, [])
    assert reason(confirmed) == "JobDeleted" and not confirmed.refresh
    assert confirmed.event is not None and confirmed.event[1] == "JobDeleted"


def test_the_missing_job_of_a_run_that_never_started_is_created_again_after_the_grace() -> None:
    young = pending(NOW - timedelta(seconds=MISSING_JOB_GRACE - 5))
    assert settle(young, None, [], job_seen=False, fresh=False) == Decision()  # the start is still creating it
    old = pending(NOW - timedelta(seconds=MISSING_JOB_GRACE + 5))
    assert settle(old, None, [], job_seen=False, fresh=False) == Decision(refresh=True)
    decision = settle(old, None, [], job_seen=False)
    assert decision.create_job and decision.status is None and not decision.delete_job
    assert decision.event is not None and decision.event[1] == "JobMissing"
    # A run that never started but whose Job was seen and is gone: deleted, not created again.
    assert reason(settle(old, None, [], job_seen=True)) == "JobDeleted"
    # And before the start has named a Job, nothing is missing.
    unnamed = pending(NOW - timedelta(minutes=5))
    del unnamed["status"]["jobName"]
    assert settle(unnamed, None, [], job_seen=False) == Decision()


def test_settles_names_what_cannot_be_taken_back() -> None:
    assert Decision(delete_job=True).settles and Decision(create_job=True).settles
    assert Decision({"phase": "Failed"}).settles
    assert not Decision({"message": "waiting"}).settles and not Decision().settles


def owned(body: dict[str, Any], kind: str, name: str, uid: str) -> dict[str, Any]:
    body["metadata"].update(namespace="ns", uid=f"{name}-{uid}")
    body["metadata"]["ownerReferences"] = [{"kind": kind, "name": name, "uid": uid}]
    return body


def test_the_cache_never_takes_a_leftover_job_of_an_earlier_flowrun_of_the_same_name_for_the_runs() -> None:
    cache = ClusterCache()
    key = ("ns", "r")
    leftover = owned(job(("Complete", "")), "FlowRun", "r", "old")
    cache.put_job(leftover, deleted=False)
    cache.put_pod(owned(pod("Succeeded"), "Job", "r-run", leftover["metadata"]["uid"]), deleted=False)
    # The new FlowRun "r" (uid "new") neither has that Job nor ever had one...
    assert cache.job_of(key, "new") is None and not cache.job_seen(key, "new")
    assert cache.job_of(key, "old") is leftover and cache.job_seen(key, "old")
    # ...so the leftover's end is not its end (RunnerLost), nor its deletion a JobDeleted.
    mine = pending(NOW - timedelta(seconds=5))  # its start waits for the leftover to be collected
    assert settle(mine, cache.job_of(key, "new"), [], job_seen=cache.job_seen(key, "new")).status is None
    # Once its own Job arrives, only that Job's pods are its pods.
    own = owned(job(), "FlowRun", "r", "new")
    cache.put_job(own, deleted=False)
    cache.put_pod(owned(pod("Running"), "Job", "r-run", own["metadata"]["uid"]), deleted=False)
    assert cache.job_of(key, "new") is own and cache.job_seen(key, "new")
    assert [p["status"]["phase"] for p in cache.pods_of(key, own)] == ["Running"]
    # A late DELETED of the leftover does not take the run's own Job out of the cache.
    cache.put_job(leftover, deleted=True)
    assert cache.job_of(key, "new") is own


def test_a_fresh_read_replaces_what_the_watch_left_in_the_cache() -> None:
    cache = ClusterCache()
    key = ("ns", "r")
    ghost = owned(job(), "FlowRun", "r", "u")
    cache.put_job(ghost, deleted=False)
    cache.put_pod(owned(pod("Running"), "Job", "r-run", ghost["metadata"]["uid"]), deleted=False)
    cache.replace_job(key, None, [])  # the API says: no Job, no pods (their DELETED events were missed)
    assert cache.job_of(key, "u") is None and cache.pods_of(key) == []
    assert cache.job_seen(key, "u")  # it did exist: its absence now is a deletion
    fresh_pod = owned(pod("Pending"), "Job", "r-run", ghost["metadata"]["uid"])
    cache.replace_job(key, ghost, [fresh_pod])  # the API says: there they are (their ADDED were missed)
    assert cache.job_of(key, "u") is ghost and cache.pods_of(key, ghost) == [fresh_pod]


def suspended_run(deadline: datetime | None = None, **spec: Any) -> dict[str, Any]:
    flowrun = run("Suspended", **spec)
    flowrun["status"]["suspended"] = {
        "node": "gate",
        "actions": ["approve"],
        "since": stamp(NOW - timedelta(minutes=5)),
        "deadline": None if deadline is None else stamp(deadline),
        "count": 1,
        "taken": 0,
    }
    return flowrun


def test_a_suspended_run_keeps_no_job_and_resumes_on_a_decision_or_its_deadline() -> None:
    waiting = suspended_run()
    # Its runner exited: the completed Job (and with it the pod) goes.
    assert decide(waiting, job(("Complete", "")), [], job_seen=True, moment=NOW, start_timeout=60, fresh=True) == (
        Decision(delete_job=True)
    )
    assert decide(waiting, job(), [], job_seen=True, moment=NOW, start_timeout=60, fresh=True) == Decision()
    # No Job, no decision, no deadline: it waits (and is not taken for a run whose Job was deleted).
    assert decide(waiting, None, [], job_seen=True, moment=NOW, start_timeout=60, fresh=True) == Decision()
    decided = suspended_run(approvals=[{"node": "other"}, {"node": "gate", "action": "approve"}])
    resumed = decide(decided, None, [], job_seen=True, moment=NOW, start_timeout=60, fresh=True)
    assert resumed.create_job and resumed.status is None
    assert decide(decided, None, [], job_seen=True, moment=NOW, start_timeout=60).refresh  # never on the cache alone
    # A decision an earlier visit took does not count for this one.
    taken = suspended_run(approvals=[{"node": "gate", "action": "approve"}])
    taken["status"]["suspended"]["taken"] = 1
    assert decide(taken, None, [], job_seen=True, moment=NOW, start_timeout=60, fresh=True) == Decision()
    late = suspended_run(deadline=NOW - timedelta(seconds=1))
    assert decide(late, None, [], job_seen=True, moment=NOW, start_timeout=60, fresh=True).create_job
    early = suspended_run(deadline=NOW + timedelta(seconds=30))
    assert decide(early, None, [], job_seen=True, moment=NOW, start_timeout=60, fresh=True) == Decision()
    # A cancel of a waiting run ends it at once.
    cancelled = suspended_run(cancel=True)
    final = decide(cancelled, None, [], job_seen=True, moment=NOW, start_timeout=60, fresh=True)
    assert final.status is not None and final.status["phase"] == "Cancelled"
