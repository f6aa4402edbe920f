"""Garbage collection and the namespace/CRD finalizers.

https://kubernetes.io/docs/concepts/architecture/garbage-collection/: dependents whose owners are
all gone are deleted (background); an owner deleted with Foreground propagation keeps the
``foregroundDeletion`` finalizer until its blocking dependents are gone; with Orphan propagation the
``orphan`` finalizer is removed after the dependents' ownerReferences to it are.
https://kubernetes.io/docs/concepts/overview/working-with-objects/namespaces/: a terminating
namespace has all its content deleted before it goes away.

The collector keeps an owner-reference index, as the real one keeps its dependency graph
(``GraphBuilder`` in k8s.io/kubernetes/pkg/controller/garbagecollector), so that a store event
costs work proportional to the objects it touches instead of a rescan of the whole store (which
was quadratic in bursts of runs). An owner counts as present while any stored object has the uid
its reference names.
"""

from __future__ import annotations

from typing import Any

from . import crds
from .controller import Controller
from .core import FOREGROUND, ORPHAN, Api
from .errors import ApiError
from .meta import deep
from .store import Event, GroupResource

JSON = dict[str, Any]
ObjKey = tuple[GroupResource, str, str]  # (group, plural), namespace ("" if cluster-scoped), name


def _owner_uids(obj: JSON) -> frozenset[str]:
    """The uids an object's ownerReferences name (malformed entries name none, so count as absent)."""
    refs = obj["metadata"].get("ownerReferences") or []
    return frozenset(r["uid"] for r in refs if isinstance(r, dict) and isinstance(r.get("uid"), str))


def _terminating_with_policy(obj: JSON | None) -> bool:
    """Whether an owner is being deleted with Orphan or Foreground propagation, that is, whether a
    change to one of its dependents can change what the collector has to do for it."""
    if obj is None or not obj["metadata"].get("deletionTimestamp"):
        return False
    finalizers = obj["metadata"].get("finalizers") or []
    return ORPHAN in finalizers or FOREGROUND in finalizers


class GarbageCollector(Controller):
    """Event-driven: ``interested`` sees every store event synchronously and updates the index,
    queueing only the objects whose collection the event can change; ``reconcile`` examines those.

    ``examined`` counts the objects ``reconcile`` has looked at (queued ones and the dependents it
    walked), so tests can check the work per change without timing anything.
    """

    def __init__(self, api: Api) -> None:
        self._key_of_uid: dict[str, ObjKey] = {}  # every stored object
        self._uid_of: dict[ObjKey, str] = {}
        self._owners_of: dict[ObjKey, frozenset[str]] = {}  # only objects with owner references
        self._dependents: dict[str, set[ObjKey]] = {}  # owner uid (live or not) -> referencing objects
        self._pending: set[ObjKey] = set()
        self.examined = 0
        super().__init__(api)
        # The simulator bootstraps objects before its controllers exist: index them, and examine
        # what a first full pass would (objects with owners, objects being deleted).
        for gr, obj in api.store.all_items():
            key = self._key(gr, obj)
            self._remember(key, obj)
            if key in self._owners_of or obj["metadata"].get("deletionTimestamp"):
                self._pending.add(key)

    @property
    def pending(self) -> int:
        """How many objects wait to be examined."""
        return len(self._pending)

    @staticmethod
    def _key(gr: GroupResource, obj: JSON) -> ObjKey:
        meta = obj["metadata"]
        return (gr, meta.get("namespace", ""), meta["name"])

    def _get(self, key: ObjKey) -> JSON | None:
        return self.api.store.get(*key)

    # -- the index ------------------------------------------------------------------------------
    def _remember(self, key: ObjKey, obj: JSON) -> None:
        uid = obj["metadata"]["uid"]
        self._uid_of[key] = uid
        self._key_of_uid[uid] = key
        owners = _owner_uids(obj)
        if owners:
            self._owners_of[key] = owners
            for owner in owners:
                self._dependents.setdefault(owner, set()).add(key)

    def _forget(self, key: ObjKey) -> tuple[str | None, frozenset[str]]:
        """Drop ``key`` from the index; return the uid and owner uids it had."""
        uid = self._uid_of.pop(key, None)
        if uid is not None and self._key_of_uid.get(uid) == key:
            del self._key_of_uid[uid]
        owners = self._owners_of.pop(key, frozenset())
        for owner in owners:
            dependents = self._dependents.get(owner)
            if dependents is not None:
                dependents.discard(key)
                if not dependents:
                    del self._dependents[owner]
        return uid, owners

    def interested(self, event: Event) -> bool:
        key = self._key(event.key, event.obj)
        old_uid, old_owners = self._forget(key)
        new_owners: frozenset[str] = frozenset()
        if event.type != "DELETED":
            self._remember(key, event.obj)
            new_owners = self._owners_of.get(key, frozenset())
            # Its own owners may be gone (a reference added by an update), or it may be deleting.
            if new_owners or event.obj["metadata"].get("deletionTimestamp"):
                self._pending.add(key)
        if old_uid is not None and old_uid != self._uid_of.get(key):
            # That uid is gone from the store (a name reused by a new object gets a new uid): its
            # dependents may have lost their last owner.
            self._pending.update(self._dependents.get(old_uid, ()))
        # An owner in Orphan or Foreground deletion waits on its dependents, so a dependent that
        # appears, goes, or changes its references to it re-examines that owner.
        for owner in old_owners | new_owners:
            owner_key = self._key_of_uid.get(owner)
            if owner_key is not None and _terminating_with_policy(self._get(owner_key)):
                self._pending.add(owner_key)
        return bool(self._pending)

    # -- actions -----------------------------------------------------------------------------
    def _rt(self, gr: GroupResource) -> Any:
        return self.api.registry.any_version(*gr)

    def _delete(self, key: ObjKey, obj: JSON, policy: str = "Background") -> None:
        rt = self._rt(key[0])
        if rt is None:
            return
        meta = obj["metadata"]
        try:
            self.api.delete(rt, meta.get("namespace", ""), meta["name"], {"propagationPolicy": policy})
        except ApiError as exc:
            if exc.code != 404:
                raise

    def _update_meta(self, key: ObjKey, obj: JSON, **changes: Any) -> bool:
        """Write ``changes`` into the stored object's metadata; False if it changed meanwhile (409)."""
        rt = self._rt(key[0])
        if rt is None:
            return True
        new = deep(obj)
        new["metadata"].update(changes)
        try:
            self.api.internal_update(rt, new)
        except ApiError as exc:
            if exc.code == 409:
                return False
            if exc.code != 404:
                raise
        return True

    def reconcile(self) -> float | None:
        batch = sorted(self._pending)
        self._pending.clear()
        for index, key in enumerate(batch):
            try:
                self._examine(key)
            except BaseException:
                self._pending.update(batch[index:])  # retried on the next pass
                raise
        return None

    def _examine(self, key: ObjKey) -> None:
        # Always the stored object, never a copy from earlier in the pass: a stale one would lose
        # an update to a conflict (409), e.g. a dependent orphaned by two owners at once.
        obj = self._get(key)
        if obj is None:
            return
        self.examined += 1
        meta = obj["metadata"]
        if not meta.get("deletionTimestamp"):
            owners = self._owners_of.get(key, frozenset())
            if meta.get("ownerReferences") and not any(uid in self._key_of_uid for uid in owners):
                self._delete(key, obj)
            return
        finalizers = meta.get("finalizers") or []
        if ORPHAN in finalizers:
            self._orphan(key, obj)
        elif FOREGROUND in finalizers:
            self._foreground(key, obj)

    def _dependents_of(self, uid: str) -> list[tuple[ObjKey, JSON]]:
        found = []
        for dkey in sorted(self._dependents.get(uid, ())):
            dep = self._get(dkey)
            if dep is not None:
                self.examined += 1
                found.append((dkey, dep))
        return found

    def _orphan(self, key: ObjKey, obj: JSON) -> None:
        uid = obj["metadata"]["uid"]
        stripped = True
        for dkey, dep in self._dependents_of(uid):
            kept = [r for r in dep["metadata"].get("ownerReferences") or [] if r.get("uid") != uid]
            stripped = self._update_meta(dkey, dep, ownerReferences=kept) and stripped
        current = self._get(key)  # re-read: it may be its own dependent
        if current is None or current["metadata"].get("uid") != uid:
            return
        if not stripped:
            self._pending.add(key)  # a dependent changed under us: strip it again first
            self._wake.set()
            return
        finalizers = current["metadata"].get("finalizers") or []
        self._update_meta(key, current, finalizers=[f for f in finalizers if f != ORPHAN])

    def _foreground(self, key: ObjKey, obj: JSON) -> None:
        """Delete the dependents (in the foreground too); the owner goes once none of them still
        blocks it. Each blocking dependent's removal or change re-queues the owner (``interested``)."""
        uid = obj["metadata"]["uid"]
        blocking = False
        for dkey, dep in self._dependents_of(uid):
            if not dep["metadata"].get("deletionTimestamp"):
                self._delete(dkey, dep, "Foreground")
            if any(
                r.get("uid") == uid and r.get("blockOwnerDeletion")
                for r in dep["metadata"].get("ownerReferences") or []
            ):
                blocking = True
        if blocking:
            return
        current = self._get(key)
        if current is None or current["metadata"].get("uid") != uid:
            return
        finalizers = current["metadata"].get("finalizers") or []
        self._update_meta(key, current, finalizers=[f for f in finalizers if f != FOREGROUND])


class NamespaceController(Controller):
    """Empties terminating namespaces and finalizes CRDs being deleted."""

    def interested(self, event: Event) -> bool:
        if event.key in (("", "namespaces"), ("apiextensions.k8s.io", "customresourcedefinitions")):
            return True
        return event.type == "DELETED"

    def reconcile(self) -> float | None:
        again = None
        store = self.api.store
        for space in store.items(("", "namespaces")):
            if not space["metadata"].get("deletionTimestamp"):
                continue
            name = space["metadata"]["name"]
            left = 0
            for key, obj in store.all_items():
                if obj["metadata"].get("namespace") != name:
                    continue
                left += 1
                rt = self.api.registry.any_version(*key)
                if rt is not None and not obj["metadata"].get("deletionTimestamp"):
                    self.api.delete(rt, name, obj["metadata"]["name"], {"propagationPolicy": "Background"})
            if left:
                again = 0.2
            elif not space["metadata"].get("finalizers"):
                self.api.remove_now(self.api.resource("", "v1", "namespaces"), space)
        crd_rt = self.api.resource("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        for crd in store.items(crd_rt.key):
            meta = crd["metadata"]
            if not meta.get("deletionTimestamp") or crds.CLEANUP not in (meta.get("finalizers") or []):
                continue
            key = (crd["spec"]["group"], crd["spec"]["names"]["plural"])
            rt = self.api.registry.any_version(*key)
            remaining = store.items(key)
            for obj in remaining:
                if rt is not None and not obj["metadata"].get("deletionTimestamp"):
                    self.api.delete(rt, obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
            if store.items(key):
                again = 0.2
                continue
            new = deep(crd)
            new["metadata"]["finalizers"] = [f for f in meta["finalizers"] if f != crds.CLEANUP]
            self.api.internal_update(crd_rt, new)
        return again
