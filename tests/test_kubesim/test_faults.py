"""Fault injection: failing requests (500, 429 with Retry-After, 409), latency, cut watches,
and restarting the API endpoint while keeping state (pods keep running)."""

from __future__ import annotations

import http.client
import threading
import time

import pytest
from kubernetes import client, watch

from tests.kubesim import Simulator

from .helpers import Raw

pytestmark = pytest.mark.kubesim
CM = "/api/v1/namespaces/default/configmaps"


def test_fail_next_n_matching_requests(kubesim: Simulator) -> None:
    raw = Raw(kubesim)
    kubesim.faults.fail("GET", r"/configmaps$", 500, times=2)
    assert raw.get(CM).status == 500
    assert raw.get("/api/v1/namespaces/default/secrets").status == 200  # path does not match
    assert raw.post(CM, {"metadata": {"name": "x"}}).status == 201  # method does not match
    failed = raw.get(CM)
    assert failed.status == 500 and failed.body["reason"] == "InternalError"
    assert raw.get(CM).status == 200


def test_429_carries_retry_after(kubesim: Simulator) -> None:
    raw = Raw(kubesim)
    kubesim.faults.fail(None, "/configmaps", 429, retry_after=3)
    r = raw.get(CM)
    assert r.status == 429 and r.headers["Retry-After"] == "3"
    assert r.body["reason"] == "TooManyRequests" and r.body["details"] == {"retryAfterSeconds": 3}


def test_409_conflict_reaches_the_python_client(kubesim: Simulator) -> None:
    api = client.CoreV1Api(kubesim.api_client())
    kubesim.faults.fail("PATCH", "/configmaps/c1", 409)
    api.create_namespaced_config_map("default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="c1")))
    with pytest.raises(client.ApiException) as info:
        api.patch_namespaced_config_map("c1", "default", {"data": {"a": "b"}})
    assert info.value.status == 409
    api.patch_namespaced_config_map("c1", "default", {"data": {"a": "b"}})


def test_latency(kubesim: Simulator) -> None:
    raw = Raw(kubesim)
    kubesim.faults.latency(0.5, "GET", "/configmaps", times=1)
    started = time.monotonic()
    assert raw.get(CM).status == 200
    assert time.monotonic() - started >= 0.5  # a lower bound only: the injected delay happened


def test_cut_watches_ends_open_streams(kubesim: Simulator) -> None:
    api = client.CoreV1Api(kubesim.api_client())
    ended = threading.Event()

    def watcher() -> None:
        for _ in watch.Watch().stream(
            api.list_namespaced_config_map, "default", timeout_seconds=30, _request_timeout=60
        ):
            pass
        ended.set()

    thread = threading.Thread(target=watcher, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    cut = 0
    while cut == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
        cut = kubesim.cut_watches()
    assert cut == 1
    assert ended.wait(10)


def test_restart_api_keeps_state_and_running_pods(kubesim: Simulator) -> None:
    raw = Raw(kubesim)
    raw.post(CM, {"metadata": {"name": "survivor"}})
    raw.post(
        "/api/v1/namespaces/default/pods",
        {
            "metadata": {"name": "runner"},
            "spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "c", "image": "busybox", "command": ["sh", "-c", "echo up; sleep 30"]}],
            },
        },
    )
    deadline = time.monotonic() + 10
    while raw.get("/api/v1/namespaces/default/pods/runner/log").raw != b"up\n":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    rv = raw.get(CM).body["metadata"]["resourceVersion"]
    kubesim.restart_api(downtime=0.2)
    assert raw.get(f"{CM}/survivor").status == 200
    assert raw.get("/api/v1/namespaces/default/pods/runner").body["status"]["phase"] == "Running"
    assert int(raw.get(CM).body["metadata"]["resourceVersion"]) >= int(rv)
    assert kubesim.kubectl("get", "cm", "survivor").returncode == 0


def test_dropped_connection(kubesim: Simulator) -> None:
    raw = Raw(kubesim)
    kubesim.faults.drop("GET", "/configmaps$")
    with pytest.raises((ConnectionError, http.client.HTTPException)):
        raw.get(CM)
    assert raw.get(CM).status == 200
