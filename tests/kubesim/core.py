"""The API server's verb semantics, independent of HTTP.

The HTTP layer (``server.py``) authenticates, authorizes and parses; the controllers (garbage
collector, Job controller, kubelet) call this module directly, like in-cluster components that
talk to the same storage. Rules follow https://kubernetes.io/docs/reference/using-api/api-concepts/
and https://kubernetes.io/docs/concepts/overview/working-with-objects/ (names, finalizers,
owners and dependents).
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from typing import Any

import yaml

from . import admission, builtin_schema, crds, limits
from .errors import ApiError, already_exists, bad_request, conflict, forbidden, invalid, not_found
from .meta import deep, new_uid, now, parse_time, random_suffix, timestamp, validate_labels, validate_name
from .patch import json_patch, merge_patch, strategic_merge_patch
from .resources import Registry, ResourceType
from .selectors import parse_field_selector, parse_label_selector
from .store import Store

JSON = dict[str, Any]

# Finalizers the garbage collector understands (https://kubernetes.io/docs/concepts/architecture/garbage-collection/).
FOREGROUND = "foregroundDeletion"
ORPHAN = "orphan"


class Api:
    """Verbs over the store, with admission, validation and deletion semantics."""

    def __init__(self, registry: Registry, store: Store) -> None:
        self.registry = registry
        self.store = store
        self.on_change: list[Callable[[], None]] = []
        self.context: JSON = {}  # shared with admission: CA bundle, token issuer

    # -- lookups ---------------------------------------------------------------------------
    def resource(self, group: str, version: str, plural: str) -> ResourceType:
        rt = self.registry.get(group, version, plural)
        if rt is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return rt

    def _present(self, rt: ResourceType, obj: JSON) -> JSON:
        if rt.view is not None:
            return rt.view.to_view(obj)
        if obj.get("apiVersion") == rt.api_version:
            return obj
        return {**obj, "apiVersion": rt.api_version, "kind": rt.kind}

    def present(self, rt: ResourceType, obj: JSON) -> JSON:
        """A stored object as ``rt`` serves it (its version, or its view's shape)."""
        return self._present(rt, obj)

    @staticmethod
    def _stored(rt: ResourceType, obj: JSON) -> JSON:
        """What to store for an object written through ``rt`` (a view's objects are kept in the
        shape of the resource it views)."""
        return rt.view.from_view(obj) if rt.view is not None else obj

    def get(self, rt: ResourceType, namespace: str, name: str) -> JSON:
        obj = self.store.get(rt.key, namespace if rt.namespaced else "", name)
        if obj is None:
            raise not_found(rt.group, rt.plural, name)
        return self._present(rt, obj)

    def find(self, rt: ResourceType, namespace: str, name: str) -> JSON | None:
        return self.store.get(rt.key, namespace if rt.namespaced else "", name)

    def list_objects(
        self, rt: ResourceType, namespace: str | None, label: str | None = None, field: str | None = None
    ) -> JSON:
        lmatch, fmatch = parse_label_selector(label), parse_field_selector(field, rt)
        items = [self._present(rt, o) for o in self.store.items(rt.key, namespace) if lmatch(o) and fmatch(o)]
        return {
            "kind": rt.list_kind,
            "apiVersion": rt.api_version,
            "metadata": {"resourceVersion": str(self.store.rv)},
            "items": items,
        }

    # -- create ----------------------------------------------------------------------------
    def create(
        self, rt: ResourceType, namespace: str, body: Any, dry_run: bool = False, strict: bool = False
    ) -> tuple[JSON, list[str]]:
        if not isinstance(body, dict):
            raise bad_request("the body of the request was not a JSON object")
        obj = deep(body)
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise bad_request("metadata must be an object")
        self._check_kind(rt, obj)
        if rt.namespaced:
            if meta.get("namespace") and namespace and meta["namespace"] != namespace:
                raise bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            ns = namespace or meta.get("namespace") or "default"
            self._namespace_accepts(ns, meta.get("name") or meta.get("generateName", ""))
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)
        if not meta.get("name"):
            if not meta.get("generateName"):
                raise invalid(
                    rt.group,
                    rt.kind,
                    "",
                    [
                        (
                            "FieldValueRequired",
                            "metadata.name",
                            "Required value: name or generateName is required",
                        )
                    ],
                )
            for _ in range(10):
                candidate = meta["generateName"] + random_suffix()
                if self.find(rt, meta.get("namespace", ""), candidate) is None:
                    meta["name"] = candidate
                    break
        name = meta["name"]
        self._validate_meta(rt, obj)
        for field in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"):
            meta.pop(field, None)
        if self.find(rt, meta.get("namespace", ""), name) is not None:
            raise already_exists(rt.group, rt.plural, name)
        meta["uid"] = new_uid()
        meta["creationTimestamp"] = timestamp()
        if rt.has_generation or rt.is_custom:
            meta["generation"] = 1
        obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
        if "status" in rt.subresources or (rt.is_custom and self._has_status(rt)):
            obj.pop("status", None)
        warnings = self._schema(rt, obj, None, strict)
        admission.admit_create(self, rt, obj)
        admission.empty_status(rt, obj)
        limits.check_stored_size(obj)
        if dry_run:
            return obj, warnings
        stored = self.store.put(rt.key, self._stored(rt, obj), None)
        admission.after_create(self, rt, stored)
        self._changed()
        return self._present(rt, stored), warnings

    def _check_kind(self, rt: ResourceType, obj: JSON) -> None:
        kind, api_version = obj.get("kind"), obj.get("apiVersion")
        if kind is not None and kind != rt.kind:
            raise bad_request(
                f"the API version in the data ({api_version}) does not match the expected API version "
                f"({rt.api_version})"
                if api_version and api_version != rt.api_version
                else f"Object 'Kind' is {kind!r}, expected {rt.kind!r}"
            )
        if (
            api_version is not None
            and api_version != rt.api_version
            and not (rt.is_custom and api_version.startswith(rt.group + "/"))
        ):
            raise bad_request(
                f"the API version in the data ({api_version}) does not match the expected API version "
                f"({rt.api_version})"
            )

    def _namespace_accepts(self, ns: str, name: str) -> None:
        space = self.store.get(("", "namespaces"), "", ns)
        if space is None:
            raise not_found("", "namespaces", ns)
        if space["metadata"].get("deletionTimestamp"):
            raise forbidden(f"unable to create new content in namespace {ns} because it is being terminated")

    def _validate_meta(self, rt: ResourceType, obj: JSON) -> None:
        meta = obj["metadata"]
        name = meta.get("name", "")
        if rt.group == "rbac.authorization.k8s.io":
            # RBAC objects only need to be valid path segments (e.g. "system:discovery").
            why = (
                "may not contain '/' or '%'" if not name or "/" in name or "%" in name or name in (".", "..") else None
            )
        else:
            why = validate_name(name, label_only=rt.plural == "namespaces")
        causes = [("FieldValueInvalid", "metadata.name", f'Invalid value: "{name}": {why}')] if why else []
        causes += validate_labels(meta.get("labels"))
        annotations = meta.get("annotations")
        if annotations is not None and not all(isinstance(v, str) for v in annotations.values()):
            causes.append(
                (
                    "FieldValueInvalid",
                    "metadata.annotations",
                    "Invalid value: annotation values must be strings",
                )
            )
        elif annotations and limits.annotations_size(annotations) > limits.MAX_ANNOTATION_BYTES:
            causes.append(
                (
                    "FieldValueTooLong",
                    "metadata.annotations",
                    f"Too long: must have at most {limits.MAX_ANNOTATION_BYTES} bytes",
                )
            )
        for i, ref in enumerate(meta.get("ownerReferences") or []):
            for key in ("apiVersion", "kind", "name", "uid"):
                if not ref.get(key):
                    causes.append(("FieldValueRequired", f"metadata.ownerReferences[{i}].{key}", "Required value"))
        if causes:
            raise invalid(rt.group, rt.kind, name, causes)

    def _has_status(self, rt: ResourceType) -> bool:
        return bool(rt.crd_version and "status" in (rt.crd_version.get("subresources") or {}))

    def _schema(self, rt: ResourceType, obj: JSON, old: JSON | None, strict: bool) -> list[str]:
        """Default, prune and validate custom resources; returns unknown-field warnings."""
        if not rt.is_custom:
            unknown = builtin_schema.decode_check(obj, rt.group, rt.version, rt.kind)
            admission.validate_builtin(self, rt, obj, old)
        else:
            unknown = crds.apply_schema(rt, obj, old)
        if unknown and strict:
            raise bad_request("strict decoding error: " + ", ".join(f'unknown field "{u}"' for u in unknown))
        return [f'unknown field "{u}"' for u in unknown]

    # -- update and patch --------------------------------------------------------------------
    def update(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        body: Any,
        subresource: str | None = None,
        dry_run: bool = False,
        strict: bool = False,
    ) -> tuple[JSON, list[str]]:
        if not isinstance(body, dict):
            raise bad_request("the body of the request was not a JSON object")
        ns = namespace if rt.namespaced else ""
        old = self.store.get(rt.key, ns, name)
        meta = body.get("metadata") or {}
        if meta.get("name") and meta["name"] != name:
            raise bad_request(f"the name of the object ({meta['name']}) does not match the name on the URL ({name})")
        if old is None:
            raise not_found(rt.group, rt.plural, name)
        self._check_kind(rt, body)
        want = meta.get("resourceVersion")
        if not want and rt.is_custom:
            # Custom resources disallow unconditional updates (the CR strategy's
            # AllowUnconditionalUpdate is false), on the main resource and on /status alike.
            raise invalid(
                rt.group,
                rt.kind,
                name,
                [
                    (
                        "FieldValueInvalid",
                        "metadata.resourceVersion",
                        "Invalid value: 0x0: must be specified for an update",
                    )
                ],
            )
        if want and want != old["metadata"]["resourceVersion"]:
            raise conflict(
                rt.group,
                rt.plural,
                name,
                "the object has been modified; please apply your changes to the latest version and try again",
            )
        return self._write(rt, old, deep(body), subresource, dry_run, strict)

    def patch(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        content_type: str,
        raw: bytes,
        subresource: str | None = None,
        dry_run: bool = False,
        strict: bool = False,
        field_manager: str | None = None,
    ) -> tuple[JSON, list[str]]:
        ns = namespace if rt.namespaced else ""
        old = self.store.get(rt.key, ns, name)
        ctype = content_type.split(";", maxsplit=1)[0].strip()
        if ctype == "application/strategic-merge-patch+json" and rt.is_custom:
            raise ApiError(
                415,
                "UnsupportedMediaType",
                "the body of the request was in an unknown format - accepted media types include: "
                "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
            )
        if ctype not in (
            "application/json-patch+json",
            "application/merge-patch+json",
            "application/strategic-merge-patch+json",
            "application/apply-patch+yaml",
        ):
            raise ApiError(
                415,
                "UnsupportedMediaType",
                "the body of the request was in an unknown format - accepted media types include: "
                "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, "
                f"application/strategic-merge-patch+json (got {ctype})",
            )
        try:
            if ctype == "application/apply-patch+yaml":
                document = yaml.safe_load(raw)
            else:
                document = json.loads(raw or b"null")
        except RecursionError as exc:
            raise bad_request(f"error decoding patch: nested deeper than {limits.MAX_NESTING} levels") from exc
        except (ValueError, yaml.YAMLError) as exc:
            raise bad_request(f"error decoding patch: {exc}") from exc
        limits.check_nesting(document)
        if ctype == "application/apply-patch+yaml":
            if not field_manager:
                raise bad_request("PATCH, application/apply-patch+yaml requires fieldManager to be set")
            if old is None:
                return self.create(rt, namespace, document, dry_run, strict)
        if old is None:
            raise not_found(rt.group, rt.plural, name)
        current = self._present(rt, old)
        if ctype == "application/json-patch+json":
            new = json_patch(current, document)
        elif ctype == "application/strategic-merge-patch+json":
            new = strategic_merge_patch(current, document)
        else:
            if not isinstance(document, dict):
                raise bad_request("merge patch must be a JSON object")
            new = merge_patch(current, document)
        if not isinstance(new, dict):
            raise bad_request("the patch did not produce an object")
        want = (new.get("metadata") or {}).get("resourceVersion")
        if want and want != old["metadata"]["resourceVersion"]:
            raise conflict(
                rt.group,
                rt.plural,
                name,
                "the object has been modified; please apply your changes to the latest version and try again",
            )
        if (new.get("metadata") or {}).get("name") != name:
            raise invalid(
                rt.group,
                rt.kind,
                name,
                [("FieldValueInvalid", "metadata.name", "Invalid value: field is immutable")],
            )
        return self._write(rt, old, new, subresource, dry_run, strict)

    def _write(
        self, rt: ResourceType, old: JSON, new: JSON, subresource: str | None, dry_run: bool, strict: bool
    ) -> tuple[JSON, list[str]]:
        old_meta = old["metadata"]
        has_status = "status" in rt.subresources or self._has_status(rt)
        if subresource == "status":
            merged = deep(old)
            if "status" in new:
                merged["status"] = new["status"]
            else:
                merged.pop("status", None)
            new = merged
        else:
            if has_status:
                if "status" in old:
                    new["status"] = deep(old["status"])
                else:
                    new.pop("status", None)
            meta = new.setdefault("metadata", {})
            for field in (
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
                "namespace",
                "name",
            ):
                if field in old_meta:
                    meta[field] = old_meta[field]
                else:
                    meta.pop(field, None)
            if old_meta.get("deletionTimestamp"):
                added = set(meta.get("finalizers") or []) - set(old_meta.get("finalizers") or [])
                if added:
                    raise invalid(
                        rt.group,
                        rt.kind,
                        old_meta["name"],
                        [
                            (
                                "FieldValueForbidden",
                                "metadata.finalizers",
                                "Forbidden: no new finalizers can be added if the object is being deleted",
                            )
                        ],
                    )
            self._validate_meta(rt, new)
        new["apiVersion"], new["kind"] = rt.api_version, rt.kind
        warnings = self._schema(rt, new, old, strict)
        if subresource != "status":
            admission.admit_update(self, rt, new, old)
        new = self._stored(rt, new)
        if "generation" in old_meta and _spec_of(new) != _spec_of(old):
            new["metadata"]["generation"] = old_meta["generation"] + 1
        new["metadata"]["resourceVersion"] = old_meta["resourceVersion"]
        if _same(new, old):
            return self._present(rt, old), warnings
        limits.check_stored_size(new)
        if dry_run:
            return self._present(rt, new), warnings
        nmeta = new["metadata"]
        if (
            nmeta.get("deletionTimestamp")
            and not nmeta.get("finalizers")
            and not nmeta.get("deletionGracePeriodSeconds")
            and not admission.removed_by_controller(rt)
        ):
            final = self.store.remove(rt.key, new)
            admission.after_delete(self, rt, final)
            self._changed()
            return self._present(rt, final), warnings
        stored = self.store.put(rt.key, new, old)
        self._changed()
        return self._present(rt, stored), warnings

    # -- delete ----------------------------------------------------------------------------
    def delete(
        self, rt: ResourceType, namespace: str, name: str, options: JSON | None = None, dry_run: bool = False
    ) -> JSON:
        options = options or {}
        ns = namespace if rt.namespaced else ""
        old = self.store.get(rt.key, ns, name)
        if old is None:
            raise not_found(rt.group, rt.plural, name)
        pre = options.get("preconditions") or {}
        if pre.get("uid") and pre["uid"] != old["metadata"]["uid"]:
            raise conflict(
                rt.group,
                rt.plural,
                name,
                f"Precondition failed: UID in precondition: {pre['uid']}, UID in object meta: {old['metadata']['uid']}",
            )
        if pre.get("resourceVersion") and pre["resourceVersion"] != old["metadata"]["resourceVersion"]:
            raise conflict(
                rt.group,
                rt.plural,
                name,
                "the object has been modified; please apply your changes to the latest version and try again",
            )
        policy = options.get("propagationPolicy")
        if policy is None and options.get("orphanDependents") is not None:
            policy = "Orphan" if options["orphanDependents"] else "Background"
        if policy is None:
            # batch/v1 Jobs still default to orphaning their pods (kubectl always sends Background).
            policy = "Orphan" if rt.key == ("batch", "jobs") else "Background"
        if policy not in ("Orphan", "Background", "Foreground"):
            raise invalid(
                rt.group,
                rt.kind,
                name,
                [("FieldValueNotSupported", "propagationPolicy", f'Unsupported value: "{policy}"')],
            )
        new = deep(old)
        meta = new["metadata"]
        finalizers = list(meta.get("finalizers") or [])
        if policy == "Foreground" and FOREGROUND not in finalizers:
            finalizers.append(FOREGROUND)
        if policy == "Orphan" and ORPHAN not in finalizers:
            finalizers.append(ORPHAN)
        grace = admission.grace_period(self, rt, old, options.get("gracePeriodSeconds"))
        if meta.get("deletionTimestamp"):
            # Already terminating: a shorter grace period may still be requested. As BeforeDelete
            # does (k8s.io/apiserver/pkg/registry/rest/delete.go), the deadline moves to the original
            # request time plus the new period; 0 deletes at once (force delete).
            current = meta.get("deletionGracePeriodSeconds")
            if rt.key == ("", "pods") and current and grace < current:
                if grace == 0 and not meta.get("finalizers"):
                    return self.remove_now(rt, old, dry_run)
                requested_at = parse_time(meta["deletionTimestamp"]) - datetime.timedelta(seconds=current)
                meta["deletionTimestamp"] = timestamp(requested_at + datetime.timedelta(seconds=grace))
                meta["deletionGracePeriodSeconds"] = grace
                if not dry_run:
                    stored = self.store.put(rt.key, new, old)
                    self._changed()
                    return self._present(rt, stored)
                return self._present(rt, new)
            return self._present(rt, old)
        if grace or finalizers or admission.removed_by_controller(rt):
            meta["finalizers"] = finalizers
            if not finalizers:
                meta.pop("finalizers")
            # The moment the object may be gone: now plus the grace period (ObjectMeta reference).
            meta["deletionTimestamp"] = timestamp(now() + datetime.timedelta(seconds=grace or 0))
            meta["deletionGracePeriodSeconds"] = grace or 0
            if "generation" in meta:
                meta["generation"] += 1
            if dry_run:
                return self._present(rt, new)
            admission.on_terminating(self, rt, new)
            stored = self.store.put(rt.key, new, old)
            self._changed()
            return self._present(rt, stored)
        return self.remove_now(rt, old, dry_run)

    def remove_now(self, rt: ResourceType, old: JSON, dry_run: bool = False) -> JSON:
        """Remove without graceful deletion (a finalized namespace, a grace-0 pod)."""
        if dry_run:
            return self._present(rt, old)
        final = self.store.remove(rt.key, old)
        admission.after_delete(self, rt, final)
        self._changed()
        return self._present(rt, final)

    def delete_collection(
        self,
        rt: ResourceType,
        namespace: str | None,
        label: str | None,
        field: str | None,
        options: JSON | None,
        dry_run: bool = False,
    ) -> JSON:
        listed = self.list_objects(rt, namespace, label, field)
        for item in listed["items"]:
            meta = item["metadata"]
            try:
                self.delete(rt, meta.get("namespace", ""), meta["name"], options, dry_run)
            except ApiError as exc:
                if exc.code != 404:
                    raise
        return listed

    def _changed(self) -> None:
        for callback in list(self.on_change):
            callback()

    # -- internal conveniences for controllers -----------------------------------------------
    def internal_update(self, rt: ResourceType, obj: JSON, subresource: str | None = None) -> JSON:
        meta = obj["metadata"]
        result, _ = self.update(rt, meta.get("namespace", ""), meta["name"], obj, subresource)
        return result

    def record_event(self, regarding: JSON, etype: str, reason: str, message: str, component: str) -> None:
        """A core/v1 Event about ``regarding``, as controllers and the kubelet emit them."""
        meta = regarding["metadata"]
        ns = meta.get("namespace") or "default"
        if self.store.get(("", "namespaces"), "", ns) is None:
            return
        space = self.store.get(("", "namespaces"), "", ns)
        if space is not None and space["metadata"].get("deletionTimestamp"):
            return
        rt = self.resource("", "v1", "events")
        now = timestamp()
        event = {
            "metadata": {"name": f"{meta['name']}.{random_suffix(10)}", "namespace": ns},
            "involvedObject": {
                "apiVersion": regarding.get("apiVersion"),
                "kind": regarding.get("kind"),
                "name": meta["name"],
                "namespace": meta.get("namespace"),
                "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            },
            "reason": reason,
            "message": message,
            "type": etype,
            "count": 1,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "source": {"component": component},
            "reportingComponent": component,
            "reportingInstance": "kubesim",
        }
        self.create(rt, ns, event)


def _spec_of(obj: JSON) -> JSON:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


def _same(new: JSON, old: JSON) -> bool:
    """An update that changes nothing keeps the resourceVersion (no watch event), as on a real server."""
    strip = ("resourceVersion", "managedFields")
    a = {**new, "metadata": {k: v for k, v in new["metadata"].items() if k not in strip}}
    b = {**old, "metadata": {k: v for k, v in old["metadata"].items() if k not in strip}}
    return a == b
