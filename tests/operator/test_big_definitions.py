"""Any Flow the API accepts can run: big definitions and the limits of ConfigMaps and annotations.

A Flow may be up to about 1.5 MiB as etcd stores it, a ConfigMap holds at most 1 MiB and all
annotations of an object at most 256 KiB (the simulator enforces all three, as an API server does).
The run's snapshot is compressed, and kopf's memory of what it handled keeps long spec fields as
digests, so a 1.2 MB Flow validates and runs; a definition that cannot fit even compressed is
refused with a message that says so.
"""

from __future__ import annotations

import base64
import json
import os
from typing import Any

from tests.operator.cluster import Cluster, flow, flowrun

CHUNK = 30_000  # bytes of comment per node: far below the per-field limit of inline code


def _chain(count: int, filler: Any) -> dict[str, Any]:
    """``count`` nodes run one after the other, each a Python expression with a long comment."""
    nodes: dict[str, Any] = {}
    for index in range(count):
        node: dict[str, Any] = {"run": {"python": f"{index}  # {filler(index)}"}, "output": "last"}
        if index + 1 < count:
            node["next"] = {"default": f"n{index + 1}"}
        nodes[f"n{index}"] = node
    return {"start": "n0", "nodes": nodes}


def _create(cluster: Cluster, namespace: str, document: dict[str, Any]) -> None:
    # `kubectl create`, not client-side `apply`: apply keeps the whole object in an annotation,
    # which the API server refuses past 256 KiB (users of big objects use --server-side or create).
    cluster.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(document))


def test_a_flow_bigger_than_a_configmap_runs(cluster: Cluster, namespace: str) -> None:
    spec = _chain(40, lambda index: "x" * CHUNK)
    size = len(json.dumps(spec))
    assert 1024 * 1024 < size < 1536 * 1024
    # As GitOps tools apply big objects: server-side (client-side apply would need the annotation).
    cluster.kubectl("apply", "--server-side", "-n", namespace, "-f", "-", input=json.dumps(flow("big", spec)))
    _create(cluster, namespace, flowrun("big-1", "big", outputs=["last"]))
    status = cluster.wait_phase("big-1", namespace, "Succeeded", "Failed", timeout=90)
    assert status["phase"] == "Succeeded", status
    assert status["output"] == {"last": 39}
    ready = cluster.get("flow", "big", namespace)["status"]["conditions"][0]  # type: ignore[index]
    assert (ready["type"], ready["status"]) == ("Ready", "True"), ready


def test_a_definition_that_cannot_fit_even_compressed_is_refused(cluster: Cluster, namespace: str) -> None:
    def noise(index: int) -> str:
        return base64.b64encode(os.urandom(CHUNK * 3 // 4)).decode()

    for part in ("a", "b"):
        _create(cluster, namespace, flow(f"noise-{part}", _chain(27, noise)))
    main = {"start": "a", "nodes": {"a": {"type": "flow", "flow": "noise-a", "next": {"default": "b"}}}}
    main["nodes"]["b"] = {"type": "flow", "flow": "noise-b"}
    _create(cluster, namespace, flow("noisy", main))
    _create(cluster, namespace, flowrun("noisy-1", "noisy"))
    status = cluster.wait_phase("noisy-1", namespace, "Failed", "Succeeded", timeout=90)
    assert status["conditions"][0]["reason"] == "InvalidFlow", status
    assert "KiB even compressed, over the 1024 KiB a run's snapshot ConfigMap may hold" in status["message"]

    def refused() -> dict[str, Any] | None:
        conditions = ((cluster.get("flow", "noisy", namespace) or {}).get("status") or {}).get("conditions") or []
        return conditions[0] if conditions and conditions[0]["status"] == "False" else None

    assert "even compressed" in cluster.wait_for("the Flow to be refused", refused)["message"]


def test_a_definition_that_cannot_fit_is_refused_at_the_door() -> None:
    """The webhook computes the compressed snapshot as the operator would: a 1.5 MB Flow of random
    base64 (which gzip cannot shrink under 1 MiB) is refused at admission, as a Flow and inline."""
    from flowlib_operator.admission import flow_problems, flowrun_problems

    def noise(index: int) -> str:
        return base64.b64encode(os.urandom(CHUNK * 3 // 4)).decode()

    spec = _chain(50, noise)
    assert len(json.dumps(spec)) > 1400 * 1024
    expected = "KiB even compressed, over the 1024 KiB a run's snapshot ConfigMap may hold"
    problems = flow_problems(flow("noise", spec))
    assert len(problems) == 1 and expected in problems[0], problems
    inline = flowrun_problems(flowrun("noise-1", flow=spec))
    assert len(inline) == 1 and expected in inline[0], inline
    assert flow_problems(flow("small", _chain(3, noise))) == []
