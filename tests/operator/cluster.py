"""The operator scenarios' cluster: the simulator by default, a real cluster with ``FLOWLIB_E2E_KUBECONFIG``.

A pytest plugin (registered in ``tests/conftest.py``), so ``tests/operator`` and ``tests/flowctl``
share one session-wide simulator and operator.

On the simulator the real ``flowlib-operator`` process runs beside it, authenticated as its own
service account with the ClusterRole from ``deploy/base/operator-rbac.yaml``; runner pods run as
real processes under the simulated kubelet with the runner's own service account. So a missing RBAC
rule fails here as it would in a cluster. With ``FLOWLIB_E2E_KUBECONFIG`` set (``make e2e``), the
operator is the one deployed in that cluster and the same tests drive it.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
OPERATOR_NAMESPACE = "flowlib-system"
RUNNER_IMAGE = "flowlib-operator:test"
E2E_KUBECONFIG = os.environ.get("FLOWLIB_E2E_KUBECONFIG")


@dataclass
class OperatorProcess:
    """The operator as a child process; ``restart`` kills it hard (SIGKILL) and starts it again."""

    kubeconfig: Path
    log_path: Path
    extra_args: list[str] = field(default_factory=list)
    scope: list[str] = field(default_factory=lambda: ["--all-namespaces"])
    verbose: bool = True  # DEBUG logs help when a scenario fails; the benchmark runs as deployed
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self) -> None:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "PYTHONUNBUFFERED": "1"}
        env.pop("KUBERNETES_SERVICE_HOST", None)
        log = self.log_path.open("ab")
        self.starts += 1
        log.write(f"\n===== operator start #{self.starts} =====\n".encode())
        self.process = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "flowlib-operator"),
                *self.scope,
                "--standalone",
                "--runner-image",
                RUNNER_IMAGE,
                "--pod-start-timeout",
                "4",
                "--resync-interval",
                "1",
                "--metrics-port",
                "0",
                *(["--verbose"] if self.verbose else []),
                *self.extra_args,
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def restart(self) -> None:
        self.stop(signal.SIGKILL)
        self.start()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@dataclass
class Cluster:
    """What a scenario needs: kubectl as admin, the API as admin, the operator (simulator only)."""

    kubeconfig: Path
    sim: Any = None
    operator: OperatorProcess | None = None
    clock_file: Path | None = None
    """The file the operator's FlowSchedule clock reads (``--clock-file``, simulator only): absent, the
    system's time; ``set_clock`` moves it."""

    def set_clock(self, moment: datetime) -> None:
        assert self.clock_file is not None, "the clock is the simulator operator's only"
        partial = self.clock_file.with_suffix(".partial")
        partial.write_text(moment.astimezone(UTC).isoformat())
        partial.replace(self.clock_file)  # atomic: the operator never reads half a time

    def try_kubectl(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run kubectl and return the whole outcome (for commands that are meant to be refused)."""
        return subprocess.run(
            ["kubectl", f"--kubeconfig={self.kubeconfig}", *args],
            input=input,
            capture_output=True,
            text=True,
            check=False,
        )

    def kubectl(self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60) -> str:
        done = subprocess.run(
            ["kubectl", f"--kubeconfig={self.kubeconfig}", *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({done.returncode}): {done.stderr or done.stdout}")
        return done.stdout

    def apply(self, namespace: str, *documents: dict[str, Any] | str) -> None:
        # JSON, not YAML: kubectl reads YAML 1.1, where a key named `n` or `on` becomes a boolean.
        text = "\n".join(d if isinstance(d, str) else json.dumps(d) for d in documents)  # a JSON stream
        self.kubectl("apply", "-n", namespace, "-f", "-", input=text)

    def get(self, kind: str, name: str, namespace: str) -> dict[str, Any] | None:
        out = self.kubectl("get", kind, name, "-n", namespace, "-o", "json", "--ignore-not-found")
        return json.loads(out) if out.strip() else None

    def list(self, kind: str, namespace: str, selector: str | None = None) -> list[dict[str, Any]]:
        args = ["get", kind, "-n", namespace, "-o", "json"]
        if selector:
            args += ["-l", selector]
        items: list[dict[str, Any]] = json.loads(self.kubectl(*args))["items"]
        return items

    def wait_for(self, what: str, check: Callable[[], Any], timeout: float = 60.0, interval: float = 0.2) -> Any:
        """Poll ``check`` until it returns something truthy; fail naming ``what`` and the operator log."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            last = check()
            if last:
                return last
            time.sleep(interval)
        tail = self.operator.log()[-4000:] if self.operator else ""
        raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {last!r}\n{tail}")

    def run_status(self, name: str, namespace: str) -> dict[str, Any]:
        body = self.get("flowrun", name, namespace) or {}
        status: dict[str, Any] = body.get("status") or {}
        return status

    def wait_phase(self, name: str, namespace: str, *phases: str, timeout: float = 60.0) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            status = self.run_status(name, namespace)
            return status if status.get("phase") in phases else None

        result: dict[str, Any] = self.wait_for(
            f"FlowRun {namespace}/{name} to reach {'/'.join(phases)}", reached, timeout
        )
        return result

    def grant(self, namespace: str, account: str, rules: list[dict[str, Any]]) -> None:
        """Service account ``account`` in ``namespace``, holding ``rules`` there (a Role and its
        RoleBinding, both named after it) and nothing else (simulator only)."""
        self.sim.ensure_service_account(namespace, account)
        rbac = "rbac.authorization.k8s.io"
        role = {"apiVersion": f"{rbac}/v1", "kind": "Role", "metadata": {"name": account}, "rules": rules}
        binding = {
            "apiVersion": f"{rbac}/v1",
            "kind": "RoleBinding",
            "metadata": {"name": account},
            "roleRef": {"apiGroup": rbac, "kind": "Role", "name": account},
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
        }
        self.apply(namespace, role, binding)

    def user(self, namespace: str, account: str, rules: list[dict[str, Any]], workdir: Path) -> Path:
        """A kubeconfig authenticating as ``account``, granted ``rules`` (``grant``)."""
        self.grant(namespace, account, rules)
        return Path(self.sim.kubeconfig_for(namespace, account, workdir / f"{account}.kubeconfig"))


def _operator_kubeconfig(sim: Any, workdir: Path) -> Path:
    rbac = list(yaml.safe_load_all((ROOT / "deploy/base/operator-rbac.yaml").read_text()))
    sim.kubectl("create", "namespace", OPERATOR_NAMESPACE, check=False)
    sim.kubectl("apply", "-f", "-", input="\n---\n".join(yaml.safe_dump(d) for d in rbac))
    return Path(sim.kubeconfig_for(OPERATOR_NAMESPACE, "flowlib-operator", workdir / "operator.kubeconfig"))


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if E2E_KUBECONFIG:
        yield Cluster(kubeconfig=Path(E2E_KUBECONFIG))
        return
    sim = request.getfixturevalue("kubesim_session")
    workdir = tmp_path_factory.mktemp("operator")
    sim.kubectl("apply", "-k", str(ROOT / "crds"))
    clock = workdir / "clock"
    operator = OperatorProcess(
        _operator_kubeconfig(sim, workdir), workdir / "operator.log", extra_args=["--clock-file", str(clock)]
    )
    operator.start()
    try:
        yield Cluster(kubeconfig=Path(sim.kubeconfig), sim=sim, operator=operator, clock_file=clock)
    finally:
        operator.stop()


@contextmanager
def own_operator(sim: Any, workdir: Path, extra_args: list[str] | None = None) -> Iterator[Cluster]:
    """A cluster of its own: ``sim`` (a fresh simulator, the ``kubesim`` fixture) with the CRDs and
    an operator started with ``extra_args``, for flags the shared operator must not have."""
    sim.kubectl("apply", "-k", str(ROOT / "crds"))
    operator = OperatorProcess(_operator_kubeconfig(sim, workdir), workdir / "operator.log", list(extra_args or []))
    operator.start()
    try:
        yield Cluster(kubeconfig=Path(sim.kubeconfig), sim=sim, operator=operator)
    finally:
        operator.stop()


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    name = f"op-{secrets.token_hex(4)}"
    cluster.kubectl("create", "namespace", name)
    try:
        yield name
    finally:
        cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def simulator_only(cluster: Cluster) -> Cluster:
    """For fault-injection scenarios that need the simulator's controls."""
    if cluster.sim is None:
        pytest.skip("needs the simulator's fault injection; the kind e2e covers the rest")
    return cluster


def flow(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "flowlib.dev/v1alpha1", "kind": "Flow", "metadata": {"name": name}, "spec": spec}


def flowrun(name: str, flow_name: str | None = None, **spec: Any) -> dict[str, Any]:
    if flow_name is not None:
        spec["flowRef"] = {"name": flow_name}
    return {"apiVersion": "flowlib.dev/v1alpha1", "kind": "FlowRun", "metadata": {"name": name}, "spec": spec}
