"""Container entry point, run by the kubelet as ``python -S launcher.py SPEC``.

It enters a private mount namespace, bind-mounts the pod's volumes (service-account token,
ConfigMaps, Secrets, termination-message file) at their container paths, then ``exec``s the
container command, so the process id the kubelet holds is the container's. Only the standard
library is used, so that it starts fast without site-packages.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys
from typing import Any

CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
MS_RDONLY = 1
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def main() -> None:
    with open(sys.argv[1]) as fh:
        spec = json.load(fh)
    # Open what we need before mounting anything: a mount over e.g. /tmp must not hide the sources
    # of later mounts or the start-error file. Parents are mounted before children, as container
    # runtimes do. (os.open descriptors are close-on-exec, so none leaks into the container.)
    error_fd = os.open(spec["startErrorFile"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    argv = spec["argv"]
    try:
        _enter(spec)
        os.execvpe(argv[0], argv, spec["env"])
    except OSError as exc:
        # Reported by the kubelet as the container's StartError, as a runtime reports it.
        where = f'exec: "{argv[0]}"' if exc.filename is None or exc.filename == argv[0] else "setup"
        os.write(error_fd, f"{where}: {exc.strerror or exc}: unknown".encode())
        sys.exit(128)


def _enter(spec: dict[str, Any]) -> None:
    """Private mount namespace, bind mounts, user switch and working directory."""
    mounts = sorted(spec["mounts"], key=lambda m: m["target"].rstrip("/").count("/"))
    libc = ctypes.CDLL(None, use_errno=True)
    if spec.get("netnsFd") is not None:
        _check(libc.setns(spec["netnsFd"], CLONE_NEWNET), "join the pod's network namespace")
        os.close(spec["netnsFd"])
    _check(libc.unshare(CLONE_NEWNS), "unshare")
    _check(libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "make / private")
    ships = [p for p in spec.get("ships") or [] if os.path.isdir(p)]
    if spec.get("user") is not None:
        for shipped in ships:
            _ship(libc, shipped)
    # What the image ships stays visible under the pod's volumes too (a clone under /tmp has its
    # virtualenv hidden by an emptyDir at /tmp otherwise; in a real image no volume hides /usr).
    shipped_fds = {path: os.open(path, os.O_PATH) for path in ships}
    # Descriptors must be opened inside the new namespace: a bind source from another mount
    # namespace is refused (EINVAL).
    held = [os.open(m["source"], os.O_PATH) for m in mounts]
    for mount, fd in zip(mounts, held, strict=True):
        src, dst = f"/proc/self/fd/{fd}".encode(), mount["target"].encode()
        _check(libc.mount(src, dst, None, MS_BIND | MS_REC, None), f"bind {mount['source']} -> {mount['target']}")
        if mount.get("readOnly"):
            flags = MS_BIND | MS_REMOUNT | MS_RDONLY
            _check(libc.mount(b"none", dst, None, flags, None), f"read-only {mount['target']}")
        os.close(fd)
    targets = [m["target"].rstrip("/") for m in mounts]
    for path, fd in shipped_fds.items():
        if any(path.startswith(target + "/") for target in targets):
            os.makedirs(path, exist_ok=True)
            _check(
                libc.mount(f"/proc/self/fd/{fd}".encode(), path.encode(), None, MS_BIND | MS_REC, None), f"ship {path}"
            )
        os.close(fd)
    user = spec.get("user")
    if user is not None:
        os.setgroups(user["groups"])
        os.setgid(user["gid"])
        os.setuid(user["uid"])
    if spec.get("workingDir"):
        os.makedirs(spec["workingDir"], exist_ok=True)
        os.chdir(spec["workingDir"])


def _ship(libc: Any, path: str) -> None:
    """Make ``path`` reachable for a non-root user, as a file inside an image is.

    On this machine a shipped path may sit below a directory others cannot enter (``/root``, mode
    700). Inside the container's own mount namespace, that directory is covered with an empty,
    world-traversable tmpfs and only ``path``'s branch is bound back into it: the container sees
    the interpreter, and nothing else that the host keeps private.
    """
    current = "/"
    for part in [p for p in path.split("/") if p]:
        child = os.path.join(current, part)
        if not os.stat(current).st_mode & 0o001:
            branch = os.open(child, os.O_PATH)
            _check(libc.mount(b"tmpfs", current.encode(), b"tmpfs", 0, b"mode=755"), f"cover {current}")
            os.makedirs(child, exist_ok=True)
            _check(
                libc.mount(f"/proc/self/fd/{branch}".encode(), child.encode(), None, MS_BIND | MS_REC, None),
                f"ship {child}",
            )
            os.close(branch)
            return
        current = child


if __name__ == "__main__":
    main()
