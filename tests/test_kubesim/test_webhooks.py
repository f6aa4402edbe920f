"""Validating admission webhooks
(https://kubernetes.io/docs/reference/access-authn-authz/extensible-admission-controllers/):
AdmissionReview round trips by URL and by Service, denial messages, failurePolicy, selectors."""

from __future__ import annotations

import base64
import http.server
import json
import ssl
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import trustme

from tests.kubesim import Simulator

from .helpers import Raw, install_widgets, widget

pytestmark = pytest.mark.kubesim
WD = "/apis/test.kubesim.dev/v1alpha1/namespaces/default/widgets"


class Hook:
    """An HTTPS webhook server that refuses widgets with size > 5 and records the reviews."""

    def __init__(self) -> None:
        self.ca = trustme.CA()
        cert = self.ca.issue_cert("hook.default.svc", "127.0.0.1")
        self.reviews: list[dict[str, Any]] = []
        reviews = self.reviews

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                reviews.append(review)
                request = review["request"]
                obj = request.get("object") or request.get("oldObject") or {}
                size = (obj.get("spec") or {}).get("size", 0)
                allowed = size <= 5 and request["operation"] != "DELETE"
                answer: dict[str, Any] = {
                    "uid": request["uid"],
                    "allowed": allowed,
                    "warnings": ["checked by the test hook"],
                }
                if not allowed:
                    answer["status"] = {"code": 403, "message": f"size {size} is too big" if size > 5 else "no deletes"}
                body = json.dumps(
                    {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": answer}
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                return  # keep the test output quiet

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(context)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def ca_bundle(self) -> str:
        return base64.b64encode(self.ca.cert_pem.bytes()).decode()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook() -> Iterator[Hook]:
    server = Hook()
    yield server
    server.close()


def configure(sim: Simulator, client_config: dict[str, Any], **extra: Any) -> None:
    hook_spec = {
        "name": "size.test.kubesim.dev",
        "clientConfig": client_config,
        "rules": [
            {
                "apiGroups": ["test.kubesim.dev"],
                "apiVersions": ["*"],
                "operations": ["CREATE", "UPDATE", "DELETE"],
                "resources": ["widgets"],
                "scope": "Namespaced",
            }
        ],
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
        **extra,
    }
    body = {"metadata": {"name": "size"}, "webhooks": [hook_spec]}
    assert Raw(sim).post("/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations", body).status == 201


def test_webhook_by_url_allows_denies_and_warns(kubesim: Simulator, hook: Hook) -> None:
    install_widgets(kubesim)
    configure(kubesim, {"url": f"https://127.0.0.1:{hook.port}/validate", "caBundle": hook.ca_bundle})
    raw = Raw(kubesim)
    ok = raw.post(WD, widget("small", size=2))
    assert ok.status == 201 and "checked by the test hook" in ok.headers["Warning"]
    denied = kubesim.kubectl("apply", "-f", "-", input=json.dumps(widget("big", size=9)), check=False)
    assert denied.returncode == 1
    assert 'admission webhook "size.test.kubesim.dev" denied the request: size 9 is too big' in denied.stderr
    assert raw.get(f"{WD}/big").status == 404
    update = raw.patch(f"{WD}/small", {"spec": {"size": 8}})
    # The webhook's status is returned as it gave it (ToStatusErr): code 403, and no reason since
    # the hook sent none; clients go by the code.
    assert update.status == 403 and update.body["code"] == 403 and not update.body.get("reason")
    assert raw.delete(f"{WD}/small").status == 403
    request = hook.reviews[0]["request"]
    assert request["operation"] == "CREATE" and request["resource"] == {
        "group": "test.kubesim.dev",
        "version": "v1alpha1",
        "resource": "widgets",
    }
    assert (
        request["userInfo"]["username"] == "kubesim-admin" and request["object"]["spec"]["mode"] == "safe"
    )  # defaulted
    update_review = next(r["request"] for r in hook.reviews if r["request"]["operation"] == "UPDATE")
    assert update_review["oldObject"]["spec"]["size"] == 2 and update_review["object"]["spec"]["size"] == 8


def test_webhook_by_service_with_object_selector(kubesim: Simulator, hook: Hook) -> None:
    install_widgets(kubesim)
    raw = Raw(kubesim)
    raw.post(
        "/api/v1/namespaces/default/services",
        {"metadata": {"name": "hook"}, "spec": {"ports": [{"port": 443, "targetPort": hook.port}]}},
    )
    configure(
        kubesim,
        {"service": {"namespace": "default", "name": "hook", "path": "/validate"}, "caBundle": hook.ca_bundle},
        objectSelector={"matchLabels": {"checked": "yes"}},
    )
    unlabelled = widget("free", size=9)
    assert raw.post(WD, unlabelled).status == 201  # not selected: never sent
    labelled = widget("watched", size=9)
    labelled["metadata"]["labels"] = {"checked": "yes"}
    assert raw.post(WD, labelled).status == 403
    assert [r["request"]["name"] for r in hook.reviews] == ["watched"]


def test_failure_policy(kubesim: Simulator, hook: Hook) -> None:
    install_widgets(kubesim)
    hook.close()
    configure(kubesim, {"url": f"https://127.0.0.1:{hook.port}/validate", "caBundle": hook.ca_bundle}, timeoutSeconds=2)
    raw = Raw(kubesim)
    failed = raw.post(WD, widget("x"))
    assert failed.status == 500 and 'failed calling webhook "size.test.kubesim.dev"' in failed.body["message"]
    config = raw.get("/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/size").body
    config["webhooks"][0]["failurePolicy"] = "Ignore"
    raw.put("/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/size", config)
    assert raw.post(WD, widget("x")).status == 201
