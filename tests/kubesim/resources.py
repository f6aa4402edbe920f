"""The resource types the simulator serves: built-ins plus those that CRDs add.

Discovery, routing, the OpenAPI documents and the RBAC checks all read this registry, so a CRD that
becomes Established shows up everywhere at once, as on a real server.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .views import EVENTS_V1, View

JSON = dict[str, Any]

ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]

# Field selectors each built-in supports beyond metadata.name/metadata.namespace (a real server
# answers 400 for any other field label).
_POD_FIELDS = (
    "status.phase",
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "status.podIP",
)
_EVENT_FIELDS = (
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
)


@dataclass
class ResourceType:
    group: str
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    short_names: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    subresources: tuple[str, ...] = ()
    verbs: list[str] = field(default_factory=lambda: list(ALL_VERBS))
    field_selectors: tuple[str, ...] = ()
    has_generation: bool = False
    # The registry's ReturnDeletedObject: an immediate DELETE answers with the object, not a Status
    # (pods and service accounts; k8s.io/apiserver/pkg/registry/generic/registry/store.go).
    returns_deleted_object: bool = False
    # Served as a view of another resource's objects (events.k8s.io/v1 Events over core/v1 Events).
    view: View | None = None
    # Set for custom resources: the CRD version entry (schema, printer columns, subresources).
    crd: JSON | None = None
    crd_version: JSON | None = None

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        return self.crd["spec"]["names"].get("listKind", self.kind + "List") if self.crd else self.kind + "List"

    @property
    def is_custom(self) -> bool:
        return self.crd is not None

    @property
    def key(self) -> tuple[str, str]:
        """Storage identity: objects are shared by every served version of a group/resource, and
        by the resources served as views of them."""
        return self.view.storage if self.view is not None else (self.group, self.plural)

    def supports_field(self, label: str) -> bool:
        return label in ("metadata.name", "metadata.namespace") or label in self.field_selectors


def _rt(group: str, version: str, plural: str, kind: str, namespaced: bool = True, **kw: Any) -> ResourceType:
    singular = kw.pop("singular", kind.lower())
    return ResourceType(group, version, plural, singular, kind, namespaced, **kw)


def builtin_types() -> list[ResourceType]:
    return [
        _rt(
            "",
            "v1",
            "namespaces",
            "Namespace",
            False,
            short_names=["ns"],
            subresources=("status", "finalize"),
            field_selectors=("status.phase",),
        ),
        _rt(
            "",
            "v1",
            "pods",
            "Pod",
            short_names=["po"],
            categories=["all"],
            subresources=("status", "log"),
            field_selectors=_POD_FIELDS,
            returns_deleted_object=True,
        ),
        _rt("", "v1", "configmaps", "ConfigMap", short_names=["cm"]),
        _rt("", "v1", "secrets", "Secret", field_selectors=("type",)),
        _rt(
            "",
            "v1",
            "serviceaccounts",
            "ServiceAccount",
            short_names=["sa"],
            subresources=("token",),
            returns_deleted_object=True,
        ),
        _rt("", "v1", "services", "Service", short_names=["svc"], categories=["all"], subresources=("status",)),
        _rt("", "v1", "events", "Event", short_names=["ev"], field_selectors=_EVENT_FIELDS),
        _rt("", "v1", "nodes", "Node", False, short_names=["no"], subresources=("status",)),
        _rt(
            "events.k8s.io",
            "v1",
            "events",
            "Event",
            short_names=["ev"],
            field_selectors=tuple(EVENTS_V1.fields),
            view=EVENTS_V1,
        ),
        _rt(
            "batch",
            "v1",
            "jobs",
            "Job",
            categories=["all"],
            subresources=("status",),
            has_generation=True,
            field_selectors=("status.successful",),
        ),
        _rt("rbac.authorization.k8s.io", "v1", "roles", "Role"),
        _rt("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding"),
        _rt("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False),
        _rt("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False),
        _rt("coordination.k8s.io", "v1", "leases", "Lease"),
        _rt(
            "apps",
            "v1",
            "deployments",
            "Deployment",
            short_names=["deploy"],
            categories=["all"],
            subresources=("status", "scale"),
            has_generation=True,
        ),
        _rt(
            "apps",
            "v1",
            "replicasets",
            "ReplicaSet",
            short_names=["rs"],
            categories=["all"],
            subresources=("status", "scale"),
            has_generation=True,
        ),
        _rt(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            False,
            short_names=["crd", "crds"],
            categories=["api-extensions"],
            subresources=("status",),
            has_generation=True,
        ),
        _rt(
            "authorization.k8s.io", "v1", "selfsubjectaccessreviews", "SelfSubjectAccessReview", False, verbs=["create"]
        ),
        _rt("authorization.k8s.io", "v1", "subjectaccessreviews", "SubjectAccessReview", False, verbs=["create"]),
        _rt(
            "admissionregistration.k8s.io",
            "v1",
            "validatingwebhookconfigurations",
            "ValidatingWebhookConfiguration",
            False,
        ),
        _rt(
            "admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations", "MutatingWebhookConfiguration", False
        ),
        _rt("authentication.k8s.io", "v1", "tokenreviews", "TokenReview", False, verbs=["create"]),
    ]


# Groups whose preferred version kubectl must see even when only one version exists.
class Registry:
    """Resource types by (group, version, plural); CRD types come and go at run time."""

    def __init__(self) -> None:
        self._types: dict[tuple[str, str, str], ResourceType] = {}
        for rt in builtin_types():
            self.add(rt)

    def add(self, rt: ResourceType) -> None:
        self._types[(rt.group, rt.version, rt.plural)] = rt

    def remove_group_resource(self, group: str, plural: str) -> None:
        for key in [k for k in self._types if k[0] == group and k[2] == plural]:
            del self._types[key]

    def get(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._types.get((group, version, plural))

    def all(self) -> list[ResourceType]:
        return list(self._types.values())

    def by_kind(self, api_version: str, kind: str) -> ResourceType | None:
        for rt in self._types.values():
            if rt.api_version == api_version and rt.kind == kind:
                return rt
        return None

    def any_version(self, group: str, plural: str) -> ResourceType | None:
        for rt in self._types.values():
            if rt.group == group and rt.plural == plural:
                return rt
        return None

    def groups(self) -> dict[str, list[str]]:
        """Group name -> served versions, preferred (CRD storage or first) first."""
        out: dict[str, list[str]] = {}
        for rt in self._types.values():
            versions = out.setdefault(rt.group, [])
            if rt.version not in versions:
                versions.append(rt.version)
        return out
