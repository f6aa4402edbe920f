"""The Job controller (https://kubernetes.io/docs/concepts/workloads/controllers/job/).

Creates pods from the template (owner reference, ``job-name``/``controller-uid`` labels, completion
index for Indexed jobs), counts succeeded and failed pods, enforces ``backoffLimit`` and
``activeDeadlineSeconds``, and reports the conditions of Kubernetes >= 1.31: ``SuccessCriteriaMet``
then ``Complete``, or ``FailureTarget`` then ``Failed`` once no pod is still running.
``ttlSecondsAfterFinished`` deletes finished jobs (with their pods, background propagation).
"""

from __future__ import annotations

import time
from typing import Any

from .controller import Controller
from .errors import ApiError
from .meta import deep, dig, owner_reference, parse_time, timestamp
from .store import Event

JSON = dict[str, Any]
INDEX = "batch.kubernetes.io/job-completion-index"


def _condition(kind: str, reason: str, message: str) -> JSON:
    now = timestamp()
    return {
        "type": kind,
        "status": "True",
        "reason": reason,
        "message": message,
        "lastProbeTime": now,
        "lastTransitionTime": now,
    }


def _has(job: JSON, kind: str) -> bool:
    return any(c.get("type") == kind and c.get("status") == "True" for c in dig(job, "status", "conditions") or [])


def _ranges(indexes: set[int]) -> str:
    out, items = [], sorted(indexes)
    i = 0
    while i < len(items):
        j = i
        while j + 1 < len(items) and items[j + 1] == items[j] + 1:
            j += 1
        out.append(str(items[i]) if i == j else f"{items[i]}-{items[j]}")
        i = j + 1
    return ",".join(out)


def _succeeded(indexed: bool, completions: int | None, done: set[int], succeeded: int, active: bool) -> bool:
    """The Job's success criteria: every index done (Indexed), enough successes, or (work-queue
    jobs without completions) one success and nothing still running."""
    if indexed:
        return completions is not None and done >= set(range(completions))
    if completions is not None:
        return succeeded >= completions
    return succeeded > 0 and not active


class JobController(Controller):
    def interested(self, event: Event) -> bool:
        return event.key in (("batch", "jobs"), ("", "pods"))

    def reconcile(self) -> float | None:
        store = self.api.store
        pods_by_owner: dict[str, list[JSON]] = {}
        for pod in store.items(("", "pods")):
            for ref in pod["metadata"].get("ownerReferences") or []:
                if ref.get("controller") and ref.get("kind") == "Job":
                    pods_by_owner.setdefault(ref["uid"], []).append(pod)
        timers: list[float] = []
        for job in store.items(("batch", "jobs")):
            try:
                due = self._sync(job, pods_by_owner.get(job["metadata"]["uid"], []))
            except ApiError as exc:
                if exc.code not in (404, 409):
                    raise
                due = 0.1
            if due is not None:
                timers.append(due)
        return min(timers) if timers else None

    def _sync(self, job: JSON, pods: list[JSON]) -> float | None:
        api = self.api
        rt = api.resource("batch", "v1", "jobs")
        meta, spec = job["metadata"], job["spec"]
        status = deep(job.get("status") or {})
        if meta.get("deletionTimestamp"):
            return None
        finished = _has(job, "Complete") or _has(job, "Failed")
        if finished:
            ttl = spec.get("ttlSecondsAfterFinished")
            if ttl is None:
                return None
            ended = status.get("completionTime") or next(
                (c["lastTransitionTime"] for c in status.get("conditions", []) if c["type"] in ("Complete", "Failed")),
                None,
            )
            left = parse_time(ended).timestamp() + ttl - time.time() if ended else 0
            if left <= 0:
                api.delete(rt, meta["namespace"], meta["name"], {"propagationPolicy": "Background"})
                return None
            return left
        running = [p for p in pods if dig(p, "status", "phase") not in ("Succeeded", "Failed")]
        active = [p for p in running if not p["metadata"].get("deletionTimestamp")]
        succeeded = [p for p in pods if dig(p, "status", "phase") == "Succeeded"]
        failed_pods = [p for p in pods if dig(p, "status", "phase") == "Failed"]
        restarts = sum(
            s.get("restartCount", 0)
            for p in pods
            if dig(p, "spec", "restartPolicy") == "OnFailure"
            for s in dig(p, "status", "containerStatuses") or []
        )
        failed = len(failed_pods) + restarts
        indexed = spec.get("completionMode") == "Indexed"
        completions = spec.get("completions")
        done_indexes = (
            {int(p["metadata"].get("annotations", {}).get(INDEX, -1)) for p in succeeded} if indexed else set()
        )
        if not status.get("startTime") and not spec.get("suspend"):
            status["startTime"] = timestamp()
        conditions: list[JSON] = list(status.get("conditions") or [])
        timer: float | None = None

        failure = next(((c["reason"], c["message"]) for c in conditions if c["type"] == "FailureTarget"), None)
        success = any(c["type"] == "SuccessCriteriaMet" for c in conditions)
        if failure is None and not success:
            deadline = spec.get("activeDeadlineSeconds")
            if deadline and status.get("startTime"):
                left = parse_time(status["startTime"]).timestamp() + deadline - time.time()
                if left <= 0:
                    failure = ("DeadlineExceeded", "Job was active longer than specified deadline")
                else:
                    timer = left
            if failure is None and failed > spec.get("backoffLimit", 6):
                failure = ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
            if failure is not None:
                conditions.append(_condition("FailureTarget", *failure))
            else:
                success = _succeeded(indexed, completions, done_indexes, len(succeeded), bool(active))
            if success:
                conditions.append(
                    _condition(
                        "SuccessCriteriaMet",
                        "CompletionsReached",
                        "Reached expected number of succeeded pods",
                    )
                )
        if failure is not None or success:
            for pod in active:
                api.delete(api.resource("", "v1", "pods"), meta["namespace"], pod["metadata"]["name"])
                if failure is not None:
                    # Pods terminated for a failing job count as failed (the real controller
                    # tracks them with a finalizer until counted).
                    failed += 1
            if not running:
                if failure is not None:
                    conditions.append(_condition("Failed", *failure))
                    api.record_event(job, "Warning", failure[0], failure[1], "job-controller")
                else:
                    conditions.append(
                        _condition("Complete", "CompletionsReached", "Reached expected number of succeeded pods")
                    )
                    status["completionTime"] = timestamp()
                    api.record_event(job, "Normal", "Completed", "Job completed", "job-controller")
                timer = spec.get("ttlSecondsAfterFinished")
                timer = float(timer) if timer is not None else None
        elif spec.get("suspend"):
            for pod in active:
                api.delete(api.resource("", "v1", "pods"), meta["namespace"], pod["metadata"]["name"])
            if not any(c["type"] == "Suspended" for c in conditions):
                conditions.append(_condition("Suspended", "JobSuspended", "Job suspended"))
        else:
            conditions = [c for c in conditions if c["type"] != "Suspended"]
            self._create_pods(job, active, succeeded, done_indexes)
        status.update(
            {
                "active": len(active),
                "succeeded": max(len(succeeded), status.get("succeeded", 0)),
                "failed": max(failed, status.get("failed", 0)),
                "ready": sum(
                    1
                    for p in active
                    if any(
                        c.get("type") == "Ready" and c.get("status") == "True"
                        for c in dig(p, "status", "conditions") or []
                    )
                ),
                "terminating": sum(1 for p in running if p["metadata"].get("deletionTimestamp")),
                "uncountedTerminatedPods": {},
            }
        )
        if indexed and done_indexes:
            status["completedIndexes"] = _ranges(done_indexes)
        for key in ("active", "succeeded", "failed", "terminating"):
            if not status[key]:
                status.pop(key)
        if conditions:
            status["conditions"] = conditions
        if status != (job.get("status") or {}):
            new = deep(job)
            new["status"] = status
            api.internal_update(rt, new, "status")
        return timer

    def _create_pods(self, job: JSON, active: list[JSON], succeeded: list[JSON], done: set[int]) -> None:
        spec = job["spec"]
        parallelism = spec.get("parallelism", 1)
        completions = spec.get("completions")
        if spec.get("completionMode") == "Indexed":
            busy = {int(p["metadata"].get("annotations", {}).get(INDEX, -1)) for p in active}
            todo = [i for i in range(completions or 0) if i not in done and i not in busy]
            for index in todo[: max(0, parallelism - len(active))]:
                self._create_pod(job, index)
            return
        want = parallelism if completions is None else min(parallelism, completions - len(succeeded))
        if completions is None and succeeded:
            want = 0
        for _ in range(max(0, want - len(active))):
            self._create_pod(job, None)

    def _create_pod(self, job: JSON, index: int | None) -> None:
        api = self.api
        template = deep(job["spec"]["template"])
        meta = template.get("metadata") or {}
        name = job["metadata"]["name"]
        pod: JSON = {
            "metadata": {
                "generateName": f"{name}-{index}-" if index is not None else f"{name}-",
                "labels": meta.get("labels") or {},
                "annotations": meta.get("annotations") or {},
                "ownerReferences": [owner_reference({**job, "apiVersion": "batch/v1", "kind": "Job"})],
            },
            "spec": template.get("spec") or {},
        }
        if index is not None:
            pod["metadata"]["annotations"][INDEX] = str(index)
            pod["metadata"]["labels"][INDEX] = str(index)
            pod["spec"].setdefault("hostname", f"{name}-{index}")
            for container in pod["spec"].get("containers", []) + pod["spec"].get("initContainers", []):
                container.setdefault("env", []).append(
                    {
                        "name": "JOB_COMPLETION_INDEX",
                        "valueFrom": {"fieldRef": {"fieldPath": f"metadata.annotations['{INDEX}']"}},
                    }
                )
        if not pod["metadata"]["annotations"]:
            del pod["metadata"]["annotations"]
        created, _ = api.create(api.resource("", "v1", "pods"), job["metadata"]["namespace"], pod)
        api.record_event(
            job, "Normal", "SuccessfulCreate", f"Created pod: {created['metadata']['name']}", "job-controller"
        )
