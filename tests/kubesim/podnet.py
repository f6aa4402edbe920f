"""Optional per-pod network namespaces (``Simulator(pod_network="isolated")``).

Each pod gets its own network namespace with only a loopback interface, so pods can listen on the
same port (two operator replicas with a metrics port) as pods with their own IPs can. The API server
stays reachable at ``127.0.0.1:<port>`` inside the pod (what ``KUBERNETES_SERVICE_HOST/PORT`` say):
a listening socket created inside the namespace is proxied to the real endpoint. The namespace is
made by a short-lived thread (network namespaces are per thread), so the simulator's own threads
never leave the host namespace; containers join it with ``setns`` through an inherited descriptor,
and the kubelet's probes connect from sockets made inside it the same way (``PodNetwork.socket``).
Without isolation (the default), pods share the host network, so they can reach servers a test
runs on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import ctypes
import fcntl
import os
import socket
import struct
import threading
from typing import Any

CLONE_NEWNET = 0x40000000
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1


def _make_namespace(port: int, out: dict[str, Any]) -> None:
    """Runs in a throwaway thread: unshare its network namespace, bring loopback up, listen."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.unshare(CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"unshare(CLONE_NEWNET): {os.strerror(errno)}")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            flags = struct.unpack("16sH14s", fcntl.ioctl(probe, SIOCGIFFLAGS, struct.pack("16sH14s", b"lo", 0, b"")))[1]
            fcntl.ioctl(probe, SIOCSIFFLAGS, struct.pack("16sH14s", b"lo", flags | IFF_UP, b""))
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", port))
        listener.listen(64)
        listener.setblocking(False)
        out["listener"] = listener
        out["fd"] = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    except OSError as exc:
        out["error"] = exc


def _socket_in(fd: int, out: dict[str, Any]) -> None:
    """Runs in a throwaway thread: join the pod's network namespace and make a TCP socket there
    (a socket stays in the namespace it was made in, whichever thread uses it afterwards)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.setns(fd, CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"setns(CLONE_NEWNET): {os.strerror(errno)}")
        out["socket"] = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    except OSError as exc:
        out["error"] = exc


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        return  # the other side went away; the caller closes both ends
    finally:
        writer.close()


class PodNetwork:
    def __init__(self, fd: int, server: asyncio.Server) -> None:
        self.fd = fd
        self.server = server

    @classmethod
    async def create(cls, api_port: int) -> PodNetwork:
        out: dict[str, Any] = {}
        thread = threading.Thread(target=_make_namespace, args=(api_port, out), name="kubesim-podnet")
        thread.start()
        await asyncio.get_running_loop().run_in_executor(None, thread.join)
        if "error" in out:
            raise out["error"]

        async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                up_reader, up_writer = await asyncio.open_connection("127.0.0.1", api_port)
            except OSError:
                writer.close()  # the API endpoint is down (restart_api): the client sees a reset
                return
            await asyncio.gather(_copy(reader, up_writer), _copy(up_reader, writer))

        server = await asyncio.start_server(relay, sock=out["listener"])
        return cls(out["fd"], server)

    async def socket(self) -> socket.socket:
        """A TCP socket inside the pod's namespace, for the kubelet's probes of the pod's ports."""
        out: dict[str, Any] = {}
        thread = threading.Thread(target=_socket_in, args=(self.fd, out), name="kubesim-podnet-socket")
        thread.start()
        await asyncio.get_running_loop().run_in_executor(None, thread.join)
        if "error" in out:
            raise out["error"]
        sock: socket.socket = out["socket"]
        return sock

    async def close(self) -> None:
        self.server.close()
        await self.server.wait_closed()
        os.close(self.fd)
