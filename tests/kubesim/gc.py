"""Garbage collection and the namespace/CRD finalizers.

https://kubernetes.io/docs/concepts/architecture/garbage-collection/: dependents whose owners are
all gone are deleted (background); an owner deleted with Foreground propagation keeps the
``foregroundDeletion`` finalizer until its blocking dependents are gone; with Orphan propagation the
``orphan`` finalizer is removed after the dependents' ownerReferences to it are.
https://kubernetes.io/docs/concepts/overview/working-with-objects/namespaces/: a terminating
namespace has all its content deleted before it goes away.
"""

from __future__ import annotations

from typing import Any

from . import crds
from .controller import Controller
from .core import FOREGROUND, ORPHAN
from .errors import ApiError
from .meta import deep
from .store import Event

JSON = dict[str, Any]


class GarbageCollector(Controller):
    def interested(self, event: Event) -> bool:
        meta = event.obj["metadata"]
        return event.type == "DELETED" or bool(meta.get("deletionTimestamp")) or bool(meta.get("ownerReferences"))

    def _rt(self, key: tuple[str, str]) -> Any:
        return self.api.registry.any_version(*key)

    def _delete(self, key: tuple[str, str], obj: JSON, policy: str = "Background") -> None:
        rt = self._rt(key)
        if rt is None:
            return
        meta = obj["metadata"]
        try:
            self.api.delete(rt, meta.get("namespace", ""), meta["name"], {"propagationPolicy": policy})
        except ApiError as exc:
            if exc.code != 404:
                raise

    def _update_meta(self, key: tuple[str, str], obj: JSON, **changes: Any) -> None:
        rt = self._rt(key)
        if rt is None:
            return
        new = deep(obj)
        new["metadata"].update(changes)
        try:
            self.api.internal_update(rt, new)
        except ApiError as exc:
            if exc.code not in (404, 409):
                raise

    def reconcile(self) -> float | None:
        items = self.api.store.all_items()
        by_uid = {obj["metadata"]["uid"]: (key, obj) for key, obj in items}
        dependents: dict[str, list[tuple[tuple[str, str], JSON]]] = {}
        for key, obj in items:
            for ref in obj["metadata"].get("ownerReferences") or []:
                dependents.setdefault(ref.get("uid", ""), []).append((key, obj))
        again = None
        for key, obj in items:
            meta = obj["metadata"]
            refs = meta.get("ownerReferences") or []
            if refs and not meta.get("deletionTimestamp") and not any(r.get("uid") in by_uid for r in refs):
                self._delete(key, obj)
            if not meta.get("deletionTimestamp"):
                continue
            finalizers = meta.get("finalizers") or []
            deps = dependents.get(meta["uid"], [])
            if ORPHAN in finalizers:
                for dkey, dep in deps:
                    kept = [r for r in dep["metadata"].get("ownerReferences") or [] if r.get("uid") != meta["uid"]]
                    self._update_meta(dkey, dep, ownerReferences=kept)
                self._update_meta(key, obj, finalizers=[f for f in finalizers if f != ORPHAN])
            elif FOREGROUND in finalizers:
                blocking = False
                for dkey, dep in deps:
                    if not dep["metadata"].get("deletionTimestamp"):
                        self._delete(dkey, dep, "Foreground")
                    if any(
                        r.get("uid") == meta["uid"] and r.get("blockOwnerDeletion")
                        for r in dep["metadata"].get("ownerReferences") or []
                    ):
                        blocking = True
                if blocking:
                    again = 0.2
                else:
                    self._update_meta(key, obj, finalizers=[f for f in finalizers if f != FOREGROUND])
        return again


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
