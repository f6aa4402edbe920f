"""Authentication with service-account tokens and RBAC authorization
(https://kubernetes.io/docs/reference/access-authn-authz/rbac/,
https://kubernetes.io/docs/reference/access-authn-authz/authentication/#service-account-tokens)."""

from __future__ import annotations

import pytest

from tests.kubesim import Simulator

from .helpers import Raw

pytestmark = pytest.mark.kubesim
RBAC = "/apis/rbac.authorization.k8s.io/v1"


def grant(admin: Raw, ns: str, name: str, rules: list[dict[str, object]], cluster: bool = False) -> None:
    if cluster:
        admin.post(f"{RBAC}/clusterroles", {"metadata": {"name": name}, "rules": rules})
        admin.post(
            f"{RBAC}/clusterrolebindings",
            {
                "metadata": {"name": name},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
                "subjects": [{"kind": "ServiceAccount", "name": "bot", "namespace": ns}],
            },
        )
        return
    admin.post(f"{RBAC}/namespaces/{ns}/roles", {"metadata": {"name": name}, "rules": rules})
    admin.post(
        f"{RBAC}/namespaces/{ns}/rolebindings",
        {
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": "bot", "namespace": ns}],
        },
    )


def test_service_account_is_forbidden_until_granted(kubesim: Simulator) -> None:
    kubesim.ensure_service_account("default", "bot")
    admin, bot = Raw(kubesim), Raw(kubesim, kubesim.token_for("default", "bot"))
    r = bot.get("/api/v1/namespaces/default/configmaps")
    assert r.status == 403 and r.body["reason"] == "Forbidden"
    assert r.body["message"] == (
        'configmaps is forbidden: User "system:serviceaccount:default:bot" cannot list resource "configmaps" '
        'in API group "" in the namespace "default"'
    )
    grant(admin, "default", "cm-reader", [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}])
    assert bot.get("/api/v1/namespaces/default/configmaps").status == 200
    assert bot.post("/api/v1/namespaces/default/configmaps", {"metadata": {"name": "x"}}).status == 403
    assert bot.get("/api/v1/namespaces/kube-system/configmaps").status == 403


def test_resource_names_and_subresources(kubesim: Simulator) -> None:
    kubesim.ensure_service_account("default", "bot")
    admin, bot = Raw(kubesim), Raw(kubesim, kubesim.token_for("default", "bot"))
    admin.post("/api/v1/namespaces/default/configmaps", {"metadata": {"name": "allowed"}})
    admin.post("/api/v1/namespaces/default/configmaps", {"metadata": {"name": "other"}})
    grant(
        admin,
        "default",
        "named",
        [
            {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["allowed"], "verbs": ["get", "list"]},
            {"apiGroups": ["batch"], "resources": ["jobs/status"], "verbs": ["get"]},
        ],
    )
    assert bot.get("/api/v1/namespaces/default/configmaps/allowed").status == 200
    assert bot.get("/api/v1/namespaces/default/configmaps/other").status == 403
    assert bot.get("/api/v1/namespaces/default/configmaps").status == 403  # list has no name
    job = {
        "metadata": {"name": "j"},
        "spec": {
            "suspend": True,
            "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}},
        },
    }
    admin.post("/apis/batch/v1/namespaces/default/jobs", job)
    assert bot.get("/apis/batch/v1/namespaces/default/jobs/j/status").status == 200
    denied = bot.get("/apis/batch/v1/namespaces/default/jobs/j")
    assert denied.status == 403 and 'cannot get resource "jobs" in API group "batch"' in denied.body["message"]


def test_cluster_roles_and_non_resource_urls(kubesim: Simulator) -> None:
    kubesim.ensure_service_account("default", "bot")
    admin, bot = Raw(kubesim), Raw(kubesim, kubesim.token_for("default", "bot"))
    assert bot.get("/version").status == 200 and bot.get("/apis").status == 200  # system:discovery
    assert bot.get("/metrics").status == 403
    grant(
        admin,
        "default",
        "metrics",
        [
            {"nonResourceURLs": ["/metrics"], "verbs": ["get"]},
            {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list"]},
        ],
        cluster=True,
    )
    assert bot.get("/metrics").status == 404  # allowed, and not served
    assert bot.get("/api/v1/namespaces").status == 200


def test_cluster_role_through_role_binding_is_namespaced(kubesim: Simulator) -> None:
    kubesim.ensure_service_account("default", "bot")
    admin, bot = Raw(kubesim), Raw(kubesim, kubesim.token_for("default", "bot"))
    admin.post(
        f"{RBAC}/namespaces/default/rolebindings",
        {
            "metadata": {"name": "view"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "ServiceAccount", "name": "bot", "namespace": "default"}],
        },
    )
    assert bot.get("/api/v1/namespaces/default/pods").status == 200
    assert bot.get("/api/v1/namespaces/kube-system/pods").status == 403


def test_bad_tokens_are_401_and_deleted_service_accounts_lose_access(kubesim: Simulator) -> None:
    kubesim.ensure_service_account("default", "bot")
    token = kubesim.token_for("default", "bot")
    assert Raw(kubesim, token + "x").get("/version").status == 401
    assert Raw(kubesim, "").get("/api/v1/namespaces").status == 403  # anonymous
    Raw(kubesim).delete("/api/v1/namespaces/default/serviceaccounts/bot")
    assert Raw(kubesim, token).get("/version").status == 401


def test_kubectl_with_service_account_kubeconfig_and_auth_can_i(kubesim: Simulator) -> None:
    kubesim.ensure_service_account("default", "bot")
    config = kubesim.kubeconfig_for("default", "bot")
    denied = kubesim.kubectl("get", "configmaps", kubeconfig=config, check=False)
    assert denied.returncode == 1 and "Forbidden" in denied.stderr
    grant(
        Raw(kubesim),
        "default",
        "reader",
        [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]}],
    )
    assert kubesim.kubectl("get", "configmaps", kubeconfig=config).returncode == 0
    assert kubesim.kubectl("auth", "can-i", "list", "configmaps", kubeconfig=config).stdout.strip() == "yes"
    assert (
        kubesim.kubectl("auth", "can-i", "delete", "configmaps", kubeconfig=config, check=False).stdout.strip() == "no"
    )


def test_token_request_subresource(kubesim: Simulator) -> None:
    kubesim.ensure_service_account("default", "bot")
    r = Raw(kubesim).post("/api/v1/namespaces/default/serviceaccounts/bot/token", {"spec": {"expirationSeconds": 600}})
    assert r.status == 201
    token = r.body["status"]["token"]
    review = Raw(kubesim).post("/apis/authentication.k8s.io/v1/tokenreviews", {"spec": {"token": token}}).body
    assert review["status"]["user"]["username"] == "system:serviceaccount:default:bot"


def test_escalation_prevention_for_roles_and_bindings(kubesim: Simulator) -> None:
    """https://kubernetes.io/docs/reference/access-authn-authz/rbac/#privilege-escalation-prevention-and-bootstrapping"""
    kubesim.ensure_service_account("default", "bot")
    admin, bot = Raw(kubesim), Raw(kubesim, kubesim.token_for("default", "bot"))
    rbac_rule = {
        "apiGroups": ["rbac.authorization.k8s.io"],
        "resources": ["roles", "rolebindings"],
        "verbs": ["create", "patch"],
    }
    grant(
        admin, "default", "rbac-writer", [rbac_rule, {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]
    )
    jobs_role = {
        "metadata": {"name": "job-maker"},
        "rules": [{"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create"]}],
    }
    denied = bot.post(f"{RBAC}/namespaces/default/roles", jobs_role)
    assert denied.status == 403
    assert "is attempting to grant RBAC permissions not currently held" in denied.body["message"]
    assert '{APIGroups:["batch"], Resources:["jobs"], Verbs:["create"]}' in denied.body["message"]
    held = {
        "metadata": {"name": "cm-getter"},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}],
    }
    assert bot.post(f"{RBAC}/namespaces/default/roles", held).status == 201
    widened = bot.patch(
        f"{RBAC}/namespaces/default/roles/cm-getter",
        {"rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]},
    )
    assert widened.status == 403
    admin.post(f"{RBAC}/namespaces/default/roles", jobs_role)
    binding = {
        "metadata": {"name": "bind-jobs"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "job-maker"},
        "subjects": [{"kind": "ServiceAccount", "name": "bot", "namespace": "default"}],
    }
    assert bot.post(f"{RBAC}/namespaces/default/rolebindings", binding).status == 403
    grant(
        admin,
        "default",
        "binder",
        [
            {
                "apiGroups": ["rbac.authorization.k8s.io"],
                "resources": ["roles"],
                "resourceNames": ["job-maker"],
                "verbs": ["bind"],
            }
        ],
    )
    assert bot.post(f"{RBAC}/namespaces/default/rolebindings", binding).status == 201
    assert (
        bot.post(
            "/apis/batch/v1/namespaces/default/jobs",
            {
                "metadata": {"name": "x"},
                "spec": {
                    "suspend": True,
                    "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}},
                },
            },
        ).status
        == 201
    )
