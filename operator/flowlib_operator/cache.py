"""What the operator has seen of FlowRuns, Jobs and pods, kept current by kopf's watch events.

An informer in miniature: the handlers and the periodic reconciler read from here instead of
asking the API server, so following a run costs watch events, not requests. Its view can be behind
or wrong in both directions: streams lag and reconnect independently, and kopf's relist after a
410 Gone reports what exists but never what was deleted meanwhile. So decisions that settle a run
are taken on a fresh read from the API, which ``replace_job`` then puts here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flowlib_api.meta import ANNOTATION_FLOWRUN, KIND_FLOWRUN, LABEL_FLOWRUN
from flowlib_api.views import FlowRunView

Key = tuple[str, str]  # (namespace, FlowRun name)


@dataclass
class ClusterCache:
    flowruns: dict[Key, dict[str, Any]] = field(default_factory=dict)
    jobs: dict[Key, dict[str, Any]] = field(default_factory=dict)
    pods: dict[Key, dict[str, dict[str, Any]]] = field(default_factory=dict)
    jobs_seen: dict[Key, str | None] = field(default_factory=dict)  # run -> uid of the FlowRun owning it
    job_owner: dict[tuple[str, str], Key] = field(default_factory=dict)  # (namespace, Job name) -> run

    def put_flowrun(self, body: dict[str, Any], deleted: bool) -> None:
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        if deleted:
            self.flowruns.pop(key, None)
            self.jobs_seen.pop(key, None)
            return
        meta = body["metadata"]
        if "managedFields" in meta:  # the API server's field bookkeeping: nothing here reads it
            body = {**body, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}
        self.flowruns[key] = body
        if _finished(body):
            self.forget_objects(key)

    def forget_objects(self, key: Key) -> None:
        """Drop a finished run's Job and pods: no decision looks at them again (a final phase is
        final), and an operator holding thousands of finished runs would otherwise keep every
        Job and pod whole."""
        job = self.jobs.pop(key, None)
        self.pods.pop(key, None)
        self.jobs_seen.pop(key, None)
        name = ((job or {}).get("metadata") or {}).get("name")
        if name is not None and self.job_owner.get((key[0], name)) == key:
            del self.job_owner[(key[0], name)]

    def _finished_run(self, key: Key) -> bool:
        return _finished(self.flowruns.get(key))

    def put_job(self, body: dict[str, Any], deleted: bool) -> Key | None:
        owner = _flowrun_owner(body)
        if owner is None:
            return None
        key, run_uid = owner
        if self._finished_run(key):
            return key  # held no more (see forget_objects)
        self.job_owner[(key[0], body["metadata"]["name"])] = key
        if deleted:
            # Only if it is the Job held: a leftover Job of an earlier FlowRun of the same name can go
            # after this run's own Job arrived (their events come in no promised order).
            if _uid(self.jobs.get(key)) in (_uid(body), None):
                self.jobs.pop(key, None)
        else:
            self.jobs[key] = body
            self.jobs_seen[key] = run_uid
        return key

    def put_pod(self, body: dict[str, Any], deleted: bool) -> Key | None:
        meta = body["metadata"]
        job = next((o["name"] for o in meta.get("ownerReferences") or [] if o.get("kind") == "Job"), None)
        key = self.job_owner.get((meta["namespace"], job)) if job else None
        if key is None:  # Job not seen yet: the run's full name, else the label (pods of older runs)
            run = (meta.get("annotations") or {}).get(ANNOTATION_FLOWRUN) or (meta.get("labels") or {}).get(
                LABEL_FLOWRUN
            )
            key = (meta["namespace"], run) if run else None
        if key is None:
            return None
        if self._finished_run(key):
            return key  # held no more (see forget_objects)
        pods = self.pods.setdefault(key, {})
        if deleted:
            pods.pop(body["metadata"]["name"], None)
            if not pods:
                self.pods.pop(key, None)
        else:
            pods[body["metadata"]["name"]] = body
        return key

    def replace_job(self, key: Key, job: dict[str, Any] | None, pods: list[dict[str, Any]]) -> None:
        """What a fresh read from the API says of a run's Job (None: there is none) and its pods,
        in place of what the watch left: a missed ADDED left a gap, a missed DELETED a ghost."""
        if self._finished_run(key):
            self.forget_objects(key)
            return
        if job is None:
            self.jobs.pop(key, None)
        else:
            self.put_job(job, deleted=False)
        if pods:
            self.pods[key] = {p["metadata"]["name"]: p for p in pods}
        else:
            self.pods.pop(key, None)

    def job_of(self, key: Key, run_uid: str | None) -> dict[str, Any] | None:
        """The run's Job, if the one held belongs to this FlowRun and not to an earlier FlowRun of the
        same name (deleted, its objects still being collected: names are derived from the run's)."""
        job = self.jobs.get(key)
        if job is None or run_uid is None:
            return job
        owner = _flowrun_owner(job)
        return job if owner is None or owner[1] in (run_uid, None) else None

    def job_seen(self, key: Key, run_uid: str | None) -> bool:
        """Whether a Job of this very FlowRun was ever held (see ``job_of``)."""
        return key in self.jobs_seen and (run_uid is None or self.jobs_seen[key] in (run_uid, None))

    def pods_of(self, key: Key, job: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """The run's pods; only ``job``'s when it is given (a leftover Job's pods may linger)."""
        pods = list(self.pods.get(key, {}).values())
        job_uid = _uid(job)
        if job_uid is None:
            return pods
        return [p for p in pods if _controller_uid(p, "Job") in (job_uid, None)]


def _finished(body: dict[str, Any] | None) -> bool:
    return body is not None and FlowRunView(body).finished


def _uid(body: dict[str, Any] | None) -> str | None:
    return ((body or {}).get("metadata") or {}).get("uid")


def _controller_uid(body: dict[str, Any], kind: str) -> str | None:
    owners = (body.get("metadata") or {}).get("ownerReferences") or []
    return next((o.get("uid") for o in owners if o.get("kind") == kind), None)


def _flowrun_owner(body: dict[str, Any]) -> tuple[Key, str | None] | None:
    """The FlowRun owning ``body``, as its cache key and its uid."""
    meta = body.get("metadata") or {}
    for owner in meta.get("ownerReferences") or []:
        if owner.get("kind") == KIND_FLOWRUN:
            return (meta["namespace"], owner["name"]), owner.get("uid")
    return None
