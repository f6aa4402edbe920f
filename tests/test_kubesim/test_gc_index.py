"""The garbage collector's owner-reference index
(https://kubernetes.io/docs/concepts/architecture/garbage-collection/,
https://kubernetes.io/docs/concepts/overview/working-with-objects/owners-dependents/).

The collector reacts to store events through an index (owner uid -> dependents, uid -> object)
instead of rescanning the store. These tests drive an ``Api`` and its ``GarbageCollector``
directly, one pass at a time, so each case is exact and quick: the semantics cases would fail on an
index that is keyed by name, that misses an update of the references or that forgets an event, and
the scaling case counts the objects a change makes the collector examine (never time).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.kubesim import Simulator
from tests.kubesim.core import Api
from tests.kubesim.gc import GarbageCollector
from tests.kubesim.resources import Registry
from tests.kubesim.store import Store

from .helpers import Raw, eventually

JSON = dict[str, Any]
CM = ("", "configmaps")


class Cluster:
    """An API server's storage and its garbage collector, without the HTTP side or the loop."""

    def __init__(self) -> None:
        self.api = Api(Registry(), Store())
        for name in ("default", "other"):
            self.api.create(self.api.resource("", "v1", "namespaces"), "", {"metadata": {"name": name}})
        self.cm = self.api.resource("", "v1", "configmaps")
        self.gc = GarbageCollector(self.api)

    def settle(self) -> None:
        """Run collector passes while store events keep waking it, as its loop would."""
        for _ in range(50):
            if not self.gc._wake.is_set():
                return
            self.gc._wake.clear()
            self.gc.reconcile()
        raise AssertionError("the collector never settled")

    def make(self, name: str, *owners: JSON, namespace: str = "default", **meta: Any) -> JSON:
        refs = [ref(owner) for owner in owners]
        body: JSON = {"metadata": {"name": name, **meta}}
        if refs:
            body["metadata"]["ownerReferences"] = refs
        created, _ = self.api.create(self.cm, namespace, body)
        return created

    def get(self, name: str, namespace: str = "default") -> JSON | None:
        return self.api.store.get(CM, namespace, name)

    def must(self, name: str) -> JSON:
        obj = self.get(name)
        assert obj is not None, name
        return obj

    def delete(self, name: str, policy: str = "Background", namespace: str = "default") -> None:
        self.api.delete(self.cm, namespace, name, {"propagationPolicy": policy})

    def set_meta(self, name: str, namespace: str = "default", **changes: Any) -> None:
        current = self.get(name, namespace)
        assert current is not None
        self.api.internal_update(self.cm, {**current, "metadata": {**current["metadata"], **changes}})


def ref(owner: JSON, block: bool = False) -> JSON:
    return {
        "apiVersion": owner.get("apiVersion", "v1"),
        "kind": owner.get("kind", "ConfigMap"),
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "blockOwnerDeletion": block,
    }


def ghost(name: str = "ghost") -> JSON:
    return {"metadata": {"name": name, "uid": "00000000-0000-0000-0000-000000000000"}}


@pytest.fixture
def cluster() -> Cluster:
    return Cluster()


def test_an_owner_recreated_under_the_same_name_does_not_keep_the_old_dependents(cluster: Cluster) -> None:
    """Owners are matched by uid: a new object with the old name is another owner."""
    old = cluster.make("owner")
    cluster.make("dep1", old)
    cluster.make("dep2", old)
    cluster.settle()
    cluster.delete("owner")
    new = cluster.make("owner")  # before the collector runs
    cluster.make("dep-of-new", new)
    cluster.settle()
    assert cluster.get("dep1") is None and cluster.get("dep2") is None
    assert cluster.get("dep-of-new") is not None
    current = cluster.get("owner")
    assert current is not None and current["metadata"]["uid"] == new["metadata"]["uid"]


def test_a_dependent_created_after_its_owner_is_gone_is_collected(cluster: Cluster) -> None:
    owner = cluster.make("owner")
    cluster.settle()
    cluster.delete("owner")
    cluster.settle()
    cluster.make("late", owner)
    cluster.make("never-owned", ghost())
    cluster.settle()
    assert cluster.get("late") is None and cluster.get("never-owned") is None


def test_references_changed_by_updates_change_what_is_collected(cluster: Cluster) -> None:
    live = cluster.make("live")
    gone = cluster.make("gone")
    cluster.make("adopted-by-ghost")
    cluster.make("loses-live", live, gone)
    cluster.make("disowned", live)
    cluster.settle()
    cluster.delete("gone")
    cluster.settle()
    assert cluster.get("loses-live") is not None  # "live" still owns it
    cluster.set_meta("adopted-by-ghost", ownerReferences=[ref(ghost())])
    cluster.set_meta("loses-live", ownerReferences=[ref(gone)])
    cluster.set_meta("disowned", ownerReferences=[])
    cluster.settle()
    assert cluster.get("adopted-by-ghost") is None and cluster.get("loses-live") is None
    cluster.delete("live")
    cluster.settle()
    assert cluster.get("disowned") is not None  # no longer a dependent of "live"
    assert not cluster.gc._dependents  # the index follows the references, not their history


def test_a_dependent_of_many_owners_goes_with_the_last_one(cluster: Cluster) -> None:
    owners = [cluster.make(f"owner-{i}") for i in range(4)]
    cluster.make("shared", *owners)
    cluster.settle()
    for owner in owners[:3]:
        cluster.delete(owner["metadata"]["name"])
        cluster.settle()
        assert cluster.get("shared") is not None
    cluster.delete("owner-3")
    cluster.settle()
    assert cluster.get("shared") is None


def test_cluster_scoped_and_other_namespace_owners(cluster: Cluster) -> None:
    """A namespaced dependent may have a cluster-scoped owner; a reference whose uid no object has
    is dangling in any namespace."""
    roles = cluster.api.resource("rbac.authorization.k8s.io", "v1", "clusterroles")
    role, _ = cluster.api.create(roles, "", {"metadata": {"name": "owner-role"}})
    cluster.make("of-role", role)
    cluster.make("dangling", ghost(), namespace="other")
    cluster.settle()
    assert cluster.get("of-role") is not None
    assert cluster.get("dangling", "other") is None
    cluster.api.delete(roles, "", "owner-role")
    cluster.settle()
    assert cluster.get("of-role") is None


def test_collection_cascades_down_a_chain(cluster: Cluster) -> None:
    top = cluster.make("top")
    middle = cluster.make("middle", top)
    cluster.make("bottom", middle)
    cluster.settle()
    cluster.delete("top")
    cluster.settle()
    assert cluster.get("middle") is None and cluster.get("bottom") is None


def test_foreground_owner_waits_for_blocking_dependents_only(cluster: Cluster) -> None:
    """The owner keeps ``foregroundDeletion`` while a dependent with ``blockOwnerDeletion`` remains;
    a blocking dependent that drops the flag (an update) or goes releases it."""
    owner = cluster.make("owner")
    hold = ["example.com/hold"]
    cluster.api.create(
        cluster.cm,
        "default",
        {"metadata": {"name": "blocker", "finalizers": hold, "ownerReferences": [ref(owner, block=True)]}},
    )
    cluster.make("follower", owner, finalizers=hold)  # not blocking
    cluster.settle()
    cluster.delete("owner", "Foreground")
    cluster.settle()
    held = cluster.get("owner")
    assert held is not None and "foregroundDeletion" in held["metadata"]["finalizers"]
    for name in ("blocker", "follower"):
        dep = cluster.get(name)
        assert dep is not None and dep["metadata"]["deletionTimestamp"]
    cluster.set_meta("blocker", ownerReferences=[ref(owner, block=False)])
    cluster.settle()
    assert cluster.get("owner") is None

    second = cluster.make("second")
    cluster.api.create(
        cluster.cm,
        "default",
        {"metadata": {"name": "blocker2", "finalizers": hold, "ownerReferences": [ref(second, block=True)]}},
    )
    cluster.settle()
    cluster.delete("second", "Foreground")
    cluster.settle()
    assert cluster.get("second") is not None
    cluster.set_meta("blocker2", finalizers=None)  # the blocker goes
    cluster.settle()
    assert cluster.get("blocker2") is None and cluster.get("second") is None


def test_a_dependent_created_during_foreground_deletion_is_deleted_too(cluster: Cluster) -> None:
    owner = cluster.make("owner")
    cluster.make("blocker", owner, finalizers=["example.com/hold"])
    cluster.set_meta("blocker", ownerReferences=[ref(owner, block=True)])
    cluster.settle()
    cluster.delete("owner", "Foreground")
    cluster.settle()
    cluster.make("newcomer", owner)
    cluster.settle()
    assert cluster.get("newcomer") is None
    assert cluster.get("owner") is not None


def test_a_dependent_orphaned_by_two_owners_at_once_survives(cluster: Cluster) -> None:
    """Both owners go with Orphan propagation in the same pass: each strips its own reference from
    the stored dependent (a stale copy would lose the second update to a conflict, and the dependent
    would then be collected through the reference left behind)."""
    a = cluster.make("a")
    b = cluster.make("b")
    cluster.make("kept", a, b)
    cluster.settle()
    cluster.delete("a", "Orphan")
    cluster.delete("b", "Orphan")
    cluster.settle()
    assert cluster.get("a") is None and cluster.get("b") is None
    kept = cluster.get("kept")
    assert kept is not None and kept["metadata"].get("ownerReferences") in (None, [])


def test_objects_stored_before_the_collector_started_are_indexed() -> None:
    """The simulator bootstraps objects before its controllers exist."""
    api = Api(Registry(), Store())
    api.create(api.resource("", "v1", "namespaces"), "", {"metadata": {"name": "default"}})
    cm = api.resource("", "v1", "configmaps")
    owner, _ = api.create(cm, "default", {"metadata": {"name": "owner"}})
    api.create(cm, "default", {"metadata": {"name": "early", "ownerReferences": [ref(owner)]}})
    api.create(cm, "default", {"metadata": {"name": "stray", "ownerReferences": [ref(ghost())]}})
    gc = GarbageCollector(api)
    gc.reconcile()
    assert api.store.get(CM, "default", "stray") is None
    assert api.store.get(CM, "default", "early") is not None
    api.delete(cm, "default", "owner")
    gc.reconcile()
    assert api.store.get(CM, "default", "early") is None


def test_a_failed_pass_keeps_its_work(cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    owner = cluster.make("owner")
    cluster.make("dep", owner)
    cluster.settle()
    cluster.delete("owner")
    real = cluster.api.delete

    def broken(*args: Any, **kwargs: Any) -> JSON:
        raise RuntimeError("injected")

    monkeypatch.setattr(cluster.api, "delete", broken)
    with pytest.raises(RuntimeError):
        cluster.gc.reconcile()
    monkeypatch.setattr(cluster.api, "delete", real)
    cluster.gc.reconcile()  # the controller loop retries after a failed pass
    assert cluster.get("dep") is None


def examined_per_change(unrelated: int) -> list[int]:
    """Objects the collector examines for each step of one owner's life, next to ``unrelated``
    other owners that each have two dependents (objects with owner references are what a full
    rescan looks at on every change)."""
    cluster = Cluster()
    for i in range(unrelated):
        other = cluster.make(f"other-{i}")
        cluster.make(f"other-{i}-a", other)
        cluster.make(f"other-{i}-b", other)
    cluster.settle()
    steps: list[int] = []

    def step(change: Any) -> None:
        before = cluster.gc.examined
        change()
        cluster.settle()
        steps.append(cluster.gc.examined - before)

    step(lambda: cluster.make("owner"))
    step(lambda: cluster.make("dep-a", cluster.must("owner")))
    step(lambda: cluster.make("dep-b", cluster.must("owner")))
    step(lambda: cluster.delete("owner"))
    assert cluster.get("dep-a") is None and cluster.get("dep-b") is None
    step(lambda: cluster.make("fg"))
    step(lambda: cluster.make("fg-dep", cluster.must("fg")))
    step(lambda: cluster.delete("fg", "Foreground"))
    assert cluster.get("fg") is None and cluster.get("fg-dep") is None
    assert all(uid in cluster.gc._key_of_uid for uid in cluster.gc._dependents)  # no stale entries
    return steps


def test_work_per_change_does_not_grow_with_unrelated_objects() -> None:
    small, large = examined_per_change(10), examined_per_change(1000)
    assert small == large
    assert max(large) <= 6, large


@pytest.mark.kubesim
def test_a_recreated_owner_end_to_end(kubesim: Simulator) -> None:
    raw = Raw(kubesim)
    path = "/api/v1/namespaces/default/configmaps"
    old = raw.post(path, {"metadata": {"name": "owner"}}).body
    assert raw.post(path, {"metadata": {"name": "dep", "ownerReferences": [ref(old)]}}).status == 201
    assert raw.delete(f"{path}/owner").status == 200
    new = raw.post(path, {"metadata": {"name": "owner"}}).body
    eventually(lambda: raw.get(f"{path}/dep").status == 404)
    assert raw.get(f"{path}/owner").body["metadata"]["uid"] == new["metadata"]["uid"]
