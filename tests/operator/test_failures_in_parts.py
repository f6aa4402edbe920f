"""Work that fails in parts, end to end on the cluster: an item error policy, a finally node,
strict endings and user code that exits, as the FlowRun's status and condition report them."""

from __future__ import annotations

from tests.localhttp import item_pages
from tests.operator.cluster import Cluster, flow, flowrun

PRICE = """
PRICES = {"apple": 0.5, "pear": 0.75}

def exec(product):
    if product not in PRICES:
        raise KeyError(f"no price for {product}")
    return PRICES[product]
"""

RELEASE = """
def prep(shared):
    return shared["run"]

def exec(run):
    return f"released after {run['phase']} ({run['failedNode']})"
"""


def test_failed_items_are_let_through_and_finally_runs(cluster: Cluster, namespace: str) -> None:
    cluster.apply(
        namespace,
        flow(
            "prices",
            {
                "start": "list",
                "finally": "release",
                "nodes": {
                    "list": {"run": {"python": "['apple', 'durian', 'pear']"}, "next": {"default": "price"}},
                    "price": {
                        "type": "worker_pool",
                        "batch": {"items": "list", "maxParallel": 2, "onItemError": "continue"},
                        "run": {"python": PRICE},
                        "output": "prices",
                        "next": {"default": "check"},
                    },
                    "check": {
                        "run": {"python": "'ok' if None not in shared['prices'] else 'partial'"},
                        "action": "{{ result }}",
                        "next": {"ok": "done"},
                    },
                    "done": {},
                    "release": {"run": {"python": RELEASE}},
                },
            },
        ),
        flowrun("prices-1", "prices", outputs=["prices", "prices_errors", "release"]),
    )
    status = cluster.wait_phase("prices-1", namespace, "Succeeded", "Failed")
    # The pool let the unknown product through, then `check` returned 'partial', which has no
    # edge and no default edge: the run fails naming it, and the finally node still ran.
    assert status["phase"] == "Failed", status
    assert "UnknownAction" in status["message"] and "'partial'" in status["message"]
    assert status["output"]["prices"] == [0.5, None, 0.75]
    assert [e["item"] for e in status["output"]["prices_errors"]] == ["durian"]
    assert status["output"]["release"] == "released after Failed (None)"
    assert status["nodes"]["price"]["items"] == {"total": 3, "done": 3, "failed": 1}
    assert status["nodes"]["release"]["phase"] == "Succeeded"
    condition = status["conditions"][0]
    assert (condition["status"], condition["reason"]) == ("False", "FlowFailed")


def test_user_code_that_exits_fails_the_run_with_its_reason(cluster: Cluster, namespace: str) -> None:
    code = "def exec(prep_res):\n    raise SystemExit('down')\n"
    cluster.apply(namespace, flowrun("exits-1", flow={"nodes": {"a": {"run": {"python": code}}}}))
    status = cluster.wait_phase("exits-1", namespace, "Succeeded", "Failed", "Cancelled")
    assert status["phase"] == "Failed" and status["reason"] == "UserCodeExit", status
    condition = status["conditions"][0]
    assert (condition["status"], condition["reason"]) == ("False", "UserCodeExit")


def test_parallel_sub_flow_items_are_isolated_on_the_cluster(cluster: Cluster, namespace: str) -> None:
    remember = "import asyncio\nasync def exec(prep_res):\n    await asyncio.sleep(0.01)\n    return params['user']\n"
    use = "def prep(shared):\n    return shared['current']\n\ndef exec(current):\n    return current + '@eu'\n"
    cluster.apply(
        namespace,
        flow(
            "tag",
            {
                "nodes": {
                    "remember": {"run": {"python": remember}, "output": "current", "next": {"default": "use"}},
                    "use": {"run": {"python": use}, "output": "tagged"},
                }
            },
        ),
        flow(
            "users",
            {
                "nodes": {
                    "each": {
                        "type": "flow",
                        "flow": "tag",
                        "batch": {"items": "users", "maxParallel": 5, "itemOutput": "tagged"},
                        "output": "tagged",
                    }
                }
            },
        ),
        flowrun("users-1", "users", input={"users": [{"user": f"u{i}"} for i in range(5)]}, outputs=["tagged"]),
    )
    status = cluster.wait_phase("users-1", namespace, "Succeeded", "Failed")
    assert status["phase"] == "Succeeded", status
    assert status["output"]["tagged"] == [f"u{i}@eu" for i in range(5)]


def test_shell_lines_reach_the_pod_log_as_they_are_printed(cluster: Cluster, namespace: str) -> None:
    cluster.apply(
        namespace,
        flowrun("chatty-1", flow={"nodes": {"build": {"run": {"shell": "echo compiling; echo warn >&2; echo done"}}}}),
    )
    status = cluster.wait_phase("chatty-1", namespace, "Succeeded", "Failed")
    assert status["phase"] == "Succeeded", status
    log = cluster.kubectl("-n", namespace, "logs", f"job/{status['jobName']}")
    lines = [line for line in log.splitlines() if "[build" in line]
    assert any("stdout: compiling" in line for line in lines), log
    assert any("WARNING" in line and "stderr: warn" in line for line in lines), log


def test_lint_traps_make_the_flow_not_ready(cluster: Cluster, namespace: str) -> None:
    cluster.apply(
        namespace,
        flow("traps", {"nodes": {"a": {"run": {"shell": "echo {{ sharde.x }} {{ params.y | no_such_filter }}"}}}}),
    )
    conditions = cluster.wait_for(
        "the Flow to be reported not Ready",
        lambda: (cluster.get("flow", "traps", namespace) or {}).get("status", {}).get("conditions"),
    )
    assert conditions[0]["status"] == "False" and conditions[0]["reason"] == "InvalidFlow"
    problems = " ".join((cluster.get("flow", "traps", namespace) or {})["status"]["problems"])
    assert "sharde" in problems and "no_such_filter" in problems


BARRIER = """
import threading
import time

meet = threading.Barrier(4, timeout=30)  # opens only when four items block at the same time

def exec(item):
    meet.wait()
    time.sleep(0.05)  # blocking, as a database driver or requests would be
    return item * 10
"""


def test_blocking_items_of_a_pool_run_at_once_on_the_cluster(cluster: Cluster, namespace: str) -> None:
    pool = {
        "type": "worker_pool",
        "batch": {"items": "xs", "maxParallel": 4},
        "run": {"python": BARRIER},
        "output": "ys",
    }
    cluster.apply(
        namespace, flowrun("blocking-1", flow={"nodes": {"pool": pool}}, input={"xs": list(range(8))}, outputs=["ys"])
    )
    status = cluster.wait_phase("blocking-1", namespace, "Succeeded", "Failed")
    assert status["phase"] == "Succeeded", status  # one at a time, the barrier would have broken
    assert status["output"]["ys"] == [i * 10 for i in range(8)]


def test_a_pool_over_601_urls_with_one_404_on_the_cluster(simulator_only: Cluster, namespace: str) -> None:
    """Simulator only: its pods share the host network, so they reach a server of the test's."""
    cluster = simulator_only
    with item_pages() as (base, seen):
        ids = [*range(1000, 1300), 404, *range(1300, 1600)]
        fetch = {
            "type": "worker_pool",
            "batch": {"items": "ids", "maxParallel": 16, "onItemError": "continue"},
            "run": {"http": {"url": f"{base}/items/{{{{ item }}}}"}},
            "output": "pages",
        }
        cluster.apply(
            namespace,
            flowrun("urls-1", flow={"nodes": {"fetch": fetch}}, input={"ids": ids}, outputs=["pages_errors"]),
        )
        status = cluster.wait_phase("urls-1", namespace, "Succeeded", "Failed", timeout=120)
        assert status["phase"] == "Succeeded", status
        assert len(seen) == 601
        assert [e["index"] for e in status["output"]["pages_errors"]] == [300]
        assert status["nodes"]["fetch"]["items"] == {"total": 601, "done": 601, "failed": 1}
