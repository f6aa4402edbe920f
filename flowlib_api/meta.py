"""Names every side agrees on: the API group and version, kinds, resource refs, labels, annotations.

Everything here is derived from ``API_GROUP`` and ``API_VERSION``, so a new version or group is a
change of two constants. The Kubernetes resources the project touches besides its own (Jobs, pods,
ConfigMaps, Events, RBAC) are named here too, so that a request path is built in one way only.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

API_GROUP = "flowlib.dev"
API_VERSION = "v1alpha1"
GROUP_VERSION = f"{API_GROUP}/{API_VERSION}"
"""The ``apiVersion`` of Flow and FlowRun objects."""

KIND_FLOW = "Flow"
KIND_FLOWRUN = "FlowRun"
KIND_FLOWRUNDEFAULTS = "FlowRunDefaults"
KIND_FLOWSCHEDULE = "FlowSchedule"


@dataclass(frozen=True)
class ResourceRef:
    """Which collection a call addresses: group, version, plural and whether it is namespaced."""

    group: str
    version: str
    plural: str
    namespaced: bool = True

    def path(self, namespace: str | None = None, name: str | None = None, subresource: str | None = None) -> str:
        base = f"/api/{self.version}" if not self.group else f"/apis/{self.group}/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{quote(namespace, safe='')}"
        base += f"/{self.plural}"
        if name is not None:
            base += f"/{quote(name, safe='')}"
            if subresource:
                base += f"/{subresource}"
        return base


FLOWS = ResourceRef(API_GROUP, API_VERSION, "flows")
FLOWRUNS = ResourceRef(API_GROUP, API_VERSION, "flowruns")
FLOWRUNDEFAULTS = ResourceRef(API_GROUP, API_VERSION, "flowrundefaults")
FLOWSCHEDULES = ResourceRef(API_GROUP, API_VERSION, "flowschedules")
JOBS = ResourceRef("batch", "v1", "jobs")
PODS = ResourceRef("", "v1", "pods")
CONFIGMAPS = ResourceRef("", "v1", "configmaps")
SECRETS = ResourceRef("", "v1", "secrets")
EVENTS = ResourceRef("", "v1", "events")
SERVICEACCOUNTS = ResourceRef("", "v1", "serviceaccounts")
NAMESPACES = ResourceRef("", "v1", "namespaces", namespaced=False)
ROLES = ResourceRef("rbac.authorization.k8s.io", "v1", "roles")
ROLEBINDINGS = ResourceRef("rbac.authorization.k8s.io", "v1", "rolebindings")
SUBJECTACCESSREVIEWS = ResourceRef("authorization.k8s.io", "v1", "subjectaccessreviews", namespaced=False)

STATUS_SUBRESOURCE = "status"

# -- labels and annotations ---------------------------------------------------------------------

MANAGED_BY = "flowlib-operator"
"""Value of ``app.kubernetes.io/managed-by`` on everything the operator creates."""
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_NAME = "app.kubernetes.io/name"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_FLOWRUN = f"{API_GROUP}/flowrun"
"""On a run's Job, pods and snapshot: the FlowRun's name (``flowctl logs`` finds pods by it)."""
ANNOTATION_FLOWRUN = f"{API_GROUP}/flowrun-name"
"""On a run's pods: the FlowRun's full name (the label holds a hashed form of names over 63
characters), so a pod seen before its Job is filed under the right run."""
LABEL_FLOW = f"{API_GROUP}/flow"
"""On a run's Job, pods and snapshot: the name of the flow being run."""
ANNOTATION_PREFIX = API_GROUP
"""Prefix of the operator's bookkeeping annotations (kopf's progress and last-handled state)."""
DIFFBASE_ANNOTATION_KEY = "last-handled-configuration"

RUNNER_NAME = "flowlib-runner"
"""``app.kubernetes.io/name`` of runner Jobs and pods, and the name of the runner's identity."""
LABEL_RUNNER_ACCESS = f"{API_GROUP}/runner-access"
"""On a ServiceAccount, Secret or ConfigMap: ``"true"`` opens it to every FlowRun of its namespace.

A namespace admin's opt-in: without the admission webhook (which checks each run's author), it is
the only way a FlowRun may run as a service account of its own choice or read a Secret or ConfigMap
into its environment."""
LABEL_SCHEDULE = f"{API_GROUP}/schedule"
"""On a FlowRun a FlowSchedule created: the schedule's name (hashed past 63 characters); with the
schedule as its controller owner, which is what makes it the schedule's (the label only finds it)."""
ANNOTATION_SCHEDULED_TIME = f"{API_GROUP}/scheduled-time"
"""On a FlowRun a FlowSchedule created: the scheduled time it runs for (RFC 3339)."""
