"""Deployment and ReplicaSet controllers
(https://kubernetes.io/docs/concepts/workloads/controllers/deployment/ and /replicaset/).

A Deployment owns one ReplicaSet per pod template (named ``<deployment>-<pod-template-hash>``);
the current one is scaled to ``spec.replicas`` and older ones to zero at once (no surge or
unavailability budget). A ReplicaSet keeps ``spec.replicas`` live pods matching its selector.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from .controller import Controller
from .errors import ApiError
from .meta import deep, dig, owner_reference, timestamp
from .store import Event

JSON = dict[str, Any]
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
REVISION = "deployment.kubernetes.io/revision"


def template_hash(template: JSON) -> str:
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).digest()
    return "".join(_ALPHABET[b % len(_ALPHABET)] for b in digest[:10])


def _controller_uid(obj: JSON) -> str | None:
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("controller"):
            return str(ref.get("uid"))
    return None


def _ready(pod: JSON) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in dig(pod, "status", "conditions") or [])


def _condition(prev: JSON | None, kind: str, ok: bool, reason: str, message: str) -> JSON:
    """A Deployment condition that keeps its times while nothing about it changes."""
    status = "True" if ok else "False"
    now = timestamp()
    same = prev is not None and prev.get("status") == status
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastUpdateTime": prev.get("lastUpdateTime", now) if same and prev and prev.get("reason") == reason else now,
        "lastTransitionTime": prev.get("lastTransitionTime", now) if same and prev else now,
    }


class AppsController(Controller):
    def interested(self, event: Event) -> bool:
        return event.key in (("apps", "deployments"), ("apps", "replicasets"), ("", "pods"))

    def reconcile(self) -> float | None:
        again = None
        for name, sync in (("deployments", self._deployment), ("replicasets", self._replicaset)):
            for obj in self.api.store.items(("apps", name)):
                if obj["metadata"].get("deletionTimestamp"):
                    continue
                try:
                    sync(obj)
                except ApiError as exc:
                    if exc.code not in (404, 409):
                        raise
                    again = 0.1
        return again

    def _write_status(self, plural: str, obj: JSON, status: JSON) -> None:
        if status == obj.get("status"):
            return
        new = deep(obj)
        new["status"] = status
        self.api.internal_update(self.api.resource("apps", "v1", plural), new, "status")

    def _deployment(self, dep: JSON) -> None:
        api = self.api
        rs_rt = api.resource("apps", "v1", "replicasets")
        meta, spec = dep["metadata"], dep["spec"]
        uid = meta["uid"]
        owned = [rs for rs in api.store.items(rs_rt.key, meta["namespace"]) if _controller_uid(rs) == uid]
        template = deep(spec["template"])
        hashed = template_hash(template)
        name = f"{meta['name']}-{hashed}"
        current = next((rs for rs in owned if rs["metadata"]["name"] == name), None)
        revision = 1 + max(
            (int((rs["metadata"].get("annotations") or {}).get(REVISION, "0")) for rs in owned), default=0
        )
        if current is None:
            template.setdefault("metadata", {}).setdefault("labels", {})["pod-template-hash"] = hashed
            selector = deep(spec["selector"])
            selector.setdefault("matchLabels", {})["pod-template-hash"] = hashed
            labels = {**(dep["spec"]["template"].get("metadata", {}).get("labels") or {}), "pod-template-hash": hashed}
            body = {
                "metadata": {
                    "name": name,
                    "labels": labels,
                    "annotations": {REVISION: str(revision)},
                    "ownerReferences": [owner_reference(dep)],
                },
                "spec": {"replicas": spec["replicas"], "selector": selector, "template": template},
            }
            current, _ = api.create(rs_rt, meta["namespace"], body)
            api.record_event(
                dep,
                "Normal",
                "ScalingReplicaSet",
                f"Scaled up replica set {name} to {spec['replicas']}",
                "deployment-controller",
            )
        elif current["spec"]["replicas"] != spec["replicas"]:
            new = deep(current)
            new["spec"]["replicas"] = spec["replicas"]
            current = api.internal_update(rs_rt, new)
        for rs in owned:
            if rs["metadata"]["name"] != name and rs["spec"].get("replicas"):
                old = deep(rs)
                old["spec"]["replicas"] = 0
                api.internal_update(rs_rt, old)
        rev = (current["metadata"].get("annotations") or {}).get(REVISION, str(revision))
        if (meta.get("annotations") or {}).get(REVISION) != rev:
            new_dep = deep(dep)
            new_dep["metadata"].setdefault("annotations", {})[REVISION] = rev
            dep = api.internal_update(api.resource("apps", "v1", "deployments"), new_dep)
        self._deployment_status(dep, current, owned)

    def _deployment_status(self, dep: JSON, current: JSON, owned: list[JSON]) -> None:
        everything = [rs for rs in owned if rs["metadata"]["name"] != current["metadata"]["name"]] + [current]
        total = sum(dig(rs, "status", "replicas") or 0 for rs in everything)
        ready = sum(dig(rs, "status", "readyReplicas") or 0 for rs in everything)
        updated = dig(current, "status", "replicas") or 0
        want = dep["spec"]["replicas"]
        available = ready
        old = {c["type"]: c for c in dig(dep, "status", "conditions") or []}
        name = current["metadata"]["name"]
        done = updated == want and available >= want and total == want
        enough = available >= want
        status: JSON = {
            "observedGeneration": dep["metadata"]["generation"],
            "replicas": total,
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": available,
            "conditions": [
                _condition(
                    old.get("Available"),
                    "Available",
                    enough,
                    "MinimumReplicasAvailable" if enough else "MinimumReplicasUnavailable",
                    f"Deployment {'has' if enough else 'does not have'} minimum availability.",
                ),
                _condition(
                    old.get("Progressing"),
                    "Progressing",
                    True,
                    "NewReplicaSetAvailable" if done else "ReplicaSetUpdated",
                    f'ReplicaSet "{name}" ' + ("has successfully progressed." if done else "is progressing."),
                ),
            ],
        }
        if total - available > 0:
            status["unavailableReplicas"] = total - available
        for key in ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas"):
            if not status[key]:
                del status[key]
        self._write_status("deployments", dep, status)

    def _replicaset(self, rs: JSON) -> None:
        api = self.api
        pod_rt = api.resource("", "v1", "pods")
        meta = rs["metadata"]
        pods = [
            p
            for p in api.store.items(pod_rt.key, meta["namespace"])
            if _controller_uid(p) == meta["uid"]
            and not p["metadata"].get("deletionTimestamp")
            and dig(p, "status", "phase") not in ("Succeeded", "Failed")
        ]
        want = rs["spec"].get("replicas", 1)
        template = rs["spec"]["template"]
        for _ in range(want - len(pods)):
            body = {
                "metadata": {
                    "generateName": f"{meta['name']}-",
                    "labels": deep((template.get("metadata") or {}).get("labels") or {}),
                    "ownerReferences": [owner_reference(rs)],
                },
                "spec": deep(template.get("spec") or {}),
            }
            if (template.get("metadata") or {}).get("annotations"):
                body["metadata"]["annotations"] = deep(template["metadata"]["annotations"])
            created, _ = api.create(pod_rt, meta["namespace"], body)
            api.record_event(
                rs, "Normal", "SuccessfulCreate", f"Created pod: {created['metadata']['name']}", "replicaset-controller"
            )
            pods.append(created)
        for pod in sorted(pods, key=lambda p: p["metadata"]["creationTimestamp"], reverse=True)[
            : max(0, len(pods) - want)
        ]:
            api.delete(pod_rt, meta["namespace"], pod["metadata"]["name"])
            api.record_event(
                rs, "Normal", "SuccessfulDelete", f"Deleted pod: {pod['metadata']['name']}", "replicaset-controller"
            )
            pods.remove(pod)
        ready = sum(1 for p in pods if _ready(p))
        status: JSON = {
            "replicas": len(pods),
            "fullyLabeledReplicas": len(pods),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "observedGeneration": meta["generation"],
        }
        for key in ("fullyLabeledReplicas", "readyReplicas", "availableReplicas"):
            if not status[key]:
                del status[key]
        self._write_status("replicasets", rs, status)
