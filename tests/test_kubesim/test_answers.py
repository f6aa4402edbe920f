"""What a real API server answers and fills in: Events as two views of one object, times as the
server re-encodes them, lists at a resourceVersion not reached yet, and the fields a server
always sets on Services, Jobs and Deployments."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.kubesim import Simulator

from .helpers import Raw

pytestmark = pytest.mark.kubesim
CORE_EVENTS = "/api/v1/namespaces/default/events"
EVENTS_V1 = "/apis/events.k8s.io/v1/namespaces/default/events"


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    with Simulator(workdir=tmp_path_factory.mktemp("answers")) as s:
        yield s


def test_core_and_events_v1_events_are_one_object(sim: Simulator) -> None:
    """https://kubernetes.io/docs/reference/kubernetes-api/cluster-resources/event-v1/: the
    events.k8s.io/v1 Event is the same object as the core/v1 one (``note`` is ``message``,
    ``regarding`` is ``involvedObject``, ``deprecated*`` are the old fields)."""
    raw = Raw(sim)
    core = {
        "metadata": {"name": "e-core"},
        "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"},
        "reason": "Started",
        "message": "started it",
        "type": "Normal",
        "source": {"component": "kubelet"},
        "count": 2,
        "firstTimestamp": "2026-01-02T03:04:05.678901+00:00",
        "lastTimestamp": "2026-01-02T04:04:05Z",
    }
    assert raw.post(CORE_EVENTS, core).status == 201
    seen = raw.get(f"{EVENTS_V1}/e-core").body
    assert seen["apiVersion"] == "events.k8s.io/v1" and seen["note"] == "started it"
    assert seen["regarding"] == {"kind": "Pod", "name": "p", "namespace": "default"}
    assert seen["deprecatedSource"] == {"component": "kubelet"} and seen["deprecatedCount"] == 2
    assert seen["deprecatedFirstTimestamp"] == "2026-01-02T03:04:05Z"  # re-encoded as metav1.Time
    assert "message" not in seen and "involvedObject" not in seen
    new = {
        "metadata": {"name": "e-v1"},
        "regarding": {"kind": "Job", "name": "j", "namespace": "default"},
        "reason": "Created",
        "note": "made it",
        "type": "Normal",
        "action": "Create",
        "reportingController": "example.com/ctl",
        "reportingInstance": "ctl-1",
        "eventTime": "2026-01-02T03:04:05.5+00:00",
    }
    assert raw.post(EVENTS_V1, new).status == 201
    as_core = raw.get(f"{CORE_EVENTS}/e-v1").body
    assert as_core["message"] == "made it" and as_core["involvedObject"]["kind"] == "Job"
    assert as_core["reportingComponent"] == "example.com/ctl"
    assert as_core["eventTime"] == "2026-01-02T03:04:05.500000Z"  # MicroTime: six digits, Z
    names = {e["metadata"]["name"] for e in raw.get(EVENTS_V1).body["items"]}
    assert {"e-core", "e-v1"} <= names
    by_regarding = raw.get(f"{EVENTS_V1}?fieldSelector=regarding.kind%3DJob").body["items"]
    assert [e["metadata"]["name"] for e in by_regarding] == ["e-v1"]
    patched = raw.patch(f"{EVENTS_V1}/e-core", {"note": "changed"})
    assert patched.status == 200 and patched.body["note"] == "changed"
    assert raw.get(f"{CORE_EVENTS}/e-core").body["message"] == "changed"
    assert raw.delete(f"{EVENTS_V1}/e-core").status == 200
    assert raw.get(f"{CORE_EVENTS}/e-core").status == 404


def test_a_time_that_is_not_rfc3339_is_a_bad_request(sim: Simulator) -> None:
    raw = Raw(sim)
    bad = {"metadata": {"name": "e-bad"}, "involvedObject": {"kind": "Pod"}, "firstTimestamp": "yesterday"}
    assert raw.post(CORE_EVENTS, bad).status == 400


def test_a_list_at_a_future_resource_version_waits_then_times_out(sim: Simulator) -> None:
    """https://kubernetes.io/docs/reference/using-api/api-concepts/#semantics-for-get-and-list:
    NotOlderThan a version the server has not reached waits for it; the watch cache gives up with
    504 "Too large resource version" (cause ResourceVersionTooLarge) and a retry hint."""
    raw = Raw(sim)
    current = int(raw.get("/api/v1/namespaces/default/configmaps").body["metadata"]["resourceVersion"])
    future = current + 1_000_000
    reply = raw.get(f"/api/v1/namespaces/default/configmaps?resourceVersion={future}&resourceVersionMatch=NotOlderThan")
    assert reply.status == 504 and reply.body["reason"] == "Timeout"
    assert reply.body["message"].startswith(f"Too large resource version: {future}, current: ")
    assert reply.body["details"]["causes"][0]["reason"] == "ResourceVersionTooLarge"
    assert reply.headers["Retry-After"] == "1"
    # A version already reached is served at once.
    assert raw.get(f"/api/v1/namespaces/default/configmaps?resourceVersion={current}").status == 200


def test_services_jobs_and_deployments_get_what_a_server_fills_in(sim: Simulator) -> None:
    raw = Raw(sim)
    svc = raw.post(
        "/api/v1/namespaces/default/services",
        {"metadata": {"name": "web"}, "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}},
    ).body
    spec = svc["spec"]
    assert spec["type"] == "ClusterIP" and spec["sessionAffinity"] == "None"
    assert spec["clusterIP"].startswith("10.") and spec["clusterIPs"] == [spec["clusterIP"]]
    assert (spec["ipFamilies"], spec["ipFamilyPolicy"], spec["internalTrafficPolicy"]) == (
        ["IPv4"],
        "SingleStack",
        "Cluster",
    )
    assert spec["ports"] == [{"port": 80, "protocol": "TCP", "targetPort": 80}]
    assert svc["status"] == {"loadBalancer": {}}
    relabelled = raw.patch("/api/v1/namespaces/default/services/web", {"metadata": {"labels": {"a": "b"}}})
    assert relabelled.body["spec"]["clusterIP"] == spec["clusterIP"]
    headless = raw.post(
        "/api/v1/namespaces/default/services",
        {"metadata": {"name": "db"}, "spec": {"clusterIP": "None", "selector": {"app": "db"}}},
    ).body
    assert headless["spec"]["clusterIP"] == "None" and headless["spec"]["clusterIPs"] == ["None"]
    job = {
        "metadata": {"name": "j"},
        "spec": {
            "suspend": True,
            "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}},
        },
    }
    assert raw.post("/apis/batch/v1/namespaces/default/jobs", job).body["status"] == {}
    deployment = {
        "metadata": {"name": "d"},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": "d"}},
            "template": {
                "metadata": {"labels": {"app": "d"}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            },
        },
    }
    assert raw.post("/apis/apps/v1/namespaces/default/deployments", deployment).body["status"] == {}
