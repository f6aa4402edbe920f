"""A tiny raw HTTPS client, for asserting exact status codes, headers and bodies."""

from __future__ import annotations

import http.client
import json
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.kubesim import Simulator


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    raw: bytes

    @property
    def body(self) -> Any:
        return json.loads(self.raw) if self.raw else None


class Raw:
    def __init__(self, sim: Simulator, token: str | None = None) -> None:
        self.sim = sim
        self.token = sim.admin_token if token is None else token
        self.ctx = ssl.create_default_context(cafile=str(sim.ca_file))

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
        timeout: float = 10,
    ) -> Reply:
        conn = http.client.HTTPSConnection("127.0.0.1", self.sim.port, context=self.ctx, timeout=timeout)
        data = body if isinstance(body, bytes) else (json.dumps(body).encode() if body is not None else None)
        hdrs = {"Content-Type": content_type, **(headers or {})}
        if self.token:
            hdrs["Authorization"] = f"Bearer {self.token}"
        try:
            conn.request(method, path, body=data, headers=hdrs)
            resp = conn.getresponse()
            return Reply(resp.status, resp.headers, resp.read())
        finally:
            conn.close()

    def get(self, path: str, **kw: Any) -> Reply:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: Any, **kw: Any) -> Reply:
        return self.request("POST", path, body, **kw)

    def put(self, path: str, body: Any, **kw: Any) -> Reply:
        return self.request("PUT", path, body, **kw)

    def patch(self, path: str, body: Any, content_type: str = "application/merge-patch+json", **kw: Any) -> Reply:
        return self.request("PATCH", path, body, content_type=content_type, **kw)

    def delete(self, path: str, body: Any = None, **kw: Any) -> Reply:
        return self.request("DELETE", path, body, **kw)

    def watch_lines(self, path: str, max_events: int, timeout: float = 10) -> list[dict[str, Any]]:
        """Open a watch and read up to ``max_events`` events (or until the server ends the stream)."""
        conn = http.client.HTTPSConnection("127.0.0.1", self.sim.port, context=self.ctx, timeout=timeout)
        try:
            conn.request("GET", path, headers={"Authorization": f"Bearer {self.token}"})
            resp = conn.getresponse()
            events = []
            while len(events) < max_events:
                line = resp.readline()
                if not line:
                    break
                events.append(json.loads(line))
            return events
        finally:
            conn.close()


CRD_PATH = str(Path(__file__).with_name("manifests") / "widgets-crd.yaml")


def install_widgets(sim: Simulator) -> None:
    """Apply the Widget CRD with kubectl and wait until it is Established."""
    sim.kubectl("apply", "-f", CRD_PATH)
    sim.kubectl("wait", "--for=condition=Established", "crd/widgets.test.kubesim.dev", "--timeout=10s")


def widget(name: str, namespace: str = "default", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "test.kubesim.dev/v1alpha1",
        "kind": "Widget",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"image": "busybox", "flowRef": "f", **spec},
    }


def eventually(check: Callable[[], Any], timeout: float = 30) -> Any:
    """Poll ``check`` until it returns something truthy (the simulator's controllers are asynchronous)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)
