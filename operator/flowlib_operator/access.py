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

    def needed(self, namespace: str) -> dict[str, str]:
        """The permission the author must hold directly (SubjectAccessReview resourceAttributes)."""
        if self.kind in _POD_CREATORS:
            return {"namespace": namespace, "verb": "create", "group": "", "resource": "pods"}
        ref = self.ref
        return {"namespace": namespace, "verb": "get", "group": ref.group, "resource": ref.plural, "name": self.name}

    def described(self) -> str:
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
}
_POD_CREATORS = frozenset({"ServiceAccount", "PersistentVolumeClaim"})
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


def borrowed(run: FlowRunView, source: Mapping[str, Any] | None = None) -> list[Borrowed]:
    """Everything ``run`` takes from its namespace, once per object (the first field naming it).

    ``source`` is the FlowRun a retry names (``spec.retryOf``), when it exists: what its store names
    is reached by the retry as well.
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
        f"{item.field}: {item.kind} '{item.name}' does not exist or is not open to FlowRuns in namespace "
        f"'{namespace}'; a namespace admin opens it with `kubectl label {item.kind.lower()} {item.name} "
        f"-n {namespace} {LABEL_RUNNER_ACCESS}=true`, or installs the admission webhook, which lets a run "
        "use what its author may use directly"
    )


def _identity_of_a_run(item: Borrowed) -> str:
    return (
        f"{item.field}: service account '{item.name}' is the identity of another FlowRun and cannot be "
        "borrowed; leave serviceAccountName out (every run gets its own) or name an account of your own"
    )


async def _metadata(client: KubeClient, item: Borrowed, namespace: str) -> Mapping[str, Any] | None:
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
        for item in borrowed(run, source)
        if not (item.kind == "FlowRun" and author is None and (source is None or item.name == run.name))
    ]
    if not items:
        return []
    namespace = run.namespace
    found = await asyncio.gather(*(_metadata(client, item, namespace) for item in items))
    problems: list[str] = []
    for item, metadata in zip(items, found, strict=True):
        if item.kind == "ServiceAccount" and _run_identity(metadata):
            problems.append(_identity_of_a_run(item))
        elif _opened(metadata):
            continue
        elif author is None:
            problems.append(_not_opened(item, namespace))
        elif not await _allowed(client, author, item.needed(namespace)):
            who = author.get("username") or "the requesting user"
            instead = (
                "ask someone who may read it to create the retry"
                if item.kind == "FlowRun"
                else f"ask a namespace admin to label the {item.kind.lower()} {LABEL_RUNNER_ACCESS}=true"
            )
            problems.append(
                f"{item.field}: {who} may not {item.described()} in namespace '{namespace}', so a FlowRun of "
                f"theirs may not either; ask for that permission, or {instead}"
            )
    return problems
