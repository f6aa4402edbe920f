"""The runner's identity in a namespace: a ServiceAccount, a Role and its RoleBinding.

Least privilege for what the runner does (see ``flowlib_runner.incluster``): read FlowRuns (its
own, to get input, params and the cancel flag), patch ``flowruns/status``, and post Events. It
reads its definition from a mounted ConfigMap, so it needs no access to ConfigMaps or Secrets.
The operator creates the three objects the first time a run in the namespace needs them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flowlib_runner.kube.client import ApiError, KubeClient

from flowlib_api.meta import (
    API_GROUP,
    EVENTS,
    FLOWRUNS,
    LABEL_MANAGED_BY,
    LABEL_NAME,
    MANAGED_BY,
    ROLEBINDINGS,
    ROLES,
    RUNNER_NAME,
    RUNNER_SERVICE_ACCOUNT,
    SERVICEACCOUNTS,
    STATUS_SUBRESOURCE,
)

RUNNER_RULES: list[dict[str, Any]] = [
    {"apiGroups": [API_GROUP], "resources": [FLOWRUNS.plural], "verbs": ["get"]},
    {"apiGroups": [API_GROUP], "resources": [f"{FLOWRUNS.plural}/{STATUS_SUBRESOURCE}"], "verbs": ["get", "patch"]},
    {"apiGroups": [EVENTS.group], "resources": [EVENTS.plural], "verbs": ["create"]},
]


def _meta(namespace: str) -> dict[str, Any]:
    return {
        "name": RUNNER_SERVICE_ACCOUNT,
        "namespace": namespace,
        "labels": {LABEL_MANAGED_BY: MANAGED_BY, LABEL_NAME: RUNNER_NAME},
    }


def runner_identity(namespace: str) -> list[dict[str, Any]]:
    """ServiceAccount, Role, RoleBinding, in the order to create them."""
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(namespace)},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": _meta(namespace),
            "rules": RUNNER_RULES,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": _meta(namespace),
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": RUNNER_SERVICE_ACCOUNT,
            },
            "subjects": [{"kind": "ServiceAccount", "name": RUNNER_SERVICE_ACCOUNT, "namespace": namespace}],
        },
    ]


_REFS = {"ServiceAccount": SERVICEACCOUNTS, "Role": ROLES, "RoleBinding": ROLEBINDINGS}


@dataclass
class RunnerIdentities:
    """Creates the runner identity once per namespace (remembered until ``forget``)."""

    client: KubeClient
    ready: set[str] = field(default_factory=set)

    async def ensure(self, namespace: str) -> None:
        """Create the runner's ServiceAccount, Role and RoleBinding in ``namespace`` if missing."""
        if namespace in self.ready:
            return
        for manifest in runner_identity(namespace):
            try:
                await self.client.create(_REFS[manifest["kind"]], manifest, namespace)
            except ApiError as error:
                if not error.already_exists:
                    raise
        self.ready.add(namespace)

    def forget(self, namespace: str) -> None:
        """Perhaps the identity was deleted (a pod could not be created): check it again next time."""
        self.ready.discard(namespace)
