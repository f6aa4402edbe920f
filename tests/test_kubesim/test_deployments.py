"""Deployments and ReplicaSets (https://kubernetes.io/docs/concepts/workloads/controllers/deployment/):
kubectl create/rollout status/scale/set image, owner chains Deployment -> ReplicaSet -> Pod, and
garbage collection of the chain."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.kubesim import Simulator

from .helpers import Raw, eventually

pytestmark = pytest.mark.kubesim
DEPLOY = """apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web}}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: busybox
        command: [sh, -c, 'echo serving; while true; do sleep 0.2; done']
"""


def pods(sim: Simulator, ns: str) -> list[dict[str, Any]]:
    listed = json.loads(sim.kubectl("get", "pods", "-n", ns, "-l", "app=web", "-o", "json").stdout)["items"]
    return [p for p in listed if not p["metadata"].get("deletionTimestamp")]


def test_deployment_rollout_scale_and_update(kubesim_session: Simulator, kubesim_namespace: str) -> None:
    sim, ns = kubesim_session, kubesim_namespace
    sim.kubectl("apply", "-n", ns, "-f", "-", input=DEPLOY)
    sim.kubectl("rollout", "status", "-n", ns, "deployment/web", "--timeout=30s")
    dep = json.loads(sim.kubectl("get", "deploy", "-n", ns, "web", "-o", "json").stdout)
    assert dep["status"]["readyReplicas"] == 2 and dep["status"]["observedGeneration"] == dep["metadata"]["generation"]
    assert {c["type"]: c["status"] for c in dep["status"]["conditions"]} == {"Available": "True", "Progressing": "True"}
    running = pods(sim, ns)
    assert len(running) == 2
    rs_ref = running[0]["metadata"]["ownerReferences"][0]
    assert rs_ref["kind"] == "ReplicaSet" and rs_ref["name"].startswith("web-")
    rs = json.loads(sim.kubectl("get", "rs", "-n", ns, rs_ref["name"], "-o", "json").stdout)
    assert rs["metadata"]["ownerReferences"][0]["uid"] == dep["metadata"]["uid"]
    assert sim.kubectl("get", "deploy", "-n", ns, "web").stdout.splitlines()[1].split()[:4] == ["web", "2/2", "2", "2"]

    sim.kubectl("scale", "-n", ns, "deployment/web", "--replicas=3")
    eventually(lambda: len(pods(sim, ns)) == 3)
    sim.kubectl("rollout", "status", "-n", ns, "deployment/web", "--timeout=30s")

    sim.kubectl("set", "image", "-n", ns, "deployment/web", "main=busybox:1.36")
    sim.kubectl("rollout", "status", "-n", ns, "deployment/web", "--timeout=30s")
    eventually(
        lambda: (
            {p["spec"]["containers"][0]["image"] for p in pods(sim, ns)} == {"busybox:1.36"} and len(pods(sim, ns)) == 3
        )
    )
    sets = json.loads(sim.kubectl("get", "rs", "-n", ns, "-o", "json").stdout)["items"]
    assert sorted(s["spec"]["replicas"] for s in sets) == [0, 3]
    revisions = {s["metadata"]["annotations"]["deployment.kubernetes.io/revision"] for s in sets}
    assert revisions == {"1", "2"}


def test_deployment_validation_and_cascading_delete(kubesim_session: Simulator, kubesim_namespace: str) -> None:
    sim, ns = kubesim_session, kubesim_namespace
    bad = DEPLOY.replace(
        "template:\n    metadata: {labels: {app: web}}", "template:\n    metadata: {labels: {app: other}}"
    )
    r = sim.kubectl("apply", "-n", ns, "-f", "-", input=bad, check=False)
    assert r.returncode == 1 and "`selector` does not match template `labels`" in r.stderr
    sim.kubectl("apply", "-n", ns, "-f", "-", input=DEPLOY)
    eventually(lambda: len(pods(sim, ns)) == 2)
    raw = Raw(sim)
    scale = raw.get(f"/apis/apps/v1/namespaces/{ns}/deployments/web/scale").body
    assert scale["kind"] == "Scale" and scale["spec"]["replicas"] == 2 and scale["status"]["selector"] == "app=web"
    sim.kubectl("delete", "-n", ns, "deployment/web")
    eventually(lambda: not json.loads(sim.kubectl("get", "rs,pods", "-n", ns, "-o", "json").stdout)["items"])
