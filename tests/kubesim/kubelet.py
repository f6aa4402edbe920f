"""A kubelet that runs each container as a local process.

Pod lifecycle per https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/ (phases,
container states, restartPolicy with back-off, termination messages, probes: ``probes.py``) and
https://kubernetes.io/docs/concepts/containers/container-lifecycle-hooks/#hook-handler-execution
for termination: deletion sends SIGTERM, waits the grace period, then SIGKILL.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import os
import secrets
import shutil
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import images as images_mod
from . import mountpoints, scheduling, volumes
from .controller import Controller, log
from .errors import ApiError
from .meta import deep, dig, timestamp
from .podnet import PodNetwork
from .probes import Prober, Worker
from .store import Event

if TYPE_CHECKING:
    from .auth import Authenticator
    from .core import Api

JSON = dict[str, Any]
NODE = "kubesim-node"
LAUNCHER = str(Path(__file__).with_name("launcher.py"))
SOURCE_KINDS = {("", "configmaps"): "configmap", ("", "secrets"): "secret"}
"""What a volume may show, by store key: the kinds whose changes reach running pods' volumes."""


class ContainerLog:
    """Captured stdout+stderr lines of one container run, with a change signal for followers."""

    def __init__(self) -> None:
        self.lines: list[tuple[float, bytes]] = []
        self.finished = False
        self._partial = b""
        self._changed = asyncio.Event()

    def feed(self, data: bytes) -> None:
        data = self._partial + data
        *complete, self._partial = data.split(b"\n")
        now = time.time()
        self.lines.extend((now, line + b"\n") for line in complete)
        self._notify()

    def finish(self) -> None:
        if self._partial:
            self.lines.append((time.time(), self._partial))
            self._partial = b""
        self.finished = True
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_change(self) -> None:
        await self._changed.wait()

    @staticmethod
    def format_time(when: float) -> str:
        return dt.datetime.fromtimestamp(when, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"

    def text(self) -> str:
        return b"".join(line for _, line in self.lines).decode("utf-8", "replace")


class Container:
    def __init__(self, spec: JSON, init: bool) -> None:
        self.spec = spec
        self.name: str = spec["name"]
        self.init = init
        self.proc: asyncio.subprocess.Process | None = None
        self.log: ContainerLog | None = None
        self.previous: ContainerLog | None = None
        self.state: JSON = {"waiting": {"reason": "ContainerCreating"}}
        self.last_state: JSON = {}
        self.restarts = 0
        self.container_id = ""
        # Probe state of the current run (probes.py): started = passed the startup probe (or has
        # none), ready = passed the readiness probe (or has none, once started).
        self.started = False
        self.ready = False
        self.probes: list[Worker] = []
        self.unhealthy = False  # killed by a failing liveness/startup probe: restart even on exit 0

    def status(self) -> JSON:
        image = self.spec.get("image", "")
        running = "running" in self.state
        if self.init:
            # An init container is ready once it completed successfully, started while it runs.
            ready = self.state.get("terminated", {}).get("exitCode") == 0
            started = running
        else:
            ready, started = running and self.ready, running and self.started
        out: JSON = {
            "name": self.name,
            "image": image,
            "imageID": "",
            "state": self.state,
            "lastState": self.last_state,
            "ready": ready,
            "restartCount": self.restarts,
            "started": started,
        }
        if self.container_id:
            out["containerID"] = self.container_id
            out["imageID"] = f"{image}@sha256:{hashlib.sha256(image.encode()).hexdigest()}"
        return out


class PodRuntime:
    def __init__(self, kubelet: Kubelet, pod: JSON) -> None:
        self.kubelet = kubelet
        self.api = kubelet.api
        meta = pod["metadata"]
        self.uid, self.ns, self.name = meta["uid"], meta["namespace"], meta["name"]
        self.pod = pod
        spec = pod["spec"]
        self.policy = spec.get("restartPolicy", "Always")
        self.init = [Container(c, True) for c in spec.get("initContainers") or []]
        self.containers = [Container(c, False) for c in spec.get("containers") or []]
        self.dir = kubelet.root / self.uid
        self.phase = "Pending"
        self.prepared = False
        self.initialized = not self.init
        self.terminating = asyncio.Event()
        self.grace: float | None = None
        self.started = timestamp()
        self.task: asyncio.Task[None] | None = None
        self.reason = ""
        self.mount_points: list[str] = []
        self.net: PodNetwork | None = None
        # Volumes that show ConfigMaps or Secrets, by name: (volume, directory, token), kept in step
        # with their sources while the pod runs (``Kubelet.sync_volumes``).
        self.synced_volumes: dict[str, tuple[JSON, Path, str]] = {}

    # -- status ------------------------------------------------------------------------------
    def _conditions(self) -> list[JSON]:
        now = timestamp()
        unready = [c.name for c in self.containers if not ("running" in c.state and c.ready)]
        ready = self.phase == "Running" and not unready

        def cond(kind: str, ok: bool, reason: str = "", message: str = "") -> JSON:
            out: JSON = {
                "type": kind,
                "status": "True" if ok else "False",
                "lastProbeTime": None,
                "lastTransitionTime": now,
            }
            if not ok and reason:
                out["reason"] = reason
            if not ok and message:
                out["message"] = message
            return out

        done = self.phase in ("Succeeded", "Failed")
        why = "PodCompleted" if done else "ContainersNotReady"
        message = "" if done else f"containers with unready status: [{' '.join(unready)}]"
        pending = [c.name for c in self.init if c.state.get("terminated", {}).get("exitCode") != 0]
        return [
            cond("PodReadyToStartContainers", self.prepared and not done),
            cond(
                "Initialized",
                self.initialized,
                "ContainersNotInitialized",
                f"containers with incomplete status: [{' '.join(pending)}]",
            ),
            cond("Ready", ready, why, message),
            cond("ContainersReady", ready, why, message),
            cond("PodScheduled", True),
        ]

    def push(self) -> None:
        """Write the pod status, keeping transition times of unchanged conditions."""
        rt = self.api.resource("", "v1", "pods")
        current = self.api.store.get(rt.key, self.ns, self.name)
        if current is None or current["metadata"]["uid"] != self.uid:
            return
        old = current.get("status") or {}
        old_conditions = {c["type"]: c for c in old.get("conditions") or []}
        conditions = []
        for c in self._conditions():
            prev = old_conditions.get(c["type"])
            if prev is not None and prev.get("status") == c["status"]:
                c["lastTransitionTime"] = prev.get("lastTransitionTime")
            conditions.append(c)
        status: JSON = {
            "phase": self.phase,
            "conditions": conditions,
            "hostIP": "127.0.0.1",
            "hostIPs": [{"ip": "127.0.0.1"}],
            "podIP": "127.0.0.1",
            "podIPs": [{"ip": "127.0.0.1"}],
            "startTime": self.started,
            "qosClass": "BestEffort",
            "containerStatuses": [c.status() for c in self.containers],
        }
        if self.init:
            status["initContainerStatuses"] = [c.status() for c in self.init]
        if self.reason:
            status["reason"] = self.reason
        new = deep(current)
        new["status"] = status
        try:
            self.api.internal_update(rt, new, "status")
        except ApiError as exc:
            if exc.code != 404:
                raise

    def event(self, etype: str, reason: str, message: str) -> None:
        current = self.api.store.get(("", "pods"), self.ns, self.name)
        if current is not None:
            self.api.record_event(current, etype, reason, message, "kubelet")

    # -- lifecycle ---------------------------------------------------------------------------
    async def run(self) -> None:
        try:
            if self.kubelet.pod_network == "isolated":
                self.net = await PodNetwork.create(self.kubelet.port)
            await self._run()
        finally:
            await self._kill_all(signal.SIGKILL)
            if self.net is not None:
                await self.net.close()
            self.kubelet.release(self.mount_points)
            shutil.rmtree(self.dir, ignore_errors=True)
            self.kubelet.runtimes.pop(self.uid, None)
            self.kubelet.finalize(self.ns, self.name, self.uid)

    async def _sleep(self, seconds: float) -> bool:
        """Sleep unless the pod is being terminated; True when termination interrupted it."""
        try:
            await asyncio.wait_for(self.terminating.wait(), seconds)
            return True
        except TimeoutError:
            return False

    async def _run(self) -> None:
        self.push()
        plans: dict[str, JSON] | None = None
        attempt = 0
        while not self.terminating.is_set():
            plans = self._prepare(attempt)
            if plans is not None:
                break
            attempt += 1
            self.push()
            if await self._sleep(self.kubelet.retry_interval):
                break
        if plans is None:
            self.phase = "Failed" if self.phase == "Pending" else self.phase
            self._terminated_waiting()
            self.push()
            return
        self.prepared = True
        for container in self.init:
            while True:
                code = await self._run_container(container, plans[container.name])
                if self.terminating.is_set() or code == 0:
                    break
                if self.policy == "Never":
                    self.phase = "Failed"
                    self.push()
                    await self.terminating.wait()
                    return
                if await self._back_off(container):
                    break
            if self.terminating.is_set():
                break
        if not self.terminating.is_set():
            self.initialized = True
            await asyncio.gather(*(self._supervise(c, plans[c.name]) for c in self.containers))
        codes = [c.state.get("terminated", {}).get("exitCode", 1) for c in self.containers]
        self.phase = "Succeeded" if codes and all(code == 0 for code in codes) else "Failed"
        self._terminated_waiting()
        self.push()
        if not self.terminating.is_set():
            await self.terminating.wait()

    def _terminated_waiting(self) -> None:
        for container in self.init + self.containers:
            if "waiting" in container.state:
                reason = container.state["waiting"].get("reason", "")
                container.state = {
                    "terminated": {
                        "exitCode": 137 if reason == "CrashLoopBackOff" else 0,
                        "reason": "ContainerStatusUnknown" if reason != "CrashLoopBackOff" else "Error",
                        "startedAt": None,
                        "finishedAt": timestamp(),
                    }
                }
                if reason != "CrashLoopBackOff":
                    container.state["terminated"]["message"] = (
                        "The container could not be located when the pod was terminated"
                    )
                    container.state["terminated"]["exitCode"] = 137

    def _prepare(self, attempt: int) -> dict[str, JSON] | None:
        """Resolve images, environment and volumes; None (with waiting states set) if not possible yet."""
        pod = self.api.store.get(("", "pods"), self.ns, self.name)
        if pod is None:
            return None
        self.pod = pod
        plans: dict[str, JSON] = {}
        blocked = False
        for container in self.init + self.containers:
            image = images_mod.resolve(self.kubelet.images, container.spec.get("image", ""))
            ref = container.spec.get("image", "")
            before = container.state.get("waiting", {}).get("reason")
            if image is None:
                blocked = True
                if attempt % 2 == 0:
                    message = (
                        f'failed to pull and unpack image "{ref}": '
                        f'failed to resolve reference "{ref}": {ref}: not found'
                    )
                    container.state = {"waiting": {"reason": "ErrImagePull", "message": message}}
                    if attempt == 0:
                        self.event("Warning", "Failed", f'Failed to pull image "{ref}": {message}')
                else:
                    container.state = {
                        "waiting": {
                            "reason": "ImagePullBackOff",
                            "message": f'Back-off pulling image "{ref}"',
                        }
                    }
                    if attempt == 1:
                        self.event("Normal", "BackOff", f'Back-off pulling image "{ref}"')
                continue
            try:
                plans[container.name] = self._plan(container, image)
            except volumes.NotReady as exc:
                blocked = True
                container.state = {"waiting": {"reason": exc.reason, "message": exc.message}}
                if before != exc.reason:
                    self.event(
                        "Warning",
                        "Failed" if exc.reason != "ContainerCreating" else "FailedMount",
                        exc.message,
                    )
        return None if blocked else plans

    def _plan(self, container: Container, image: images_mod.Image) -> JSON:
        spec = container.spec
        pod = self.pod
        port = self.kubelet.port
        base = {
            "PATH": ":".join(image.path),
            "HOME": "/root",
            "HOSTNAME": pod["spec"].get("hostname") or self.name,
            "KUBERNETES_SERVICE_HOST": "127.0.0.1",
            "KUBERNETES_SERVICE_PORT": str(port),
            "KUBERNETES_SERVICE_PORT_HTTPS": str(port),
            "KUBERNETES_PORT": f"tcp://127.0.0.1:{port}",
            f"KUBERNETES_PORT_{port}_TCP": f"tcp://127.0.0.1:{port}",
            **image.env,
        }
        env = volumes.container_env(self.api.store, pod, spec, base)
        command, args = spec.get("command"), spec.get("args")
        if command:
            argv = list(command) + list(args or [])
        else:
            argv = list(image.entrypoint) + list(args if args is not None else image.cmd)
        argv = [volumes.expand(a, env) for a in argv]
        work = self.dir / container.name
        work.mkdir(parents=True, exist_ok=True)
        mounts: list[JSON] = []
        by_name = {v["name"]: v for v in pod["spec"].get("volumes") or []}
        token = self.kubelet.authn.issue(self.ns, pod["spec"].get("serviceAccountName", "default"), 3607, pod)
        for mount in spec.get("volumeMounts") or []:
            volume = by_name[mount["name"]]
            directory = self.dir / "volumes" / mount["name"]
            source = volumes.materialize(self.api.store, pod, volume, directory, token)
            if volumes.sources(volume):
                self.synced_volumes[mount["name"]] = (volume, directory, token)
            if mount.get("subPath"):
                source = source / mount["subPath"]
                if not source.exists():
                    source.mkdir(parents=True)
            mounts.append(
                {
                    "source": str(source),
                    "target": mount["mountPath"],
                    "readOnly": bool(mount.get("readOnly")),
                    "file": source.is_file(),
                }
            )
        term = work / "termination-log"
        term.write_text("")
        os.chmod(term, 0o666)  # writable by non-root containers, as the kubelet makes it
        mounts.append(
            {
                "source": str(term),
                "target": spec.get("terminationMessagePath", "/dev/termination-log"),
                "file": True,
            }
        )
        return {
            "argv": argv,
            "env": env,
            "mounts": mounts,
            "workingDir": spec.get("workingDir") or image.working_dir,
            "user": self._user(container, image),
            "ships": list(image.ships),
            "startErrorFile": str(work / "start-error"),
            "netnsFd": self.net.fd if self.net is not None else None,
            "terminationFile": str(term),
        }

    def _user(self, container: Container, image: images_mod.Image) -> JSON | None:
        """The identity the process runs as: securityContext runAsUser/runAsGroup (container over pod),
        else the image's user; fsGroup and supplementalGroups as extra groups. Refuses runAsNonRoot
        with a root user, as the kubelet does."""
        pod_ctx = self.pod["spec"].get("securityContext") or {}
        ctx = {**pod_ctx, **(container.spec.get("securityContext") or {})}
        uid = ctx.get("runAsUser", image.user)
        gid = ctx.get("runAsGroup", uid if "runAsUser" in ctx else image.group)
        if ctx.get("runAsNonRoot") and uid == 0:
            raise volumes.NotReady(
                "CreateContainerConfigError",
                "container has runAsNonRoot and image will run as root "
                f'(pod: "{self.name}_{self.ns}({self.uid})", container: {container.name})',
            )
        if uid == 0 and gid == 0 and not pod_ctx.get("fsGroup") and not pod_ctx.get("supplementalGroups"):
            return None
        groups = [g for g in [pod_ctx.get("fsGroup"), *(pod_ctx.get("supplementalGroups") or [])] if g is not None]
        return {"uid": int(uid), "gid": int(gid), "groups": [int(gid), *map(int, groups)]}

    async def _run_container(self, container: Container, plan: JSON) -> int:
        """Start the container, wait for it to exit, record its terminated state; returns the exit code."""
        if not plan["argv"]:
            container.state = {"waiting": {"reason": "CreateContainerError", "message": "no command specified"}}
            self.push()
            await self.terminating.wait()
            return 128
        for mount in plan["mounts"]:
            self.mount_points.extend(self.kubelet.acquire(mount["target"], mount["file"]))
        if plan["workingDir"]:
            self.mount_points.extend(self.kubelet.acquire(plan["workingDir"], False))
        start_error = Path(plan["startErrorFile"])
        start_error.unlink(missing_ok=True)
        Path(plan["terminationFile"]).write_text("")
        spec_file = self.dir / f"{container.name}.json"
        spec_file.write_text(json.dumps(plan))
        if container.log is not None:
            container.previous = container.log
        log = container.log = ContainerLog()
        proc = await asyncio.create_subprocess_exec(
            self.kubelet.python,
            "-S",
            LAUNCHER,
            str(spec_file),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
            pass_fds=(self.net.fd,) if self.net is not None else (),
        )
        container.proc = proc
        container.container_id = f"containerd://{secrets.token_hex(32)}"
        started = timestamp()
        container.state = {"running": {"startedAt": started}}
        container.unhealthy = False
        if not container.init:
            self.phase = "Running"
            self.kubelet.prober.start(self, container)
        if container.restarts == 0:
            image = container.spec.get("image", "")
            self.event("Normal", "Pulled", f'Container image "{image}" already present on machine')
            self.event("Normal", "Created", f"Created container {container.name}")
            self.event("Normal", "Started", f"Started container {container.name}")
        self.push()
        assert proc.stdout is not None and proc.stderr is not None
        readers = [
            asyncio.create_task(self._pump(proc.stdout, log)),
            asyncio.create_task(self._pump(proc.stderr, log)),
        ]
        code = await proc.wait()
        self.kubelet.prober.stop(container)
        self.kubelet.kill_group(proc.pid, signal.SIGKILL)
        await asyncio.gather(*readers)
        log.finish()
        container.proc = None
        exit_code = 128 - code if code < 0 else code
        terminated: JSON = {
            "exitCode": exit_code,
            "reason": "Completed" if exit_code == 0 else "Error",
            "startedAt": started,
            "finishedAt": timestamp(),
            "containerID": container.container_id,
        }
        if start_error.exists() and start_error.stat().st_size:
            terminated.update(
                reason="StartError",
                exitCode=128,
                message=start_error.read_text(),
                startedAt="1970-01-01T00:00:00Z",
            )
            exit_code = 128
        else:
            message = Path(plan["terminationFile"]).read_text(errors="replace")[:4096]
            if (
                not message
                and exit_code != 0
                and container.spec.get("terminationMessagePolicy") == "FallbackToLogsOnError"
            ):
                message = "".join(log.text().splitlines(keepends=True)[-80:])[-2048:]
            if message:
                terminated["message"] = message
        if code < 0:
            terminated["signal"] = -code
        container.state = {"terminated": terminated}
        return exit_code

    @staticmethod
    async def _pump(stream: asyncio.StreamReader, log: ContainerLog) -> None:
        while True:
            chunk = await stream.read(65536)
            if not chunk:
                return
            log.feed(chunk)

    async def _back_off(self, container: Container) -> bool:
        """CrashLoopBackOff between restarts; True when termination interrupted it."""
        delay = min(self.kubelet.backoff_base * (2 ** min(container.restarts, 10)), self.kubelet.backoff_max)
        container.last_state = container.state
        message = (
            f"back-off {int(delay)}s restarting failed container={container.name} pod={self.name}_{self.ns}({self.uid})"
        )
        container.state = {"waiting": {"reason": "CrashLoopBackOff", "message": message}}
        self.push()
        self.event("Warning", "BackOff", "Back-off restarting failed container")
        if await self._sleep(delay):
            container.state = container.last_state
            return True
        container.restarts += 1
        return False

    async def _supervise(self, container: Container, plan: JSON) -> None:
        while not self.terminating.is_set():
            code = await self._run_container(container, plan)
            if self.terminating.is_set():
                return
            # A container killed by its liveness/startup probe restarts unless the policy is Never.
            restart = self.policy == "Always" or (self.policy == "OnFailure" and (code != 0 or container.unhealthy))
            if not restart:
                self.push()
                return
            if await self._back_off(container):
                return

    def unhealthy(self, container: Container, probe: JSON, why: str) -> None:
        """A liveness or startup probe failed: kill the container (SIGTERM, then SIGKILL after the
        probe's or the pod's terminationGracePeriodSeconds); ``_supervise`` restarts it per policy."""
        proc = container.proc
        if proc is None or self.terminating.is_set():
            return
        container.unhealthy = True
        restart = ", will be restarted" if self.policy != "Never" else ""
        self.event("Normal", "Killing", f"Container {container.name} {why}{restart}")
        grace = probe.get("terminationGracePeriodSeconds")
        if grace is None:
            grace = self.pod["spec"].get("terminationGracePeriodSeconds", 30)
        self.kubelet.kill_group(proc.pid, signal.SIGTERM)

        async def escalate() -> None:
            try:
                await asyncio.wait_for(asyncio.shield(proc.wait()), float(grace or 0))
            except TimeoutError:
                self.kubelet.kill_group(proc.pid, signal.SIGKILL)

        task = asyncio.get_running_loop().create_task(escalate())
        self.kubelet.background.add(task)
        task.add_done_callback(self.kubelet.background.discard)

    # -- termination ---------------------------------------------------------------------------
    def terminate(self, grace: float) -> None:
        if self.grace is not None and grace >= self.grace:
            return
        first = self.grace is None
        self.grace = grace
        self.terminating.set()
        if first:
            self.event("Normal", "Killing", "Stopping container " + ", ".join(c.name for c in self.containers))
        asyncio.get_running_loop().create_task(self._stop(grace))

    async def _stop(self, grace: float) -> None:
        await self._kill_all(signal.SIGTERM)
        deadline = time.monotonic() + grace
        while any(c.proc is not None for c in self.init + self.containers):
            if time.monotonic() >= deadline:
                await self._kill_all(signal.SIGKILL)
                return
            await asyncio.sleep(0.05)

    async def _kill_all(self, sig: int) -> None:
        for container in self.init + self.containers:
            if container.proc is not None:
                self.kubelet.kill_group(container.proc.pid, sig)
        if sig == signal.SIGKILL:
            for container in self.init + self.containers:
                if container.proc is not None:
                    await container.proc.wait()


class Kubelet(Controller):
    """Schedules pods onto a node (``scheduling``) and runs them, whichever node; see PodRuntime."""

    def __init__(self, api: Api, authn: Authenticator, root: Path, images: dict[str, images_mod.Image]) -> None:
        super().__init__(api)
        self.authn = authn
        self.root = root
        self.images = images
        self.port = 0
        self.python = str(Path(images_mod.venv_bin()) / "python")
        self.runtimes: dict[str, PodRuntime] = {}
        self.retry_interval = 1.0
        self.pod_network = "host"  # or "isolated": a network namespace per pod (podnet.py)
        self.backoff_base = 1.0
        self.backoff_max = 10.0
        self.prober = Prober()
        self.background: set[asyncio.Task[None]] = set()
        self.unsynced: set[str] = set()
        """Uids of running pods with a volume whose ConfigMap or Secret changed since it was written."""

    def interested(self, event: Event) -> bool:
        return event.key in (("", "pods"), ("", "nodes")) or (event.key in SOURCE_KINDS and bool(self._mounting(event)))

    def _mounting(self, event: Event) -> list[PodRuntime]:
        """The running pods with a volume that shows the ConfigMap or Secret of ``event``."""
        meta = event.obj["metadata"]
        source = (SOURCE_KINDS[event.key], meta["name"])
        return [
            runtime
            for runtime in self.runtimes.values()
            if runtime.ns == meta.get("namespace")
            and any(source in volumes.sources(volume) for volume, _, _ in runtime.synced_volumes.values())
        ]

    def _on_event(self, event: Event) -> None:
        if event.key in SOURCE_KINDS and event.type != "DELETED":
            for runtime in self._mounting(event):
                self.unsynced.add(runtime.uid)
        super()._on_event(event)

    def sync_volumes(self) -> None:
        """Rewrite the ConfigMap and Secret volumes of running pods whose sources changed, as the
        kubelet's periodic sync does (within about a minute in a cluster; here at once). Environment
        variables taken from them never change, and ``subPath`` mounts keep their old content
        (``volumes.refresh``)."""
        for uid in sorted(self.unsynced):
            runtime = self.runtimes.get(uid)
            if runtime is None or runtime.terminating.is_set():
                continue
            pod = self.api.store.get(("", "pods"), runtime.ns, runtime.name) or runtime.pod
            for volume, directory, token in list(runtime.synced_volumes.values()):
                volumes.refresh(self.api.store, pod, volume, directory, token)
        self.unsynced.clear()

    def reconcile(self) -> float | None:
        self.sync_volumes()
        rt = self.api.resource("", "v1", "pods")
        present = set()
        for pod in self.api.store.items(rt.key):
            meta = pod["metadata"]
            present.add(meta["uid"])
            runtime = self.runtimes.get(meta["uid"])
            if meta.get("deletionTimestamp"):
                if runtime is not None:
                    runtime.terminate(float(meta.get("deletionGracePeriodSeconds") or 0))
                elif meta.get("deletionGracePeriodSeconds"):
                    self.api.delete(rt, meta["namespace"], meta["name"], {"gracePeriodSeconds": 0})
                continue
            if not dig(pod, "spec", "nodeName"):
                self._bind(pod)
                continue
            if runtime is None and dig(pod, "status", "phase") not in ("Succeeded", "Failed"):
                runtime = PodRuntime(self, pod)
                self.runtimes[meta["uid"]] = runtime
                runtime.task = asyncio.get_running_loop().create_task(runtime.run())
        for uid, runtime in list(self.runtimes.items()):
            if uid not in present:
                runtime.terminate(0)
        return None

    def _bind(self, pod: JSON) -> None:
        """The scheduler's part: bind the pod to a node its selector, affinity and tolerations admit
        (``scheduling``), or leave it Pending, saying why, until one does."""
        meta = pod["metadata"]
        node, why = scheduling.place(pod, self.api.store.items(("", "nodes")))
        new = deep(pod)
        if node is None:
            conditions = [c for c in dig(pod, "status", "conditions") or [] if c.get("type") != "PodScheduled"]
            current = next((c for c in dig(pod, "status", "conditions") or [] if c.get("type") == "PodScheduled"), None)
            if current is not None and current.get("message") == why:
                return  # said already; the next change of a node or of the pod tries again
            scheduled = {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": why,
                "lastProbeTime": None,
                "lastTransitionTime": timestamp(),
            }
            new.setdefault("status", {})["conditions"] = [*conditions, scheduled]
            self.api.store.put(("", "pods"), new, pod)
            self.api.record_event(new, "Warning", "FailedScheduling", why, "default-scheduler")
            return
        new["spec"]["nodeName"] = node
        self.api.store.put(("", "pods"), new, pod)
        self.api.record_event(
            new,
            "Normal",
            "Scheduled",
            f"Successfully assigned {meta['namespace']}/{meta['name']} to {node}",
            "default-scheduler",
        )

    def finalize(self, ns: str, name: str, uid: str) -> None:
        """The kubelet's final delete (grace 0) once the containers are gone."""
        pod = self.api.store.get(("", "pods"), ns, name)
        if pod is None or pod["metadata"]["uid"] != uid or not pod["metadata"].get("deletionTimestamp"):
            return
        rt = self.api.resource("", "v1", "pods")
        try:
            self.api.delete(rt, ns, name, {"gracePeriodSeconds": 0})
        except ApiError as exc:
            if exc.code != 404:
                raise

    # -- logs and faults -------------------------------------------------------------------
    def _container(self, uid: str, name: str) -> Container | None:
        runtime = self.runtimes.get(uid)
        if runtime is None:
            return None
        return next((c for c in runtime.init + runtime.containers if c.name == name), None)

    def log_for(self, ns: str, pod: str, uid: str, container: str, previous: bool) -> ContainerLog | None:
        found = self._container(uid, container)
        if found is None:
            return None
        return found.previous if previous else found.log

    def waiting_reason(self, pod: JSON, container: str) -> str:
        for status in (dig(pod, "status", "containerStatuses") or []) + (
            dig(pod, "status", "initContainerStatuses") or []
        ):
            if status.get("name") == container and "waiting" in (status.get("state") or {}):
                waiting = status["state"]["waiting"]
                if waiting.get("reason") in ("ErrImagePull", "ImagePullBackOff"):
                    return "trying and failing to pull image"
                return str(waiting.get("reason", "ContainerCreating"))
        return "ContainerCreating"

    def kill(self, ns: str, name: str, container: str | None, sig: int) -> bool:
        pod = self.api.store.get(("", "pods"), ns, name)
        runtime = self.runtimes.get(pod["metadata"]["uid"]) if pod else None
        if runtime is None:
            return False
        hit = False
        for c in runtime.init + runtime.containers:
            if c.proc is not None and (container is None or c.name == container):
                self.kill_group(c.proc.pid, sig)
                hit = True
        return hit

    @staticmethod
    def kill_group(pid: int, sig: int) -> None:
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return  # the whole group is already gone

    # -- mount points on the host --------------------------------------------------------------
    @staticmethod
    def acquire(target: str, is_file: bool) -> list[str]:
        """Make sure ``target`` exists to bind-mount onto; returns the paths to release later."""
        return [mountpoints.acquire(target, is_file)]

    @staticmethod
    def release(targets: list[str]) -> None:
        for target in targets:
            mountpoints.release(target)
        targets.clear()

    async def shutdown(self) -> None:
        for runtime in list(self.runtimes.values()):
            runtime.terminate(0)
        tasks = [r.task for r in self.runtimes.values() if r.task is not None]
        for result in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(result, BaseException):
                log.error("pod runtime failed during shutdown", exc_info=result)
        await self.prober.close()
        for task in list(self.background):
            task.cancel()
        await asyncio.gather(*self.background, return_exceptions=True)
