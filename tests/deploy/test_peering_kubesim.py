"""The operator's own peering object (``flowlib_operator.peering``), on the simulator.

Why it matters for the install: ``deploy/`` no longer holds the ClusterKopfPeering (an instance of a
CRD of the same apply, which failed the first ``kubectl apply -k``), so the operator must make it,
wait for its CRD when it starts before the CRD is served, say plainly when RBAC forbids it, and
bring it back when it is deleted. The last test runs kopf itself with these handlers and peering: it
starts before kopf's CRDs exist and goes on once they are applied.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kopf
import pytest
import yaml
from flowlib_operator.peering import (
    PeeringNotReady,
    PeeringRefused,
    PeeringTarget,
    ensure_peering,
    keep_peering,
    peering_targets,
    register,
)
from flowlib_runner.kube import KubeClient, load_config

from tests.deploy.manifests import ROOT

pytestmark = [pytest.mark.kubesim]
PEERING_CRDS = ROOT / "deploy/base/kopf-peering.yaml"


def _client(kubeconfig: Path) -> KubeClient:
    return KubeClient(load_config(str(kubeconfig)))


async def _ensure(kubeconfig: Path, target: PeeringTarget) -> bool:
    async with _client(kubeconfig) as client:
        return await ensure_peering(client, target)


def _install_peering_crds(sim: Any) -> None:
    sim.kubectl("apply", "-f", str(PEERING_CRDS))
    sim.kubectl("wait", "--for", "condition=Established", "--timeout=30s", "-f", str(PEERING_CRDS))


def _get(sim: Any, *args: str) -> dict[str, Any] | None:
    done = sim.kubectl("get", *args, "-o", "json", "--ignore-not-found")
    return json.loads(done.stdout) if done.stdout.strip() else None


def _wait_for(what: str, check: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_targets_follow_the_scope() -> None:
    assert peering_targets("p", None) == [PeeringTarget("p")]
    assert peering_targets("p", ["a", "b", "a"]) == [PeeringTarget("p", "a"), PeeringTarget("p", "b")]


def test_created_once_after_its_crd_is_served(kubesim: Any) -> None:
    target = PeeringTarget("flowlib-operator")
    with pytest.raises(PeeringNotReady) as waiting:
        asyncio.run(_ensure(kubesim.kubeconfig, target))
    assert "clusterkopfpeerings.kopf.dev" in str(waiting.value)
    assert "deploy/base/kopf-peering.yaml" in str(waiting.value)
    _install_peering_crds(kubesim)
    assert asyncio.run(_ensure(kubesim.kubeconfig, target)) is True
    assert asyncio.run(_ensure(kubesim.kubeconfig, target)) is False, "an existing object is left alone"
    made = _get(kubesim, "clusterkopfpeering", "flowlib-operator")
    assert made is not None
    assert made["metadata"]["labels"] == {
        "app.kubernetes.io/part-of": "flowlib",
        "app.kubernetes.io/managed-by": "flowlib-operator",
    }


def test_namespaced_peerings_are_made_in_each_watched_namespace(kubesim: Any) -> None:
    _install_peering_crds(kubesim)
    kubesim.kubectl("create", "namespace", "team-a")
    a, missing = peering_targets("flowlib-operator", ["team-a", "team-missing"])
    assert asyncio.run(_ensure(kubesim.kubeconfig, a)) is True
    assert _get(kubesim, "kopfpeering", "flowlib-operator", "-n", "team-a") is not None
    with pytest.raises(PeeringNotReady, match='the watched namespace "team-missing" does not exist'):
        asyncio.run(_ensure(kubesim.kubeconfig, missing))


def test_a_refusal_names_the_permission_unless_the_object_exists(kubesim: Any, tmp_path: Path) -> None:
    _install_peering_crds(kubesim)
    kubesim.ensure_service_account("flowlib-system", "limited")
    rbac = "rbac.authorization.k8s.io"
    role = {
        "apiVersion": f"{rbac}/v1",
        "kind": "ClusterRole",
        "metadata": {"name": "peering-get-only"},
        "rules": [{"apiGroups": ["kopf.dev"], "resources": ["clusterkopfpeerings"], "verbs": ["get"]}],
    }
    binding = {
        "apiVersion": f"{rbac}/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "peering-get-only"},
        "roleRef": {"apiGroup": rbac, "kind": "ClusterRole", "name": "peering-get-only"},
        "subjects": [{"kind": "ServiceAccount", "name": "limited", "namespace": "flowlib-system"}],
    }
    kubesim.kubectl(
        "apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": [role, binding]})
    )
    limited = kubesim.kubeconfig_for("flowlib-system", "limited", tmp_path / "limited.kubeconfig")
    target = PeeringTarget("flowlib-operator")
    with pytest.raises(PeeringRefused) as refused:
        asyncio.run(_ensure(limited, target))
    text = str(refused.value)
    assert 'ClusterKopfPeering "flowlib-operator" does not exist and the operator may not create it' in text
    assert 'verb "create" on resource "clusterkopfpeerings" in API group "kopf.dev"' in text
    assert "kubectl create -f -" in text
    # An admin who made the object and withheld `create`: the operator uses the object as it is.
    assert asyncio.run(_ensure(kubesim.kubeconfig, target)) is True
    assert asyncio.run(_ensure(limited, target)) is False


def test_a_deleted_peering_object_comes_back(kubesim: Any) -> None:
    _install_peering_crds(kubesim)
    target = PeeringTarget("flowlib-operator")

    async def scenario() -> None:
        async with _client(kubesim.kubeconfig) as client:
            assert await ensure_peering(client, target)
            keeper = asyncio.create_task(keep_peering(client, [target], interval=0.2))
            try:
                await asyncio.to_thread(kubesim.kubectl, "delete", "clusterkopfpeering", "flowlib-operator")
                deadline = time.monotonic() + 30
                while await client.get_or_none(target.ref, target.name) is None:
                    assert time.monotonic() < deadline, "the deleted peering object was not created again"
                    await asyncio.sleep(0.1)
                assert not keeper.done(), "the keeper keeps going"
            finally:
                keeper.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await keeper

    asyncio.run(scenario())


class _Said(logging.Handler):
    """What kopf logged, to wait on (kopf logs each failed attempt of a startup handler)."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())

    def has(self, text: str) -> bool:
        return any(text in line for line in list(self.lines))


def test_kopf_with_the_handlers_waits_for_the_crd_then_peers_through_the_object(kubesim: Any) -> None:
    """``register``'s handlers in a real kopf operator with mandatory peering, started before kopf's
    CRDs exist (as a fresh install may start the operator): the start says what it waits for, then
    creates the object once the CRD is served, and kopf writes its heartbeat there.

    kopf runs in a thread of this process (no console script: tests launch operator processes only
    through tests/operator/cluster.py, which runs them --standalone; test_ports.py)."""
    kubesim.kubectl("apply", "-k", str(ROOT / "crds"))
    config = yaml.safe_load(Path(kubesim.kubeconfig).read_text(encoding="utf-8"))
    cluster, user = config["clusters"][0]["cluster"], config["users"][0]["user"]
    said, kopf_log = _Said(), logging.getLogger("kopf")
    level = kopf_log.level
    kopf_log.addHandler(said)
    kopf_log.setLevel(logging.INFO)
    stop = threading.Event()
    failures: list[BaseException] = []

    async def operate() -> None:
        registry = kopf.OperatorRegistry()

        @kopf.on.login(registry=registry)
        def login(**_: Any) -> kopf.ConnectionInfo:
            return kopf.ConnectionInfo(
                server=cluster["server"], ca_path=cluster["certificate-authority"], token=user["token"]
            )

        async with _client(kubesim.kubeconfig) as client:
            register(registry, client, "test-peering", None, interval=0.5)
            await kopf.operator(
                registry=registry,
                peering_name="test-peering",
                identity="replica-1",  # type: ignore[arg-type]  # kopf's NewType over str
                clusterwide=True,
                stop_flag=stop,
            )

    def run() -> None:
        try:
            asyncio.run(operate())
        except BaseException as error:  # reported by the test, not lost in the thread
            failures.append(error)

    thread = threading.Thread(target=run, name="kopf", daemon=True)
    thread.start()
    try:
        _wait_for("the start to say it waits for the CRD", lambda: said.has("clusterkopfpeerings.kopf.dev") or failures)
        assert not failures, failures
        assert said.has("failed temporarily"), said.lines
        _install_peering_crds(kubesim)
        heartbeat = _wait_for(
            "the peering object with kopf's heartbeat",
            lambda: (
                ((_get(kubesim, "clusterkopfpeering", "test-peering") or {}).get("status") or {}).get("replica-1")
                or failures
            ),
            timeout=60,
        )
        assert not failures, failures
        assert heartbeat["priority"] == 0
        assert said.has('ClusterKopfPeering "test-peering" created'), said.lines
    finally:
        stop.set()
        thread.join(timeout=30)
        kopf_log.removeHandler(said)
        kopf_log.setLevel(level)
    assert not thread.is_alive(), "kopf did not stop"
    assert not failures, failures
