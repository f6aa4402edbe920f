"""What a FlowRun borrows from its namespace, and whether it may: a FlowRun does no more than its author.

The operator creates the runner pod, so without this check anyone who may create FlowRuns could run
as any service account of the namespace and read any Secret or ConfigMap into the pod's environment
(a confused deputy: the operator's permissions, the author's intent). A run borrows:

- ``spec.serviceAccountName``: the pod runs as that account (by default it runs as its own account,
  which reaches only its own FlowRun; see ``identity``);
- ``spec.env[].valueFrom.secretKeyRef`` and ``configMapKeyRef``: values read into the environment;
- ``spec.store.s3.secretName``: the S3 credentials of its store, read into the environment like a
  ``secretKeyRef``; and ``spec.store.pvc.claimName``: a claim mounted into the pod, which takes what
  running any pod takes (``create pods``: Kubernetes lets pods mount any claim of their namespace).
  What the operator's default store names is not borrowed: the operator's administrator lends it
  to every run;
- ``spec.pod`` (and an inline flow's ``spec.flow.pod``, and the ``spec.pod`` of the Flow that
  ``spec.flowRef`` names): the Secrets and ConfigMaps of its volumes are read into the pod like
  ``spec.env`` references; its claims and ephemeral volumes and its ``imagePullSecrets`` take what
  creating pods takes (Kubernetes lets any pod use them). What a namespace's ``FlowRunDefaults``
  names is lent by the namespace admin who wrote it, not borrowed;
- ``spec.retryOf``: a retry reads its source FlowRun (input, params, outputs, checkpoints), so its
  author must be allowed to ``get`` that FlowRun; and it reaches the source's store, so what the
  *source's* ``spec.store`` names is borrowed by the retry's author too. Without the webhook the
  operator cannot know who wrote the retry, so the source must carry the opt-in label like a Secret:
  otherwise anyone who may only create FlowRuns could read any finished run's ``spec.input`` (its
  API keys) and checkpoints through user code in a retry. A retry may still bring its own
  definition (``spec.flow``/``spec.flowRef``: "fix the code and retry"): the gate is on the source,
  and once it is open (or the author may ``get`` it) the retry reads nothing its author could not.

Two ways to allow a borrow, checked in this order:

1. A namespace admin opened the object to every run of the namespace with the label
   ``flowlib.dev/runner-access: "true"``. The operator checks this before it creates the Job; it is
   the only rule when the admission webhook is not installed.
2. With the admission webhook, the author may borrow what they could use directly; the webhook asks
   the API server (SubjectAccessReview, for the requesting user) whether they may ``get`` that
   Secret or ConfigMap, and for a service account whether they may ``create pods`` in the namespace:
   Kubernetes lets anyone who creates pods run them as any service account of the namespace, so
   that is exactly the permission a pod under that account takes.

An account the operator created for another run is never borrowable (it would let one run act as
another), whatever the author may do.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flowlib_runner.kube.client import KubeClient

from flowlib_api.meta import (
    CONFIGMAPS,
    FLOWRUNS,
    LABEL_MANAGED_BY,
    LABEL_RUNNER_ACCESS,
    MANAGED_BY,
    SECRETS,
    SERVICEACCOUNTS,
    SUBJECTACCESSREVIEWS,
    ResourceRef,
)
from flowlib_api.views import FlowRunView

FORBIDDEN_REASON = "Forbidden"
PERSISTENTVOLUMECLAIMS = ResourceRef("", "v1", "persistentvolumeclaims")


@dataclass(frozen=True)
class Borrowed:
    """One object of the namespace that a run would use, and the field that names it."""

    kind: str
    name: str
    field: str

    @property
    def ref(self) -> ResourceRef:
        return _REFS[self.kind]

    @property
    def object_kind(self) -> str:
        """The Kubernetes kind of the object (a pull secret is a Secret)."""
        return "Secret" if self.kind == "PullSecret" else self.kind

    def needed(self, namespace: str) -> dict[str, str]:
        """The permission the author must hold directly (SubjectAccessReview resourceAttributes)."""
        if self.kind in _POD_CREATORS:
            return {"namespace": namespace, "verb": "create", "group": "", "resource": "pods"}
        ref = self.ref
        return {"namespace": namespace, "verb": "get", "group": ref.group, "resource": ref.plural, "name": self.name}

    def described(self) -> str:
        if self.kind == "PullSecret":
            return f"create pods (what pulling images with secret '{self.name}' takes)"
        if self.kind == "EphemeralVolume":
            return f"create pods (what an ephemeral volume '{self.name}' takes)"
        if self.kind == "ServiceAccount":
            return f"create pods (what running as service account '{self.name}' takes)"
        if self.kind == "PersistentVolumeClaim":
            return f"create pods (what mounting claim '{self.name}' takes)"
        return f"get {self.kind.lower()} '{self.name}'"


_REFS = {
    "ServiceAccount": SERVICEACCOUNTS,
    "Secret": SECRETS,
    "ConfigMap": CONFIGMAPS,
    "PersistentVolumeClaim": PERSISTENTVOLUMECLAIMS,
    "FlowRun": FLOWRUNS,
    "PullSecret": SECRETS,
    "EphemeralVolume": PERSISTENTVOLUMECLAIMS,
}
_POD_CREATORS = frozenset({"ServiceAccount", "PersistentVolumeClaim", "PullSecret", "EphemeralVolume"})
"""Kinds whose use takes exactly what creating a pod takes (running as an account, mounting a claim)."""
_ENV_SOURCES = (("secretKeyRef", "Secret"), ("configMapKeyRef", "ConfigMap"))


def _store_borrowed(spec: Mapping[str, Any], prefix: str) -> list[Borrowed]:
    """What a spec's ``store`` names (the operator's default names nothing anyone borrows)."""
    store = spec.get("store")
    if not isinstance(store, Mapping):
        return []
    found = []
    s3, pvc = store.get("s3"), store.get("pvc")
    if isinstance(s3, Mapping) and isinstance(s3.get("secretName"), str) and s3["secretName"]:
        found.append(Borrowed("Secret", s3["secretName"], f"{prefix}spec.store.s3.secretName"))
    if isinstance(pvc, Mapping) and isinstance(pvc.get("claimName"), str) and pvc["claimName"]:
        found.append(Borrowed("PersistentVolumeClaim", pvc["claimName"], f"{prefix}spec.store.pvc.claimName"))
    return found


def _named(value: object, key: str) -> str | None:
    name = value.get(key) if isinstance(value, Mapping) else None
    return name if isinstance(name, str) and name else None


def pod_borrowed(pod: Mapping[str, Any], prefix: str) -> list[Borrowed]:
    """What pod controls (``flowlib_api.podcontrols``) name: the Secrets and ConfigMaps of volumes
    (also inside projected volumes and as a CSI volume's nodePublishSecretRef), claims, ephemeral
    volumes and image pull secrets. ``prefix`` says where the controls are (``spec.pod``)."""
    found: list[Borrowed] = []
    for index, volume in enumerate(pod.get("volumes") or []):
        if not isinstance(volume, Mapping):
            continue
        where = f"{prefix}.volumes[{index}]"
        if name := _named(volume.get("secret"), "secretName"):
            found.append(Borrowed("Secret", name, f"{where}.secret.secretName"))
        if name := _named(volume.get("configMap"), "name"):
            found.append(Borrowed("ConfigMap", name, f"{where}.configMap.name"))
        if name := _named(volume.get("persistentVolumeClaim"), "claimName"):
            found.append(Borrowed("PersistentVolumeClaim", name, f"{where}.persistentVolumeClaim.claimName"))
        if volume.get("ephemeral") is not None:
            found.append(Borrowed("EphemeralVolume", str(volume.get("name")), f"{where}.ephemeral"))
        csi = volume.get("csi")
        if name := _named(csi.get("nodePublishSecretRef") if isinstance(csi, Mapping) else None, "name"):
            found.append(Borrowed("Secret", name, f"{where}.csi.nodePublishSecretRef.name"))
        projected = volume.get("projected")
        sources = projected.get("sources") if isinstance(projected, Mapping) else None
        for number, source in enumerate(sources if isinstance(sources, list) else []):
            if not isinstance(source, Mapping):
                continue
            if name := _named(source.get("secret"), "name"):
                found.append(Borrowed("Secret", name, f"{where}.projected.sources[{number}].secret.name"))
            if name := _named(source.get("configMap"), "name"):
                found.append(Borrowed("ConfigMap", name, f"{where}.projected.sources[{number}].configMap.name"))
    for index, secret in enumerate(pod.get("imagePullSecrets") or []):
        if name := _named(secret, "name"):
            found.append(Borrowed("PullSecret", name, f"{prefix}.imagePullSecrets[{index}].name"))
    return found


def borrowed(
    run: FlowRunView, source: Mapping[str, Any] | None = None, flow_pod: tuple[str, Mapping[str, Any]] | None = None
) -> list[Borrowed]:
    """Everything ``run`` takes from its namespace, once per object (the first field naming it).

    ``source`` is the FlowRun a retry names (``spec.retryOf``), when it exists: what its store names
    is reached by the retry as well. ``flow_pod`` is the pod controls of the Flow the run names
    (``spec.flowRef``), with the Flow's name: what they name is borrowed by the run's author too
    (what a namespace's ``FlowRunDefaults`` name is lent, not borrowed: ``flowlib_api.defaults``).
    """
    found: dict[tuple[str, str], Borrowed] = {}
    if run.service_account_name:
        account = Borrowed("ServiceAccount", run.service_account_name, "spec.serviceAccountName")
        found[(account.kind, account.name)] = account
    if run.retry_of:
        origin = Borrowed("FlowRun", run.retry_of, "spec.retryOf")
        found[(origin.kind, origin.name)] = origin
    items = _store_borrowed(run.spec, "")
    if run.retry_of and source is not None:
        items += _store_borrowed(FlowRunView(source).spec, f"spec.retryOf: FlowRun '{run.retry_of}' has ")
    items += pod_borrowed(run.pod, "spec.pod")
    inline = run.inline_flow
    if isinstance(inline, Mapping) and isinstance(inline.get("pod"), Mapping):
        items += pod_borrowed(inline["pod"], "spec.flow.pod")
    if flow_pod is not None:
        items += pod_borrowed(flow_pod[1], f"spec.flowRef: Flow '{flow_pod[0]}' has spec.pod")
    for item in items:
        found.setdefault((item.kind, item.name), item)
    for index, variable in enumerate(run.env):
        value_from = variable.get("valueFrom") if isinstance(variable, Mapping) else None
        if not isinstance(value_from, Mapping):
            continue
        for key, kind in _ENV_SOURCES:
            ref = value_from.get(key)
            if isinstance(ref, Mapping) and isinstance(ref.get("name"), str):
                item = Borrowed(kind, ref["name"], f"spec.env[{index}].valueFrom.{key}")
                found.setdefault((kind, item.name), item)
    return list(found.values())


def _opened(metadata: Mapping[str, Any] | None) -> bool:
    labels = (metadata or {}).get("labels") or {}
    return labels.get(LABEL_RUNNER_ACCESS) == "true" and labels.get(LABEL_MANAGED_BY) != MANAGED_BY


def _run_identity(metadata: Mapping[str, Any] | None) -> bool:
    return ((metadata or {}).get("labels") or {}).get(LABEL_MANAGED_BY) == MANAGED_BY


def _not_opened(item: Borrowed, namespace: str) -> str:
    return (
        f"{item.field}: {item.object_kind} '{item.name}' does not exist or is not open to FlowRuns in namespace "
        f"'{namespace}'; a namespace admin opens it with `kubectl label {item.object_kind.lower()} {item.name} "
        f"-n {namespace} {LABEL_RUNNER_ACCESS}=true`, or installs the admission webhook, which lets a run "
        "use what its author may use directly"
    )


def _identity_of_a_run(item: Borrowed) -> str:
    return (
        f"{item.field}: service account '{item.name}' is the identity of another FlowRun and cannot be "
        "borrowed; leave serviceAccountName out (every run gets its own) or name an account of your own"
    )


async def _metadata(client: KubeClient, item: Borrowed, namespace: str) -> Mapping[str, Any] | None:
    if item.kind == "EphemeralVolume":
        return None  # no object to open: only an author allowed to create pods may use one
    return await client.get_metadata_or_none(item.ref, item.name, namespace)


def _review(user: Mapping[str, Any], attributes: Mapping[str, str]) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "user": user.get("username") or "",
        "groups": list(user.get("groups") or []),
        "resourceAttributes": dict(attributes),
    }
    if user.get("uid"):
        spec["uid"] = user["uid"]
    if user.get("extra"):
        spec["extra"] = {k: list(v) for k, v in user["extra"].items()}
    return {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec}


async def _allowed(client: KubeClient, user: Mapping[str, Any], attributes: Mapping[str, str]) -> bool:
    answer = await client.create(SUBJECTACCESSREVIEWS, _review(user, attributes))
    return bool((answer.get("status") or {}).get("allowed"))


async def borrowing_problems(
    client: KubeClient,
    run: FlowRunView,
    author: Mapping[str, Any] | None = None,
    source: Mapping[str, Any] | None = None,
    flow_pod: tuple[str, Mapping[str, Any]] | None = None,
) -> list[str]:
    """Why ``run`` may not borrow what it names (empty: it may).

    Each borrowed object must be open to runs (the label); with ``author`` (the webhook's request
    user), it may also be one the author may use directly (a SubjectAccessReview for each). A
    retry's source FlowRun is checked the same way. ``source`` is that FlowRun, when it exists
    (``borrowed``); when it does not, or when the run names itself, without ``author`` there is
    nothing another run could lose, and the retry fails later saying why (``stores.plan_resume``).
    """
    items = [
        item
        for item in borrowed(run, source, flow_pod)
        if not (item.kind == "FlowRun" and author is None and (source is None or item.name == run.name))
    ]
    return await refused(client, run.namespace, items, author)


async def flow_pod_problems(
    client: KubeClient, namespace: str, flow: str, pod: Mapping[str, Any], author: Mapping[str, Any] | None = None
) -> list[str]:
    """Why a run of Flow ``flow`` may not borrow what the Flow's ``spec.pod`` names (empty: it may);
    the operator's check when the Flow is read, after the run's own (``borrowing_problems``)."""
    return await refused(client, namespace, pod_borrowed(pod, f"spec.flowRef: Flow '{flow}' has spec.pod"), author)


async def refused(
    client: KubeClient, namespace: str, items: list[Borrowed], author: Mapping[str, Any] | None
) -> list[str]:
    """Why each of ``items`` may not be borrowed in ``namespace`` (by ``author``, or by the label rule)."""
    if not items:
        return []
    found = await asyncio.gather(*(_metadata(client, item, namespace) for item in items))
    problems: list[str] = []
    for item, metadata in zip(items, found, strict=True):
        if item.kind == "ServiceAccount" and _run_identity(metadata):
            problems.append(_identity_of_a_run(item))
        elif _opened(metadata):
            continue
        elif author is None and item.kind == "EphemeralVolume":
            problems.append(
                f"{item.field}: an ephemeral volume creates a claim, which takes what creating pods takes; without "
                "the admission webhook no FlowRun may use one: use a persistentVolumeClaim volume of a labelled claim"
            )
        elif author is None:
            problems.append(_not_opened(item, namespace))
        elif not await _allowed(client, author, item.needed(namespace)):
            who = author.get("username") or "the requesting user"
            instead = (
                "ask someone who may read it to create the retry"
                if item.kind == "FlowRun"
                else f"ask a namespace admin to label the {item.object_kind.lower()} {LABEL_RUNNER_ACCESS}=true"
            )
            problems.append(
                f"{item.field}: {who} may not {item.described()} in namespace '{namespace}', so a FlowRun of "
                f"theirs may not either; ask for that permission, or {instead}"
            )
    return problems
