"""Durable runs on the simulator: a runner pod SIGKILLed mid-node or mid-batch is resumed by the
Job's next pod from the run's checkpoint, and a retry (``spec.retryOf``) reruns only what failed.

The flows' nodes report their side effects to an HTTP server of the test's (the simulator's pods
share the host network; their filesystem is their own), so "ran once" is a count, and wait for the
test's flags there. The default store (configmap) is used, read back here through its ConfigMaps.
"""

from __future__ import annotations

import base64
import json
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from flowlib_runner.execution.checkpoints.codec import unpack
from flowlib_runner.store.chunks import encode_key

from tests.flowctl.test_cluster import flowctl
from tests.localhttp import serve
from tests.operator.cluster import Cluster, flow, flowrun

META_KEY = encode_key("checkpoint/meta")
WAIT = 90.0

REPORT = """\
import json, time, urllib.request
def said(what):
    urllib.request.urlopen(params['base'] + '/said/' + str(what), data=b'', timeout=30).read()
def flag(name):
    return urllib.request.urlopen(params['base'] + '/flag/' + name, timeout=30).read() == b'1'
"""

MID_NODE = {
    "nodes": {
        "step1": {
            "run": {"python": REPORT + "def exec(prep_res):\n    said('step1')\n    return 'done1'\n"},
            "output": "one",
            "next": {"default": "step2"},
        },
        "step2": {
            "run": {
                "python": REPORT
                + "def exec(prep_res):\n    said('step2')\n    while not flag('go'):\n        time.sleep(0.05)\n"
                "    return 'done2'\n"
            },
            "output": "two",
        },
    }
}

POOL = {
    "nodes": {
        "make": {"run": {"python": "list(range(params['n']))"}, "output": "items", "next": {"default": "work"}},
        "work": {
            "type": "worker_pool",
            "batch": {"items": "items", "maxParallel": 8, "onItemError": "continue", "maxFailures": 0},
            "run": {
                "python": REPORT + "def exec(item):\n    said(item)\n    time.sleep(params.get('slow', 0))\n"
                "    if item in params.get('bad', []) and not flag('fixed'):\n"
                "        raise ValueError(f'bad item {item}')\n    return item * 2\n"
            },
            "output": "doubled",
            "next": {"default": "total"},
        },
        "total": {"run": {"python": "sum(x for x in shared['doubled'] if x is not None)"}, "output": "total"},
    }
}


@dataclass
class Witness:
    """What the flows' nodes said (in arrival order) and the flags the test set for them."""

    base: str = ""
    said: list[str] = field(default_factory=list)
    flags: set[str] = field(default_factory=set)


@pytest.fixture
def witness() -> Iterator[Witness]:
    seen = Witness()

    async def said(request: web.Request) -> web.Response:
        seen.said.append(request.match_info["what"])
        return web.Response(text="ok")

    async def flag(request: web.Request) -> web.Response:
        return web.Response(text="1" if request.match_info["name"] in seen.flags else "0")

    app = web.Application()
    app.router.add_post("/said/{what}", said)
    app.router.add_get("/flag/{name}", flag)
    with serve(app) as base:
        seen.base = base
        yield seen


def checkpointed_at(cluster: Cluster, namespace: str, run: str) -> str | None:
    """The node the run's latest checkpoint in its configmap store resumes at (None: none yet)."""
    for index in range(8):
        chunk = cluster.get("configmap", f"{run}-store-{index}", namespace)
        value = ((chunk or {}).get("binaryData") or {}).get(META_KEY)
        if value is not None:
            meta = unpack(base64.b64decode(value))
            if not meta.get("position"):
                return None
            path, node, _ = meta["position"][-1]
            return "/".join((*path, node or ""))
    return None


def runner_pod(cluster: Cluster, namespace: str, run: str) -> str:
    def running() -> str | None:
        for pod in cluster.list("pod", namespace, f"flowlib.dev/flowrun={run}"):
            if (pod.get("status") or {}).get("phase") == "Running":
                name: str = pod["metadata"]["name"]
                return name
        return None

    found: str = cluster.wait_for(f"a running runner pod of {run}", running, timeout=WAIT)
    return found


def kill(cluster: Cluster, namespace: str, pod: str) -> None:
    assert cluster.sim is not None
    assert cluster.sim.kill_pod_process(namespace, pod, sig=signal.SIGKILL), f"pod {pod} had no process to kill"


def test_a_pod_killed_mid_node_resumes_at_that_node(simulator_only: Cluster, namespace: str, witness: Witness) -> None:
    cluster = simulator_only
    params = {"base": witness.base}
    cluster.apply(
        namespace,
        flow("mid-node", MID_NODE),
        flowrun("mid", "mid-node", params=params, retries=1, outputs=["one", "two"]),
    )
    pod = runner_pod(cluster, namespace, "mid")
    cluster.wait_for("step2 to start", lambda: "step2" in witness.said, timeout=WAIT)
    cluster.wait_for("the checkpoint before step2", lambda: checkpointed_at(cluster, namespace, "mid") == "step2")
    kill(cluster, namespace, pod)
    witness.flags.add("go")
    status = cluster.wait_phase("mid", namespace, "Succeeded", "Failed", timeout=WAIT)
    assert status["phase"] == "Succeeded", status
    assert witness.said == ["step1", "step2", "step2"], (
        status,
        cluster.kubectl("logs", "-n", namespace, "job/mid-run"),
    )  # step1's side effect happened once
    assert status["output"] == {"one": "done1", "two": "done2"}
    assert status["attempt"] == 2
    assert "step2" in status["resumedFrom"]
    assert status["nodes"]["step1"]["phase"] == "Succeeded"
    assert status["nodes"]["step2"]["phase"] == "Succeeded"
    second = [p["metadata"]["name"] for p in cluster.list("pod", namespace, "flowlib.dev/flowrun=mid")]
    second.remove(pod)
    log = cluster.kubectl("logs", "-n", namespace, second[0])
    assert "resumed at step2" in log, log


def test_a_pod_killed_mid_batch_redoes_at_most_five_percent(
    simulator_only: Cluster, namespace: str, witness: Witness
) -> None:
    """The acceptance figure in a cluster: 10,000 items, killed after about 9,000."""
    cluster = simulator_only
    params = {"n": 10000, "base": witness.base, "slow": 0.004}
    run = flowrun("pool", "pool", params=params, retries=1, outputs=["total"], store={"checkpointItems": 100})
    cluster.apply(namespace, flow("pool", POOL), run)
    pod = runner_pod(cluster, namespace, "pool")
    deadline = time.monotonic() + WAIT
    while len(witness.said) < 9000:
        assert time.monotonic() < deadline, f"only {len(witness.said)} items ran in {WAIT}s"
        time.sleep(0.002)
    kill(cluster, namespace, pod)
    before = len(witness.said)
    status = cluster.wait_phase("pool", namespace, "Succeeded", "Failed", timeout=WAIT)
    assert status["phase"] == "Succeeded", status
    assert status["output"] == {"total": sum(i * 2 for i in range(10000))}
    after = [int(what) for what in witness.said]
    again = len(after) - 10000
    print(f"killed after {before} items; {again} ran twice; {status['itemsReused']} reused")
    assert sorted(set(after)) == list(range(10000))  # every item ran
    assert 0 <= again <= 500, f"{again} items ran twice"
    assert status["attempt"] == 2
    assert status["itemsReused"] >= before - 500


@pytest.mark.parametrize("how", ["manifest", "flowctl"])
def test_a_retry_reruns_exactly_the_failed_items(
    simulator_only: Cluster, namespace: str, witness: Witness, how: str
) -> None:
    cluster = simulator_only
    params = {"n": 1000, "base": witness.base, "bad": [17, 500, 977]}
    source = flowrun("first", "pool", params=params, outputs=["total"])
    source["metadata"]["labels"] = {"flowlib.dev/runner-access": "true"}  # opened to retries (no webhook)
    cluster.apply(namespace, flow("pool", POOL), source)
    status = cluster.wait_phase("first", namespace, "Succeeded", "Failed", timeout=WAIT)
    assert status["phase"] == "Failed", status
    assert "3 of 1000 items failed" in status["message"]
    assert len(witness.said) == 1000
    witness.flags.add("fixed")
    if how == "manifest":
        # A plain manifest naming the source alone: the definition, params and outputs are the source's.
        cluster.apply(namespace, {**flowrun("again"), "spec": {"retryOf": "first"}})
    else:
        done = flowctl(cluster, "-n", namespace, "retry", "first", "--name", "again")
        assert done.returncode == 0 and done.stdout.strip() == "again", done.stderr
    status = cluster.wait_phase("again", namespace, "Succeeded", "Failed", timeout=WAIT)
    assert status["phase"] == "Succeeded", json.dumps(status, indent=1)
    assert status["output"] == {"total": sum(i * 2 for i in range(1000))}
    assert sorted(int(what) for what in witness.said[1000:]) == [17, 500, 977]
    assert status["itemsReused"] == 997
    assert "work" in status["resumedFrom"]
