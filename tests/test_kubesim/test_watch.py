"""List and watch, following https://kubernetes.io/docs/reference/using-api/api-concepts/
(#efficient-detection-of-changes, #watch-bookmarks, #streaming-lists, #resource-versions, 410 Gone)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from tests.kubesim import Simulator

from .helpers import Raw

pytestmark = pytest.mark.kubesim
CM = "/api/v1/namespaces/default/configmaps"


@pytest.fixture
def sim(kubesim: Simulator) -> Iterator[Simulator]:
    yield kubesim


def test_watch_without_resource_version_starts_with_current_state(sim: Simulator) -> None:
    raw = Raw(sim)
    raw.post(CM, {"metadata": {"name": "w1", "labels": {"w": "1"}}})
    events = raw.watch_lines(f"{CM}?watch=true&labelSelector=w&timeoutSeconds=1", 5)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "w1")]


def test_watch_from_resource_version_replays_later_events(sim: Simulator) -> None:
    raw = Raw(sim)
    rv = raw.get(CM).body["metadata"]["resourceVersion"]
    raw.post(CM, {"metadata": {"name": "a"}})
    raw.patch(f"{CM}/a", {"data": {"k": "v"}})
    raw.delete(f"{CM}/a")
    events = raw.watch_lines(f"{CM}?watch=1&resourceVersion={rv}&timeoutSeconds=1", 10)
    assert [e["type"] for e in events] == ["ADDED", "MODIFIED", "DELETED"]
    rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert rvs == sorted(rvs) and rvs[0] > int(rv)


def test_selector_transitions_become_added_and_deleted(sim: Simulator) -> None:
    raw = Raw(sim)
    raw.post(CM, {"metadata": {"name": "t", "labels": {"x": "no"}}})
    rv = raw.get(CM).body["metadata"]["resourceVersion"]
    raw.patch(f"{CM}/t", {"metadata": {"labels": {"x": "yes"}}})
    raw.patch(f"{CM}/t", {"data": {"a": "b"}})
    raw.patch(f"{CM}/t", {"metadata": {"labels": {"x": "no"}}})
    events = raw.watch_lines(f"{CM}?watch=1&resourceVersion={rv}&labelSelector=x%3Dyes&timeoutSeconds=1", 10)
    assert [e["type"] for e in events] == ["ADDED", "MODIFIED", "DELETED"]


def test_compacted_history_gives_410_error_event(sim: Simulator) -> None:
    raw = Raw(sim)
    rv = raw.get(CM).body["metadata"]["resourceVersion"]
    raw.post(CM, {"metadata": {"name": "c"}})
    sim.compact()
    events = raw.watch_lines(f"{CM}?watch=1&resourceVersion={rv}", 2)
    assert len(events) == 1 and events[0]["type"] == "ERROR"
    assert events[0]["object"]["code"] == 410 and events[0]["object"]["reason"] == "Expired"


def test_bookmarks_and_send_initial_events(sim: Simulator) -> None:
    sim.set_timing(bookmark_interval=0.2)
    raw = Raw(sim)
    raw.post(CM, {"metadata": {"name": "b1", "labels": {"bm": "1"}}})
    q = "watch=1&labelSelector=bm&allowWatchBookmarks=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan"
    events = raw.watch_lines(f"{CM}?{q}", 3)
    assert [e["type"] for e in events] == ["ADDED", "BOOKMARK", "BOOKMARK"]
    assert events[1]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
    assert set(events[2]["object"]["metadata"]) == {"resourceVersion"}


def test_timeout_seconds_ends_the_stream(sim: Simulator) -> None:
    """The server closes the stream after timeoutSeconds; were it not to, the client's 10 s socket
    timeout would raise instead of returning."""
    raw = Raw(sim)
    events = raw.watch_lines(f"{CM}?watch=1&labelSelector=none&timeoutSeconds=1", 5, timeout=10)
    assert events == []


def test_python_client_watch_resumes_after_410_by_relisting(sim: Simulator) -> None:
    """The documented client pattern: on 410, list again and watch from the list's resourceVersion."""
    api = client.CoreV1Api(sim.api_client())
    api.create_namespaced_config_map("default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="before")))
    old_rv = api.list_namespaced_config_map("default").metadata.resource_version
    api.create_namespaced_config_map("default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="middle")))
    sim.compact()
    w = watch.Watch()
    with pytest.raises(ApiException) as info:
        for _ in w.stream(api.list_namespaced_config_map, "default", resource_version=old_rv, timeout_seconds=2):
            pass
    assert info.value.status == 410
    listed = api.list_namespaced_config_map("default")
    assert {"before", "middle"} <= {i.metadata.name for i in listed.items}

    def later() -> None:
        time.sleep(0.3)
        api.create_namespaced_config_map("default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="after")))

    threading.Thread(target=later).start()
    seen = []
    for event in w.stream(
        api.list_namespaced_config_map, "default", resource_version=listed.metadata.resource_version, timeout_seconds=5
    ):
        seen.append((event["type"], event["object"].metadata.name))
        if event["object"].metadata.name == "after":
            w.stop()
    assert seen == [("ADDED", "after")]


def test_python_client_watch_follows_changes(sim: Simulator) -> None:
    api = client.CoreV1Api(sim.api_client())
    rv = api.list_namespaced_config_map("default").metadata.resource_version

    def writer() -> None:
        time.sleep(0.2)
        api.create_namespaced_config_map("default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="live")))
        api.patch_namespaced_config_map("live", "default", {"data": {"a": "1"}})
        api.delete_namespaced_config_map("live", "default")

    threading.Thread(target=writer).start()
    w = watch.Watch()
    types = []
    for event in w.stream(api.list_namespaced_config_map, "default", resource_version=rv, timeout_seconds=5):
        types.append(event["type"])
        if event["type"] == "DELETED":
            w.stop()
    assert types == ["ADDED", "MODIFIED", "DELETED"]
