"""Container probes, as the kubelet runs them
(https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/#container-probes,
https://kubernetes.io/docs/tasks/configure-pod-container/configure-liveness-readiness-startup-probes/,
the ``Probe`` fields in https://kubernetes.io/docs/reference/kubernetes-api/workload-resources/pod-v1/#Probe).

Each probe of a running container is a ``Worker``; all workers of all pods share one timer loop
(``Prober``: a heap of due times and one task), and each probe attempt is a short task bounded by
``timeoutSeconds``. A probe starts ``initialDelaySeconds`` after the container started (readiness
and liveness: after the startup probe succeeded, if there is one) and runs every
``periodSeconds``; ``successThreshold``/``failureThreshold`` consecutive results flip it.

- startupProbe: until it succeeds the container is not ``started`` and the other probes are off;
  ``failureThreshold`` failures kill the container, which restarts per ``restartPolicy``.
- readinessProbe: the container is not ready until it succeeds (its initial state is failure);
  the pod's ``ContainersReady``/``Ready`` conditions follow the containers' readiness.
- livenessProbe: ``failureThreshold`` failures kill the container (SIGTERM, then SIGKILL after the
  probe's or the pod's ``terminationGracePeriodSeconds``); it restarts unless ``restartPolicy`` is
  Never.

``httpGet`` (HTTP or HTTPS without certificate checks, ``httpHeaders``, a numeric or named port,
success for 200-399, redirects not followed) and ``tcpSocket`` connect to the pod (127.0.0.1; with
``pod_network="isolated"`` from a socket made inside the pod's network namespace). ``exec`` and
``grpc`` probes are not run: every attempt counts as a success, so only their timing applies.
Every failed attempt records a ``Warning Unhealthy`` event, as the kubelet does.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import socket
import ssl
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .kubelet import Container, PodRuntime

JSON = dict[str, Any]
KINDS = ("startupProbe", "readinessProbe", "livenessProbe")
_LABEL = {"startupProbe": "Startup", "readinessProbe": "Readiness", "livenessProbe": "Liveness"}
POD_IP = "127.0.0.1"
USER_AGENT = "kube-probe/1.32"
_BODY_LIMIT = 10 * 1024  # the kubelet reads at most 10 KiB of a probe's response body


def _seconds(spec: JSON, field: str, default: int, minimum: int) -> int:
    value = spec.get(field)
    return max(minimum, int(value)) if isinstance(value, int) and not isinstance(value, bool) else default


class Worker:
    """One probe of one container run."""

    def __init__(self, runtime: PodRuntime, container: Container, kind: str, spec: JSON) -> None:
        self.runtime = runtime
        self.container = container
        self.kind = kind
        self.spec = spec
        self.initial_delay = _seconds(spec, "initialDelaySeconds", 0, 0)
        self.period = _seconds(spec, "periodSeconds", 10, 1)
        self.timeout = _seconds(spec, "timeoutSeconds", 1, 1)
        self.success_threshold = _seconds(spec, "successThreshold", 1, 1)
        self.failure_threshold = _seconds(spec, "failureThreshold", 3, 1)
        self.active = True
        self.token = 0  # the heap entry that is current; older entries are skipped
        self.last: bool | None = None
        self.run = 0

    @property
    def label(self) -> str:
        return _LABEL[self.kind]


class Prober:
    """The kubelet's probe manager: one timer loop for every probe of every pod."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, int, Worker]] = []
        self._seq = itertools.count()
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._attempts: set[asyncio.Task[None]] = set()

    # -- lifecycle of a container run ----------------------------------------------------------
    def start(self, runtime: PodRuntime, container: Container) -> None:
        """The container just started: reset started/ready and schedule its probes."""
        workers = [Worker(runtime, container, kind, container.spec[kind]) for kind in KINDS if container.spec.get(kind)]
        container.probes = workers
        startup = next((w for w in workers if w.kind == "startupProbe"), None)
        container.started = startup is None
        container.ready = container.started and not any(w.kind == "readinessProbe" for w in workers)
        now = time.monotonic()
        for worker in workers:
            if startup is None or worker is startup:
                self._schedule(worker, now + worker.initial_delay)

    def stop(self, container: Container) -> None:
        """The container ended: its probes stop, and it is neither started nor ready."""
        for worker in container.probes:
            worker.active = False
        container.probes = []
        container.started = container.ready = False

    async def close(self) -> None:
        tasks = [t for t in [self._task, *self._attempts] if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._task = None
        self._heap.clear()

    # -- the timer loop ------------------------------------------------------------------------
    def _schedule(self, worker: Worker, when: float) -> None:
        worker.token += 1
        heapq.heappush(self._heap, (when, next(self._seq), worker.token, worker))
        if self._task is None:
            self._wake = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._loop())
        assert self._wake is not None
        self._wake.set()

    async def _loop(self) -> None:
        assert self._wake is not None
        while True:
            now = time.monotonic()
            while self._heap and self._heap[0][0] <= now:
                _, _, token, worker = heapq.heappop(self._heap)
                if worker.active and token == worker.token:
                    task = asyncio.get_running_loop().create_task(self._attempt(worker, now))
                    self._attempts.add(task)
                    task.add_done_callback(self._attempts.discard)
            timeout = self._heap[0][0] - now if self._heap else None
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                pass  # a probe is due
            self._wake.clear()

    async def _attempt(self, worker: Worker, due: float) -> None:
        try:
            ok, message, errored = await self._check(worker)
        except Exception as exc:  # a probe bug must not stop probing; it counts as an error
            ok, message, errored = False, str(exc) or type(exc).__name__, True
        if not worker.active:
            return
        self._record(worker, ok, message, errored)
        if worker.active:
            self._schedule(worker, max(due + worker.period, time.monotonic()))

    # -- results -------------------------------------------------------------------------------
    def _record(self, worker: Worker, ok: bool, message: str, errored: bool) -> None:
        runtime, container = worker.runtime, worker.container
        if not ok:
            verb = "errored" if errored else "failed"
            runtime.event("Warning", "Unhealthy", f"{worker.label} probe {verb}: {message}")
        if worker.last == ok:
            worker.run += 1
        else:
            worker.last, worker.run = ok, 1
        if worker.run < (worker.success_threshold if ok else worker.failure_threshold):
            return  # below the threshold: the probe's state stays as it was
        if worker.kind == "readinessProbe":
            if container.ready != ok:
                container.ready = ok
                runtime.push()
        elif worker.kind == "startupProbe":
            worker.active = False
            if ok:
                container.started = True
                container.ready = not any(w.kind == "readinessProbe" for w in container.probes)
                now = time.monotonic()
                for other in container.probes:
                    if other is not worker:
                        self._schedule(other, now + other.initial_delay)
                runtime.push()
            else:
                runtime.unhealthy(container, worker.spec, "failed startup probe")
        elif not ok:
            worker.active = False  # on hold until the container restarts
            runtime.unhealthy(container, worker.spec, "failed liveness probe")

    # -- one attempt ---------------------------------------------------------------------------
    async def _check(self, worker: Worker) -> tuple[bool, str, bool]:
        """(success, message, errored) of one probe attempt."""
        spec = worker.spec
        if isinstance(spec.get("httpGet"), dict):
            action = spec["httpGet"]
        elif isinstance(spec.get("tcpSocket"), dict):
            action = spec["tcpSocket"]
        else:
            return True, "", False  # exec and grpc probes are not run: they count as successes
        try:
            port = self._port(worker.container.spec, action.get("port"))
        except LookupError as exc:
            return False, str(exc), True
        host = action.get("host") or POD_IP
        if "httpGet" in spec:
            return await self._http(worker, action, host, port)
        target = f"{host}:{port}"
        try:
            _, writer = await asyncio.wait_for(self._connect(worker, host, port, None), worker.timeout)
        except TimeoutError:
            return False, f"dial tcp {target}: i/o timeout", False
        except OSError as exc:
            return False, f"dial tcp {target}: connect: {_reason(exc)}", False
        writer.close()
        return True, "", False

    @staticmethod
    def _port(container: JSON, port: Any) -> int:
        if isinstance(port, int) and not isinstance(port, bool):
            return port
        for declared in container.get("ports") or []:
            if declared.get("name") == port and isinstance(declared.get("containerPort"), int):
                return int(declared["containerPort"])
        raise LookupError(f"unable to find port {port!r} in container {container.get('name')!r}")

    async def _connect(
        self, worker: Worker, host: str, port: int, tls: ssl.SSLContext | None
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        net = worker.runtime.net
        loop = asyncio.get_running_loop()
        if net is not None and host in (POD_IP, "localhost"):
            sock = await net.socket()  # the pod's own loopback, inside its network namespace
            address = (POD_IP, port)
        else:
            infos = await loop.getaddrinfo(host, port, family=socket.AF_INET, type=socket.SOCK_STREAM)
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            address = (str(infos[0][4][0]), port)
        try:
            sock.setblocking(False)
            await loop.sock_connect(sock, address)
            return await asyncio.open_connection(sock=sock, ssl=tls, server_hostname=host if tls is not None else None)
        except BaseException:
            sock.close()
            raise

    async def _http(self, worker: Worker, action: JSON, host: str, port: int) -> tuple[bool, str, bool]:
        scheme = str(action.get("scheme") or "HTTP").lower()
        path = str(action.get("path") or "/")
        if not path.startswith("/"):
            path = "/" + path
        url = f"{scheme}://{host}:{port}{path}"
        tls = None
        if scheme == "https":
            tls = ssl.create_default_context()
            tls.check_hostname = False
            tls.verify_mode = ssl.CERT_NONE
        headers = {"Host": f"{host}:{port}", "User-Agent": USER_AGENT, "Accept": "*/*"}
        for header in action.get("httpHeaders") or []:
            if isinstance(header, dict) and header.get("name"):
                name = next((k for k in headers if k.lower() == str(header["name"]).lower()), str(header["name"]))
                headers[name] = str(header.get("value", ""))
        headers["Connection"] = "close"
        request = f"GET {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"

        async def exchange() -> int:
            reader, writer = await self._connect(worker, host, port, tls)
            try:
                writer.write(request.encode("latin-1"))
                await writer.drain()
                status_line = await reader.readline()
                parts = status_line.split()
                if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
                    raise ValueError(f"malformed HTTP response {status_line[:100]!r}")
                # Read the rest as the kubelet does (so the server does not see a reset mid-write):
                # the headers, then Content-Length bytes of body, else until it closes.
                length: int | None = None
                while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    key, _, value = line.decode("latin-1").partition(":")
                    if key.strip().lower() == "content-length" and value.strip().isdigit():
                        length = int(value.strip())
                left = min(length, _BODY_LIMIT) if length is not None else _BODY_LIMIT
                while left > 0 and (chunk := await reader.read(left)):
                    left -= len(chunk)
                return int(parts[1])
            finally:
                writer.close()

        try:
            code = await asyncio.wait_for(exchange(), worker.timeout)
        except TimeoutError:
            return (
                False,
                f'Get "{url}": context deadline exceeded (Client.Timeout exceeded while awaiting headers)',
                False,
            )
        except ConnectionRefusedError as exc:
            return False, f'Get "{url}": dial tcp {host}:{port}: connect: {_reason(exc)}', False
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            return False, f'Get "{url}": {_reason(exc)}', False
        if 200 <= code < 400:
            return True, "", False
        return False, f"HTTP probe failed with statuscode: {code}", False


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__
