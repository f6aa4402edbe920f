"""What the operator has seen of FlowRuns, Jobs and pods, kept current by kopf's watch events.

An informer in miniature: the handlers and the periodic reconciler read from here instead of
asking the API server, so following a run costs watch events, not requests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flowlib_api.meta import KIND_FLOWRUN, LABEL_FLOWRUN

Key = tuple[str, str]  # (namespace, FlowRun name)


@dataclass
class ClusterCache:
    flowruns: dict[Key, dict[str, Any]] = field(default_factory=dict)
    jobs: dict[Key, dict[str, Any]] = field(default_factory=dict)
    pods: dict[Key, dict[str, dict[str, Any]]] = field(default_factory=dict)
    jobs_seen: set[Key] = field(default_factory=set)
    job_owner: dict[tuple[str, str], Key] = field(default_factory=dict)  # (namespace, Job name) -> run

    def put_flowrun(self, body: dict[str, Any], deleted: bool) -> None:
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        if deleted:
            self.flowruns.pop(key, None)
            self.jobs_seen.discard(key)
        else:
            self.flowruns[key] = body

    def put_job(self, body: dict[str, Any], deleted: bool) -> Key | None:
        key = _flowrun_owner(body)
        if key is None:
            return None
        self.job_owner[(key[0], body["metadata"]["name"])] = key
        if deleted:
            self.jobs.pop(key, None)
        else:
            self.jobs[key] = body
            self.jobs_seen.add(key)
        return key

    def put_pod(self, body: dict[str, Any], deleted: bool) -> Key | None:
        meta = body["metadata"]
        job = next((o["name"] for o in meta.get("ownerReferences") or [] if o.get("kind") == "Job"), None)
        key = self.job_owner.get((meta["namespace"], job)) if job else None
        if key is None and (meta.get("labels") or {}).get(LABEL_FLOWRUN):
            key = (meta["namespace"], meta["labels"][LABEL_FLOWRUN])  # Job not seen yet: the label
        if key is None:
            return None
        pods = self.pods.setdefault(key, {})
        if deleted:
            pods.pop(body["metadata"]["name"], None)
            if not pods:
                self.pods.pop(key, None)
        else:
            pods[body["metadata"]["name"]] = body
        return key

    def pods_of(self, key: Key) -> list[dict[str, Any]]:
        return list(self.pods.get(key, {}).values())


def _flowrun_owner(body: dict[str, Any]) -> Key | None:
    meta = body.get("metadata") or {}
    for owner in meta.get("ownerReferences") or []:
        if owner.get("kind") == KIND_FLOWRUN:
            return meta["namespace"], owner["name"]
    return None
