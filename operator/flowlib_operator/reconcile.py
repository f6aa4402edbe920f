"""What the operator must say about a run that the runner cannot say itself (pure decisions).

The runner reports Running, node progress and the final phase. The operator fills the gaps, from the
Job and its pods as the watch shows them: a pod that never starts (bad image, unschedulable), a
runner that crashed or was OOM-killed, a deadline exceeded, a Job deleted from under the run, a
cancellation that arrived before any runner could act on it (or that its runner did not act on in
time), and a runner that exited without publishing its final status (its termination message
carries it). Everything here is a function of its inputs, so the decisions are tested as data and
the handlers only fetch and write.

A cancel is cooperative (``_cancelling``): the runner sees ``spec.cancel`` itself, stops its flow,
reports Cancelled and exits 0, so its Job completes and its pod stays with its log until the
FlowRun is deleted or its TTL ends. The operator only notes when it saw the cancel (the
``CANCEL_SEEN_ANNOTATION`` on the FlowRun, so an operator restart does not start the wait again)
and deletes the Job -- a hard stop, its pod gets SIGTERM -- when the runner has not ended
``CANCEL_GRACE`` seconds later.

Finished Jobs and their pods are never deleted here: a run that succeeded, failed (its runner
crashed, its deadline passed: the Job controller stops the pod of a Job past its deadline, which is
Kubernetes' own doing) or was cancelled keeps its Job, pods and logs until the FlowRun is deleted
(owner references: the garbage collector) or its ``ttlSecondsAfterFinished`` ends. The operator
deletes a Job only when its pod never started (no runner, no log: it cannot start, or no pod was
ever created), when a cancelled runner did not stop within the grace, and when a run stopped at an
approval node (its next segment runs in a new Job).

The watch cache is a view, not the truth: its streams lag and reconnect independently, and a relist
after 410 Gone never reports what was deleted meanwhile, so a Job or pod the cache lacks (or still
holds) says little. A decision that cannot be taken back (a final phase, deleting or creating the
Job) is therefore never taken on the cache alone: ``decide`` asks for a fresh read instead
(``Decision.refresh``), and the caller reads the FlowRun, its Job and the Job's pods from the API
and decides again with ``fresh=True``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flowlib_api.meta import API_GROUP
from flowlib_api.resources import SUCCEEDED, StatusKey, final_condition_status, succeeded_condition
from flowlib_api.runnerpod import read_termination_message
from flowlib_api.runstatus import FINISHED_PHASES
from flowlib_api.text import STATUS_MESSAGE_BYTES, shorten
from flowlib_api.times import human_duration, parse_time, rfc3339
from flowlib_api.views import FlowRunView

START_FAILURES = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
    }
)

CANCEL_GRACE = 30.0
"""Seconds a cancelled run's runner has, from when the operator saw the cancel, to stop its flow,
report Cancelled and exit by itself (keeping its pod and log); past them its Job is deleted."""
CANCEL_SEEN_ANNOTATION = f"{API_GROUP}/cancel-seen-at"
"""The FlowRun annotation in which the operator records when it saw ``spec.cancel`` (RFC 3339):
the grace is measured from it, so an operator restart does not start it again."""


@dataclass
class Decision:
    """A status patch to apply (None: nothing to say), whether to delete or (re)create the Job, and
    an Event. ``refresh`` carries no action: read the run's objects from the API and decide again.
    ``cancel_seen`` is the moment to record in the FlowRun's ``CANCEL_SEEN_ANNOTATION`` (written
    before the rest; it settles nothing)."""

    status: dict[str, Any] | None = None
    delete_job: bool = False
    create_job: bool = False
    cancel_seen: str | None = None
    event: tuple[str, str, str] | None = None  # (type, reason, message)
    notes: list[str] = field(default_factory=list)
    refresh: bool = False

    @property
    def settles(self) -> bool:
        """Whether it cannot be taken back: it ends the run, or deletes or creates its Job."""
        return self.delete_job or self.create_job or (self.status or {}).get(StatusKey.PHASE) in FINISHED_PHASES


def final_status(flowrun: dict[str, Any], phase: str, reason: str, message: str, moment: datetime) -> dict[str, Any]:
    """A terminal status written by the operator (the runner could not write it, or never ran)."""
    run = FlowRunView(flowrun)
    message = shorten(message, STATUS_MESSAGE_BYTES)
    completed = rfc3339(moment)
    result: dict[str, Any] = {
        StatusKey.PHASE: phase,
        StatusKey.MESSAGE: message,
        StatusKey.COMPLETION_TIME: completed,
        StatusKey.CURRENT_NODE: None,
        StatusKey.CONDITIONS: [
            succeeded_condition(final_condition_status(phase), reason, message, run.generation, moment)
        ],
    }
    started = parse_time(run.start_time)
    if started is not None:
        result[StatusKey.DURATION] = human_duration((moment - started).total_seconds())
    return result


def _job_condition(job: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind and condition.get("status") == "True":
            return condition  # type: ignore[no-any-return]
    return None


def _latest_pod(pods: list[dict[str, Any]]) -> dict[str, Any] | None:
    if not pods:
        return None
    return max(pods, key=lambda p: (p["metadata"].get("creationTimestamp") or "", p["metadata"].get("name", "")))


def _terminated(pod: dict[str, Any]) -> dict[str, Any] | None:
    for state in (pod.get("status") or {}).get("containerStatuses") or []:
        terminated = (state.get("state") or {}).get("terminated") or (state.get("lastState") or {}).get("terminated")
        if terminated:
            return terminated  # type: ignore[no-any-return]
    return None


IMAGE_PULL_FAILURES = frozenset({"ErrImagePull", "ImagePullBackOff"})
"""One condition for a user, two for the kubelet: it flips between them at every pull attempt."""
WAITING_NOTE = "waiting for the runner pod to start: "
"""How every note about a pod that has not started begins (``_pods_going``)."""


@dataclass(frozen=True)
class StartTrouble:
    """Why the latest runner pod has not started, as a user reads it.

    ``meaning`` names the situation in words that stay the same while it does: the kubelet's
    ErrImagePull and ImagePullBackOff both become "the image X cannot be pulled", and no back-off
    counter or flipping reason goes into it. ``detail`` is what the kubelet (or scheduler) says now;
    ``diagnostic`` is False when that says nothing of its own (ImagePullBackOff's "Back-off pulling
    image", which stands for the last pull's failure). ``reason`` is the kubelet's, for the condition
    of a final status."""

    reason: str
    meaning: str
    detail: str
    diagnostic: bool = True

    @property
    def note(self) -> str:
        return shorten(f"{WAITING_NOTE}{self.meaning}: {self.detail}", STATUS_MESSAGE_BYTES)

    def noted_in(self, message: str | None) -> bool:
        """Whether ``message`` already says this: the same note, or -- when this state diagnoses
        nothing itself -- any note of the same meaning (the last pull's diagnosis stands)."""
        if message is None:
            return False
        if message == self.note:
            return True
        return not self.diagnostic and message.startswith(f"{WAITING_NOTE}{self.meaning}: ")

    def last_detail(self, message: str | None) -> str:
        """The detail worth keeping in a final status: the noted diagnosis when this state has none."""
        prefix = f"{WAITING_NOTE}{self.meaning}: "
        if not self.diagnostic and message is not None and message.startswith(prefix):
            return message[len(prefix) :]
        return self.detail


def _container_image(pod: dict[str, Any], state: dict[str, Any]) -> str | None:
    if state.get("image"):
        return str(state["image"])
    for container in (pod.get("spec") or {}).get("containers") or []:
        if container.get("name") == state.get("name") and container.get("image"):
            return str(container["image"])
    return None


def _waiting_failure(pod: dict[str, Any]) -> StartTrouble | None:
    status = pod.get("status") or {}
    for state in status.get("containerStatuses") or []:
        waiting = (state.get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason")
        if reason not in START_FAILURES:
            continue
        message = waiting.get("message") or ""
        image = _container_image(pod, state)
        named = f"the image {image}" if image else "the image"
        if reason in IMAGE_PULL_FAILURES:
            diagnostic = reason == "ErrImagePull" and bool(message)
            return StartTrouble(reason, f"{named} cannot be pulled", message or reason, diagnostic)
        if reason == "InvalidImageName":
            return StartTrouble(reason, f"{named} is not a valid image name", message or reason)
        return StartTrouble(reason, "the runner container cannot be created", f"{reason}: {message or reason}")
    for condition in status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            reason = condition.get("reason") or "Unschedulable"
            return StartTrouble(reason, "the pod cannot be scheduled", condition.get("message") or reason)
    return None


def _crash_looping(pod: dict[str, Any]) -> str | None:
    """What the last exit of a container the kubelet restarts over and over was (CrashLoopBackOff),
    in words that do not change with its back-off counter; None when none is."""
    for state in (pod.get("status") or {}).get("containerStatuses") or []:
        if ((state.get("state") or {}).get("waiting") or {}).get("reason") == "CrashLoopBackOff":
            last = (state.get("lastState") or {}).get("terminated")
            return describe_termination(last) if last else "CrashLoopBackOff"
    return None


def describe_termination(terminated: dict[str, Any]) -> str:
    reason = terminated.get("reason") or "Error"
    code = terminated.get("exitCode")
    text = f"{reason} (exit code {code})" if code is not None else reason
    if reason == "OOMKilled":
        text += "; raise spec.resources.limits.memory"
    return text


def reported_final(pod: dict[str, Any] | None) -> dict[str, Any] | None:
    """The final status a runner left in its termination message when it could not patch it."""
    terminated = _terminated(pod) if pod else None
    return read_termination_message((terminated or {}).get("message"))


def decide(
    flowrun: dict[str, Any],
    job: dict[str, Any] | None,
    pods: list[dict[str, Any]],
    *,
    job_seen: bool,
    moment: datetime,
    start_timeout: float,
    fresh: bool = False,
    cancel_grace: float = CANCEL_GRACE,
    cancel_seen: str | None = None,
) -> Decision:
    """What to write about ``flowrun`` given its Job (None: not there) and the Job's pods.

    ``job_seen`` says whether the Job was ever observed for this run, so that a Job that was never
    there is told from one that went away. ``fresh`` says the three were just read from the API:
    without it, a decision that settles the run comes back as ``Decision(refresh=True)``, since the
    watch cache may lack a Job or pod (or a pod's final state) that exists. ``cancel_grace`` is how
    long a cancelled run's runner has to end by itself; ``cancel_seen`` when the operator recorded
    seeing the cancel, for a ``flowrun`` that does not show the annotation yet (a lagging watch).
    """
    decision = _decide(
        flowrun,
        job,
        pods,
        job_seen=job_seen,
        moment=moment,
        start_timeout=start_timeout,
        cancel_grace=cancel_grace,
        cancel_seen=cancel_seen,
    )
    if decision.settles and not fresh:
        return Decision(refresh=True)
    return decision


def _decide(
    flowrun: dict[str, Any],
    job: dict[str, Any] | None,
    pods: list[dict[str, Any]],
    *,
    job_seen: bool,
    moment: datetime,
    start_timeout: float,
    cancel_grace: float = CANCEL_GRACE,
    cancel_seen: str | None = None,
) -> Decision:
    run = FlowRunView(flowrun)
    if run.finished:
        return Decision()
    latest = _latest_pod(pods)

    if run.cancel_requested:
        return _cancelling(flowrun, job, pods, latest, moment=moment, grace=cancel_grace, seen=cancel_seen)

    if run.phase == "Suspended":
        return _suspended(flowrun, job, moment)

    if job is not None:
        failed = _job_condition(job, "Failed")
        if failed is not None:
            return _job_failed(flowrun, failed, latest, moment)
        if _job_condition(job, "Complete") is not None:
            final = reported_final(latest)
            if final is not None:
                return Decision(final, event=_final_event(final))
            message = "the runner exited without reporting a final status; see its logs"
            return Decision(
                final_status(flowrun, "Failed", "RunnerLost", message, moment),
                event=("Warning", "RunnerLost", message),
            )
        return _pods_going(flowrun, job, pods, latest, moment=moment, start_timeout=start_timeout)

    return _job_missing(flowrun, job_seen=job_seen, moment=moment)


def _suspended(flowrun: dict[str, Any], job: dict[str, Any] | None, moment: datetime) -> Decision:
    """A run stopped at an approval node. Its runner checkpointed and exited: the Job that ran it is
    deleted, so no pod is kept while it waits. It goes on in a new Job (``naming.job_name``'s next
    segment) once ``spec.approvals`` holds the decision, or the node's timeout has ended (the runner
    then takes the timeout edge)."""
    run = FlowRunView(flowrun)
    if job is not None:
        if job["metadata"].get("deletionTimestamp") is not None:
            return Decision()
        if _job_condition(job, "Complete") is not None or _job_condition(job, "Failed") is not None:
            return Decision(delete_job=True)
        return Decision()  # its runner is exiting, or the next segment's is starting
    suspended = run.suspended or {}
    node = suspended.get("node") or "?"
    if run.decision_waiting():
        return Decision(create_job=True, event=("Normal", "Resuming", f"a decision for {node} was given; resuming"))
    deadline = parse_time(suspended.get("deadline"))
    if deadline is not None and moment >= deadline:
        message = f"the approval of {node} timed out; resuming along its timeout edge"
        return Decision(create_job=True, event=("Normal", "Resuming", message))
    return Decision()


def cancel_seen_at(flowrun: dict[str, Any]) -> datetime | None:
    """When the operator recorded seeing the cancel of ``flowrun`` (None: not yet, or unreadable)."""
    annotations = (flowrun.get("metadata") or {}).get("annotations") or {}
    return parse_time(annotations.get(CANCEL_SEEN_ANNOTATION))


def _has_run(pod: dict[str, Any]) -> bool:
    """Whether the pod's runner started (its phase left Pending): it may be acting on the cancel."""
    return (pod.get("status") or {}).get("phase") in ("Running", "Succeeded", "Failed")


def _cancelling(
    flowrun: dict[str, Any],
    job: dict[str, Any] | None,
    pods: list[dict[str, Any]],
    latest: dict[str, Any] | None,
    *,
    moment: datetime,
    grace: float,
    seen: str | None,
) -> Decision:
    """``spec.cancel`` on an unfinished run (see the module docstring).

    A runner that runs is left to stop by itself for ``grace`` seconds from the moment recorded in
    the annotation (recorded first if missing); then its Job is deleted. A terminating pod still
    counts: its runner is cancelling and may report Cancelled within its pod's grace period. A Job
    none of whose pods ever started is deleted at once (no runner there to act, no log to keep); one
    whose earlier attempt ran is kept through the grace (the next pod's runner, once it starts, finds
    the cancel and reports it), so that attempt's pod and log stay. The operator ends the run itself
    only when no runner is left to: with the final status a runner left in its termination message
    if there is one, else Cancelled.
    """
    job_deleting = job is not None and job["metadata"].get("deletionTimestamp") is not None
    job_finished = job is not None and (
        _job_condition(job, "Complete") is not None or _job_condition(job, "Failed") is not None
    )
    live = [p for p in pods if _is_running(p)]
    since = cancel_seen_at(flowrun) or parse_time(seen)
    overdue = since is not None and (moment - since).total_seconds() >= grace
    if not live:
        final = reported_final(latest)
        if final is not None:
            return Decision(final, event=_final_event(final))
        stopped = job is None or job_deleting  # by the hard stop, when the grace is over and a runner ran
        if overdue and stopped and (_ran(FlowRunView(flowrun)) or any(_has_run(p) for p in pods)):
            message = f"cancelled: the runner did not stop within {grace:g}s of spec.cancel, so its Job was deleted"
        else:
            message = "cancelled before the runner reported (spec.cancel)"
        # A Job that never got a pod would still start one, only for it to find the run over.
        pointless = job is not None and not pods and not job_deleting and not job_finished
        return Decision(
            final_status(flowrun, "Cancelled", "Cancelled", message, moment),
            delete_job=pointless,
            event=("Normal", "Cancelled", message),
        )
    if job is None or job_deleting:
        return Decision()  # stopped already (hard stop, or deleted from outside): wait for the pod to end
    if not any(_has_run(p) for p in pods):
        return Decision(delete_job=True)  # no runner ever started: nothing to wait for, nothing to keep
    if since is None:
        at = rfc3339(moment)
        message = f"asked the runner to stop; its Job is deleted if it has not ended within {grace:g}s"
        return Decision(cancel_seen=at, event=("Normal", "Cancelling", message))
    if overdue:
        name = job["metadata"].get("name") or "its Job"
        message = f"the runner did not stop within {grace:g}s of spec.cancel; deleting Job {name} (SIGTERM to its pod)"
        return Decision(delete_job=True, event=("Warning", "CancelGraceExpired", message))
    return Decision()  # the runner has the rest of its grace; the resync looks again


MISSING_JOB_GRACE = 30.0
"""Seconds the Job of a run that never started may be missing before the operator creates it again:
the start writes ``jobName`` just before it creates the Job, and retries a failed creation."""


def _ran(run: FlowRunView) -> bool:
    """Whether a runner ever reported on this run (so its Job existed, whatever the cache saw)."""
    return bool(run.start_time or run.pod_name or run.attempt)


def _job_missing(flowrun: dict[str, Any], *, job_seen: bool, moment: datetime) -> Decision:
    """No Job for an unfinished run that names one. Gone after it existed: the run cannot go on.
    Never there for a run that never started: a lost or failed creation, so it is created again
    once the start has had its time (the Job's name is fixed, so this never makes a second one)."""
    run = FlowRunView(flowrun)
    if not run.job_name:
        return Decision()  # the start has not chosen the Job yet
    if job_seen or _ran(run):
        message = f"the runner Job {run.job_name} was deleted before the run finished"
        return Decision(
            final_status(flowrun, "Failed", "JobDeleted", message, moment),
            event=("Warning", "JobDeleted", message),
        )
    created = run.condition(SUCCEEDED) or {}
    since = parse_time(created.get("lastTransitionTime")) or parse_time(run.creation_timestamp)
    if since is None or (moment - since).total_seconds() < MISSING_JOB_GRACE:
        return Decision()
    message = f"the runner Job {run.job_name} of a run that never started does not exist; creating it again"
    return Decision(create_job=True, event=("Warning", "JobMissing", message))


def _is_running(pod: dict[str, Any]) -> bool:
    """Pending or Running, terminating or not."""
    return (pod.get("status") or {}).get("phase") in ("Pending", "Running")


def _is_active(pod: dict[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Pending", "Running") and not pod["metadata"].get(
        "deletionTimestamp"
    )


def _final_event(final: dict[str, Any]) -> tuple[str, str, str]:
    phase = final["phase"]
    return (
        "Normal" if phase == "Succeeded" else "Warning",
        phase,
        final.get("message") or f"run {phase.lower()}",
    )


def _job_failed(
    flowrun: dict[str, Any], failed: dict[str, Any], latest: dict[str, Any] | None, moment: datetime
) -> Decision:
    final = reported_final(latest)
    if final is not None:
        return Decision(final, event=_final_event(final))
    run = FlowRunView(flowrun)
    reason = failed.get("reason") or "JobFailed"
    if reason == "DeadlineExceeded":
        timeout = run.timeout
        message = f"the run exceeded its timeout ({timeout}) and was stopped"
        return Decision(
            final_status(flowrun, "Failed", "Timeout", message, moment), event=("Warning", "Timeout", message)
        )
    terminated = _terminated(latest) if latest else None
    detail = describe_termination(terminated) if terminated else (failed.get("message") or reason)
    retries = run.retries
    message = f"the runner failed: {detail}"
    if retries:
        message += f" (after {retries + 1} attempts)"
    return Decision(
        final_status(flowrun, "Failed", "RunnerFailed", message, moment),
        event=("Warning", "RunnerFailed", message),
    )


NO_POD_FLOOR = 30.0
"""Seconds a Job may go without any pod before the run fails: pod creation is normally immediate (an
unschedulable pod still exists, Pending), so a Job with no pod at all is stuck, but never judged
sooner than this, whatever ``--pod-start-timeout`` says."""


def _no_pod_yet(flowrun: dict[str, Any], job: dict[str, Any], moment: datetime, start_timeout: float) -> Decision:
    """A Job that never gets a pod (missing service account, quota, admission): fail after the wait."""
    created = parse_time(job.get("metadata", {}).get("creationTimestamp"))
    wait = max(start_timeout, NO_POD_FLOOR)
    if created is None or (moment - created).total_seconds() < wait:
        return Decision()
    name = job.get("metadata", {}).get("name") or "its Job"
    message = (
        f"no runner pod was created within {wait:g}s; `kubectl describe job {name}` shows why "
        "(a missing service account, a resource quota, an admission policy)"
    )
    return Decision(
        final_status(flowrun, "Failed", "PodCreationFailed", message, moment),
        delete_job=True,
        event=("Warning", "PodCreationFailed", message),
    )


def _pods_going(
    flowrun: dict[str, Any],
    job: dict[str, Any],
    pods: list[dict[str, Any]],
    latest: dict[str, Any] | None,
    *,
    moment: datetime,
    start_timeout: float,
) -> Decision:
    run = FlowRunView(flowrun)
    if latest is None:
        return _no_pod_yet(flowrun, job, moment, start_timeout)
    trouble = _waiting_failure(latest)
    if trouble is not None:
        created = parse_time(latest["metadata"].get("creationTimestamp")) or moment
        waited = (moment - created).total_seconds()
        if waited >= start_timeout:
            pod = latest["metadata"]["name"]
            detail = trouble.last_detail(run.message)
            message = f"the runner pod {pod} could not start within {start_timeout:g}s: {trouble.meaning}: {detail}"
            return Decision(
                final_status(flowrun, "Failed", trouble.reason, message, moment),
                delete_job=True,
                event=("Warning", trouble.reason, message),
            )
        # Written on a change of meaning only: each write wakes every watcher of the FlowRun (kopf
        # among them), and the kubelet flips ErrImagePull/ImagePullBackOff at every pull attempt.
        if trouble.noted_in(run.message):
            return Decision()
        return Decision({StatusKey.MESSAGE: trouble.note})
    crashing = _crash_looping(latest)
    if crashing is not None and run.phase != "Running":
        message = f"the runner container keeps exiting ({crashing}); the kubelet restarts it after a back-off"
        return Decision() if run.message == message else Decision({StatusKey.MESSAGE: message})
    failed_pods = [p for p in pods if (p.get("status") or {}).get("phase") == "Failed"]
    if not failed_pods or latest in failed_pods or not any(_is_active(p) for p in pods):
        return Decision()  # no earlier attempt failed, or between attempts (the Job retries or fails)
    terminated = _terminated(max(failed_pods, key=lambda p: p["metadata"].get("creationTimestamp") or ""))
    if terminated is None:
        return Decision()
    message = f"runner attempt {len(failed_pods)} ended: {describe_termination(terminated)}; the Job started it again"
    if run.message != message and run.phase != "Running":
        return Decision({StatusKey.MESSAGE: message})
    return Decision()


def ttl_expired(flowrun: dict[str, Any], moment: datetime) -> bool:
    """Whether a finished FlowRun has outlived its ``ttlSecondsAfterFinished``."""
    run = FlowRunView(flowrun)
    ttl = run.ttl_seconds_after_finished
    if ttl is None or not run.finished:
        return False
    finished = parse_time(run.completion_time)
    return finished is not None and (moment - finished).total_seconds() >= float(ttl)
