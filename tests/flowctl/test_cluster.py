"""`flowctl`'s cluster commands, run as the real console scripts against the operator on the cluster.

Each command runs as a subprocess with ``KUBECONFIG`` set, as a user would run it, so option parsing,
exit codes and what goes to stdout versus stderr are what is tested. Live-ness is checked by order,
not by clocks: a line of an early node must be read while the FlowRun is still going.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from flowlib_runner.flowctl.clusterapi import ClusterApi, _Call
from flowlib_runner.flowctl.render import human_age, node_tree
from flowlib_runner.kube.client import ApiError

from flowlib_api.meta import FLOWRUNS, PODS
from tests.operator.cluster import Cluster, flow, flowrun

BIN = Path(sys.executable).parent
SLEEP_2S = "import asyncio\nasync def exec(p):\n    await asyncio.sleep(2)"


def slow_flow(name: str, sleep: str = SLEEP_2S) -> dict[str, Any]:
    """early -> slow (sleeps) -> late: an early node's line exists long before the run ends."""
    return flow(
        name,
        {
            "nodes": {
                "early": {"run": {"python": "'first'"}, "next": {"default": "slow"}},
                "slow": {"run": {"python": sleep}, "next": {"default": "late"}},
                "late": {"run": {"python": "'last'"}},
            }
        },
    )


def env_for(cluster: Cluster) -> dict[str, str]:
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig), "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    env.pop("KUBERNETES_SERVICE_HOST", None)
    return env


def flowctl(
    cluster: Cluster, *args: str, timeout: float = 60, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "flowctl"), *args],
        env=env or env_for(cluster),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass
class Live:
    """A running `flowctl` whose stdout and stderr lines are read as they come."""

    process: subprocess.Popen[str]
    out: list[str] = field(default_factory=list)
    err: list[str] = field(default_factory=list)
    _new: queue.Queue[None] = field(default_factory=queue.Queue)

    @classmethod
    def start(cls, cluster: Cluster, *args: str) -> Live:
        process = subprocess.Popen(
            [str(BIN / "flowctl"), *args],
            env=env_for(cluster),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        live = cls(process)
        for stream, sink in ((process.stdout, live.out), (process.stderr, live.err)):
            threading.Thread(target=live._pump, args=(stream, sink), daemon=True).start()
        return live

    def _pump(self, stream: Any, sink: list[str]) -> None:
        for line in stream:
            sink.append(line.rstrip("\n"))
            self._new.put(None)

    def wait_line(self, what: str, match: Callable[[str], bool], timeout: float = 45) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = next((line for line in self.out if match(line)), None)
            if found is not None:
                return found
            if self.process.poll() is not None and self._new.empty():
                break
            try:
                self._new.get(timeout=0.2)
            except queue.Empty:
                pass
        self.kill()
        raise AssertionError(f"no stdout line with {what}\nstdout: {self.out}\nstderr: {self.err}")

    def finish(self, timeout: float = 60) -> int:
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"flowctl did not exit\nstdout: {self.out}\nstderr: {self.err}") from None
        time.sleep(0.1)  # let the reader threads take the last lines
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def node_line(node: str) -> Callable[[str], bool]:
    return lambda line: f"[{node}#" in line or f"[{node}]" in line


def test_submit_by_name_follows_the_run_live_and_exits_with_its_result(cluster: Cluster, namespace: str) -> None:
    cluster.apply(namespace, slow_flow("slow"))
    live = Live.start(cluster, "submit", "slow", "-n", namespace, "-p", "who=Ada", "--output", "late", "--follow")
    live.wait_line("the early node", node_line("early"))
    created = next(line for line in live.err if "created" in line)
    run = created.split("flowrun ", 1)[1].split()[0]
    assert run.startswith("slow-")
    # Read while the run is still going: the slow node sleeps 2 s after `early` has logged.
    assert cluster.run_status(run, namespace).get("phase") not in ("Succeeded", "Failed", "Cancelled")
    assert live.finish() == 0, live.err
    assert any(node_line("late")(line) for line in live.out), live.out
    assert any("Succeeded" in line for line in live.err), live.err
    body = cluster.get("flowrun", run, namespace)
    assert body is not None
    assert body["spec"]["flowRef"] == {"name": "slow"}
    assert body["spec"]["params"] == {"who": "Ada"}
    assert body["status"]["output"] == {"late": "last"}


def test_submit_from_a_file_embeds_the_flow_and_prints_the_name(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    manifest = flow(
        "greeter",
        {"params": {"name": "world"}, "nodes": {"greet": {"run": {"python": "'Hello, ' + params['name']"}}}},
    )
    path = tmp_path / "greeter.yaml"
    path.write_text(yaml.safe_dump(manifest))
    done = flowctl(
        cluster,
        *("submit", str(path), "-n", namespace, "-p", "name=Ada", "--output", "greet", "--name", "greet-1"),
        *("--input", '{"seed": 1}', "--timeout", "10m", "--retries", "2"),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "greet-1"
    status = cluster.wait_phase("greet-1", namespace, "Succeeded", "Failed")
    assert status["phase"] == "Succeeded", status
    assert status["output"] == {"greet": "Hello, Ada"}
    body = cluster.get("flowrun", "greet-1", namespace)
    assert body is not None and "flowRef" not in body["spec"]
    assert body["spec"]["flow"]["nodes"]["greet"]["run"] == {"python": "'Hello, ' + params['name']"}
    assert (body["spec"]["input"], body["spec"]["timeout"], body["spec"]["retries"]) == ({"seed": 1}, "10m", 2)
    assert cluster.get("flow", "greeter", namespace) is None  # nothing but the FlowRun was created
    again = flowctl(cluster, "submit", str(path), "-n", namespace, "--name", "greet-1")
    assert again.returncode == 3
    assert "already exists" in again.stderr


def test_submit_refuses_an_invalid_file_and_a_missing_flow(cluster: Cluster, namespace: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(flow("bad", {"nodes": {"a": {"next": {"default": "nowhere"}}}})))
    done = flowctl(cluster, "submit", str(path), "-n", namespace)
    assert done.returncode == 2
    assert "nowhere" in done.stderr and "nothing submitted" in done.stderr
    missing = flowctl(cluster, "submit", "no-such-flow", "-n", namespace)
    assert missing.returncode == 3
    assert 'no Flow named "no-such-flow"' in missing.stderr
    assert cluster.list("flowruns", namespace) == []


def test_logs_follow_exits_with_the_failure_of_a_run_started_elsewhere(cluster: Cluster, namespace: str) -> None:
    cluster.apply(
        namespace,
        flow(
            "fails",
            {
                "nodes": {
                    "ok": {"run": {"python": "1"}, "next": {"default": "boom"}},
                    "boom": {"run": {"python": "def exec(p):\n    raise ValueError('kaput')"}},
                }
            },
        ),
        flowrun("fails-1", "fails"),
    )
    done = flowctl(cluster, "logs", "-f", "fails-1", "-n", namespace)
    assert done.returncode == 1, done.stderr
    assert any(node_line("ok")(line) for line in done.stdout.splitlines()), done.stdout
    assert "kaput" in done.stdout
    assert "fails-1 Failed" in done.stderr
    # Without -f: the same log, printed once, exit 0.
    again = flowctl(cluster, "logs", "fails-1", "-n", namespace)
    assert again.returncode == 0
    assert "kaput" in again.stdout


def test_logs_follow_reports_a_run_that_ended_before_any_pod(cluster: Cluster, namespace: str) -> None:
    run = flowrun("invalid-1", flow={"nodes": {"a": {"next": {"default": "nowhere"}}}})
    cluster.apply(namespace, run)
    done = flowctl(cluster, "logs", "-f", "invalid-1", "-n", namespace)
    assert done.returncode == 1
    assert done.stdout == ""
    assert "before any runner pod" in done.stderr and "nowhere" in done.stderr


def test_logs_follow_shows_why_the_pod_is_pending(simulator_only: Cluster, namespace: str) -> None:
    cluster = simulator_only
    cluster.apply(namespace, slow_flow("stuck"), flowrun("stuck-1", "stuck", image="registry.invalid/none:1"))
    done = flowctl(cluster, "logs", "-f", "stuck-1", "-n", namespace)
    assert done.returncode == 1, done.stderr
    assert "waiting for runner pod stuck-1-run-" in done.stderr
    assert "ImagePull" in done.stderr or "ErrImagePull" in done.stderr, done.stderr
    assert "could not start" in done.stderr  # the operator's final message, after its start timeout


def test_logs_follow_continues_on_the_retried_pod(simulator_only: Cluster, namespace: str) -> None:
    cluster = simulator_only
    sleepy = "import asyncio\nasync def exec(p):\n    await asyncio.sleep(6)"
    cluster.apply(namespace, slow_flow("retried", sleepy), flowrun("retried-1", "retried", retries=1))
    live = Live.start(cluster, "logs", "-f", "retried-1", "-n", namespace)
    # Kill while the slow node runs, judged by the cluster, not by how fast flowctl's output arrives.
    cluster.wait_for(
        "the slow node to run", lambda: cluster.run_status("retried-1", namespace).get("currentNode") == "slow"
    )
    first = cluster.run_status("retried-1", namespace)["podName"]
    assert cluster.sim.kill_pod_process(namespace, first)
    code = live.finish()
    assert code == 0, live.err
    status = cluster.run_status("retried-1", namespace)
    assert status["phase"] == "Succeeded"
    assert status["podName"] != first
    assert any(f"attempt 2: pod {status['podName']}" in line for line in live.err), live.err
    starts = [line for line in live.out if node_line("early")(line)]
    assert len(starts) >= 2, live.out  # the early node ran in both pods, and both were followed
    assert any(node_line("late")(line) for line in live.out)
    once = flowctl(cluster, "logs", "retried-1", "-n", namespace)  # without -f: every attempt, announced
    assert once.returncode == 0
    assert f"attempt 1: pod {first}" in once.stderr and f"attempt 2: pod {status['podName']}" in once.stderr
    assert once.stdout.splitlines() == live.out


def test_status_prints_the_node_tree_and_json(cluster: Cluster, namespace: str) -> None:
    cluster.apply(
        namespace,
        flow("child", {"nodes": {"double": {"run": {"python": "shared['x'] * 2"}, "output": "x"}}}),
        flow(
            "parent",
            {
                "nodes": {
                    "seed": {"run": {"python": "[1, 2, 3]"}, "output": "items", "next": {"default": "pool"}},
                    "pool": {
                        "type": "worker_pool",
                        "batch": {"items": "items", "maxParallel": 2},
                        "run": {"python": "item"},
                        "next": {"default": "start"},
                    },
                    "start": {"run": {"python": "21"}, "output": "x", "next": {"default": "sub"}},
                    "sub": {"type": "flow", "flow": "child"},
                }
            },
        ),
        flowrun("tree-1", "parent", outputs=["x"]),
    )
    cluster.wait_phase("tree-1", namespace, "Succeeded", "Failed")
    done = flowctl(cluster, "status", "tree-1", "-n", namespace)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "Phase:      Succeeded" in lines
    assert any(line.startswith("Progress:") and "nodes" in line for line in lines)
    assert 'Output:     {"x": 42}' in lines
    header = next(i for i, line in enumerate(lines) if line.startswith("NODE"))
    rows = {line.split()[0]: line for line in lines[header + 1 :] if line.strip()}
    names = [line[: lines[header].index("PHASE")].rstrip() for line in lines[header + 1 :]]
    assert names.index("sub") + 1 == names.index("  double")  # the sub-flow's node, nested under it
    assert "3/3" in rows["pool"]  # item counts
    assert rows["double"].split()[1:4] == ["Succeeded", "1", "1"]  # phase, visits, attempts
    as_json = flowctl(cluster, "status", "tree-1", "-n", namespace, "--json")
    assert json.loads(as_json.stdout) == cluster.run_status("tree-1", namespace)
    # Global options before the subcommand, as kubectl users type them; the same answer.
    before = flowctl(cluster, "-n", namespace, "status", "tree-1", "--json")
    assert before.returncode == 0, before.stderr
    assert json.loads(before.stdout) == json.loads(as_json.stdout)
    # A namespace after the subcommand wins over one before it.
    wrong = flowctl(cluster, "-n", "no-such-namespace", "status", "tree-1")
    assert wrong.returncode == 3, wrong.stderr  # the global -n is really used
    both = flowctl(cluster, "-n", "no-such-namespace", "status", "tree-1", "-n", namespace, "--json")
    assert both.returncode == 0, both.stderr
    kubeconfig_first = flowctl(
        cluster, "--kubeconfig", str(cluster.kubeconfig), "--namespace", namespace, "status", "tree-1", "--json"
    )
    assert kubeconfig_first.returncode == 0, kubeconfig_first.stderr


def test_cancel_waits_for_the_cancelled_phase(cluster: Cluster, namespace: str) -> None:
    sleep_long = "import asyncio\nasync def exec(p):\n    await asyncio.sleep(60)"
    cluster.apply(namespace, slow_flow("long", sleep_long), flowrun("long-1", "long"))
    cluster.wait_for(
        "the slow node running", lambda: cluster.run_status("long-1", namespace).get("currentNode") == "slow"
    )
    done = flowctl(cluster, "cancel", "long-1", "-n", namespace, "--wait")
    assert done.returncode == 130, done.stderr
    assert "cancel requested" in done.stdout
    assert cluster.run_status("long-1", namespace)["phase"] == "Cancelled"
    again = flowctl(cluster, "cancel", "long-1", "-n", namespace)
    assert again.returncode == 0
    assert "already finished (Cancelled)" in again.stderr


def test_list_and_the_kubectl_plugin_form(cluster: Cluster, namespace: str) -> None:
    quick = flow("quick", {"nodes": {"only": {"run": {"python": "1"}}}})
    cluster.apply(namespace, quick, flowrun("quick-1", "quick"), flowrun("quick-2", "quick"))
    cluster.wait_phase("quick-1", namespace, "Succeeded", "Failed")
    cluster.wait_phase("quick-2", namespace, "Succeeded", "Failed")
    done = flowctl(cluster, "list", "-n", namespace)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["NAME", "FLOW", "PHASE", "PROGRESS", "NODE", "AGE"]
    assert [line.split()[:4] for line in lines[1:]] == [
        ["quick-1", "quick", "Succeeded", "1/1"],
        ["quick-2", "quick", "Succeeded", "1/1"],
    ]
    every = flowctl(cluster, "list", "-A")
    assert every.stdout.splitlines()[0].split()[0] == "NAMESPACE"
    assert any(line.split()[:2] == [namespace, "quick-1"] for line in every.stdout.splitlines())
    # kubectl runs kubectl-flow from PATH with the arguments after `flow` (kubectl refuses its own
    # flags before a plugin's name, so --kubeconfig comes after it).
    plugin = subprocess.run(
        ["kubectl", "flow", "list", f"--kubeconfig={cluster.kubeconfig}", "-n", namespace],
        env={**env_for(cluster), "KUBECONFIG": ""},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert plugin.returncode == 0, plugin.stderr
    assert [line.split()[:-1] for line in plugin.stdout.splitlines()] == [line.split()[:-1] for line in lines]
    missing = subprocess.run(
        ["kubectl", "flow", "status", "nope", "-n", namespace],
        env=env_for(cluster),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert missing.returncode == 3
    assert f'no FlowRun named "nope" in namespace "{namespace}"' in missing.stderr
    assert f"kubectl flow list -n {namespace}" in missing.stderr


def test_forbidden_says_which_permission_is_missing(simulator_only: Cluster, namespace: str, tmp_path: Path) -> None:
    sim = simulator_only.sim
    sim.ensure_service_account(namespace, "nobody")
    kubeconfig = sim.kubeconfig_for(namespace, "nobody", tmp_path / "nobody.kubeconfig")
    done = flowctl(simulator_only, "list", "--kubeconfig", str(kubeconfig))
    assert done.returncode == 3
    assert f'forbidden: you may not list flowruns.flowlib.dev in namespace "{namespace}"' in done.stderr
    assert 'verb "list" on resource "flowruns" in API group "flowlib.dev"' in done.stderr


# -- the pieces without a cluster ---------------------------------------------------------------


def test_node_tree_nests_sub_flow_nodes_even_when_the_parent_row_is_missing() -> None:
    nodes: dict[str, dict[str, Any]] = {
        "a": {"phase": "Succeeded", "visits": 2, "attempts": 1, "durationSeconds": 0.5},
        "outer/inner/leaf": {"phase": "Running", "visits": 1, "attempts": 3},
        "pool": {"phase": "Failed", "items": {"total": 4, "done": 4, "failed": 1}},
        "outer/x": {"phase": "Succeeded"},
    }
    rows = node_tree(nodes, current="outer/inner/leaf")
    names = [row[: rows[0].index("PHASE")].rstrip() for row in rows[1:]]
    assert names == ["a", "outer", "  inner", "    leaf *", "  x", "pool"]
    assert "4/4 (1 failed)" in rows[-1]
    assert rows[1].split() == ["a", "Succeeded", "2", "1", "0.50s"]


def test_human_age_reads_like_kubectl() -> None:
    assert [human_age(s) for s in (5, 119, 130, 600, 3 * 3600 + 60, 50 * 3600, 9 * 86400)] == [
        "5s",
        "119s",
        "2m10s",
        "10m",
        "3h1m",
        "2d2h",
        "9d",
    ]


def test_errors_name_the_missing_permission_and_the_missing_crd() -> None:
    api = ClusterApi(client=None, namespace="team", prog="kubectl flow")  # type: ignore[arg-type]
    refused = api._explain(_Call("get", PODS, "log"), ApiError(403, "Forbidden", "no"), "team", "p")
    assert 'verb "get" on resource "pods/log" in the core API group' in refused.message
    gone = api._explain(_Call("get", FLOWRUNS), ApiError(404, "NotFound", "x", {"details": {"name": "r"}}), "team", "r")
    assert gone.message.endswith("kubectl flow list -n team (or kubectl flow list -A for every namespace)")
    no_crd = ApiError(404, "NotFound", "the server could not find the requested resource", {"details": {}})
    assert "CRDs are not installed" in api._explain(_Call("get", FLOWRUNS), no_crd, "team", "r").message
