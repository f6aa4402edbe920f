"""Isolated pod networks (``Simulator(pod_network="isolated")``): pods of the same Deployment can
listen on the same port, as pods with their own IPs can, and still reach the API server through
``KUBERNETES_SERVICE_HOST/PORT`` (https://kubernetes.io/docs/concepts/services-networking/#the-kubernetes-network-model)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.kubesim import Simulator

from .helpers import Raw, eventually

pytestmark = pytest.mark.kubesim
SCRIPT = """
import http.server, os, threading
from kubernetes import client, config
server = http.server.HTTPServer(("127.0.0.1", 18080), http.server.BaseHTTPRequestHandler)
threading.Thread(target=server.serve_forever, daemon=True).start()
config.load_incluster_config()
try:
    client.CoreV1Api().list_namespaced_pod("default")
except client.ApiException as e:
    print("api", e.status, flush=True)
threading.Event().wait()
"""


@pytest.fixture
def isolated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    sim = Simulator(workdir=tmp_path_factory.mktemp("isolated"), pod_network="isolated").start()
    yield sim
    sim.stop()


def test_replicas_share_a_port_and_reach_the_api(isolated: Simulator) -> None:
    raw = Raw(isolated)
    deploy = {
        "metadata": {"name": "listener"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "l"}},
            "template": {
                "metadata": {"labels": {"app": "l"}},
                "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "containers": [{"name": "c", "image": "python:3.11", "command": ["python3", "-c", SCRIPT]}],
                },
            },
        },
    }
    raw.post("/apis/apps/v1/namespaces/default/deployments", deploy)

    def logs() -> list[bytes]:
        pods = raw.get("/api/v1/namespaces/default/pods?labelSelector=app%3Dl").body["items"]
        return [raw.get(f"/api/v1/namespaces/default/pods/{p['metadata']['name']}/log").raw for p in pods]

    assert eventually(lambda: logs() if len(logs()) == 2 and all(log == b"api 403\n" for log in logs()) else None)
    pods = json.loads(isolated.kubectl("get", "pods", "-l", "app=l", "-o", "json").stdout)["items"]
    assert [p["status"]["containerStatuses"][0]["restartCount"] for p in pods] == [0, 0]
