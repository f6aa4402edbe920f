"""Deletion: finalizers and deletionTimestamp
(https://kubernetes.io/docs/concepts/overview/working-with-objects/finalizers/), owner references and
garbage collection with Background/Foreground/Orphan propagation
(https://kubernetes.io/docs/concepts/architecture/garbage-collection/,
https://kubernetes.io/docs/concepts/overview/working-with-objects/owners-dependents/), and namespace
termination (https://kubernetes.io/docs/concepts/overview/working-with-objects/namespaces/)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from tests.kubesim import Simulator

from .helpers import Raw, eventually

pytestmark = pytest.mark.kubesim
CM = "/api/v1/namespaces/default/configmaps"


def owned(raw: Raw, name: str, owner: dict[str, Any], block: bool = False) -> None:
    ref = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "blockOwnerDeletion": block,
    }
    assert raw.post(CM, {"metadata": {"name": name, "ownerReferences": [ref]}}).status == 201


def test_finalizer_keeps_object_until_removed(kubesim: Simulator) -> None:
    raw = Raw(kubesim)
    raw.post(CM, {"metadata": {"name": "fin", "finalizers": ["example.com/hold"]}})
    r = raw.delete(f"{CM}/fin")
    assert r.status == 200  # pending, but 200: 202 only with orphanDependents=false (see below)
    assert r.body["kind"] == "ConfigMap" and r.body["metadata"]["deletionTimestamp"]  # the object, pending
    obj = raw.get(f"{CM}/fin").body
    assert obj["metadata"]["deletionTimestamp"] and obj["metadata"]["deletionGracePeriodSeconds"] == 0
    added = raw.patch(f"{CM}/fin", {"metadata": {"finalizers": ["example.com/hold", "example.com/new"]}})
    assert added.status == 422 and "no new finalizers" in added.body["message"]
    assert raw.patch(f"{CM}/fin", {"metadata": {"finalizers": None}}).status == 200
    assert raw.get(f"{CM}/fin").status == 404


def test_background_propagation_deletes_dependents(kubesim: Simulator) -> None:
    raw = Raw(kubesim)
    owner = raw.post(CM, {"metadata": {"name": "owner"}}).body
    owned(raw, "dep1", owner)
    owned(raw, "dep2", owner)
    assert raw.delete(f"{CM}/owner", {"propagationPolicy": "Background"}).status == 200
    eventually(lambda: raw.get(f"{CM}/dep1").status == 404 and raw.get(f"{CM}/dep2").status == 404)


def test_dependent_created_for_a_missing_owner_is_collected(kubesim: Simulator) -> None:
    raw = Raw(kubesim)
    ghost = {"metadata": {"name": "ghost", "uid": "00000000-0000-0000-0000-000000000000"}}
    owned(raw, "orphan-from-start", ghost)
    eventually(lambda: raw.get(f"{CM}/orphan-from-start").status == 404)


def test_foreground_propagation_waits_for_blocking_dependents(kubesim: Simulator) -> None:
    raw = Raw(kubesim)
    owner = raw.post(CM, {"metadata": {"name": "fg"}}).body
    owned(raw, "fg-dep", owner, block=True)
    raw.patch(f"{CM}/fg-dep", {"metadata": {"finalizers": ["example.com/slow"]}})
    assert raw.delete(f"{CM}/fg", {"propagationPolicy": "Foreground"}).status == 200
    eventually(lambda: raw.get(f"{CM}/fg-dep").body["metadata"].get("deletionTimestamp"))
    held = raw.get(f"{CM}/fg").body
    assert "foregroundDeletion" in held["metadata"]["finalizers"] and held["metadata"]["deletionTimestamp"]
    raw.patch(f"{CM}/fg-dep", {"metadata": {"finalizers": None}})
    eventually(lambda: raw.get(f"{CM}/fg").status == 404)


def test_orphan_propagation_strips_owner_references(kubesim: Simulator) -> None:
    raw = Raw(kubesim)
    owner = raw.post(CM, {"metadata": {"name": "or"}}).body
    owned(raw, "or-dep", owner)
    raw.delete(f"{CM}/or", {"propagationPolicy": "Orphan"})
    eventually(lambda: raw.get(f"{CM}/or").status == 404)
    dep = raw.get(f"{CM}/or-dep").body
    assert dep["metadata"].get("ownerReferences") in (None, [])


def test_jobs_default_to_orphaning_their_pods(kubesim: Simulator) -> None:
    """batch/v1 Jobs keep the legacy OrphanDependents default; kubectl sends Background explicitly."""
    raw = Raw(kubesim)
    job = {
        "metadata": {"name": "j"},
        "spec": {
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "c", "image": "busybox", "command": ["sleep", "30"]}],
                }
            }
        },
    }
    raw.post("/apis/batch/v1/namespaces/default/jobs", job)
    pods = eventually(lambda: raw.get("/api/v1/namespaces/default/pods?labelSelector=job-name%3Dj").body["items"])
    raw.delete("/apis/batch/v1/namespaces/default/jobs/j")
    eventually(lambda: raw.get("/apis/batch/v1/namespaces/default/jobs/j").status == 404)
    pod = raw.get(f"/api/v1/namespaces/default/pods/{pods[0]['metadata']['name']}").body
    assert pod["kind"] == "Pod" and not pod["metadata"].get("ownerReferences")
    raw.delete(f"/api/v1/namespaces/default/pods/{pod['metadata']['name']}?gracePeriodSeconds=0")


def test_namespace_termination_deletes_content(kubesim: Simulator) -> None:
    raw = Raw(kubesim)
    raw.post("/api/v1/namespaces", {"metadata": {"name": "doomed"}})
    raw.post("/api/v1/namespaces/doomed/configmaps", {"metadata": {"name": "c", "finalizers": ["example.com/x"]}})
    raw.delete("/api/v1/namespaces/doomed")
    assert raw.get("/api/v1/namespaces/doomed").body["status"]["phase"] == "Terminating"
    refused = raw.post("/api/v1/namespaces/doomed/configmaps", {"metadata": {"name": "late"}})
    assert refused.status == 403 and "being terminated" in refused.body["message"]
    eventually(lambda: raw.get("/api/v1/namespaces/doomed/configmaps/c").body["metadata"].get("deletionTimestamp"))
    raw.patch("/api/v1/namespaces/doomed/configmaps/c", {"metadata": {"finalizers": None}})
    eventually(lambda: raw.get("/api/v1/namespaces/doomed").status == 404)


def test_delete_preconditions(kubesim: Simulator) -> None:
    raw = Raw(kubesim)
    raw.post(CM, {"metadata": {"name": "pc"}})
    r = raw.delete(f"{CM}/pc", {"preconditions": {"uid": "not-the-uid"}})
    assert r.status == 409 and "Precondition failed" in r.body["message"]


def test_delete_answers_as_the_api_server_does(kubesim: Simulator) -> None:
    """k8s.io/apiserver/pkg/endpoints/handlers/delete.go and registry/generic/registry/store.go
    (finalizeDelete): a deletion done at once answers 200 with a success Status naming the object
    (``details.kind`` is the resource, as the registry sets it); pods and service accounts answer
    with the deleted object; a pending deletion answers with the object, 202 only when
    ``orphanDependents: false`` was sent."""
    raw = Raw(kubesim)
    created = raw.post(CM, {"metadata": {"name": "gone"}}).body
    r = raw.delete(f"{CM}/gone")
    assert r.status == 200
    assert r.body == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {"name": "gone", "group": "", "kind": "configmaps", "uid": created["metadata"]["uid"]},
    }
    raw.post("/api/v1/namespaces/default/serviceaccounts", {"metadata": {"name": "robot"}})
    sa = raw.delete("/api/v1/namespaces/default/serviceaccounts/robot")
    assert sa.status == 200 and sa.body["kind"] == "ServiceAccount"
    raw.post(CM, {"metadata": {"name": "held", "finalizers": ["example.com/hold"]}})
    legacy = raw.delete(f"{CM}/held", {"orphanDependents": False})
    assert legacy.status == 202 and legacy.body["metadata"]["deletionTimestamp"]
    raw.patch(f"{CM}/held", {"metadata": {"finalizers": None}})
    dry = raw.post(CM, {"metadata": {"name": "dry"}}).body
    r = raw.delete(f"{CM}/dry?dryRun=All")
    assert r.status == 200 and r.body["details"]["uid"] == dry["metadata"]["uid"]
    assert raw.get(f"{CM}/dry").status == 200


def _at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_pod_graceful_deletion_sets_the_deadline_and_a_shorter_grace_moves_it(kubesim: Simulator) -> None:
    """ObjectMeta: ``deletionTimestamp`` is when the object may be gone, the request time plus the
    grace period (https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/object-meta/);
    a later DELETE with a shorter period moves it to the request time plus that period, as
    BeforeDelete in k8s.io/apiserver/pkg/registry/rest/delete.go does; a longer one changes nothing."""
    raw = Raw(kubesim)
    pods = "/api/v1/namespaces/default/pods"
    stubborn = "trap 'echo ignored' TERM; echo ready; while true; do sleep 0.1; done"
    spec = {
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": 60,
        "containers": [{"name": "c", "image": "busybox", "command": ["sh", "-c", stubborn]}],
    }
    raw.post(pods, {"metadata": {"name": "slow"}, "spec": spec})
    eventually(lambda: raw.get(f"{pods}/slow/log").raw.startswith(b"ready"))
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    first = raw.delete(f"{pods}/slow")
    assert first.status == 200 and first.body["kind"] == "Pod"
    meta = first.body["metadata"]
    deadline = _at(meta["deletionTimestamp"])
    assert meta["deletionGracePeriodSeconds"] == 60
    assert before + dt.timedelta(seconds=59) <= deadline <= before + dt.timedelta(seconds=62)
    longer = raw.delete(f"{pods}/slow", {"gracePeriodSeconds": 120}).body["metadata"]
    assert (longer["deletionGracePeriodSeconds"], longer["deletionTimestamp"]) == (60, meta["deletionTimestamp"])
    shorter = raw.delete(f"{pods}/slow", {"gracePeriodSeconds": 5}).body["metadata"]
    assert shorter["deletionGracePeriodSeconds"] == 5
    assert _at(shorter["deletionTimestamp"]) == deadline - dt.timedelta(seconds=55)
    eventually(lambda: raw.get(f"{pods}/slow").status == 404, timeout=30)
