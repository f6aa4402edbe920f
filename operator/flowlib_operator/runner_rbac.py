"""The runner's identity in a namespace: a ServiceAccount, a Role and its RoleBinding.

Least privilege for what the runner does (see ``flowlib_runner.incluster``): read FlowRuns (its
own, to get input, params and the cancel flag), patch ``flowruns/status``, and post Events. It
reads its definition from a mounted ConfigMap, so it needs no access to ConfigMaps or Secrets.
"""

from __future__ import annotations

from typing import Any

from flowlib_operator.naming import (
    LABEL_MANAGED_BY,
    LABEL_NAME,
    MANAGED_BY,
    RUNNER_NAME,
    RUNNER_SERVICE_ACCOUNT,
)

RUNNER_RULES: list[dict[str, Any]] = [
    {"apiGroups": ["flowlib.dev"], "resources": ["flowruns"], "verbs": ["get"]},
    {"apiGroups": ["flowlib.dev"], "resources": ["flowruns/status"], "verbs": ["get", "patch"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
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
