"""Throughput figures: ``python -m tests.kubesim.bench [N]``.

Creates N ConfigMaps through the ``kubernetes`` Python client (one request at a time, as a
controller would) while a raw watch stream receives them, then reports creates/s, watch events/s
and the time of a full list. Figures only: nothing here asserts on time.
"""

from __future__ import annotations

import http.client
import json
import ssl
import sys
import threading
import time
from dataclasses import dataclass

from kubernetes import client

from .simulator import Simulator


@dataclass
class Figures:
    objects: int
    creates_per_s: float
    watch_events_per_s: float
    watch_events: int
    list_seconds: float

    def __str__(self) -> str:
        return (
            f"{self.objects} objects: {self.creates_per_s:.0f} creates/s (sequential, Python client), "
            f"{self.watch_events_per_s:.0f} watch events/s ({self.watch_events} received), "
            f"list of all in {self.list_seconds * 1000:.0f} ms"
        )


def _watch(sim: Simulator, rv: str, want: int, out: list[float]) -> None:
    ctx = ssl.create_default_context(cafile=str(sim.ca_file))
    conn = http.client.HTTPSConnection("127.0.0.1", sim.port, context=ctx, timeout=120)
    conn.request(
        "GET",
        f"/api/v1/namespaces/bench/configmaps?watch=1&resourceVersion={rv}",
        headers={"Authorization": f"Bearer {sim.admin_token}"},
    )
    resp = conn.getresponse()
    count = 0
    while count < want:
        line = resp.readline()
        if not line:
            break
        if json.loads(line)["type"] == "ADDED":
            count += 1
            out.append(time.monotonic())
    conn.close()


def replay_rate(sim: Simulator, rv: str, want: int) -> float:
    """Events/s when a watch replays ``want`` events from history (no producer in the way)."""
    stamps: list[float] = []
    started = time.monotonic()
    _watch(sim, rv, want, stamps)
    return len(stamps) / (time.monotonic() - started)


def run(n: int = 1000) -> Figures:
    with Simulator() as sim:
        api = client.CoreV1Api(sim.api_client())
        api.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="bench")))
        meta = api.list_namespaced_config_map("bench").metadata
        rv = str(meta.resource_version if meta is not None else "")
        stamps: list[float] = []
        watcher = threading.Thread(target=_watch, args=(sim, rv, n, stamps))
        watcher.start()
        time.sleep(0.2)
        started = time.monotonic()
        for i in range(n):
            api.create_namespaced_config_map(
                "bench",
                client.V1ConfigMap(
                    metadata=client.V1ObjectMeta(name=f"cm-{i}", labels={"bench": "1"}), data={"i": str(i)}
                ),
            )
        created = time.monotonic() - started
        watcher.join(timeout=120)
        t0 = time.monotonic()
        listed = api.list_namespaced_config_map("bench", label_selector="bench")
        list_seconds = time.monotonic() - t0
        if len(listed.items) != n:
            raise RuntimeError(f"listed {len(listed.items)} objects, created {n}")
        return Figures(n, n / created, replay_rate(sim, rv, n), len(stamps), list_seconds)


if __name__ == "__main__":
    print(run(int(sys.argv[1]) if len(sys.argv) > 1 else 1000))
