"""`-n/--namespace`, `--kubeconfig` and `--context` before the subcommand, as kubectl users type them
(`flowctl -n team-b submit ...`, `kubectl flow -n team-b status RUN`), and after it; given in both
places, the one after the subcommand wins.

Through click's ``CliRunner`` against the simulator (the session's cluster), so every cluster command
is checked cheaply: each one is asked about a FlowRun that does not exist, and its refusal names the
namespace it really asked. The kubectl plugin form runs through the real kubectl. ``--kubeconfig`` is
always given in-process: the kubernetes client reads ``$KUBECONFIG`` once, when it is imported.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result
from flowlib_runner.flowctl import main

from tests.flowctl.test_cluster import env_for
from tests.operator.cluster import Cluster, flow, flowrun

EXIT_CLUSTER = 3
HELLO = {"nodes": {"hello": {"run": {"python": "'hi'"}}}}


def flowctl(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


@pytest.fixture
def two_contexts(cluster: Cluster, namespace: str, tmp_path: Path) -> Path:
    """A kubeconfig whose current context `other` defaults to namespace default, and whose context
    `runs` defaults to the test's namespace: which one is used shows in where a run is looked for."""
    config: dict[str, Any] = yaml.safe_load(Path(cluster.kubeconfig).read_text(encoding="utf-8"))
    (context,) = config["contexts"]
    config["contexts"] = [
        {"name": "other", "context": {**context["context"], "namespace": "default"}},
        {"name": "runs", "context": {**context["context"], "namespace": namespace}},
    ]
    config["current-context"] = "other"
    path = tmp_path / "two-contexts.kubeconfig"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def _missing_run(namespace: str) -> str:
    return f'no FlowRun named "nope" in namespace "{namespace}"'


# Every cluster command, asked about FlowRun `nope` (or Flow `nope`): the answer names a namespace.
COMMANDS = {
    "status": (["status", "nope"], _missing_run),
    "status --watch": (["status", "nope", "--watch"], _missing_run),
    "logs": (["logs", "nope"], _missing_run),
    "logs -f": (["logs", "-f", "nope"], _missing_run),
    "cancel": (["cancel", "nope"], _missing_run),
    "approve": (["approve", "nope"], _missing_run),
    "output": (["output", "nope", "key"], _missing_run),
    "retry": (["retry", "nope"], _missing_run),
    "resubmit": (["resubmit", "nope"], _missing_run),
    "submit": (["submit", "nope"], lambda ns: f'no Flow named "nope" in namespace "{ns}"'),
    "submit --watch": (["submit", "nope", "--watch"], lambda ns: f'no Flow named "nope" in namespace "{ns}"'),
    "list": (["list"], lambda ns: f'no FlowRuns found in namespace "{ns}"'),
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_cluster_command_takes_the_options_before_it(cluster: Cluster, namespace: str, command: str) -> None:
    args, said = COMMANDS[command]
    before = flowctl("--kubeconfig", str(cluster.kubeconfig), "-n", namespace, *args)
    assert said(namespace) in before.stderr, before.stderr
    assert before.exit_code == (0 if command == "list" else EXIT_CLUSTER), before.stderr
    after = flowctl(*args, "--kubeconfig", str(cluster.kubeconfig), "--namespace", namespace)
    assert said(namespace) in after.stderr, after.stderr
    # Both: the one after the subcommand wins.
    both = flowctl("--kubeconfig", str(cluster.kubeconfig), "-n", "team-before", *args, "-n", namespace)
    assert said(namespace) in both.stderr, both.stderr


def test_submit_with_the_namespace_before_the_subcommand(cluster: Cluster, namespace: str) -> None:
    """The issue's own example, `flowctl -n team-b submit ...`: the run is made there, and runs."""
    cluster.apply(namespace, flow("hello", HELLO))
    done = flowctl("-n", namespace, "--kubeconfig", str(cluster.kubeconfig), "submit", "hello", "--name", "hello-1")
    assert done.exit_code == 0, done.stderr
    assert done.stdout.strip() == "hello-1"
    assert cluster.wait_phase("hello-1", namespace, "Succeeded", "Failed")["phase"] == "Succeeded"


def test_context_before_or_after_the_subcommand(cluster: Cluster, namespace: str, two_contexts: Path) -> None:
    cluster.apply(namespace, flow("hello", HELLO), flowrun("hello-2", "hello"))
    kubeconfig = ["--kubeconfig", str(two_contexts)]
    current = flowctl(*kubeconfig, "status", "hello-2")
    assert current.exit_code == EXIT_CLUSTER and _missing_run("default").replace("nope", "hello-2") in current.stderr
    before = flowctl(*kubeconfig, "--context", "runs", "status", "hello-2", "--json")
    assert before.exit_code == 0, before.stderr
    after = flowctl("status", "hello-2", "--json", *kubeconfig, "--context", "runs")
    assert after.exit_code == 0, after.stderr
    wins = flowctl(*kubeconfig, "--context", "other", "status", "hello-2", "--context", "runs")
    assert wins.exit_code == 0, wins.stderr
    # A namespace given anywhere still beats the context's.
    both = flowctl(*kubeconfig, "-n", namespace, "--context", "other", "status", "hello-2")
    assert both.exit_code == 0, both.stderr
    unknown = flowctl(*kubeconfig, "--context", "nope", "status", "hello-2")
    assert unknown.exit_code == EXIT_CLUSTER and "context 'nope'" in unknown.stderr, unknown.stderr


def test_kubeconfig_after_the_subcommand_wins(cluster: Cluster, namespace: str, tmp_path: Path) -> None:
    missing = tmp_path / "no-such.kubeconfig"
    wrong = flowctl("--kubeconfig", str(missing), "-n", namespace, "list")
    assert wrong.exit_code == EXIT_CLUSTER and str(missing) in wrong.stderr, wrong.stderr
    right = flowctl("--kubeconfig", str(missing), "-n", namespace, "list", "--kubeconfig", str(cluster.kubeconfig))
    assert right.exit_code == 0, right.stderr


def test_the_kubectl_plugin_takes_the_options_before_the_subcommand(
    cluster: Cluster, namespace: str, two_contexts: Path
) -> None:
    """`kubectl flow -n NS status RUN`: kubectl hands everything after `flow` to kubectl-flow."""
    cluster.apply(namespace, flow("hello", HELLO), flowrun("hello-3", "hello"))
    cluster.wait_phase("hello-3", namespace, "Succeeded", "Failed")
    env = env_for(cluster)
    forms = [
        ["-n", namespace, "status", "hello-3"],
        ["--kubeconfig", str(two_contexts), "--context", "runs", "status", "hello-3"],
        ["status", "hello-3", "-n", namespace],
    ]
    for form in forms:
        done = subprocess.run(
            ["kubectl", "flow", *form], env=env, capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 0, (form, done.stderr)
        assert "Phase:      Succeeded" in done.stdout.splitlines(), (form, done.stdout)
