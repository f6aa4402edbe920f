"""Each run's own identity: a ServiceAccount, a Role naming the run, and the RoleBinding between them.

What a runner does (see ``flowlib_runner.incluster``) needs three permissions: read its FlowRun (for
input, params and the cancel flag), patch that FlowRun's status, and post Events. A namespace-wide
runner account would let user code in one run read every other run's ``spec.input`` and forge their
status, so every run gets a Role whose FlowRun rules name that run alone (``resourceNames``). Events
cannot be narrowed by name (the name of an Event is chosen at creation), so ``create events`` stays
namespace-wide: the worst a run can do with it is post a misleading Event.

A run with a configmap store (``storespec``) writes its checkpoints into ConfigMaps its runner
creates on demand, so its Role also allows ``get``, ``update``, ``patch`` and ``delete`` on exactly
that store's chunk names (``configmap_chunk_names``), and ``create configmaps``. RBAC cannot
restrict ``create`` by name (the name is in the request body, not the URL the authorizer sees), so
``create`` is namespace-wide: a run may create ConfigMaps of any name in its namespace (not read,
change or delete any it does not own by name). What that allows: squatting a name another run
or the operator will want (the operator then waits instead of adopting an object the FlowRun does
not own), leaving ConfigMaps behind (without an owner reference they outlive the run; a
ResourceQuota on ``count/configmaps`` bounds them), and planting a ConfigMap named like another
run's future chunk (owner references can be forged by anyone who knows the uid), so a runner must
not trust a chunk it did not write: on a run's first attempt it overwrites what it finds under its
chunk names, which the Role allows by name. A retry (``spec.retryOf``) may also ``get`` its source
FlowRun (its input, params and outputs are the retry's defaults) and, for a configmap source, that
store's chunk names.

The three objects are owned by the FlowRun, so the garbage collector removes them with it. The Role
is only ever bound to the run's own account. A run that names a service account of its own choice
(``spec.serviceAccountName``, which ``access`` must allow first) runs its pod as that account (user
code and cloud workload identity see it), but that account may be shared with other runs and pods,
so binding the run's Role to it would let every pod under it read and patch this run: its runner
authenticates as the run's own account instead, with a token the operator makes for it
(``runner_token``).
"""

from __future__ import annotations

from typing import Any

from flowlib_api.meta import (
    API_GROUP,
    CONFIGMAPS,
    EVENTS,
    FLOWRUNS,
    LABEL_COMPONENT,
    ROLEBINDINGS,
    ROLES,
    SERVICEACCOUNTS,
    STATUS_SUBRESOURCE,
    ResourceRef,
)
from flowlib_api.storespec import StoreLocation, configmap_chunk_names
from flowlib_api.views import FlowRunView
from flowlib_operator.jobspec import owner_reference
from flowlib_operator.naming import identity_name, run_labels
from flowlib_operator.stores import Resume

RBAC_VERSION = "rbac.authorization.k8s.io/v1"
IDENTITY_COMPONENT = "run-identity"


STORE_CHUNK_VERBS = ["get", "update", "patch", "delete"]
"""What a runner does with its own store's ConfigMaps, by name (``create`` cannot be by name)."""


def runner_rules(
    flowrun: str, store: StoreLocation | None = None, resume: Resume | None = None
) -> list[dict[str, Any]]:
    """The least a runner needs, for the FlowRun ``flowrun`` only: its store's chunks when that is a
    configmap store and, for a retry, reading its source (see the module docstring)."""
    rules: list[dict[str, Any]] = [
        {"apiGroups": [API_GROUP], "resources": [FLOWRUNS.plural], "resourceNames": [flowrun], "verbs": ["get"]},
        {
            "apiGroups": [API_GROUP],
            "resources": [f"{FLOWRUNS.plural}/{STATUS_SUBRESOURCE}"],
            "resourceNames": [flowrun],
            "verbs": ["get", "patch"],
        },
        {"apiGroups": [EVENTS.group], "resources": [EVENTS.plural], "verbs": ["create"]},
    ]
    if store is not None and store.type == "configmap":
        rules += [
            {"apiGroups": [CONFIGMAPS.group], "resources": [CONFIGMAPS.plural], "verbs": ["create"]},
            {
                "apiGroups": [CONFIGMAPS.group],
                "resources": [CONFIGMAPS.plural],
                "resourceNames": configmap_chunk_names(store.root),
                "verbs": list(STORE_CHUNK_VERBS),
            },
        ]
    if resume is not None:
        rules.append(
            {
                "apiGroups": [API_GROUP],
                "resources": [FLOWRUNS.plural],
                "resourceNames": [resume.source],
                "verbs": ["get"],
            }
        )
        if resume.location.type == "configmap":
            rules.append(
                {
                    "apiGroups": [CONFIGMAPS.group],
                    "resources": [CONFIGMAPS.plural],
                    "resourceNames": configmap_chunk_names(resume.location.root),
                    "verbs": ["get"],
                }
            )
    return rules


def _metadata(flowrun: dict[str, Any], flow_name: str | None) -> dict[str, Any]:
    run = FlowRunView(flowrun)
    return {
        "name": identity_name(run.name),
        "namespace": run.namespace,
        "labels": {**run_labels(run.name, flow_name), LABEL_COMPONENT: IDENTITY_COMPONENT},
        "ownerReferences": [owner_reference(flowrun)],
    }


def run_account(flowrun: dict[str, Any], flow_name: str | None = None) -> dict[str, Any]:
    """The run's own ServiceAccount ``<run>-runner``, which every run has."""
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _metadata(flowrun, flow_name)}


def run_identity(
    flowrun: dict[str, Any],
    flow_name: str | None,
    store: StoreLocation | None = None,
    resume: Resume | None = None,
) -> list[tuple[ResourceRef, dict[str, Any]]]:
    """The objects that give one run its identity, with the collection each is created in: its
    account, its Role and the binding of the one to the other (never to a borrowed account)."""
    run = FlowRunView(flowrun)
    meta = _metadata(flowrun, flow_name)
    role = {
        "apiVersion": RBAC_VERSION,
        "kind": "Role",
        "metadata": meta,
        "rules": runner_rules(run.name, store, resume),
    }
    binding = {
        "apiVersion": RBAC_VERSION,
        "kind": "RoleBinding",
        "metadata": meta,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": meta["name"]},
        "subjects": [{"kind": "ServiceAccount", "name": meta["name"], "namespace": run.namespace}],
    }
    return [(SERVICEACCOUNTS, run_account(flowrun, flow_name)), (ROLES, role), (ROLEBINDINGS, binding)]
