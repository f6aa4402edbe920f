"""The simulator as one object: storage, API server, controllers and kubelet on a private event loop
in a background thread, so that synchronous tests, ``kubectl`` subprocesses and async clients can all
talk to it over HTTPS.
"""

from __future__ import annotations

import asyncio
import os
import platform
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from . import rbac
from .apps import AppsController
from .auth import Authenticator
from .controller import Controller
from .core import Api
from .discovery import GIT_VERSION
from .faults import Faults
from .gc import GarbageCollector, NamespaceController
from .images import Image, default_images
from .jobs import JobController
from .kubelet import NODE, Kubelet
from .pki import Pki, write_kubeconfig
from .resources import Registry
from .server import ApiServer
from .store import Store

T = TypeVar("T")
JSON = dict[str, Any]
KUBELET_VERSION = GIT_VERSION  # the kubelet is as old as the API server


def _read_first(*paths: str) -> str:
    for path in paths:
        try:
            return Path(path).read_text().strip()
        except OSError:
            continue
    return ""


def _os_image() -> str:
    for line in _read_first("/etc/os-release", "/usr/lib/os-release").splitlines():
        key, _, value = line.partition("=")
        if key == "PRETTY_NAME":
            return value.strip().strip('"')
    return "Linux"


def node_info() -> JSON:
    """The Node's ``status.nodeInfo`` as a kubelet reports it: every string is always present
    (https://kubernetes.io/docs/reference/kubernetes-api/cluster-resources/node-v1/#NodeStatus), and
    the ``kubernetes`` Python client refuses a Node without them. The ids are the host's (machine-id,
    boot_id), ``systemUUID`` falls back to one derived from the machine id where DMI is unreadable;
    ``kubeProxyVersion`` is deprecated but still set to the kubelet's version by 1.32 kubelets."""
    machine_id = (
        _read_first("/etc/machine-id", "/var/lib/dbus/machine-id")
        or uuid.uuid5(uuid.NAMESPACE_DNS, socket.gethostname()).hex
    )
    system_uuid = _read_first("/sys/class/dmi/id/product_uuid").lower() or str(
        uuid.uuid5(uuid.NAMESPACE_OID, machine_id)
    )
    machine = platform.machine()
    return {
        "machineID": machine_id,
        "systemUUID": system_uuid,
        "bootID": _read_first("/proc/sys/kernel/random/boot_id") or str(uuid.uuid4()),
        "kernelVersion": platform.release(),
        "osImage": _os_image(),
        "containerRuntimeVersion": "containerd://1.7.24",
        "kubeletVersion": KUBELET_VERSION,
        "kubeProxyVersion": KUBELET_VERSION,
        "operatingSystem": "linux",
        "architecture": {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine.lower()),
    }


class Simulator:
    """Start with ``start()`` (or use as a context manager); every public method is thread-safe."""

    def __init__(
        self,
        workdir: Path | None = None,
        images: dict[str, Image] | None = None,
        port: int = 0,
        pod_network: str = "host",
    ) -> None:
        if pod_network not in ("host", "isolated"):
            raise ValueError(f"pod_network must be 'host' or 'isolated', not {pod_network!r}")
        self.pod_network = pod_network
        self._own_dir = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix="kubesim-")) if workdir is None else workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.images: dict[str, Image] = default_images() if images is None else images
        self.port = port
        self.faults = Faults()
        self.kubeconfig = self.workdir / "admin.kubeconfig"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._tasks: list[asyncio.Task[None]] = []

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> Simulator:
        ready: Future[None] = Future()
        self._thread = threading.Thread(target=self._thread_main, args=(ready,), name="kubesim", daemon=True)
        self._thread.start()
        ready.result(timeout=30)
        return self

    def _thread_main(self, ready: Future[None]) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._astart())
        except BaseException as exc:
            ready.set_exception(exc)
            loop.close()
            return
        ready.set_result(None)
        loop.run_forever()
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()

    async def _astart(self) -> None:
        self.pki = Pki(self.workdir / "pki")
        self.store = Store()
        self.registry = Registry()
        self.api = Api(self.registry, self.store)
        self.authn = Authenticator(self.store)
        self.api.context.update(
            ca_pem=self.pki.ca_pem, legacy_token=lambda ns, sa: self.authn.issue(ns, sa, 10 * 365 * 86400)
        )
        self._bootstrap()
        self.kubelet = Kubelet(self.api, self.authn, self.workdir / "pods", self.images)
        self.kubelet.pod_network = self.pod_network
        self.controllers: list[Controller] = [
            GarbageCollector(self.api),
            NamespaceController(self.api),
            JobController(self.api),
            AppsController(self.api),
            self.kubelet,
        ]
        self.server = ApiServer(self.api, self.authn, rbac.Authorizer(self.store), self.faults, self.kubelet)
        self.port = await self.server.start("127.0.0.1", self.port, self.pki.server_context())
        self.kubelet.port = self.port
        self.url = f"https://127.0.0.1:{self.port}"
        write_kubeconfig(self.kubeconfig, self.url, self.pki.ca_file, self.authn.admin_token, "kubesim-admin")
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(c.run()) for c in self.controllers]

    def _bootstrap(self) -> None:
        api = self.api
        ns_rt = api.resource("", "v1", "namespaces")
        for name in ("default", "kube-system", "kube-public", "kube-node-lease"):
            api.create(ns_rt, "", {"metadata": {"name": name}})
        for plural, obj in rbac.bootstrap_objects():
            api.create(api.resource(rbac.RBAC, "v1", plural), "", obj)
        node = {
            "metadata": {"name": NODE, "labels": {"kubernetes.io/hostname": NODE, "kubernetes.io/os": "linux"}},
            "status": {
                "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
                "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": NODE}],
                "nodeInfo": node_info(),
            },
        }
        created, _ = api.create(api.resource("", "v1", "nodes"), "", node)
        api.internal_update(api.resource("", "v1", "nodes"), {**created, "status": node["status"]}, "status")

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        loop = self._loop
        asyncio.run_coroutine_threadsafe(self._astop(), loop).result(timeout=60)
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(timeout=30)
        self._loop = None
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    async def _astop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass  # the cancellation we asked for
        await self.kubelet.shutdown()
        await self.server.stop()

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- running things on the simulator's loop ----------------------------------------------
    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the simulator's loop (where all state lives) and return its result."""
        assert self._loop is not None, "simulator not started"

        async def run() -> T:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=30)

    # -- identities ----------------------------------------------------------------------------
    def ensure_service_account(self, namespace: str, name: str) -> None:
        def make() -> None:
            if self.store.get(("", "namespaces"), "", namespace) is None:
                self.api.create(self.api.resource("", "v1", "namespaces"), "", {"metadata": {"name": namespace}})
            if self.store.get(("", "serviceaccounts"), namespace, name) is None:
                self.api.create(self.api.resource("", "v1", "serviceaccounts"), namespace, {"metadata": {"name": name}})

        self.call(make)

    def token_for(self, namespace: str, name: str, expiration: int = 3600) -> str:
        """A bound token for an existing service account (as ``kubectl create token`` gives)."""

        def issue() -> str:
            if self.store.get(("", "serviceaccounts"), namespace, name) is None:
                raise LookupError(f"serviceaccount {namespace}/{name} does not exist")
            return self.authn.issue(namespace, name, expiration)

        return self.call(issue)

    def kubeconfig_for(self, namespace: str, name: str, path: Path | None = None) -> Path:
        """A kubeconfig that authenticates as ``system:serviceaccount:<namespace>:<name>``."""
        target = path or self.workdir / f"sa-{namespace}-{name}.kubeconfig"
        return write_kubeconfig(
            target,
            self.url,
            self.pki.ca_file,
            self.token_for(namespace, name),
            f"{namespace}-{name}",
            namespace,
        )

    @property
    def ca_file(self) -> Path:
        return self.pki.ca_file

    @property
    def admin_token(self) -> str:
        return self.authn.admin_token

    # -- faults ------------------------------------------------------------------------------
    def cut_watches(self) -> int:
        """End every open watch stream (clients see the stream close and must re-watch)."""
        return self.call(self.server.cut_watches)

    def kill_pod_process(
        self, namespace: str, pod: str, container: str | None = None, sig: int = signal.SIGKILL
    ) -> bool:
        return self.call(self.kubelet.kill, namespace, pod, container, sig)

    def compact(self) -> None:
        """Drop the watch history: any older resourceVersion now gets 410 Gone."""
        self.call(self.store.compact)

    def restart_api(self, downtime: float = 0.0) -> None:
        """Close the HTTPS endpoint (dropping connections and watches) and serve again on the same
        port after ``downtime`` seconds; storage, controllers and pods keep running."""
        assert self._loop is not None

        async def bounce() -> None:
            await self.server.stop()
            await asyncio.sleep(downtime)
            await self.server.start("127.0.0.1", self.port, self.pki.server_context())

        asyncio.run_coroutine_threadsafe(bounce(), self._loop).result(timeout=30 + downtime)

    def set_timing(
        self,
        bookmark_interval: float | None = None,
        backoff_base: float | None = None,
        retry_interval: float | None = None,
    ) -> None:
        """Shorten (or lengthen) the simulator's clocks: watch bookmarks, crash back-off, image pull retries."""

        def apply() -> None:
            if bookmark_interval is not None:
                self.server.bookmark_interval = bookmark_interval
            if backoff_base is not None:
                self.kubelet.backoff_base = backoff_base
            if retry_interval is not None:
                self.kubelet.retry_interval = retry_interval

        self.call(apply)

    @contextmanager
    def recording(self) -> Iterator[list[tuple[str, str]]]:
        """Record (method, path?query) of every request made inside the block."""
        log: list[tuple[str, str]] = []

        def on() -> None:
            self.server.request_log = log
            self.server.log_requests = True

        def off() -> None:
            self.server.log_requests = False

        self.call(on)
        try:
            yield log
        finally:
            self.call(off)

    @contextmanager
    def auditing(self) -> Iterator[list[tuple[str, Any, bool]]]:
        """Record (user name, rbac.Attributes, allowed) of every authorization decision in the block."""
        log: list[tuple[str, Any, bool]] = []

        def on() -> None:
            self.server.audit_log = log

        def off() -> None:
            self.server.audit_log = None

        self.call(on)
        try:
            yield log
        finally:
            self.call(off)

    # -- clients -------------------------------------------------------------------------------
    def kubectl(
        self,
        *args: str,
        check: bool = True,
        input: str | None = None,
        timeout: float = 60,
        kubeconfig: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "KUBECONFIG": str(kubeconfig or self.kubeconfig), "HOME": str(self.workdir)}
        result = subprocess.run(
            ["kubectl", *args],
            capture_output=True,
            text=True,
            input=input,
            timeout=timeout,
            env=env,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
            )
        return result

    def api_client(self, kubeconfig: Path | None = None) -> Any:
        """A ``kubernetes.client.ApiClient`` loaded from the admin (or given) kubeconfig."""
        from kubernetes import client, config

        configuration = client.Configuration()
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=str(kubeconfig or self.kubeconfig), client_configuration=configuration
        )
        return client.ApiClient(configuration)
