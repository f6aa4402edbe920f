"""Tokens bound to a Secret, and Secret volumes that follow their Secret
(https://kubernetes.io/docs/reference/access-authn-authz/service-accounts-admin/#bound-service-account-tokens,
https://kubernetes.io/docs/reference/kubernetes-api/authentication-resources/token-request-v1/,
https://kubernetes.io/docs/concepts/configuration/secret/#mounted-secrets-are-updated-automatically)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from tests.kubesim import Simulator

from .helpers import Raw, eventually

pytestmark = pytest.mark.kubesim


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return claims


def _token(raw: Raw, ns: str, account: str, spec: dict[str, Any]) -> Any:
    return raw.post(f"/api/v1/namespaces/{ns}/serviceaccounts/{account}/token", {"spec": spec})


def test_a_token_bound_to_a_secret_dies_with_it(kubesim_session: Simulator, kubesim_namespace: str) -> None:
    raw, ns = Raw(kubesim_session), kubesim_namespace
    kubesim_session.ensure_service_account(ns, "bot")
    secret = raw.post(f"/api/v1/namespaces/{ns}/secrets", {"metadata": {"name": "holder"}}).body
    ref = {"apiVersion": "v1", "kind": "Secret", "name": "holder"}
    answer = _token(raw, ns, "bot", {"expirationSeconds": 600, "boundObjectRef": ref})
    assert answer.status == 201, answer.body
    assert answer.body["spec"]["boundObjectRef"]["uid"] == secret["metadata"]["uid"]
    token = answer.body["status"]["token"]
    claims = _claims(token)["kubernetes.io"]
    assert claims["secret"] == {"name": "holder", "uid": secret["metadata"]["uid"]}
    assert claims["serviceaccount"]["name"] == "bot"
    assert Raw(kubesim_session, token).get("/apis").status == 200
    review = raw.post("/apis/authentication.k8s.io/v1/tokenreviews", {"spec": {"token": token}}).body
    assert review["status"]["authenticated"] is True
    # Deleted, then created again under the same name: another uid, so the token stays dead.
    assert raw.delete(f"/api/v1/namespaces/{ns}/secrets/holder").status == 200
    assert Raw(kubesim_session, token).get("/apis").status == 401
    raw.post(f"/api/v1/namespaces/{ns}/secrets", {"metadata": {"name": "holder"}})
    assert Raw(kubesim_session, token).get("/apis").status == 401
    review = raw.post("/apis/authentication.k8s.io/v1/tokenreviews", {"spec": {"token": token}}).body
    assert review["status"]["authenticated"] is False


def test_token_requests_are_validated_as_the_api_server_does(
    kubesim_session: Simulator, kubesim_namespace: str
) -> None:
    raw, ns = Raw(kubesim_session), kubesim_namespace
    kubesim_session.ensure_service_account(ns, "bot")
    kubesim_session.ensure_service_account(ns, "other")
    secret = raw.post(f"/api/v1/namespaces/{ns}/secrets", {"metadata": {"name": "holder"}}).body
    short = _token(raw, ns, "bot", {"expirationSeconds": 599})
    assert short.status == 422, short.body
    assert "may not specify a duration less than 10 minutes" in short.body["message"]
    long = _token(raw, ns, "bot", {"expirationSeconds": (1 << 32) + 1})
    assert long.status == 422 and "larger than 2^32 seconds" in long.body["message"]
    assert _token(raw, ns, "bot", {}).body["spec"]["expirationSeconds"] == 3600
    configmap = _token(raw, ns, "bot", {"boundObjectRef": {"apiVersion": "v1", "kind": "ConfigMap", "name": "x"}})
    assert configmap.status == 400
    assert configmap.body["message"] == "cannot bind token to object of type /v1, Kind=ConfigMap"
    grouped = _token(raw, ns, "bot", {"boundObjectRef": {"apiVersion": "apps/v1", "kind": "Secret", "name": "holder"}})
    assert grouped.status == 400
    missing = _token(raw, ns, "bot", {"boundObjectRef": {"apiVersion": "v1", "kind": "Secret", "name": "absent"}})
    assert missing.status == 404, missing.body
    stale = {"apiVersion": "v1", "kind": "Secret", "name": "holder", "uid": "not-" + secret["metadata"]["uid"]}
    conflict = _token(raw, ns, "bot", {"boundObjectRef": stale})
    assert conflict.status == 409 and "does not match the UID in record" in conflict.body["message"]
    pod = {
        "metadata": {"name": "p"},
        "spec": {"serviceAccountName": "other", "containers": [{"name": "c", "image": "busybox", "command": ["true"]}]},
    }
    assert raw.post(f"/api/v1/namespaces/{ns}/pods", pod).status == 201
    foreign = _token(raw, ns, "bot", {"boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": "p"}})
    assert foreign.status == 400 and "running with different serviceaccount name" in foreign.body["message"]
    assert _token(raw, ns, "other", {"boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": "p"}}).status == 201


WATCHER = """
echo ready
for i in $(seq 600); do
  [ "$(cat /etc/s/key)" = old ] || break
  sleep 0.05
done
echo "dir=$(cat /etc/s/key) sub=$(cat /etc/one) added=$(cat /etc/s/added 2>/dev/null || echo none) env=$KEY"
"""


def test_a_running_pods_secret_volume_follows_the_secret(kubesim_session: Simulator, kubesim_namespace: str) -> None:
    """The kubelet rewrites a Secret volume when the Secret changes (a key changed or added); a
    ``subPath`` mount of it and an environment variable from it keep what they had at the start."""
    raw, ns = Raw(kubesim_session), kubesim_namespace
    raw.post(f"/api/v1/namespaces/{ns}/secrets", {"metadata": {"name": "s"}, "stringData": {"key": "old"}})
    container = {
        "name": "c",
        "image": "busybox",
        "command": ["sh", "-c", WATCHER],
        "env": [{"name": "KEY", "valueFrom": {"secretKeyRef": {"name": "s", "key": "key"}}}],
        "volumeMounts": [
            {"name": "s", "mountPath": "/etc/s", "readOnly": True},
            {"name": "s", "mountPath": "/etc/one", "subPath": "key", "readOnly": True},
        ],
    }
    spec = {
        "restartPolicy": "Never",
        "containers": [container],
        "volumes": [{"name": "s", "secret": {"secretName": "s"}}],
    }
    raw.post(f"/api/v1/namespaces/{ns}/pods", {"metadata": {"name": "follower"}, "spec": spec})

    def started() -> bool:  # its mounts are in place once it runs the script
        return raw.get(f"/api/v1/namespaces/{ns}/pods/follower/log").raw == b"ready\n"

    eventually(started)
    patched = raw.patch(f"/api/v1/namespaces/{ns}/secrets/s", {"stringData": {"key": "new", "added": "yes"}})
    assert patched.status == 200
    eventually(lambda: raw.get(f"/api/v1/namespaces/{ns}/pods/follower").body["status"].get("phase") == "Succeeded")
    log = raw.get(f"/api/v1/namespaces/{ns}/pods/follower/log").raw.decode()
    assert log == "ready\ndir=new sub=old added=yes env=old\n", log


def test_a_secret_volume_waits_for_a_key_it_lists(kubesim_session: Simulator, kubesim_namespace: str) -> None:
    """A listed key that is missing fails the mount (the pod stays ContainerCreating, FailedMount)
    until the Secret has it, unless the volume is optional."""
    raw, ns = Raw(kubesim_session), kubesim_namespace
    raw.post(f"/api/v1/namespaces/{ns}/secrets", {"metadata": {"name": "later"}})
    container = {
        "name": "c",
        "image": "busybox",
        "command": ["cat", "/etc/later/token"],
        "volumeMounts": [{"name": "later", "mountPath": "/etc/later", "readOnly": True}],
    }
    volume = {"name": "later", "secret": {"secretName": "later", "items": [{"key": "token", "path": "token"}]}}
    spec = {"restartPolicy": "Never", "containers": [container], "volumes": [volume]}
    raw.post(f"/api/v1/namespaces/{ns}/pods", {"metadata": {"name": "waiter"}, "spec": spec})

    def waiting() -> str:
        status = raw.get(f"/api/v1/namespaces/{ns}/pods/waiter").body["status"]
        state = ((status.get("containerStatuses") or [{}])[0].get("state") or {}).get("waiting") or {}
        return str(state.get("message") or "")

    message = eventually(lambda: "non-existent secret key: token" in waiting() and waiting())
    assert 'MountVolume.SetUp failed for volume "later"' in message
    raw.patch(f"/api/v1/namespaces/{ns}/secrets/later", {"stringData": {"token": "t0k3n"}})
    eventually(lambda: raw.get(f"/api/v1/namespaces/{ns}/pods/waiter").body["status"].get("phase") == "Succeeded")
    assert raw.get(f"/api/v1/namespaces/{ns}/pods/waiter/log").raw == b"t0k3n"
