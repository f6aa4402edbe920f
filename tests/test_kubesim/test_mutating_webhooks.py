"""Mutating admission webhooks
(https://kubernetes.io/docs/reference/access-authn-authz/extensible-admission-controllers/): called
after the built-in defaulting and mutating admission and before schema validation and the
validating webhooks, ordered by configuration name then position, JSONPatch responses applied,
``reinvocationPolicy: IfNeeded``, ``failurePolicy``/``timeoutSeconds``, response checks and the
denial message format (webhookerrors.ToStatusErr)."""

from __future__ import annotations

import base64
import http.server
import json
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import trustme

from tests.kubesim import Simulator

from .helpers import Raw, install_widgets, widget

pytestmark = pytest.mark.kubesim
WD = "/apis/test.kubesim.dev/v1alpha1/namespaces/default/widgets"
MWC = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"
VWC = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations"
Behaviour = Callable[[dict[str, Any]], dict[str, Any]]


def patched(*ops: dict[str, Any]) -> dict[str, Any]:
    return {"allowed": True, "patchType": "JSONPatch", "patch": base64.b64encode(json.dumps(ops).encode()).decode()}


def append_order(name: str) -> Behaviour:
    """Append ``name`` to the ``order`` annotation (a record of who ran, in which order)."""

    def behave(request: dict[str, Any]) -> dict[str, Any]:
        annotations = request["object"]["metadata"].get("annotations")
        if annotations is None:
            return patched({"op": "add", "path": "/metadata/annotations", "value": {"order": name}})
        order = ",".join(filter(None, [annotations.get("order"), name]))
        return patched({"op": "add", "path": "/metadata/annotations/order", "value": order})

    return behave


class Server:
    """An HTTPS webhook server: ``behaviours[path](request)`` gives the response (uid added);
    every review is recorded as ``(path, review)``."""

    def __init__(self) -> None:
        self.ca = trustme.CA()
        cert = self.ca.issue_cert("127.0.0.1")
        self.behaviours: dict[str, Behaviour] = {}
        self.reviews: list[tuple[str, dict[str, Any]]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                path = self.path.split("?")[0]
                outer.reviews.append((path, review))
                answer = {"uid": review["request"]["uid"], **outer.behaviours[path](review["request"])}
                envelope = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": answer}
                if answer.pop("bare", False):
                    envelope = {"response": answer}  # no apiVersion/kind: an invalid response
                body = json.dumps(envelope).encode()
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

    def hook(self, name: str, path: str, **extra: Any) -> dict[str, Any]:
        return {
            "name": name,
            "clientConfig": {
                "url": f"https://127.0.0.1:{self.port}{path}",
                "caBundle": base64.b64encode(self.ca.cert_pem.bytes()).decode(),
            },
            "rules": [
                {
                    "apiGroups": extra.pop("groups", ["test.kubesim.dev"]),
                    "apiVersions": ["*"],
                    "operations": extra.pop("operations", ["CREATE", "UPDATE"]),
                    "resources": extra.pop("resources", ["widgets"]),
                }
            ],
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
            **extra,
        }

    def paths(self) -> list[str]:
        return [path for path, _ in self.reviews]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def server() -> Iterator[Server]:
    hooks = Server()
    yield hooks
    hooks.close()


def configure(sim: Simulator, name: str, *hooks: dict[str, Any], path: str = MWC) -> None:
    assert Raw(sim).post(path, {"metadata": {"name": name}, "webhooks": list(hooks)}).status == 201


def test_webhooks_run_in_name_order_before_validation(kubesim: Simulator, server: Server) -> None:
    install_widgets(kubesim)
    raw = Raw(kubesim)
    for name in ("first", "first-b", "second"):
        server.behaviours[f"/{name}"] = append_order(name)

    def shrink(request: dict[str, Any]) -> dict[str, Any]:
        return patched({"op": "replace", "path": "/spec/size", "value": 2})

    def at_most_five(request: dict[str, Any]) -> dict[str, Any]:
        size = request["object"]["spec"]["size"]
        return {"allowed": size <= 5, "status": {"code": 403, "message": f"size {size}"}}

    server.behaviours["/shrink"] = shrink
    server.behaviours["/validate"] = at_most_five
    # Configurations run by name ("a-..." before "b-..."), webhooks in their order within one.
    configure(kubesim, "b-hooks", server.hook("second.test", "/second"), server.hook("shrink.test", "/shrink"))
    configure(kubesim, "a-hooks", server.hook("first.test", "/first"), server.hook("first-b.test", "/first-b"))
    configure(kubesim, "check", server.hook("validate.test", "/validate"), path=VWC)

    created = raw.post(WD, widget("big", size=9))  # the validating webhook sees size 2, not 9
    assert created.status == 201, created.body
    assert created.body["metadata"]["annotations"]["order"] == "first,first-b,second"
    assert created.body["spec"]["size"] == 2
    assert server.paths() == ["/first", "/first-b", "/second", "/shrink", "/validate"]
    first = server.reviews[0][1]["request"]
    # The first webhook sees the defaulted object (built-in admission ran), not yet stored.
    assert first["operation"] == "CREATE" and first["name"] == "big" and first["object"]["spec"]["mode"] == "safe"
    assert "uid" not in first["object"]["metadata"] and "creationTimestamp" not in first["object"]["metadata"]
    validated = server.reviews[-1][1]["request"]["object"]
    assert validated["spec"]["size"] == 2 and validated["metadata"]["annotations"]["order"] == "first,first-b,second"

    # Updates and patches are mutated too (the hooks see the old object), and so are dry runs.
    server.reviews.clear()
    updated = raw.patch(f"{WD}/big", {"spec": {"size": 4}})
    assert updated.status == 200 and updated.body["spec"]["size"] == 2
    assert updated.body["metadata"]["annotations"]["order"] == "first,first-b,second,first,first-b,second"
    request = server.reviews[0][1]["request"]
    assert request["operation"] == "UPDATE" and request["oldObject"]["spec"]["size"] == 2
    assert request["object"]["spec"]["size"] == 4
    dry = raw.post(f"{WD}?dryRun=All", widget("dry", size=7))
    assert dry.status == 201 and dry.body["spec"]["size"] == 2 and raw.get(f"{WD}/dry").status == 404
    assert server.reviews[-1][1]["request"]["dryRun"] is True


def test_result_is_schema_validated_and_may_fix_an_invalid_object(kubesim: Simulator, server: Server) -> None:
    install_widgets(kubesim)
    raw = Raw(kubesim)

    def add_image(request: dict[str, Any]) -> dict[str, Any]:
        if "image" in request["object"]["spec"]:
            return {"allowed": True}
        return patched({"op": "add", "path": "/spec/image", "value": "busybox"})

    def break_size(request: dict[str, Any]) -> dict[str, Any]:
        if request["object"]["metadata"]["name"] != "broken":
            return {"allowed": True}
        return patched(
            {"op": "replace", "path": "/spec/size", "value": 99}, {"op": "add", "path": "/spec/x", "value": 1}
        )

    server.behaviours["/image"] = add_image
    server.behaviours["/break"] = break_size
    configure(kubesim, "fixers", server.hook("image.test", "/image"), server.hook("break.test", "/break"))
    # Required spec.image is missing as sent; schema validation only runs after the webhooks.
    no_image = widget("fixed")
    del no_image["spec"]["image"]
    created = raw.post(WD, no_image)
    assert created.status == 201 and created.body["spec"]["image"] == "busybox"
    # What a webhook makes is validated like a request (and fields the schema lacks are pruned).
    refused = raw.post(WD, widget("broken"))
    assert refused.status == 422
    assert "spec.size" in refused.body["message"] and "99" in refused.body["message"]


def test_reinvocation_if_needed(kubesim: Simulator, server: Server) -> None:
    install_widgets(kubesim)
    raw = Raw(kubesim)
    server.behaviours["/again"] = lambda request: {"allowed": True}
    server.behaviours["/once"] = lambda request: {"allowed": True}
    server.behaviours["/change"] = append_order("change")
    configure(
        kubesim,
        "a",
        server.hook("again.test", "/again", reinvocationPolicy="IfNeeded"),
        server.hook("once.test", "/once", reinvocationPolicy="Never"),
    )
    configure(kubesim, "b", server.hook("change.test", "/change"))
    assert raw.post(WD, widget("w")).status == 201
    # "change" modified the object after "again" (IfNeeded) saw it: "again" runs once more, last;
    # "once" (Never) and "change" itself are not called again.
    assert server.paths() == ["/again", "/once", "/change", "/again"]
    assert server.reviews[-1][1]["request"]["object"]["metadata"]["annotations"] == {"order": "change"}


def test_pods_see_admission_defaults_and_keep_one_token_volume(kubesim: Simulator, server: Server) -> None:
    raw = Raw(kubesim)

    def sidecar(request: dict[str, Any]) -> dict[str, Any]:
        side = {"name": "sidecar", "image": "busybox", "command": ["sleep", "3600"]}
        return patched({"op": "add", "path": "/spec/containers/-", "value": side})

    server.behaviours["/sidecar"] = sidecar
    configure(kubesim, "inject", server.hook("sidecar.test", "/sidecar", groups=[""], resources=["pods"]))
    pod = {
        "metadata": {"generateName": "app-"},
        "spec": {"containers": [{"name": "app", "image": "busybox", "command": ["sleep", "3600"]}]},
    }
    created = raw.post("/api/v1/namespaces/default/pods", pod)
    assert created.status == 201, created.body
    request = server.reviews[0][1]["request"]
    # The webhook sees the pod after ServiceAccount and Priority admission, before a name is generated.
    assert request["name"] == "" and "name" not in request["object"]["metadata"]
    assert request["object"]["spec"]["serviceAccountName"] == "default"
    assert request["object"]["spec"]["preemptionPolicy"] == "PreemptLowerPriority"
    spec = created.body["spec"]
    assert created.body["metadata"]["name"].startswith("app-")
    assert [c["name"] for c in spec["containers"]] == ["app", "sidecar"]
    # The injected container is defaulted and mounts the one token volume.
    tokens = [v["name"] for v in spec["volumes"] if v["name"].startswith("kube-api-access-")]
    assert len(tokens) == 1
    side = spec["containers"][1]
    assert side["terminationMessagePath"] == "/dev/termination-log"
    assert [m["name"] for m in side["volumeMounts"]] == tokens


def test_failure_policy_timeouts_and_invalid_responses(kubesim: Simulator, server: Server) -> None:
    install_widgets(kubesim)
    raw = Raw(kubesim)

    def slow(request: dict[str, Any]) -> dict[str, Any]:
        time.sleep(3)
        return {"allowed": True}

    server.behaviours["/slow"] = slow
    server.behaviours["/untyped"] = lambda request: {
        "allowed": True,
        "patch": base64.b64encode(b'[{"op":"add","path":"/metadata/labels","value":{"x":"y"}}]').decode(),
    }
    server.behaviours["/bare"] = lambda request: {"allowed": True, "bare": True}
    server.behaviours["/badpatch"] = lambda request: patched(
        {"op": "replace", "path": "/spec/nothing/here", "value": 1}
    )

    def only(name: str, path: str, policy: str, **extra: Any) -> None:
        raw.delete(f"{MWC}/only")
        configure(kubesim, "only", server.hook(name, path, failurePolicy=policy, **extra))

    only("slow.test", "/slow", "Fail", timeoutSeconds=1)
    failed = raw.post(WD, widget("a"))
    assert failed.status == 500 and failed.body["reason"] == "InternalError"
    assert failed.body["message"].startswith('Internal error occurred: failed calling webhook "slow.test": ')
    assert "context deadline exceeded" in failed.body["message"]
    only("slow.test", "/slow", "Ignore", timeoutSeconds=1)
    assert raw.post(WD, widget("a")).status == 201

    only("untyped.test", "/untyped", "Fail")
    failed = raw.post(WD, widget("b"))
    assert failed.status == 500 and failed.body["message"] == (
        'Internal error occurred: failed calling webhook "untyped.test": received invalid webhook response: '
        "webhook returned response.patch but not response.patchType"
    )
    only("bare.test", "/bare", "Fail")
    failed = raw.post(WD, widget("b"))
    assert (
        "expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, got /, Kind="
        in (failed.body["message"])
    )
    only("untyped.test", "/untyped", "Ignore")  # a call failure: ignored
    created = raw.post(WD, widget("b"))
    assert created.status == 201 and "labels" not in created.body["metadata"]
    only("badpatch.test", "/badpatch", "Ignore")  # a patch that does not apply is not a call failure
    failed = raw.post(WD, widget("c"))
    assert failed.status == 500 and failed.body["message"].startswith("Internal error occurred: ")

    # DELETE is sent to mutating webhooks too, but there is no object to patch.
    server.behaviours["/del"] = lambda request: patched({"op": "add", "path": "/metadata/labels", "value": {}})
    only("del.test", "/del", "Fail", operations=["DELETE"])
    refused = raw.delete(f"{WD}/a")
    assert (
        refused.status == 500 and "attempted to modify the object, which is not supported" in (refused.body["message"])
    )
    request = server.reviews[-1][1]["request"]
    assert request["operation"] == "DELETE" and request["object"] is None and request["oldObject"]["metadata"]


@pytest.mark.parametrize(
    ("status", "code", "reason", "message"),
    [
        ({"code": 403, "message": "no"}, 403, "", 'admission webhook "deny.test" denied the request: no'),
        (
            {"code": 409, "reason": "Conflict"},
            409,
            "Conflict",
            'admission webhook "deny.test" denied the request: Conflict',
        ),
        ({}, 400, "", 'admission webhook "deny.test" denied the request without explanation'),
        ({"code": 200, "message": "odd"}, 400, "", 'admission webhook "deny.test" denied the request: odd'),
    ],
)
def test_denial_messages(
    kubesim_session: Simulator, server: Server, status: dict[str, Any], code: int, reason: str, message: str
) -> None:
    raw = Raw(kubesim_session)
    server.behaviours["/deny"] = lambda request: {"allowed": False, "status": status}
    name = f"deny-{code}-{len(status)}"
    hook = server.hook("deny.test", "/deny", groups=[""], resources=["configmaps"])
    hook["objectSelector"] = {"matchLabels": {"deny": name}}
    configure(kubesim_session, name, hook)
    try:
        refused = raw.post(
            "/api/v1/namespaces/default/configmaps", {"metadata": {"name": name, "labels": {"deny": name}}}
        )
        assert (refused.status, refused.body["code"], refused.body.get("reason") or "") == (code, code, reason)
        assert refused.body["message"] == message
    finally:
        raw.delete(f"{MWC}/{name}")
