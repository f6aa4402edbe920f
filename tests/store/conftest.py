"""The three run store backends behind one interface, each on a real server.

``backend`` is parametrised over ``directory`` (a folder under tmp_path; ``directory-own-thread``
the same, opened as the checkpoint writer opens it, doing its I/O on the caller's loop), ``configmap`` (the
Kubernetes API simulator, written as a runner whose Role is the one the runner gets: create
ConfigMaps, get/patch/update/delete the chunk names, nothing else) and ``s3`` (moto's S3 server on
a free loopback port). ``backend.fresh()`` gives a store no other test sees, opened with
``open_store`` from a ``StoreLocation`` as the runner opens one; ``backend.reopen(store)`` a second
store object on the same location (a new pod, or ``flowctl``), which must read from the server.

Tests are plain functions that call ``run(coroutine)``: each gets its own event loop, and the
Kubernetes clients are made and closed inside it.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from flowlib_runner.kube import KubeClient, RetryPolicy, load_config
from flowlib_runner.store import ConfigMapStore, DirectoryStore, RunStore, S3Store, open_store

from flowlib_api.meta import CONFIGMAPS, FLOWRUNS, ROLEBINDINGS, ROLES, SERVICEACCOUNTS
from flowlib_api.storespec import StoreLocation, configmap_chunk_names, configmap_root

from ..kubesim.simulator import Simulator

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")
REGION = "us-east-1"
BUCKET = "flowlib-store-tests"
WAIT = 30.0
"""Seconds any wait in these tests gives up after."""


def run(coroutine: Awaitable[T]) -> T:
    """Run one test body on a fresh event loop, with a deadline."""

    async def bounded() -> T:
        return await asyncio.wait_for(coroutine, timeout=120)

    return asyncio.run(bounded())


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def runner_rules(root: str) -> list[dict[str, Any]]:
    """What the runner's Role grants on its configmap store (and nothing else)."""
    return [
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create"]},
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "resourceNames": configmap_chunk_names(root),
            "verbs": ["get", "patch", "update", "delete"],
        },
    ]


# -- the simulator ---------------------------------------------------------------------------


@dataclass
class Kube:
    """The module's simulator with the CRDs installed, and a namespace for its runs."""

    sim: Simulator
    namespace: str
    workdir: Path
    clients: list[KubeClient] = field(default_factory=list)

    def client(self, kubeconfig: Path | None = None) -> KubeClient:
        """A client of the current test's loop (closed by ``closing``); admin without ``kubeconfig``."""
        config = load_config(str(kubeconfig or self.sim.kubeconfig))
        client = KubeClient(config, retry=RetryPolicy(attempts=4, base=0.05, cap=0.5), timeout=20.0)
        self.clients.append(client)
        return client

    async def close_clients(self) -> None:
        clients, self.clients = self.clients, []
        for client in clients:
            await client.close()

    async def new_run(self, admin: KubeClient) -> dict[str, Any]:
        """A FlowRun to own a store (no operator runs here: it stays as created)."""
        name = f"run-{secrets.token_hex(4)}"
        body = {"apiVersion": "flowlib.dev/v1alpha1", "kind": "FlowRun", "metadata": {"name": name}}
        body["spec"] = {"flowRef": {"name": "some-flow"}}
        return await admin.create(FLOWRUNS, body, self.namespace)

    async def runner_client(self, admin: KubeClient, run: str, root: str) -> KubeClient:
        """A client authenticated as the run's own service account, holding only the runner's Role."""
        account = f"{run}-runner"
        rbac = "rbac.authorization.k8s.io"
        await admin.create(SERVICEACCOUNTS, {"metadata": {"name": account}}, self.namespace)
        role = {"apiVersion": f"{rbac}/v1", "kind": "Role", "metadata": {"name": account}, "rules": runner_rules(root)}
        await admin.create(ROLES, role, self.namespace)
        binding = {
            "apiVersion": f"{rbac}/v1",
            "kind": "RoleBinding",
            "metadata": {"name": account},
            "roleRef": {"apiGroup": rbac, "kind": "Role", "name": account},
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": self.namespace}],
        }
        await admin.create(ROLEBINDINGS, binding, self.namespace)
        path = self.workdir / f"{account}.kubeconfig"
        kubeconfig = await asyncio.to_thread(self.sim.kubeconfig_for, self.namespace, account, path)
        return self.client(kubeconfig)

    async def chunk(self, admin: KubeClient, name: str) -> dict[str, Any] | None:
        return await admin.get_or_none(CONFIGMAPS, name, self.namespace)


@pytest.fixture(scope="module")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kube]:
    """A simulator of this module's own: nothing else (no operator) acts on its FlowRuns."""
    workdir = tmp_path_factory.mktemp("store-kubesim")
    sim = Simulator(workdir=workdir / "sim").start()
    try:
        sim.kubectl("apply", "-k", str(ROOT / "crds"))
        namespace = f"store-{secrets.token_hex(3)}"
        sim.kubectl("create", "namespace", namespace)
        yield Kube(sim, namespace, workdir)
    finally:
        sim.stop()


# -- moto ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    bucket: str


@pytest.fixture(scope="module")
def s3_server() -> Iterator[S3Server]:
    """moto's S3 server on a free loopback port, with one bucket; the credentials it takes are
    in the environment, where boto3's default chain finds them (as the runner's do)."""
    from moto.server import ThreadedMotoServer

    with pytest.MonkeyPatch.context() as env:
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing-key-id",
            "AWS_SECRET_ACCESS_KEY": "testing-secret-key",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
        }.items():
            env.setenv(name, value)
        env.delenv("AWS_SESSION_TOKEN", raising=False)
        env.delenv("AWS_PROFILE", raising=False)
        port = free_port()
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        starting = threading.Thread(target=server.start, daemon=True)  # start() waits without a timeout
        starting.start()
        starting.join(timeout=WAIT)
        assert not starting.is_alive(), f"moto's server did not start on port {port} within {WAIT}s"
        try:
            endpoint = f"http://127.0.0.1:{port}"
            import boto3

            boto3.session.Session().client("s3", endpoint_url=endpoint, region_name=REGION).create_bucket(Bucket=BUCKET)
            yield S3Server(endpoint, BUCKET)
        finally:
            server.stop()


# -- the backends ----------------------------------------------------------------------------


class Backend:
    name: str

    def fresh(self) -> AbstractAsyncContextManager[RunStore]:
        raise NotImplementedError

    def reopen(self, store: RunStore) -> RunStore:
        raise NotImplementedError


@dataclass
class DirectoryBackend(Backend):
    base: Path
    name: str = "directory"
    own_thread: bool = False

    @asynccontextmanager
    async def fresh(self) -> AsyncIterator[RunStore]:
        location = StoreLocation("directory", str(self.base / secrets.token_hex(4)))
        yield open_store(location, own_thread=self.own_thread)

    def reopen(self, store: RunStore) -> RunStore:
        assert isinstance(store, DirectoryStore)
        return DirectoryStore(store.root)


@dataclass
class ConfigMapBackend(Backend):
    kube: Kube
    name: str = "configmap"
    admin: KubeClient | None = None
    last_run: dict[str, Any] | None = None

    @asynccontextmanager
    async def fresh(self) -> AsyncIterator[RunStore]:
        self.admin = self.kube.client()
        try:
            self.last_run = await self.kube.new_run(self.admin)
            run_name = self.last_run["metadata"]["name"]
            root = configmap_root(run_name)
            client = await self.kube.runner_client(self.admin, run_name, root)
            location = StoreLocation("configmap", root, namespace=self.kube.namespace)
            yield open_store(location, client=client, owner=self.last_run)
        finally:
            await self.kube.close_clients()

    def reopen(self, store: RunStore) -> RunStore:
        assert isinstance(store, ConfigMapStore)
        return ConfigMapStore(store.client, store.namespace, store.root, store.owner)


@dataclass
class S3Backend(Backend):
    server: S3Server
    name: str = "s3"

    @asynccontextmanager
    async def fresh(self) -> AsyncIterator[RunStore]:
        root = f"runs/ns/{secrets.token_hex(4)}/"
        yield open_store(
            StoreLocation("s3", root, bucket=self.server.bucket, endpoint=self.server.endpoint, region=REGION)
        )

    def reopen(self, store: RunStore) -> RunStore:
        assert isinstance(store, S3Store)
        return S3Store(store.bucket, store.prefix, endpoint=store.endpoint, region=store.region)


@pytest.fixture(params=["directory", "directory-own-thread", "configmap", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "directory":
        return DirectoryBackend(tmp_path)
    if request.param == "directory-own-thread":
        return DirectoryBackend(tmp_path, own_thread=True)
    if request.param == "configmap":
        return ConfigMapBackend(request.getfixturevalue("kube"))
    return S3Backend(request.getfixturevalue("s3_server"))


@pytest.fixture
def configmaps(kube: Kube) -> ConfigMapBackend:
    return ConfigMapBackend(kube)


def with_store(backend: Backend, body: Callable[[RunStore], Awaitable[T]]) -> T:
    """``body(store)`` on a fresh store of ``backend``, on its own event loop."""

    async def main() -> T:
        async with backend.fresh() as store:
            return await body(store)

    return run(main())
