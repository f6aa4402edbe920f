"""Each run's own identity: a ServiceAccount, a Role naming the run, and the RoleBinding between them.

What a runner does (see ``flowlib_runner.incluster``) needs three permissions: read its FlowRun (for
input, params and the cancel flag), patch that FlowRun's status, and post Events. A namespace-wide
runner account would let user code in one run read every other run's ``spec.input`` and forge their
status, so every run gets a Role whose FlowRun rules name that run alone (``resourceNames``). Events
cannot be narrowed by name (the name of an Event is chosen at creation), so ``create events`` stays
namespace-wide: the worst a run can do with it is post a misleading Event.

The three objects are owned by the FlowRun, so the garbage collector removes them with it. A run
that names its own service account (``spec.serviceAccountName``, which ``access`` must allow first)
runs as that account; the operator then binds the run's Role to it instead of creating an account,
and removes the binding when the run ends, because other pods may share that account.
"""

from __future__ import annotations

from typing import Any

from flowlib_api.meta import (
    API_GROUP,
    EVENTS,
    FLOWRUNS,
    LABEL_COMPONENT,
    ROLEBINDINGS,
    ROLES,
    SERVICEACCOUNTS,
    STATUS_SUBRESOURCE,
    ResourceRef,
)
from flowlib_api.views import FlowRunView
from flowlib_operator.jobspec import owner_reference, runner_account
from flowlib_operator.naming import identity_name, run_labels

RBAC_VERSION = "rbac.authorization.k8s.io/v1"
IDENTITY_COMPONENT = "run-identity"


def runner_rules(flowrun: str) -> list[dict[str, Any]]:
    """The least a runner needs, for the FlowRun ``flowrun`` only."""
    return [
        {"apiGroups": [API_GROUP], "resources": [FLOWRUNS.plural], "resourceNames": [flowrun], "verbs": ["get"]},
        {
            "apiGroups": [API_GROUP],
            "resources": [f"{FLOWRUNS.plural}/{STATUS_SUBRESOURCE}"],
            "resourceNames": [flowrun],
            "verbs": ["get", "patch"],
        },
        {"apiGroups": [EVENTS.group], "resources": [EVENTS.plural], "verbs": ["create"]},
    ]


def run_identity(flowrun: dict[str, Any], flow_name: str | None) -> list[tuple[ResourceRef, dict[str, Any]]]:
    """The objects that give one run its identity, with the collection each is created in."""
    run = FlowRunView(flowrun)
    name = identity_name(run.name)
    meta = {
        "name": name,
        "namespace": run.namespace,
        "labels": {**run_labels(run.name, flow_name), LABEL_COMPONENT: IDENTITY_COMPONENT},
        "ownerReferences": [owner_reference(flowrun)],
    }
    objects: list[tuple[ResourceRef, dict[str, Any]]] = []
    if not run.service_account_name:
        account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta}
        objects.append((SERVICEACCOUNTS, account))
    role = {"apiVersion": RBAC_VERSION, "kind": "Role", "metadata": meta, "rules": runner_rules(run.name)}
    binding = {
        "apiVersion": RBAC_VERSION,
        "kind": "RoleBinding",
        "metadata": meta,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": runner_account(run), "namespace": run.namespace}],
    }
    objects += [(ROLES, role), (ROLEBINDINGS, binding)]
    return objects


def shared_account_binding(flowrun: dict[str, Any]) -> str | None:
    """The RoleBinding to remove when the run ends: only a run under an account of its own choice has one
    that outlives the run's pod in meaning (other pods may run as that account)."""
    run = FlowRunView(flowrun)
    return identity_name(run.name) if run.service_account_name else None
