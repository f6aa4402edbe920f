"""Runs that succeed: each shape of flow the issue names, end to end through operator, Job and runner."""

from __future__ import annotations

from tests.operator.cluster import Cluster, flow, flowrun

# Module-form inline code (PocketFlow signatures): the peak of concurrent items is kept in the
# module and published by post, beside the results.
ASYNC_PEAK = """
import asyncio
state = {"now": 0, "peak": 0}

async def exec(item):
    state["now"] += 1
    state["peak"] = max(state["peak"], state["now"])
    await asyncio.sleep(0.02)
    state["now"] -= 1
    return item * 2

def post(shared, prep_res, exec_res):
    shared[node.name] = exec_res
    shared["_inflight_" + node.name] = dict(state)
"""


def test_a_linear_flow_succeeds_and_publishes_its_outputs(cluster: Cluster, namespace: str) -> None:
    cluster.apply(
        namespace,
        flow(
            "linear",
            {
                "params": {"name": "world"},
                "nodes": {
                    "greet": {"run": {"python": "'Hello, ' + params['name']"}, "next": {"default": "shout"}},
                    "shout": {"run": {"python": "shared['greet'].upper()"}, "output": "loud"},
                },
            },
        ),
        flowrun("linear-1", "linear", params={"name": "Ada"}, outputs=["greet", "loud"]),
    )
    status = cluster.wait_phase("linear-1", namespace, "Succeeded", "Failed")
    assert status["phase"] == "Succeeded", status
    assert status["output"] == {"greet": "Hello, Ada", "loud": "HELLO, ADA"}
    assert status["progress"] == "2/2"
    assert status["jobName"] == "linear-1-run"
    assert status["podName"].startswith("linear-1-run-")
    assert [c["type"] for c in status["conditions"]] == ["Succeeded"]
    assert status["conditions"][0]["status"] == "True"
    assert set(status["nodes"]) == {"greet", "shout"}
    assert all(n["phase"] == "Succeeded" for n in status["nodes"].values())
    jobs = cluster.list("jobs", namespace)
    assert [j["metadata"]["name"] for j in jobs] == ["linear-1-run"]
    # No finalizer on the run: deleting it never waits for the operator (even one that is down).
    body = cluster.get("flowrun", "linear-1", namespace)
    assert body is not None and not body["metadata"].get("finalizers")
    annotations = body["metadata"].get("annotations") or {}
    assert any(key.startswith("flowlib.dev/") for key in annotations)  # kopf's bookkeeping lives here
    assert not any(key.startswith("kopf") for key in status)  # ...never in status
    events = {e["reason"] for e in cluster.list("events", namespace) if e["involvedObject"]["kind"] == "FlowRun"}
    assert {"Created", "Started", "Succeeded"} <= events


def test_branching_loops_and_retries(cluster: Cluster, namespace: str) -> None:
    spec = {
        "nodes": {
            "count": {
                "run": {"python": "shared.get('n', 0) + 1"},
                "output": "n",
                "action": "{{ 'again' if shared.n < 5 else 'done' }}",
                "next": {"again": "count", "done": "flaky"},
            },
            "flaky": {
                "run": {
                    "python": (
                        "tries = [0]\n"
                        "def exec(prep_res):\n"
                        "    tries[0] += 1\n"
                        "    if tries[0] < 3:\n"
                        "        raise RuntimeError('not yet')\n"
                        "    return 'ok after ' + str(tries[0])\n"
                    )
                },
                "retry": {"maxRetries": 4, "wait": "10ms"},
                "action": "{{ 'big' if shared.n > 3 else 'small' }}",
                "next": {"big": "big", "small": "small"},
            },
            "big": {"run": {"python": "'big'"}, "output": "size"},
            "small": {"run": {"python": "'small'"}, "output": "size"},
        }
    }
    cluster.apply(namespace, flow("shapes", spec), flowrun("shapes-1", "shapes", outputs=["n", "flaky", "size"]))
    status = cluster.wait_phase("shapes-1", namespace, "Succeeded", "Failed")
    assert status["phase"] == "Succeeded", status
    assert status["output"] == {"n": 5, "flaky": "ok after 3", "size": "big"}
    assert status["nodes"]["count"]["visits"] == 5
    assert status["nodes"]["flaky"]["attempts"] == 3
    assert "small" not in status["nodes"]


def test_every_batch_type_respects_its_parallelism(cluster: Cluster, namespace: str) -> None:
    nodes: dict[str, object] = {"items": {"run": {"python": "list(range(12))"}, "next": {"default": "serial"}}}
    order = [("serial", "async_batch", 1), ("parallel", "parallel_batch", 4), ("pool", "worker_pool", 3)]
    for index, (name, kind, limit) in enumerate(order):
        nodes[name] = {
            "type": kind,
            "batch": {"items": "items", "maxParallel": limit},
            "run": {"python": ASYNC_PEAK},
        }
        if index + 1 < len(order):
            nodes[name]["next"] = {"default": order[index + 1][0]}  # type: ignore[index]
    cluster.apply(
        namespace,
        flow("batches", {"nodes": nodes}),
        flowrun(
            "batches-1",
            "batches",
            outputs=["serial", "parallel", "pool", "_inflight_serial", "_inflight_parallel", "_inflight_pool"],
        ),
    )
    status = cluster.wait_phase("batches-1", namespace, "Succeeded", "Failed")
    assert status["phase"] == "Succeeded", status
    out = status["output"]
    for name, _kind, limit in order:
        assert out[name] == [i * 2 for i in range(12)]
        assert 1 <= out[f"_inflight_{name}"]["peak"] <= limit, (name, out[f"_inflight_{name}"])
    assert out["_inflight_pool"]["peak"] == 3
    assert status["nodes"]["pool"]["items"] == {"total": 12, "done": 12, "failed": 0}


def test_a_sub_flow_runs_inside_the_parent(cluster: Cluster, namespace: str) -> None:
    cluster.apply(
        namespace,
        flow("child", {"nodes": {"double": {"run": {"python": "shared['x'] * 2"}, "output": "x"}}}),
        flow(
            "parent",
            {
                "nodes": {
                    "seed": {"run": {"python": "21"}, "output": "x", "next": {"default": "sub"}},
                    "sub": {"type": "flow", "flow": "child"},
                }
            },
        ),
        flowrun("parent-1", "parent", outputs=["x"]),
    )
    status = cluster.wait_phase("parent-1", namespace, "Succeeded", "Failed")
    assert status["phase"] == "Succeeded", status
    assert status["output"] == {"x": 42}
    assert "sub/double" in status["nodes"]


def test_an_inline_flow_needs_no_flow_object(cluster: Cluster, namespace: str) -> None:
    run = flowrun("inline-1", flow={"nodes": {"only": {"run": {"python": "6 * 7"}, "output": "answer"}}})
    run["spec"]["outputs"] = ["answer"]
    run["spec"]["input"] = {"seed": 1}
    cluster.apply(namespace, run)
    status = cluster.wait_phase("inline-1", namespace, "Succeeded", "Failed")
    assert status["phase"] == "Succeeded", status
    assert status["output"] == {"answer": 42}
    assert status["flow"] == "inline"
