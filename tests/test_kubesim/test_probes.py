"""Container probes (https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/#container-probes,
https://kubernetes.io/docs/tasks/configure-pod-container/configure-liveness-readiness-startup-probes/):
readiness gates the pod's Ready condition and the Deployment's ready/available counts, a startup
probe holds the other probes back, failing liveness and startup probes kill the container, and the
API server defaults the probe fields (https://kubernetes.io/docs/reference/kubernetes-api/workload-resources/pod-v1/#Probe)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from tests.kubesim import Simulator

from .helpers import Raw, eventually

pytestmark = pytest.mark.kubesim

# Serves 200 while the file $FLAG exists and 503 otherwise; with $WAIT, listens only once $WAIT exists.
SERVER = """
import http.server, os, time
port, flag, wait = int(os.environ["PORT"]), os.environ.get("FLAG", ""), os.environ.get("WAIT", "")
while wait and not os.path.exists(wait):
    time.sleep(0.05)
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        code = 200 if flag and os.path.exists(flag) else 503
        self.send_response(code)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", port), Handler).serve_forever()
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def server(port: int, probes: dict[str, Any], **env: str) -> dict[str, Any]:
    return {
        "name": "app",
        "image": "python:3.11",
        "command": ["python3", "-c", SERVER],
        "env": [{"name": "PORT", "value": str(port)}] + [{"name": k, "value": v} for k, v in env.items()],
        "ports": [{"name": "http", "containerPort": port}],
        **probes,
    }


def quick(**action: Any) -> dict[str, Any]:
    """A probe that runs every second and flips on one result."""
    return {"periodSeconds": 1, "failureThreshold": 1, "successThreshold": 1, **action}


def pods(raw: Raw, ns: str, selector: str = "") -> list[dict[str, Any]]:
    query = f"?labelSelector={selector}" if selector else ""
    return list(raw.get(f"/api/v1/namespaces/{ns}/pods{query}").body["items"])


def pod(raw: Raw, ns: str, name: str) -> dict[str, Any]:
    return dict(raw.get(f"/api/v1/namespaces/{ns}/pods/{name}").body)


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == kind), {})


def messages(raw: Raw, ns: str, reason: str) -> list[str]:
    items = raw.get(f"/api/v1/namespaces/{ns}/events?fieldSelector=reason%3D{reason}").body["items"]
    return [e["message"] for e in items]


def test_readiness_probe_gates_ready_and_deployment_availability(
    kubesim_session: Simulator, kubesim_namespace: str, tmp_path: Path
) -> None:
    raw, ns, port, flag = Raw(kubesim_session), kubesim_namespace, free_port(), tmp_path / "healthy"
    probe = quick(httpGet={"path": "/healthz", "port": "http"})
    deploy = {
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "containers": [server(port, {"readinessProbe": probe}, FLAG=str(flag))],
                },
            },
        },
    }
    assert raw.post(f"/apis/apps/v1/namespaces/{ns}/deployments", deploy).status == 201

    def running() -> dict[str, Any] | None:
        found = pods(raw, ns, "app%3Dweb")
        return found[0] if found and found[0]["status"].get("phase") == "Running" else None

    first = eventually(running)
    name = first["metadata"]["name"]
    # The server answers 503: the pod runs but is not ready, with the kubelet's reason and message.
    failed = "Readiness probe failed: HTTP probe failed with statuscode: 503"
    eventually(lambda: failed in messages(raw, ns, "Unhealthy"))
    current = pod(raw, ns, name)
    status = current["status"]["containerStatuses"][0]
    assert status["started"] is True and status["ready"] is False
    assert condition(current, "Ready")["status"] == "False"
    assert condition(current, "ContainersReady")["reason"] == "ContainersNotReady"
    assert condition(current, "ContainersReady")["message"] == "containers with unready status: [app]"
    status = raw.get(f"/apis/apps/v1/namespaces/{ns}/deployments/web").body["status"]
    assert status.get("readyReplicas", 0) == 0 and status.get("availableReplicas", 0) == 0

    flag.write_text("")
    eventually(lambda: condition(pod(raw, ns, name), "Ready").get("status") == "True")
    assert pod(raw, ns, name)["status"]["containerStatuses"][0]["ready"] is True
    eventually(
        lambda: raw.get(f"/apis/apps/v1/namespaces/{ns}/deployments/web").body["status"].get("availableReplicas") == 1
    )

    flag.unlink()  # failureThreshold 1: the next failure makes it unready again
    eventually(lambda: condition(pod(raw, ns, name), "Ready").get("status") == "False")
    eventually(
        lambda: raw.get(f"/apis/apps/v1/namespaces/{ns}/deployments/web").body["status"].get("readyReplicas", 0) == 0
    )


def test_startup_probe_holds_the_other_probes_back(
    kubesim_session: Simulator, kubesim_namespace: str, tmp_path: Path
) -> None:
    raw, ns, port, wait = Raw(kubesim_session), kubesim_namespace, free_port(), tmp_path / "go"
    flag = tmp_path / "healthy"
    flag.write_text("")
    probes = {
        "startupProbe": {"tcpSocket": {"port": port}, "periodSeconds": 1, "failureThreshold": 600},
        "readinessProbe": quick(httpGet={"port": "http"}),
        "livenessProbe": quick(httpGet={"port": "http"}),
    }
    body = {
        "metadata": {"name": "slow"},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [server(port, probes, FLAG=str(flag), WAIT=str(wait))],
        },
    }
    assert raw.post(f"/api/v1/namespaces/{ns}/pods", body).status == 201
    eventually(lambda: any(m.startswith("Startup probe failed: dial tcp") for m in messages(raw, ns, "Unhealthy")))
    status = pod(raw, ns, "slow")["status"]["containerStatuses"][0]
    assert "running" in status["state"] and status["started"] is False and status["ready"] is False
    # Neither readiness nor liveness ran while the startup probe had not succeeded.
    assert all(m.startswith("Startup probe") for m in messages(raw, ns, "Unhealthy"))

    wait.write_text("")
    eventually(lambda: condition(pod(raw, ns, "slow"), "Ready").get("status") == "True")
    status = pod(raw, ns, "slow")["status"]["containerStatuses"][0]
    assert status["started"] is True and status["ready"] is True and status["restartCount"] == 0


def test_failing_liveness_probe_restarts_the_container(kubesim_session: Simulator, kubesim_namespace: str) -> None:
    raw, ns, port = Raw(kubesim_session), kubesim_namespace, free_port()
    body = {
        "metadata": {"name": "sick"},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            # No $FLAG: /healthz always answers 503.
            "containers": [server(port, {"livenessProbe": quick(httpGet={"path": "/healthz", "port": port})})],
        },
    }
    assert raw.post(f"/api/v1/namespaces/{ns}/pods", body).status == 201
    restarted = eventually(
        lambda: (s := pod(raw, ns, "sick")["status"].get("containerStatuses")) and s[0]["restartCount"] >= 1 and s[0]
    )
    assert restarted["lastState"]["terminated"]["exitCode"] == 143  # SIGTERM
    assert "Container app failed liveness probe, will be restarted" in messages(raw, ns, "Killing")
    # Refused while the server starts, 503 once it serves: either way a failure.
    assert any(m.startswith("Liveness probe failed: ") for m in messages(raw, ns, "Unhealthy"))


def test_failing_startup_probe_kills_a_never_restarted_container(
    kubesim_session: Simulator, kubesim_namespace: str
) -> None:
    raw, ns, port = Raw(kubesim_session), kubesim_namespace, free_port()
    body = {
        "metadata": {"name": "never"},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {
                    "name": "app",
                    "image": "busybox",
                    "command": ["sleep", "3600"],
                    "startupProbe": {"tcpSocket": {"port": port}, "periodSeconds": 1, "failureThreshold": 2},
                }
            ],
        },
    }
    assert raw.post(f"/api/v1/namespaces/{ns}/pods", body).status == 201
    eventually(lambda: pod(raw, ns, "never")["status"].get("phase") == "Failed")
    status = pod(raw, ns, "never")["status"]["containerStatuses"][0]
    assert status["state"]["terminated"]["exitCode"] == 143 and status["restartCount"] == 0
    assert "Container app failed startup probe" in messages(raw, ns, "Killing")


def test_api_server_defaults_probe_fields(kubesim_session: Simulator, kubesim_namespace: str) -> None:
    raw, ns = Raw(kubesim_session), kubesim_namespace
    body = {
        "metadata": {"name": "defaults"},
        "spec": {
            "containers": [
                {
                    "name": "app",
                    "image": "busybox",
                    "command": ["sleep", "3600"],
                    "readinessProbe": {"httpGet": {"port": 8080}},
                    "livenessProbe": {"exec": {"command": ["true"]}, "initialDelaySeconds": 2},
                }
            ]
        },
    }
    created = raw.post(f"/api/v1/namespaces/{ns}/pods", body).body
    container = created["spec"]["containers"][0]
    assert container["readinessProbe"] == {
        "httpGet": {"port": 8080, "path": "/", "scheme": "HTTP"},
        "timeoutSeconds": 1,
        "periodSeconds": 10,
        "successThreshold": 1,
        "failureThreshold": 3,
    }
    assert container["livenessProbe"]["initialDelaySeconds"] == 2
    assert container["livenessProbe"]["failureThreshold"] == 3
    raw.delete(f"/api/v1/namespaces/{ns}/pods/defaults?gracePeriodSeconds=0")


@pytest.fixture(scope="module")
def isolated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    sim = Simulator(workdir=tmp_path_factory.mktemp("probes-isolated"), pod_network="isolated").start()
    yield sim
    sim.stop()


def test_probes_reach_the_pod_inside_its_own_network(isolated: Simulator, tmp_path: Path) -> None:
    """With ``pod_network="isolated"`` a probe connects to the pod's own loopback: two pods serving
    the same port both become ready, while a pod that does not listen stays unready even though the
    host listens on that port; an exec probe counts as succeeding (README limits)."""
    raw, ns, port = Raw(isolated), "default", free_port()
    flag = tmp_path / "healthy"
    flag.write_text("")
    with socket.socket() as host_listener:
        host_listener.bind(("127.0.0.1", port))
        host_listener.listen()
        for name in ("one", "two"):
            probes = {"readinessProbe": quick(tcpSocket={"port": "http"})}
            body = {
                "metadata": {"name": name},
                "spec": {"terminationGracePeriodSeconds": 1, "containers": [server(port, probes, FLAG=str(flag))]},
            }
            assert raw.post(f"/api/v1/namespaces/{ns}/pods", body).status == 201
        idle = {
            "metadata": {"name": "idle"},
            "spec": {
                "terminationGracePeriodSeconds": 1,
                "containers": [
                    {
                        "name": "app",
                        "image": "busybox",
                        "command": ["sleep", "3600"],
                        "readinessProbe": quick(tcpSocket={"port": port}),
                    },
                    {
                        "name": "exec",
                        "image": "busybox",
                        "command": ["sleep", "3600"],
                        "readinessProbe": quick(exec={"command": ["false"]}),
                    },
                ],
            },
        }
        assert raw.post(f"/api/v1/namespaces/{ns}/pods", idle).status == 201
        for name in ("one", "two"):
            eventually(lambda name=name: condition(pod(raw, ns, name), "Ready").get("status") == "True")
        refused = f"Readiness probe failed: dial tcp 127.0.0.1:{port}: connect: connection refused"
        eventually(lambda: refused in messages(raw, ns, "Unhealthy"))
        eventually(lambda: [s["ready"] for s in pod(raw, ns, "idle")["status"]["containerStatuses"]] == [False, True])
        assert condition(pod(raw, ns, "idle"), "Ready")["message"] == "containers with unready status: [app]"


HTTPS_SERVER = """
import http.server, os, ssl
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        ok = self.headers.get("X-Probe") == "yes" and self.headers.get("Host") == "probe.example"
        ok = ok and self.headers.get("User-Agent", "").startswith("kube-probe/") and self.path == "/ready?full=1"
        self.send_response(200 if ok else 418)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(os.environ["CERT"], os.environ["KEY"])
server.socket = context.wrap_socket(server.socket, server_side=True)
server.serve_forever()
"""


def test_https_probe_sends_path_and_headers_without_verifying(
    kubesim_session: Simulator, kubesim_namespace: str, tmp_path: Path
) -> None:
    """scheme HTTPS skips certificate verification; ``httpHeaders`` (also Host) and the path with
    its query are sent as given, with the kubelet's User-Agent."""
    cert = trustme.CA().issue_cert("somewhere.else")  # a name the probe does not check
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "tls.crt"))
    cert.private_key_pem.write_to_path(str(tmp_path / "tls.key"))
    raw, ns, port = Raw(kubesim_session), kubesim_namespace, free_port()
    probe = quick(
        httpGet={
            "scheme": "HTTPS",
            "path": "/ready?full=1",
            "port": port,
            "httpHeaders": [{"name": "X-Probe", "value": "yes"}, {"name": "host", "value": "probe.example"}],
        }
    )
    container = {
        "name": "app",
        "image": "python:3.11",
        "command": ["python3", "-c", HTTPS_SERVER],
        "env": [
            {"name": "PORT", "value": str(port)},
            {"name": "CERT", "value": str(tmp_path / "tls.crt")},
            {"name": "KEY", "value": str(tmp_path / "tls.key")},
        ],
        "readinessProbe": probe,
    }
    body = {"metadata": {"name": "tls"}, "spec": {"terminationGracePeriodSeconds": 1, "containers": [container]}}
    assert raw.post(f"/api/v1/namespaces/{ns}/pods", body).status == 201
    eventually(lambda: condition(pod(raw, ns, "tls"), "Ready").get("status") == "True")
    assert not any("statuscode: 418" in m for m in messages(raw, ns, "Unhealthy"))
